package mqtt

import (
	"log/slog"
	"sync"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// writer is one run of the write loop: the only goroutine that writes to
// the transport after CONNACK.
type writer struct {
	c *conn
	// B holds the packets coalesced into binary WebSocket messages [MQTT-6.0.0-1].
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
// goroutine (subprotocol.InlineSide): the session is open and not paging
// stored messages in (a store read), nothing waits in the window queue,
// and the transport has room.
func (c *conn) InlineReady() bool {
	if c.sess.Closed() || c.sess.Paging() {
		return false
	}
	c.mu.Lock()
	queued := len(c.out.queue)
	c.mu.Unlock()
	wr, ok := c.t.(subprotocol.WriteReadier)
	return queued == 0 && ok && wr.WriteReady()
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

// kick gets queued deliveries moving after the window opened (an
// acknowledgement) or the read loop queued retained messages. With nothing
// to send it wakes no writer (a push to the outbox wakes one itself, and
// waking one here for nothing cost a futex call per PUBACK), but a session
// paging stored messages in whose queue ran low asks for the next page:
// the pass that sent the last queued message may have found the queue
// long enough, and no pass follows once everything sent is acknowledged.
func (c *conn) kick() {
	if !c.WorkPending() {
		if c.sess.Paging() {
			c.mu.Lock()
			low := c.out.live < c.maxQueued/4
			c.mu.Unlock()
			if low {
				c.router.Refill(c.sess)
			}
		}
		return
	}
	if !c.wr.TryInline() {
		c.sess.Outbox.Signal()
	}
}

// WorkPending reports a non-empty or closed outbox, or queued deliveries
// the window lets through (subprotocol.WriteSide).
func (c *conn) WorkPending() bool {
	if !c.sess.Outbox.Empty() {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendableLocked()
}

// sendableLocked reports that the head of the queue may be sent now.
// Caller holds c.mu.
func (c *conn) sendableLocked() bool {
	q := c.out.queue
	if len(q) == 0 {
		return false
	}
	if q[0].d.QoS == broker.AtMostOnce {
		return true
	}
	if c.out.inflight() >= c.window {
		return false
	}
	if q[0].d.Seq != 0 {
		_, free := c.out.flights[storedID(q[0].d.Seq)]
		return !free
	}
	return true
}

// Pass drains the outbox once and writes the control packets and what the
// window allows of the queue. It reports false when the write side has
// ended: the final packet went out or a write failed.
func (w *writer) Pass() bool {
	c := w.c
	// Drain under c.mu, so retained messages the read loop queues after
	// pushing a SUBACK never overtake it.
	c.mu.Lock()
	ctrl, msgs, closed := w.Drain(c.sess.Outbox)
	for _, d := range msgs {
		c.out.queue = append(c.out.queue, pending{d: d})
	}
	c.out.live += len(msgs)
	over := c.out.live > c.maxQueued
	low := c.out.live < c.maxQueued/4
	c.mu.Unlock()
	if low && !closed && c.sess.Paging() {
		c.router.Refill(c.sess) // the next page of stored messages
	}
	if over && !closed {
		// The client does not acknowledge fast enough to keep its window
		// moving: the same policy as a full outbox (ARCHITECTURE §3.5).
		c.logf(slog.LevelWarn, "mqtt: slow consumer, closing", "window", c.window)
		c.sess.Close(broker.CloseSlowConsumer)
		closed = true
	}
	reason := c.sess.Reason()
	if w.Err == nil && (len(ctrl) > 0 || !closed) {
		for _, p := range ctrl {
			w.B.Append(p, true)
			if w.B.Full() {
				w.B.Flush()
			}
		}
		if !closed {
			w.sendQueue() // a closed session keeps its queue for SaveState
		}
		w.B.Done()
		w.Err = w.B.Err
		if w.B.Bytes > 0 {
			c.sess.AddBytesOut(w.B.Bytes) // once per pass, however many messages
			w.B.Bytes = 0
		}
	}
	if w.bounded && closed && w.Err == nil {
		return true // the final packet is the write goroutine's (Writer.FlushInline)
	}
	return w.EndPass(ctrl, msgs, closed, reason, c)
}

// full reports a batch that should go out before more is added; an inline
// pass stops there (the rest is the write goroutine's).
func (w *writer) full() bool {
	return w.B.Full() || w.bounded && w.B.Len() >= subprotocol.InlineMax
}

// sendQueue encodes queued deliveries in order while the client's Receive
// Maximum allows [MQTT-3.3.4-9]: a QoS 1/2 delivery past the window waits,
// and so does everything behind it, to keep the order [MQTT-4.6.0-6].
func (w *writer) sendQueue() {
	c := w.c
	sent, flown := 0, false
	for w.B.Err == nil {
		c.mu.Lock()
		o := &c.out
		for len(o.queue) > 0 && !w.full() && c.sendableLocked() {
			p := o.queue[0]
			o.queue[0] = pending{}
			o.queue = o.queue[1:]
			if !p.retained {
				o.live--
			}
			if p.d.Msg.Expired() || p.d.Msg.Topic == "" {
				continue // [MQTT-3.3.2-5] expired: not delivered
			}
			var id uint16
			if p.d.QoS > 0 {
				id, _ = o.idFor(p.d) // free: sendableLocked checked
			}
			dst, ok := c.appendPublish(w.B.Buf(), p.d, p.retained, id, p.d.Redelivered)
			if !ok {
				c.logf(slog.LevelDebug, "mqtt: message larger than the client's Maximum Packet Size, not sent", "topic", p.d.Msg.Topic)
				continue
			}
			w.B.Added(dst, true)
			if p.d.QoS > 0 {
				if o.flights == nil {
					o.flights = make(map[uint16]*flight)
				}
				o.seq++
				o.flights[id] = &flight{id: id, d: p.d, retained: p.retained, seq: o.seq}
				flown = true
				if p.d.Seq != 0 {
					c.sess.NoteSent(p.d.Seq)
				}
			}
			sent++
		}
		if len(o.queue) == 0 {
			o.queue = nil // an idle connection holds no queue buffer
		}
		if flown {
			c.sess.SetInflight(o.inflight())
			flown = false
		}
		more := w.full() && !w.bounded
		c.mu.Unlock()
		if !more {
			break
		}
		w.B.Flush() // outside c.mu: the read loop's acknowledgements never wait on a write
	}
	c.sess.CountOut(sent)
}

// Final sends a v5 client the DISCONNECT for a server-side close (MQTT 5
// §4.13.2), unless the read loop queued one, and closes the transport with
// the matching WebSocket close code (subprotocol.WriteEnd).
func (c *conn) Final(reason broker.CloseReason) {
	code, ws := closeCode(reason)
	if fc := c.failCode.Load(); fc != 0 {
		code, ws = 0, int(fc) // the read loop queued its DISCONNECT and chose the code
	}
	if code != 0 && c.version >= Version5 {
		_ = c.t.SetWriteDeadline(time.Now().Add(subprotocol.CloseFlushTimeout))
		b := AppendPacket(nil, &Disconnect{ReasonCode: code}, c.version)
		if c.t.WriteMessage(true, b) == nil {
			c.sess.AddBytesOut(len(b))
		}
		c.logf(slog.LevelInfo, "mqtt: session closed by server", "reason", reason)
	}
	c.t.Close(ws, reason.String())
}

// StopWriting ends the write side for good: finish() may proceed
// (subprotocol.WriteEnd).
func (c *conn) StopWriting() { c.wdone.Done() }

// onSessionClose runs on whichever goroutine closes the session. A write
// timeout aborts the transport: no final packet could get through. On
// takeover a write blocked on a client that stopped reading is cut short,
// because the new connection waits for this one to finish.
func (c *conn) onSessionClose(reason broker.CloseReason) {
	switch reason {
	case broker.CloseWriteTimeout:
		c.t.Abort()
	case broker.CloseTakenOver:
		c.t.InterruptWrite(time.Now().Add(subprotocol.CloseFlushTimeout))
	}
}

// WriteFailed ends the session after a failed write: a timeout means the
// client stopped reading (subprotocol.WriteEnd).
func (c *conn) WriteFailed(err error) {
	if subprotocol.WriteFailed(c.t, c.sess, err) {
		c.logf(slog.LevelWarn, "mqtt: write timeout, closing", "err", err)
	}
}
