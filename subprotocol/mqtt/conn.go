package mqtt

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// connReadBufferSize is the read loop's bufio size. The transport buffers
// too, so a small buffer keeps idle connections light; Reader reads bodies
// into their own buffers.
const connReadBufferSize = 512

// conn is one MQTT connection. Fields above the line belong to the read
// loop; the write loop owns its locals (writeloop.go) and shares only what
// is marked.
type conn struct {
	cfg    *Config
	p      *Protocol // counters and the refusal log limiter
	t      subprotocol.Transport
	router *broker.Router
	log    *slog.Logger
	ctx    context.Context

	st          *subprotocol.Stream
	br          *bufio.Reader // between st and rd
	rd          *Reader
	bytesIn     int64 // stream bytes counted into Session.AddBytesIn so far
	version     byte  // negotiated protocol level; 0 before CONNECT
	clientID    string
	sess        *broker.Session
	readTimeout time.Duration // 1.5 × keep alive [MQTT-3.1.2-24]; 0 means none
	will        *broker.Message
	willDelay   time.Duration
	willExpiry  time.Duration // v5 will Message Expiry Interval
	// normalClose is set by a DISCONNECT that discards the will
	// [MQTT-3.1.2-10] (v5: reason code 0x00 only).
	normalClose bool
	// expiryZero records a v5 CONNECT with Session Expiry 0, which a
	// DISCONNECT may not raise [MQTT-3.14.2-2].
	expiryZero bool
	aliases    map[uint16]string // inbound topic aliases (v5)
	// qos2In holds inbound QoS 2 packet ids published and awaiting PUBREL
	// (MQTT 5 §4.3.3 method B): a repeated PUBLISH is not published again.
	// Guarded by q2mu: the publish pipeline releases an id it refused.
	q2mu   sync.Mutex
	qos2In map[uint16]struct{}
	pipe   *subprotocol.Pipeline[pubJob] // publishes waiting for their store commit (pipeline.go); read loop sets it
	// limiter paces PUBLISH (Config.PublishRate); nil when off.
	limiter *subprotocol.PublishLimiter
	// expiryTimer closes the connection when its credential expires
	// (Identity.Expires); nil for credentials that do not expire.
	expiryTimer *time.Timer
	// stopBeforeReady ends the shutdown watch of a connection not yet
	// logged in (Writer.CloseBeforeReady); nil once it has run.
	stopBeforeReady func() bool

	// Set before the first write goroutine starts, read-only afterwards.
	window       int // outbound QoS 1/2 PUBLISH packets unacknowledged at once
	maxOutPacket int // client's Maximum Packet Size; 0 means none
	// Outbound topic aliases (MQTT 5 §3.3.2.3.4): the client's Topic Alias
	// Maximum, and the aliases given so far. Used only by whoever holds
	// the writing flag, like the rest of the encode state.
	aliasMax   uint16
	aliasesOut map[string]uint16
	maxQueued  int              // deliveries waiting for the window before the client is a slow consumer
	wdone      subprotocol.Done // done when the write loop has ended

	// Shared with the write loop.
	mu       sync.Mutex // guards out (Outbox.mu may be taken under it)
	out      outState
	failCode atomic.Int32       // WebSocket close code after a DISCONNECT the read loop queued
	wr       subprotocol.Writer // who writes after CONNACK (on demand, or inline)
}

// testHookNewConn, if set, sees every new connection (tests only).
var testHookNewConn func(subprotocol.Transport, *conn)

func newConn(p *Protocol, t subprotocol.Transport, r *broker.Router) *conn {
	c := &conn{cfg: &p.cfg, p: p, t: t, router: r, log: p.cfg.Log}
	if testHookNewConn != nil {
		testHookNewConn(t, c)
	}
	return c
}

// serve sets up the read loop and runs it.
func (c *conn) serve(ctx context.Context) error {
	c.ctx = ctx
	c.stopBeforeReady = c.wr.CloseBeforeReady(ctx, c.t)
	// Packets may span or share WebSocket messages [MQTT-6.0.0-2].
	c.st = &subprotocol.Stream{T: c.t, BinaryOnly: true}
	c.br = bufio.NewReaderSize(c.st, connReadBufferSize)
	c.rd = NewReader(c.br)
	// Only CONNECT is read before login, within the smaller limit;
	// handleConnect raises it once the client is in.
	c.rd.MaxPacketSize = c.cfg.MaxPacketBeforeLogin
	_ = c.t.SetReadDeadline(time.Now().Add(c.cfg.ConnectTimeout))
	return c.run()
}

