package stomp

import (
	"sync"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// maxBatch is the most bytes coalesced into one WebSocket message; frames
// queued together beyond it go out in further messages.
const maxBatch = 64 << 10

// closeFlushTimeout bounds writing the final frames when a session closes.
const closeFlushTimeout = time.Second

// batchPool shares encode buffers between connections: an idle connection
// holds none.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writer is the write loop's state: the only goroutine that writes to the
// transport after CONNECTED.
type writer struct {
	c         *conn
	buf       *[]byte
	binary    bool // the batch in buf goes as a binary WebSocket message
	lastWrite time.Time
	err       error
}

// writeLoop drains the outbox into the transport until the session closes,
// sending heart-beats (STOMP 1.2 §Heart-beating) and WebSocket pings when
// idle, then writes the final frame and closes the transport.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	w := &writer{c: c, lastWrite: time.Now()}
	ob := c.sess.Outbox
	pingEvery := time.Duration(0)
	if c.readTimeout == c.cfg.IdleTimeout { // the client sends no heart-beats: keep alive with pings
		pingEvery = c.cfg.IdleTimeout * 9 / 10
	}
	tick := c.sendInterval
	if tick == 0 || (pingEvery > 0 && pingEvery < tick) {
		tick = pingEvery
	}
	var tickC <-chan time.Time
	if tick > 0 {
		t := time.NewTicker(tick)
		defer t.Stop()
		tickC = t.C
	}
	lastPing := time.Now()
	var ctrl [][]byte
	var msgs []broker.Delivery
	for {
		select {
		case <-ob.Notify():
		case now := <-tickC:
			if c.sendInterval > 0 && now.Sub(w.lastWrite) >= c.sendInterval*9/10 {
				w.heartbeat()
			}
			if pingEvery > 0 && now.Sub(lastPing) >= pingEvery*9/10 {
				lastPing = now
				_ = c.t.SetWriteDeadline(now.Add(c.cfg.WriteTimeout))
				if err := c.t.Ping(); err != nil {
					w.err = err
				}
			}
			if w.err != nil {
				c.writeFailed(w.err)
				return
			}
			continue
		}
		var closed bool
		ctrl, msgs, closed = ob.Drain(ctrl, msgs)
		reason := c.sess.Reason()
		if closed && reason != broker.CloseClientClosed {
			clear(msgs) // the session is over: only replies and the final frame go out
			msgs = msgs[:0]
		}
		w.writeAll(ctrl, msgs)
		clear(ctrl)
		clear(msgs)
		if w.err != nil {
			c.writeFailed(w.err)
			return
		}
		if closed {
			w.final(reason)
			return
		}
	}
}

// writeAll encodes and writes control frames, then deliveries.
func (w *writer) writeAll(ctrl [][]byte, msgs []broker.Delivery) {
	if len(ctrl) == 0 && len(msgs) == 0 {
		return
	}
	w.buf = batchPool.Get().(*[]byte)
	defer func() {
		if cap(*w.buf) <= 4*maxBatch {
			*w.buf = (*w.buf)[:0]
			batchPool.Put(w.buf)
		}
		w.buf = nil
	}()
	for _, b := range ctrl {
		w.add(b, false)
	}
	c := w.c
	for _, d := range msgs {
		id := c.nextMsgID.Add(1)
		if d.Sub.Data.(*subState).ack != broker.AckAuto && !c.track(id, d) {
			c.log.Warn("stomp: too many unacknowledged messages, closing", "limit", c.cfg.MaxUnacked)
			c.sess.Close(broker.CloseSlowConsumer) // first, so the queue skips this consumer
			c.router.Redeliver(d)                  // a queue message goes back for another consumer
			break
		}
		start := len(*w.buf)
		var binary bool
		*w.buf, binary = c.appendMessage(*w.buf, d, id)
		if binary != w.binary && start > 0 {
			// The frame type changes: send what came before on its own.
			frame := append([]byte(nil), (*w.buf)[start:]...)
			*w.buf = (*w.buf)[:start]
			w.flush()
			*w.buf = append(*w.buf, frame...)
		}
		w.binary = binary
		if len(*w.buf) >= maxBatch {
			w.flush()
		}
	}
	c.sess.CountOut(len(msgs))
	w.flush()
}

// add appends one encoded control frame (always text-safe).
func (w *writer) add(b []byte, binary bool) {
	if len(*w.buf) > 0 && binary != w.binary {
		w.flush()
	}
	*w.buf = append(*w.buf, b...)
	w.binary = binary
	if len(*w.buf) >= maxBatch {
		w.flush()
	}
}

// flush writes the batch as one WebSocket message under a write deadline.
func (w *writer) flush() {
	if w.err != nil || len(*w.buf) == 0 {
		*w.buf = (*w.buf)[:0]
		return
	}
	now := time.Now()
	_ = w.c.t.SetWriteDeadline(now.Add(w.c.cfg.WriteTimeout))
	w.err = w.c.t.WriteMessage(w.binary, *w.buf)
	w.lastWrite = now
	*w.buf = (*w.buf)[:0]
	w.binary = false
}

// heartbeat sends one EOL.
func (w *writer) heartbeat() {
	now := time.Now()
	_ = w.c.t.SetWriteDeadline(now.Add(w.c.cfg.WriteTimeout))
	if err := w.c.t.WriteMessage(false, []byte{'\n'}); err != nil {
		w.err = err
	}
	w.lastWrite = now
}

// final sends the server's ERROR for reason, if it has one, and closes the
// transport with the matching WebSocket close code.
func (w *writer) final(reason broker.CloseReason) {
	c := w.c
	f, code := closeFrame(reason)
	if f != nil {
		_ = c.t.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		_ = c.t.WriteMessage(false, AppendFrame(nil, f, c.version))
		c.log.Info("stomp: session closed by server", "reason", reason)
	}
	if fc := c.failCode.Load(); fc != 0 {
		code = int(fc) // the read loop queued an ERROR and chose the code
	}
	c.t.Close(code, reason.String())
}

// onSessionClose runs on whichever goroutine closes the session. A slow
// consumer's write loop may be blocked writing to a client that stopped
// reading: cut that write short so the final ERROR is tried promptly.
func (c *conn) onSessionClose(reason broker.CloseReason) {
	switch reason {
	case broker.CloseSlowConsumer:
		c.t.InterruptWrite(time.Now().Add(closeFlushTimeout))
	case broker.CloseWriteTimeout:
		c.t.Abort()
	}
}

// writeFailed ends the session after a failed write: a timeout means the
// client stopped reading.
func (c *conn) writeFailed(err error) {
	reason := broker.CloseTransportError
	if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		reason = broker.CloseWriteTimeout
		c.log.Warn("stomp: write timeout, closing", "err", err)
	}
	c.sess.Close(reason)
	c.t.Abort()
}
