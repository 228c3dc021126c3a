package stomp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// connReadBufferSize is the read loop's bufio size.
const connReadBufferSize = 512

// stateFunc handles one frame in the current state (go-stomp's design).
type stateFunc func(c *conn, f *frame.Frame) error

// conn is one STOMP connection. Fields above the line belong to the read
// loop; the write loop owns its own locals (writeloop.go) and shares only
// what is marked.
type conn struct {
	cfg    *Config
	p      *Protocol // counters and the login-failure log limiter
	t      subprotocol.Transport
	router *broker.Router
	log    *slog.Logger // shared; use c.logf to add the session and remote address
	ctx    context.Context

	st          *subprotocol.Stream
	br          *bufio.Reader // between st and rd
	rd          *Reader
	bytesIn     int64 // stream bytes counted into Session.AddBytesIn so far
	state       stateFunc
	version     string // negotiated: "1.0", "1.1", "1.2"
	sess        *broker.Session
	readTimeout time.Duration                  // client heart-beat deadline, or IdleTimeout
	txs         map[string][]*frame.Frame      // open transactions
	txBytes     int                            // body bytes buffered in txs
	temps       map[string]string              // /temp-queue/<name> → router queue name
	clientID    string                         // CONNECT client-id: names durable subscriptions
	pipe        *subprotocol.Pipeline[sendJob] // SENDs waiting for their store commit (pipeline.go); read loop sets it
	limiter     *subprotocol.PublishLimiter    // SEND rate; nil when Config sets none
	// expiryTimer closes the connection when its credential expires
	// (Identity.Expires); nil for credentials that do not expire.
	expiryTimer *time.Timer
	// stopBeforeReady ends the shutdown watch of a connection not yet
	// logged in (Writer.CloseBeforeReady); nil once it has run.
	stopBeforeReady func() bool

	// Shared with the write loop.
	sendInterval time.Duration // server→client heart-beat; 0 = none; set before the write loop starts
	nextMsgID    atomic.Uint64 // last message-id issued
	ackMu        sync.Mutex    // guards pending and every subState.unacked
	pending      map[uint64]broker.Delivery
	wdone        subprotocol.Done   // done when the write loop has ended
	failCode     atomic.Int32       // WebSocket close code after an ERROR the read loop queued
	kaPos        int32              // place in keepalives (keepalive.go); guarded by keepalives.mu
	wr           subprotocol.Writer // who writes after CONNECTED (on demand, or inline)
	lastWrite    atomic.Int64       // unix nanoseconds of the last write, for heart-beats
	hbDue        atomic.Bool        // a heart-beat EOL is due
	pingDue      atomic.Bool        // a WebSocket ping is due
	pingEvery    time.Duration      // set before the first write goroutine starts
	lastPing     int64              // kaNow() of the last ping marked due; the keep-alive tick's
}

// subState is the STOMP side of one subscription (Subscription.Data).
type subState struct {
	id      string
	dest    string // destination as the client wrote it
	ack     broker.AckMode
	unacked []uint64 // message-ids awaiting ACK, in order; guarded by conn.ackMu
}

func newConn(p *Protocol, t subprotocol.Transport, r *broker.Router) *conn {
	return &conn{
		cfg: &p.cfg, p: p, t: t, router: r,
		log:   p.cfg.Log,
		state: connecting,
	}
}

// serve sets up the read loop and runs it.
func (c *conn) serve(ctx context.Context) error {
	c.ctx = ctx
	c.stopBeforeReady = c.wr.CloseBeforeReady(ctx, c.t)
	// The transport buffers too (gorilla's read buffer), so a small buffer
	// here costs little speed and keeps idle connections light; longer lines
	// are still read (Reader spills into its scratch buffer).
	// The CONNECT frame gets the smaller limits (MaxFrameBeforeLogin);
	// handleConnect switches to Limits once the client is logged in.
	c.st = &subprotocol.Stream{T: c.t}
	c.br = bufio.NewReaderSize(c.st, connReadBufferSize)
	c.rd = NewReader(c.br, c.cfg.loginLimits())
	_ = c.t.SetReadDeadline(time.Now().Add(c.cfg.ConnectTimeout))
	return c.run()
}

// IdleReader implements subprotocol.Idle: the read loop's buffered reader
// and the stream under it.
func (c *conn) IdleReader() (*bufio.Reader, io.Reader) { return c.br, c.st }

// Parking implements subprotocol.Idle: the frame reader's scratch goes.
func (c *conn) Parking() { c.rd.Release() }

// Resume implements subprotocol.Idle: the transport runs the read loop
// again once a parked connection has input.
func (c *conn) Resume() error { return c.run() }