// IdleReader implements subprotocol.Idle: the read loop's buffered reader
// and the stream under it.
func (c *conn) IdleReader() (*bufio.Reader, io.Reader) { return c.br, c.st }

// Parking implements subprotocol.Idle: the packet reader keeps nothing
// between packets.
func (c *conn) Parking() {}

// Resume implements subprotocol.Idle: the transport runs the read loop
// again once a parked connection has input.
func (c *conn) Resume() error { return c.run() }

// run runs the read loop until the connection ends or is parked
// (subprotocol.ErrParked: the transport calls Resume on new input).
func (c *conn) run() error {
	err := c.loop()
	if err != subprotocol.ErrParked && c.sess != nil {
		c.FlushDeferred() // what the last publishes left (SetBeforeWait)
		c.st.SetBeforeWait(nil)
	}
	if err != subprotocol.ErrParked && c.stopBeforeReady != nil {
		c.stopBeforeReady()
		c.stopBeforeReady = nil
	}
	return err
}

// loop is the read loop.
func (c *conn) loop() error {
	for {
		if c.br.Buffered() == 0 {
			c.st.MayWait() // before it may wait: flush what publishes left
		}
		// An idle connection waits light: with no goroutine when the
		// transport can park it (web: wsTransport.WaitRead).
		if subprotocol.WaitIdle(c.t, c.br, c) {
			return subprotocol.ErrParked
		}
		p, err := c.rd.ReadPacket(c.version)
		if c.st.TextFrames > 0 { // the Stream refused it before decoding
			return c.fail(subprotocol.ErrTextFrame) // [MQTT-6.0.0-1]
		}
		if err != nil {
			if cp, ok := p.(*Connect); ok && c.version == 0 {
				return c.refuseConnect(cp, err)
			}
			return c.endOnReadError(err)
		}
		if c.readTimeout > 0 {
			_ = c.t.SetReadDeadline(time.Now().Add(c.readTimeout))
		}
		if c.sess == nil {
			// ReadPacket(0) returns only a CONNECT [MQTT-3.1.0-1].
			if err := c.handleConnect(p.(*Connect)); err != nil {
				return c.fail(err)
			}
			if c.sess == nil {
				return nil // refused or failed; the transport is closed
			}
			c.countBytesIn()              // the CONNECT
			if c.stopBeforeReady != nil { // logged in: the router's Shutdown closes it now
				c.stopBeforeReady()
				c.stopBeforeReady = nil
			}
			continue
		}
		c.countBytesIn()
		c.sess.CountIn()
		if err := c.handle(p); err != nil {
			return c.fail(err)
		}
		if c.sess.Closed() {
			return c.finish()
		}
	}
}

// countBytesIn adds the wire size of the packets decoded since the last
// call to the session's byte count: one atomic add per packet.
func (c *conn) countBytesIn() {
	n := c.st.ConsumedBy(c.br.Buffered())
	if d := n - c.bytesIn; d > 0 {
		c.sess.AddBytesIn(int(d))
		c.bytesIn = n
	}
}

// handle dispatches one packet after CONNACK.
func (c *conn) handle(p Packet) error {
	switch p := p.(type) {
	case *Publish:
		if c.limiter != nil {
			c.throttle(len(p.Payload))
			if c.sess.Closed() {
				return nil
			}
		}
		return c.handlePublish(p)
	case *Ack:
		return c.handleAck(p)
	case *Subscribe:
		return c.handleSubscribe(p)
	case *Unsubscribe:
		return c.handleUnsubscribe(p)
	case *Pingreq:
		c.answer(&Pingresp{}) // [MQTT-3.12.4-1]
		return nil
	case *Disconnect:
		return c.handleDisconnect(p)
	case *Auth:
		// Enhanced authentication is not offered: CONNECT with an
		// Authentication Method is refused, so AUTH is out of place
		// (MQTT 5 §4.12).
		return Error{Code: CodeProtocolError, Reason: "AUTH without enhanced authentication (MQTT 5 §4.12)"}
	}
	// CONNACK, SUBACK, UNSUBACK, PINGRESP flow only to the client
	// (MQTT 5 §2.1.2, PacketType.FromClient).
	return Error{Code: CodeProtocolError, Reason: p.Type().String() + " is not sent by clients (MQTT 5 §2.1.2)"}
}

