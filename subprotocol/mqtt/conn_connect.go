package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// versionNames are the broker.SessionOptions.Version strings.
var versionNames = map[byte]string{Version31: "3.1", Version311: "3.1.1", Version5: "5.0"}

// refuseConnect answers a CONNECT that failed to decode and closes. The
// partial *Connect carries the client's protocol level, so the answer is in
// the client's version: an unsupported level gets return code 0x01 (3.x)
// or reason code 0x84 (v5) [MQTT-3.1.2-2]; a 3.1 client identifier of the
// wrong length gets 0x02; other failures get a v5 CONNACK with the reason
// code (MQTT 5 §3.2.2.2) and, in 3.x, just the close [MQTT-3.1.4-1].
func (c *conn) refuseConnect(p *Connect, err error) error {
	var me Error
	if !errors.As(err, &me) {
		return c.endOnReadError(err) // the stream ended inside the CONNECT
	}
	level := p.ProtocolLevel
	switch {
	case me.Code == CodeUnsupportedProtocolVersion && level != Version5:
		level = Version311 // 0x01 in the 3.1.1 layout, which 3.1 clients read too
		c.writeConnack(&Connack{ReasonCode: CodeUnsupportedProtocolVersion}, level)
	case me.Code == CodeClientIdentifierNotValid || level == Version5:
		if !connackCodes.has(me.Code) {
			me.Code = CodeUnspecifiedError
		}
		c.writeConnack(&Connack{ReasonCode: me.Code}, level)
	}
	return c.fail(err)
}

// writeConnack writes a refusing CONNACK directly: before the session
// exists, the read loop is the only writer.
func (c *conn) writeConnack(p *Connack, level byte) {
	_ = c.t.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	_ = c.t.WriteMessage(true, AppendPacket(nil, p, level))
}

// refuse answers CONNECT with a failure code and closes [MQTT-3.2.2-7]
// (3.1.1: [MQTT-3.2.2-5]). It returns nil: the refusal is the answer.
func (c *conn) refuse(code ReasonCode, why string, args ...any) error {
	return c.refuseWith(code, wireError(Error{Code: code}).ws, why, args...)
}

// refuseLogin refuses a CONNECT for a broker error (connackCode): bad
// credentials, not authorized, banned, client id owned, session quota.
func (c *conn) refuseLogin(err error, why string, args ...any) error {
	code, ws := connackCode(err)
	if !errors.Is(err, broker.ErrShuttingDown) {
		c.p.ctr.AuthFailure()
	}
	return c.refuseWith(code, ws, why, append(args, "err", err)...)
}

func (c *conn) refuseWith(code ReasonCode, ws int, why string, args ...any) error {
	c.logLimited("mqtt: CONNECT refused: "+why, append(args, "code", code)...)
	c.writeConnack(&Connack{ReasonCode: code}, c.version)
	c.t.Close(ws, code.String())
	return nil
}