// run runs the read loop until the connection ends or is parked
// (subprotocol.ErrParked: the transport calls Resume on new input).
func (c *conn) run() error {
	err := c.loop()
	if err != subprotocol.ErrParked && c.sess != nil {
		c.sess.FlushDeferred() // what the last publishes left (SetBeforeWait)
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
		f, err := c.rd.Read()
		if err != nil {
			return c.endOnReadError(err)
		}
		if c.readTimeout > 0 {
			_ = c.t.SetReadDeadline(time.Now().Add(c.readTimeout))
		}
		if c.sess != nil {
			c.countBytesIn()
		}
		if f == nil { // heart-beat
			continue
		}
		if c.sess != nil {
			c.sess.CountIn()
		}
		if err := c.state(c, f); err != nil {
			return c.fail(err, f)
		}
		if c.sess != nil {
			if c.stopBeforeReady != nil { // logged in: the router's Shutdown closes it now
				c.stopBeforeReady()
				c.stopBeforeReady = nil
			}
			if c.sess.Closed() {
				return c.finish()
			}
		}
	}
}

// countBytesIn adds the wire size of the frames (and heart-beats) decoded
// since the last call to the session's byte count: one atomic add per
// frame.
func (c *conn) countBytesIn() {
	n := c.st.ConsumedBy(c.br.Buffered())
	if d := n - c.bytesIn; d > 0 {
		c.sess.AddBytesIn(int(d))
		c.bytesIn = n
	}
}

// endOnReadError ends the connection after the reader failed: a malformed
// or oversize frame is a protocol error; EOF, a closed socket or a deadline
// end the session quietly (subprotocol.EndRead).
func (c *conn) endOnReadError(err error) error {
	if c.sess != nil && c.sess.Closed() {
		return c.finish() // the write loop or the router ended it
	}
	if isFrameError(err) {
		return c.fail(err, nil)
	}
	if subprotocol.IsTimeout(err) {
		c.logf(slog.LevelInfo, "stomp: closing idle connection", "timeout", c.readTimeout)
	}
	if subprotocol.EndRead(c.t, c.sess, err) {
		return c.finish()
	}
	return nil
}

// fail reports err to the client with an ERROR frame and closes. bad is the
// offending frame, if any, for its receipt header.
func (c *conn) fail(err error, bad *frame.Frame) error {
	we := wireError(err)
	ef := errorFrame(we.message, we.detail, bad, we.headers...)
	if c.sess == nil {
		// Before login anyone can make the server log: one line per
		// source address per interval.
		var le loginError
		switch {
		case errors.As(err, &le): // refuseLogin counted and logged it
		case IsSizeError(err):
			c.p.ctr.TooLargeBeforeLogin()
			c.logLimited("stomp: connection refused", "err", err)
		default:
			c.logLimited("stomp: connection refused", "err", err)
		}
		// Before CONNECTED the read loop is the only writer.
		_ = c.t.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		_ = c.t.WriteMessage(false, AppendFrame(nil, ef, c.frameVersion()))
		c.t.Close(we.code, we.message)
		return err
	}
	c.logf(slog.LevelWarn, "stomp: protocol error", "err", err)
	c.closeOnError(we, ef)
	c.finish()
	return err
}

// closeOnError queues the ERROR frame ef and closes the session; the read
// loop then finishes. Safe on any goroutine once connected (the SEND
// pipeline uses it).
func (c *conn) closeOnError(we wire, ef *frame.Frame) {
	c.failCode.Store(int32(we.code))
	_ = c.sess.Outbox.PushControl(AppendFrame(nil, ef, c.version))
	c.sess.Close(we.reason)
}

// finish waits for the write loop to flush and close, then detaches the
// session from the router.
func (c *conn) finish() error {
	if c.sess == nil {
		return nil
	}
	c.sess.FlushDeferred()
	c.drainPipe() // SENDs it accepted are routed before the session ends
	c.wdone.Wait()
	if c.expiryTimer != nil {
		c.expiryTimer.Stop()
	}
	c.router.Close(c.sess, c.sess.Reason())
	c.logf(slog.LevelDebug, "stomp: session ended", "reason", c.sess.Reason())
	return nil
}

// logf logs with the connection's session and remote address. Building
// them per line, instead of a slog.Logger.With per connection, keeps idle
// connections light.
func (c *conn) logf(level slog.Level, msg string, args ...any) {
	if !c.log.Enabled(c.ctx, level) {
		return
	}
	args = append(args, "session", c.sessionID(), "remote", c.t.RemoteAddr().String(), "protocol", "stomp")
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

func (c *conn) sessionID() string {
	if c.sess == nil {
		return ""
	}
	return string(c.sess.ID)
}

// frameVersion is the version for encoding: 1.2 before negotiation.
func (c *conn) frameVersion() string {
	if c.version == "" {
		return "1.2"
	}
	return c.version
}