// handleDisconnect ends the session at the client's request (MQTT 5 §3.14).
func (c *conn) handleDisconnect(p *Disconnect) error {
	if c.version >= Version5 {
		if p.Properties.HasSessionExpiry {
			// [MQTT-3.14.2-2] raising a zero Session Expiry is a protocol
			// error; an explicit 0 ends the session with this connection.
			if c.expiryZero && p.Properties.SessionExpiry != 0 {
				return Error{Code: CodeProtocolError, Reason: "DISCONNECT sets a session expiry after CONNECT set 0 [MQTT-3.14.2-2]"}
			}
			c.sess.SetExpiry(c.sessionExpiry(p.Properties.SessionExpiry))
		}
		// Only 0x00 Normal disconnection discards the will [MQTT-3.1.2-10];
		// 0x04 Disconnect with Will Message and the error codes keep it
		// (MQTT 5 §3.14.2.1, §3.1.2.5).
		c.normalClose = p.ReasonCode == CodeNormalDisconnection
	} else {
		c.normalClose = true // [MQTT-3.14.4-3] discard the will
	}
	c.sess.Close(broker.CloseClientClosed)
	return nil
}

// endOnReadError ends the connection after the reader failed: an invalid
// packet gets the spec's answer; EOF, a closed socket or a deadline end the
// session quietly, with its will (subprotocol.EndRead).
func (c *conn) endOnReadError(err error) error {
	if c.sess != nil && c.sess.Closed() {
		return c.finish() // the write loop or the router ended it
	}
	var me Error
	if errors.As(err, &me) {
		return c.fail(err)
	}
	if subprotocol.IsTimeout(err) {
		if c.sess == nil {
			c.logf(slog.LevelInfo, "mqtt: no CONNECT in time, closing", "timeout", c.cfg.ConnectTimeout)
		} else {
			// [MQTT-3.1.2-24] no packet within 1.5 × keep alive.
			c.logf(slog.LevelInfo, "mqtt: keep alive timeout, closing", "timeout", c.readTimeout)
		}
	}
	if subprotocol.EndRead(c.t, c.sess, err) {
		return c.finish()
	}
	return nil
}

// fail reports err to the client and closes: a v5 client gets DISCONNECT
// with the reason code (MQTT 5 §4.13.1), a 3.x client just the close
// [MQTT-4.8.0-1].
func (c *conn) fail(err error) error {
	we := wireError(err)
	if c.sess == nil {
		// Before login anyone can make the server log: one line per
		// source address per interval.
		if errors.Is(err, ErrPacketTooLarge) {
			c.p.ctr.TooLargeBeforeLogin()
		}
		c.logLimited("mqtt: connection refused", "err", err)
		c.t.Close(we.ws, we.reason.String())
		return err
	}
	c.logf(slog.LevelWarn, "mqtt: closing on error", "err", err)
	c.closeOnError(err, we)
	c.finish()
	return err
}

// closeOnError queues a v5 DISCONNECT for err and closes the session; the
// read loop then finishes. Safe on any goroutine once the session is open
// (the publish pipeline uses it).
func (c *conn) closeOnError(err error, we wire) {
	c.failCode.Store(int32(we.ws))
	if c.version >= Version5 && we.code != 0 {
		d := &Disconnect{ReasonCode: we.code}
		var me Error
		if errors.As(err, &me) && len(me.Reason) < 256 {
			d.Properties.ReasonString = me.Reason // allowed on DISCONNECT [MQTT-3.1.2-29]
		}
		_ = c.sess.Outbox.PushControl(AppendPacket(nil, d, c.version))
	}
	c.sess.Close(we.reason)
}