// handleConnect authenticates, opens (or resumes) the session, answers
// CONNACK and, for a resumed session, resends what was in flight.
func (c *conn) handleConnect(p *Connect) error {
	c.version = p.ProtocolLevel
	v5 := c.version >= Version5
	props := &p.Properties
	c.clientID = p.ClientID
	assigned := ""
	if c.clientID == "" {
		// [MQTT-3.1.3-8] 3.1.1 without clean session: identifier rejected.
		if !v5 && !p.CleanStart {
			return c.refuse(CodeClientIdentifierNotValid, "empty client identifier without clean session [MQTT-3.1.3-8]")
		}
		// [MQTT-3.1.3-6] assign a unique identifier; v5 returns it in
		// Assigned Client Identifier (MQTT 5 §3.2.2.3.7).
		var b [12]byte
		_, _ = rand.Read(b[:])
		c.clientID = "auto-" + hex.EncodeToString(b[:])
		if v5 {
			assigned = c.clientID
		}
	}
	if v5 && props.AuthMethod != "" {
		// Enhanced authentication is not supported (MQTT 5 §4.12).
		return c.refuse(CodeBadAuthenticationMethod, "unsupported authentication method", "method", props.AuthMethod)
	}
	remote := c.t.RemoteAddr().String()
	peer := c.t.Peer()
	id, err := c.router.Authenticate(c.ctx, broker.Credentials{
		Login: p.Username, Passcode: string(p.Password), ClientID: c.clientID,
		RemoteAddr: remote, Protocol: "mqtt",
		Transport: peer.Transport, CertNames: peer.CertNames, Token: peer.Token,
	})
	if err != nil {
		return c.refuseLogin(err, "authentication failed", "user", p.Username)
	}
	if p.Will != nil {
		c.will = c.willMessage(p.Will)
		// The will is checked now: it is published without a session to
		// check it against.
		if !c.router.Config().Authorizer.Allow(id, c.clientID, broker.OpPublish, c.will.Topic) {
			c.p.ctr.PublishDenied()
			return c.refuse(CodeNotAuthorized, "will topic not authorized", "topic", c.will.Topic)
		}
	}

	// Session lifetime: v5 Session Expiry Interval, 0xFFFFFFFF "never"
	// (MQTT 5 §3.1.2.11.2), within MaxSessionExpiry; 3.x clean session 0
	// [MQTT-3.1.2-4] gets DefaultSessionExpiry (3.x cannot say how long;
	// a session kept for ever by default lets anyone fill the store).
	var expiry time.Duration
	switch {
	case v5:
		expiry = c.sessionExpiry(props.SessionExpiry)
		c.expiryZero = props.SessionExpiry == 0
	case !p.CleanStart:
		expiry = c.capExpiry(c.cfg.DefaultSessionExpiry)
	}
	if v5 && p.Will != nil {
		c.willDelay = time.Duration(p.Will.Properties.WillDelay) * time.Second
	}

	// Keep alive: the read deadline is 1.5 × keep alive [MQTT-3.1.2-24];
	// a v5 server may impose its own (Server Keep Alive, [MQTT-3.1.2-21]).
	keepAlive := time.Duration(p.KeepAlive) * time.Second
	serverKeepAlive := false
	if v5 && c.cfg.MaxKeepAlive > 0 && (keepAlive == 0 || keepAlive > c.cfg.MaxKeepAlive) {
		keepAlive = c.cfg.MaxKeepAlive.Truncate(time.Second)
		serverKeepAlive = true
	}
	c.readTimeout = keepAlive * 3 / 2

	c.window = c.cfg.MaxInflight
	c.maxQueued = c.router.Config().MaxPendingMsgs
	if v5 {
		if props.ReceiveMaximum > 0 {
			c.window = int(props.ReceiveMaximum) // [MQTT-3.3.4-9]
		}
		c.maxOutPacket = int(min(props.MaximumPacketSize, math.MaxInt32))
		c.aliasMax = props.TopicAliasMaximum // 0: the client takes none [MQTT-3.3.2-9]
	}

	sess, err := c.router.Open(broker.SessionID(c.clientID), broker.SessionOptions{
		Protocol: "mqtt", Version: versionNames[c.version], RemoteAddr: remote, Identity: id,
		Transport: peer.Transport, KeepAlive: keepAlive,
		OnClose: c.onSessionClose, Wake: c.wr.Wake, Expiry: expiry, CleanStart: p.CleanStart,
		Will: c.will, WillDelay: c.willDelay,
	})
	if err != nil {
		return c.refuseLogin(err, "cannot open session") // client id owned, session quota, shutting down
	}
	// [MQTT-3.2.2-1..3] session present only when state was resumed.
	ack := &Connack{SessionPresent: sess.Resumed() && !p.CleanStart}
	if v5 {
		ap := &ack.Properties
		ap.ReceiveMaximum = uint16(c.cfg.ReceiveMaximum)
		ap.MaximumPacketSize = uint32(c.cfg.MaxPacketSize)
		ap.TopicAliasMaximum = uint16(c.cfg.TopicAliasMaximum)
		ap.RetainAvailable, ap.HasRetainAvailable = true, true
		ap.WildcardSubAvailable, ap.HasWildcardSubAvailable = true, true
		ap.SharedSubAvailable, ap.HasSharedSubAvailable = true, true
		ap.SubIDAvailable, ap.HasSubIDAvailable = true, true
		ap.AssignedClientID = assigned
		if serverKeepAlive {
			ap.ServerKeepAlive, ap.HasServerKeepAlive = uint16(keepAlive/time.Second), true
		}
		if granted := expirySeconds(expiry); granted != props.SessionExpiry {
			ap.SessionExpiry = granted // the server's choice (MQTT 5 §3.2.2.3.2)
		}
	}
	if c.readTimeout > 0 {
		_ = c.t.SetReadDeadline(time.Now().Add(c.readTimeout))
	} else {
		_ = c.t.SetReadDeadline(time.Time{})
	}
	c.wdone.Add(1)
	buf := AppendPacket(nil, ack, c.version)
	if ack.SessionPresent {
		buf = c.resume(sess, buf)
	} else {
		sess.TakeState() // a clean start discards it [MQTT-3.1.2-4]
	}
	_ = c.t.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	if err := c.t.WriteMessage(true, buf); err != nil {
		c.wdone.Done()
		c.router.Close(sess, broker.CloseTransportError)
		c.t.Abort()
		return nil
	}
	sess.AddBytesOut(len(buf))
	c.sess = sess
	// The subscribers this connection's publishes fill are flushed once
	// per read of its socket (broker/deferred.go).
	sess.DeferFlushes()
	c.st.SetBeforeWait(c)
	c.rd.MaxPacketSize = c.cfg.MaxPacketSize // logged in: the full limit
	c.limiter = subprotocol.NewPublishLimiter(c.cfg.PublishRate, c.cfg.PublishBurst, c.cfg.PublishBytesRate)
	// nil: a write goroutine asks the outbox for Notify when it first parks.
	c.wr.Init(c, nil)
	c.wr.Ready() // writes queued before now (a close, say) go out at once
	c.watchExpiry(id.Expires)
	return nil
}

