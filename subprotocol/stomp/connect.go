package stomp

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// supportedVersions in order of preference; sent in ERROR's version header
// when negotiation fails (STOMP 1.2 §Protocol Negotiation).
var supportedVersions = []string{"1.2", "1.1", "1.0"}

// connecting is the first state: only CONNECT or STOMP is accepted.
func connecting(c *conn, f *frame.Frame) error {
	if f.Command != frame.CONNECT && f.Command != frame.STOMP {
		return protocolErr("not connected", "the first frame must be CONNECT or STOMP, got %s", commandName(f.Command))
	}
	return c.handleConnect(f)
}

// handleConnect negotiates the version and heart-beats, authenticates, opens
// the session, answers CONNECTED and starts the write loop.
func (c *conn) handleConnect(f *frame.Frame) error {
	version, ok := negotiateVersion(f.Header.Get("accept-version"))
	if !ok {
		return &protoError{
			message: "unsupported STOMP version",
			detail:  "supported versions are " + strings.Join(supportedVersions, ", "),
			headers: []string{"version", strings.Join(supportedVersions, ",")},
		}
	}
	c.version = version
	c.rd.SetVersion(version)
	var send, recv time.Duration
	if version != "1.0" { // heart-beating is STOMP 1.1+
		hv, present := f.Header.Contains("heart-beat")
		cx, cy, err := parseHeartBeat(hv, present)
		if err != nil {
			return protocolErr("invalid heart-beat", "%v", err)
		}
		send, recv = negotiateHeartBeat(cx, cy, c.cfg.HeartbeatMin)
	}
	remote := c.t.RemoteAddr().String()
	c.clientID = f.Header.Get("client-id")
	peer := c.t.Peer()
	id, err := c.router.Authenticate(c.ctx, broker.Credentials{
		Login: f.Header.Get("login"), Passcode: f.Header.Get("passcode"),
		ClientID: f.Header.Get("client-id"), RemoteAddr: remote, Protocol: "stomp",
		Transport: peer.Transport, CertNames: peer.CertNames, Token: peer.Token,
	})
	if err != nil {
		return c.refuseLogin(f, err)
	}
	sess, err := c.router.Open("", broker.SessionOptions{
		Protocol: "stomp", Version: version, RemoteAddr: remote, Identity: id, ClientID: c.clientID,
		Transport: peer.Transport, KeepAlive: recv, // recv: the heart-beat the broker expects from the client
		OnClose: c.onSessionClose, Wake: c.wr.Wake,
	})
	if err != nil {
		return c.refuseLogin(f, err)
	}
	if recv > 0 {
		c.readTimeout = time.Duration(float64(recv)*c.cfg.HeartbeatGrace) + c.cfg.HeartbeatSlack
	} else {
		c.readTimeout = c.cfg.IdleTimeout
	}
	_ = c.t.SetReadDeadline(time.Now().Add(c.readTimeout))

	reply := frame.New(frame.CONNECTED,
		"version", version,
		"server", ServerName,
		"session", string(sess.ID),
		"heart-beat", formatHeartBeat(send, recv),
	)
	_ = c.t.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	b := AppendFrame(nil, reply, version)
	if err := c.t.WriteMessage(false, b); err != nil {
		c.router.Close(sess, broker.CloseTransportError)
		return nil
	}
	sess.AddBytesOut(len(b))
	c.sess = sess
	// The subscribers this connection's SENDs fill are flushed once per
	// read of its socket (broker/deferred.go).
	sess.DeferFlushes()
	c.st.SetBeforeWait(sess)
	c.countBytesIn()             // the CONNECT
	c.rd.SetLimits(c.cfg.Limits) // logged in: the full frame limits
	c.limiter = subprotocol.NewPublishLimiter(c.cfg.PublishRate, c.cfg.PublishBurst, c.cfg.PublishBytesRate)
	c.sendInterval = send
	c.wdone.Add(1)
	c.state = connected
	c.startKeepalive()
	// nil: a write goroutine asks the outbox for Notify when it first parks.
	c.wr.Init(c, nil)
	c.wr.Ready() // writes queued before now (a close, say) go out at once
	if r, ok := f.Header.Contains("receipt"); ok {
		c.receipt(r)
	}
	c.watchExpiry(id.Expires)
	return nil
}

// refuseLogin counts and logs (rate-limited per source) a refused login
// and returns the error that makes its ERROR frame: "access refused" or
// "quota exceeded" (wireError), then the connection closes.
func (c *conn) refuseLogin(f *frame.Frame, err error) error {
	le := loginError{err}
	if errors.Is(err, broker.ErrShuttingDown) {
		return le // not the client's failure
	}
	c.p.ctr.AuthFailure()
	c.logLimited("stomp: login refused", "login", f.Header.Get("login"), "err", err)
	return le
}

// watchExpiry arms the timer that ends the connection when its credential
// expires (a JWT's exp): ERROR "credential expired", then the close. A
// credential without expiry arms nothing.
func (c *conn) watchExpiry(at time.Time) {
	if at.IsZero() {
		return
	}
	c.expiryTimer = time.AfterFunc(time.Until(at), func() {
		if c.sess.Closed() {
			return
		}
		c.p.ctr.CredentialExpired()
		c.logf(slog.LevelInfo, "stomp: credential expired, closing")
		we := wireError(broker.ErrCredentialExpired)
		c.closeOnError(we, errorFrame(we.message, we.detail, nil))
	})
}

// negotiateVersion picks the highest common version from accept-version.
// A CONNECT without it is STOMP 1.0 (STOMP 1.2 §Protocol Negotiation).
func negotiateVersion(accept string) (string, bool) {
	if accept == "" {
		return "1.0", true
	}
	offered := strings.Split(accept, ",")
	for _, v := range supportedVersions {
		for _, o := range offered {
			if strings.TrimSpace(o) == v {
				return v, true
			}
		}
	}
	return "", false
}

// commandName quotes a command for an error message, bounded in length.
func commandName(cmd string) string {
	if len(cmd) > 32 {
		cmd = cmd[:32] + "…"
	}
	return "\"" + cmd + "\""
}