// finish waits for the write loop to flush and close, publishes the will
// unless the client disconnected normally, keeps the session's state for a
// later connection and detaches the session from the router.
func (c *conn) finish() error {
	if c.sess == nil {
		return nil
	}
	c.FlushDeferred() // the write side ends only once ReplyLater lets go
	c.drainPipe()     // publishes it accepted are routed before the will and the session's end
	c.wdone.Wait()
	if c.expiryTimer != nil {
		c.expiryTimer.Stop()
	}
	reason := c.sess.Reason()
	if c.will != nil && !c.normalClose {
		c.publishWill(reason)
	}
	var shared []broker.Delivery
	if c.sess.Expiry() != 0 {
		c.sess.SaveState(c.saveState())
	} else {
		shared = c.unfinishedShared()
	}
	c.router.Close(c.sess, reason)
	c.router.Redistribute(shared) // the session is gone: another member takes them (MQTT 5 §4.8.2)
	c.logf(slog.LevelDebug, "mqtt: session ended", "reason", reason)
	return nil
}

// logf logs with the connection's client id and remote address.
func (c *conn) logf(level slog.Level, msg string, args ...any) {
	if !c.log.Enabled(c.ctx, level) {
		return
	}
	args = append(args, "client", c.clientID, "remote", c.t.RemoteAddr().String(), "protocol", "mqtt")
	c.log.Log(c.ctx, level, msg, args...)
}

// logLimited logs a warning about a client that is not logged in, at most
// one line per source address per interval (subprotocol.LogLimiter), with
// the count of lines suppressed since the last.
func (c *conn) logLimited(msg string, args ...any) {
	if !c.log.Enabled(c.ctx, slog.LevelWarn) {
		return
	}
	if args, ok := c.p.logs.Permit(c.t.RemoteAddr(), args); ok {
		c.logf(slog.LevelWarn, msg, args...)
	}
}

// throttle waits until the connection's publish rate (Config.PublishRate,
// PublishBytesRate) allows a PUBLISH of size payload bytes. The read loop
// reads nothing meanwhile: the publisher is slowed by back-pressure, and
// nothing is dropped. The wait ends early if the session closes.
func (c *conn) throttle(size int) {
	if !c.limiter.Wait(c.ctx, c.sess.Done(), &c.p.ctr, size, c.FlushDeferred) {
		return
	}
	if c.readTimeout > 0 {
		// The client's PINGREQs waited unread too [MQTT-3.1.2-24].
		_ = c.t.SetReadDeadline(time.Now().Add(c.readTimeout))
	}
}

// watchExpiry arms the timer that ends the connection when its credential
// expires (a JWT's exp): v5 DISCONNECT 0xA0 Maximum connect time, 3.x just
// the close. A credential without expiry arms nothing.
func (c *conn) watchExpiry(at time.Time) {
	if at.IsZero() {
		return
	}
	c.expiryTimer = time.AfterFunc(time.Until(at), func() {
		if c.sess.Closed() {
			return
		}
		c.p.ctr.CredentialExpired()
		c.logf(slog.LevelInfo, "mqtt: credential expired, closing")
		c.closeOnError(broker.ErrCredentialExpired, wireError(broker.ErrCredentialExpired))
	})
}

// reply queues a packet on the control lane. When no write goroutine runs,
// the read loop writes it itself rather than start one.
func (c *conn) reply(p Packet) {
	if !c.wr.Reply(c.sess, AppendPacket(nil, p, c.version)) {
		c.logf(slog.LevelWarn, "mqtt: too many unanswered requests, closing")
	}
}

// answer is reply for the read loop: the packet goes out with the other
// answers to the same read of the socket, at FlushDeferred
// (subprotocol.Writer.ReplyLater).
func (c *conn) answer(p Packet) {
	if !c.wr.ReplyLater(c.sess, AppendPacket(nil, p, c.version)) {
		c.logf(slog.LevelWarn, "mqtt: too many unanswered requests, closing")
	}
}

// FlushDeferred implements subprotocol.Flusher: before the read loop may
// wait, the subscribers its publishes filled are flushed, then its own
// answers written (answer).
func (c *conn) FlushDeferred() {
	c.sess.FlushDeferred()
	c.wr.FlushReplies()
}