// sessionExpiry converts a v5 Session Expiry Interval, capped by
// MaxSessionExpiry.
func (c *conn) sessionExpiry(secs uint32) time.Duration {
	switch secs {
	case 0:
		return 0
	case math.MaxUint32:
		return c.capExpiry(broker.NeverExpire)
	}
	return c.capExpiry(time.Duration(secs) * time.Second)
}

func (c *conn) capExpiry(d time.Duration) time.Duration {
	if max := c.cfg.MaxSessionExpiry; max > 0 && (d == broker.NeverExpire || d > max) {
		return max
	}
	return d
}

// expirySeconds is the v5 Session Expiry Interval for d.
func expirySeconds(d time.Duration) uint32 {
	if d == broker.NeverExpire {
		return math.MaxUint32
	}
	return uint32(min(d/time.Second, math.MaxUint32-1))
}

// willMessage builds the will from CONNECT (MQTT 5 §3.1.2.5, §3.1.3.2).
func (c *conn) willMessage(w *Will) *broker.Message {
	m := &broker.Message{
		Topic: w.Topic, Payload: w.Payload, QoS: broker.QoS(w.QoS), Retain: w.Retain,
		From: broker.SessionID(c.clientID), Origin: "mqtt",
	}
	if c.version >= Version5 {
		applyProps(m, &w.Properties)
		m.Expires = time.Time{} // set when published: expiry counts from then
		if w.Properties.HasMessageExpiry {
			c.willExpiry = time.Duration(w.Properties.MessageExpiry) * time.Second
		}
	}
	return m
}

// publishWill publishes the will of a connection that ended without a
// normal DISCONNECT [MQTT-3.1.2-8] (v5: or with 0x04). The v5 Will Delay
// Interval is bounded by the session's expiry (MQTT 5 §3.1.3.2.2): a
// session that ends with its connection publishes at once.
//
// On takeover the new connection already exists, so a delayed will is not
// published [MQTT-3.1.3-9]; one without a delay is (the old connection
// ended abnormally, which is what MQTT 3.1.1 and mosquitto do).
func (c *conn) publishWill(reason broker.CloseReason) {
	delay := c.willDelay
	if exp := c.sess.Expiry(); exp != broker.NeverExpire && exp < delay {
		delay = exp
	}
	if reason == broker.CloseTakenOver && delay > 0 {
		return
	}
	m := c.will
	if c.willExpiry > 0 {
		// Message Expiry counts from publication (MQTT 5 §3.1.3.2.2).
		m.Expires = time.Now().Add(delay + c.willExpiry)
	}
	c.logf(slog.LevelDebug, "mqtt: publishing will", "topic", m.Topic, "delay", delay, "reason", reason)
	c.router.PublishWill(broker.SessionID(c.clientID), m, delay)
}
