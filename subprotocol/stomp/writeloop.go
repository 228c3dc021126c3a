package stomp

import (
	"log/slog"
	"sync"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// writer is one run of the write side (a subprotocol.Passer): the only
// goroutine that writes to the transport after CONNECTED while it runs.
type writer struct {
	c *conn
	// B holds the frames coalesced into WebSocket messages.
	subprotocol.WriteRun
	bounded bool // an inline pass (PassInline)
}

// NewPasser starts one run of the write side (subprotocol.WriteSide).
func (c *conn) NewPasser() subprotocol.Passer {
	return &writer{c: c, WriteRun: subprotocol.WriteRun{B: subprotocol.Batch{T: c.t, Timeout: c.cfg.WriteTimeout}}}
}

// inlineWriters recycles the writers of inline passes, one per delivery to
// a subscriber that is not busy.
var inlineWriters = sync.Pool{New: func() any { return new(writer) }}

// Outbox is the session's outbox (subprotocol.InlineSide).
func (c *conn) Outbox() *broker.Outbox { return c.sess.Outbox }

// InlineReady reports that a bounded pass may run on a publisher's
// goroutine (subprotocol.InlineSide): the session is open and the
// transport has room.
func (c *conn) InlineReady() bool {
	if c.sess.Closed() {
		return false
	}
	wr, ok := c.t.(subprotocol.WriteReadier)
	return ok && wr.WriteReady()
}

// PassInline runs one bounded pass (subprotocol.InlineSide).
func (c *conn) PassInline() bool {
	w := inlineWriters.Get().(*writer)
	*w = writer{c: c, WriteRun: subprotocol.WriteRun{B: subprotocol.Batch{T: c.t, Timeout: c.cfg.WriteTimeout}}, bounded: true}
	ok := w.Pass()
	*w = writer{}
	inlineWriters.Put(w)
	return ok
}

// WorkPending reports queued frames, a due keepalive or a closed session
// (subprotocol.WriteSide).
func (c *conn) WorkPending() bool {
	return !c.sess.Outbox.Empty() || c.hbDue.Load() || c.pingDue.Load()
}

// Pass drains the outbox once and writes it all, plus any due keepalive. It
// reports false when the write side has ended: the final frame went out or
// a write failed.
func (w *writer) Pass() bool {
	c := w.c
	w.keepalive()
	ctrl, msgs, closed := w.Drain(c.sess.Outbox)
	reason := c.sess.Reason()
	if w.Err == nil {
		if closed && reason != broker.CloseClientClosed {
			w.writeAll(ctrl, nil) // the session is over: only replies and the final frame go out
		} else {
			w.writeAll(ctrl, msgs)
		}
	}
	if w.bounded && closed && w.Err == nil {
		return true // the final frame is the write goroutine's (Writer.FlushInline)
	}
	return w.EndPass(ctrl, msgs, closed, reason, c)
}

// StopWriting ends the write side for good: no more heart-beats, and
// finish() may proceed (subprotocol.WriteEnd).
func (c *conn) StopWriting() {
	keepalives.stop(c)
	c.wdone.Done()
}

// keepalive sends a heart-beat EOL or a WebSocket ping when the timer
// marked one due.
func (w *writer) keepalive() {
	c := w.c
	if c.hbDue.Swap(false) {
		w.heartbeat()
	}
	if c.pingDue.Swap(false) && w.Err == nil {
		_ = c.t.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		w.Err = c.t.Ping()
	}
}

// writeAll encodes and writes control frames, then deliveries, coalesced
// into as few WebSocket messages as the batch allows: text for text-safe
// frames, binary for MESSAGEs whose body is not UTF-8.
func (w *writer) writeAll(ctrl [][]byte, msgs []broker.Delivery) {
	if len(ctrl) == 0 && len(msgs) == 0 {
		return
	}
	b := &w.B
	flushes := b.Flushes
	for _, f := range ctrl {
		b.Append(f, false)
		if b.Full() {
			b.Flush()
		}
	}
	c := w.c
	for _, d := range msgs {
		id := c.nextMsgID.Add(1)
		if d.Sub.Data.(*subState).ack != broker.AckAuto && !c.track(id, d) {
			c.logf(slog.LevelWarn, "stomp: too many unacknowledged messages, closing", "limit", c.cfg.MaxUnacked)
			c.sess.Close(broker.CloseSlowConsumer) // first, so the queue skips this consumer
			c.router.Redeliver(d)                  // a queue message goes back for another consumer
			break
		}
		dst, binary := c.appendMessage(b.Buf(), d, id)
		b.Added(dst, binary)
		if b.Full() {
			b.Flush()
		}
	}
	c.sess.CountOut(len(msgs))
	b.Done()
	if b.Flushes > flushes {
		c.lastWrite.Store(time.Now().UnixNano())
	}
	if b.Bytes > 0 {
		c.sess.AddBytesOut(b.Bytes) // once per pass, however many messages
		b.Bytes = 0
	}
	if b.Err != nil {
		w.Err = b.Err
	}
}

// heartbeat sends one EOL.
func (w *writer) heartbeat() {
	now := time.Now()
	_ = w.c.t.SetWriteDeadline(now.Add(w.c.cfg.WriteTimeout))
	if err := w.c.t.WriteMessage(false, []byte{'\n'}); err != nil {
		w.Err = err
	} else {
		w.c.sess.AddBytesOut(1)
	}
	w.c.lastWrite.Store(now.UnixNano())
}

// Final sends the server's ERROR for reason, if it has one, and closes the
// transport with the matching WebSocket close code (subprotocol.WriteEnd).
func (c *conn) Final(reason broker.CloseReason) {
	f, code := closeFrame(reason)
	if f != nil {
		_ = c.t.SetWriteDeadline(time.Now().Add(subprotocol.CloseFlushTimeout))
		b := AppendFrame(nil, f, c.version)
		if c.t.WriteMessage(false, b) == nil {
			c.sess.AddBytesOut(len(b))
		}
		c.logf(slog.LevelInfo, "stomp: session closed by server", "reason", reason)
	}
	if fc := c.failCode.Load(); fc != 0 {
		code = int(fc) // the read loop queued an ERROR and chose the code
	}
	c.t.Close(code, reason.String())
}

// onSessionClose runs on whichever goroutine closes the session. A slow
// consumer's queued deliveries are dropped (the outbox is closed), but a
// write already in progress keeps its write deadline: a client that reads
// again within it still gets the ERROR that says why it was cut off. One
// that does not is dropped when the deadline passes.
func (c *conn) onSessionClose(reason broker.CloseReason) {
	if reason == broker.CloseWriteTimeout {
		c.t.Abort()
	}
}

// WriteFailed ends the session after a failed write: a timeout means the
// client stopped reading (subprotocol.WriteEnd).
func (c *conn) WriteFailed(err error) {
	if subprotocol.WriteFailed(c.t, c.sess, err) {
		c.logf(slog.LevelWarn, "stomp: write timeout, closing", "err", err)
	}
}
