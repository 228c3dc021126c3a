package subprotocol

import (
	"github.com/duplexmq/duplex/broker"

	"context"
	"sync/atomic"
	"time"
)

// WriterLinger is how long an idle write goroutine waits for more work
// before it exits. Idle connections then hold no write goroutine (nor its
// stack); the next push starts one again.
const WriterLinger = time.Second

// Passer is one run of a connection's write side: each Pass drains what is
// queued and writes it; the Passer may keep buffers between passes of the
// same run. Pass reports false when the write side has ended for good (the
// final frame went out, or a write failed).
type Passer interface {
	Pass() bool
}

// WriteSide is what a protocol connection gives its Writer.
type WriteSide interface {
	// NewPasser returns the state for one run: a write goroutine's life, or
	// one inline write.
	NewPasser() Passer
	// WorkPending reports queued frames, a due keepalive or a closed
	// session: anything a pass would act on.
	WorkPending() bool
}

// InlineSide is a WriteSide whose deliveries may also be written on the
// goroutine that pushed them (a publisher's), when that cannot block:
// Writer.Init then lets the Outbox call Writer.FlushInline.
type InlineSide interface {
	WriteSide
	// Outbox is the session's outbox, which the Writer drains.
	Outbox() *broker.Outbox
	// InlineReady reports that a bounded pass now would write only what
	// the outbox holds (nothing the protocol holds back, no store reads,
	// the session open) and that the transport can take a small message
	// without blocking (WriteReadier).
	InlineReady() bool
	// PassInline is one bounded pass (Passer.Pass) for an inline writer:
	// it writes at most what the outbox lets it drain (Outbox.LimitDrain),
	// and leaves anything more, and a closed session's final frame, to a
	// write goroutine.
	PassInline() bool
}

// WriteReadier is a Transport that can tell, without blocking, whether a
// small message (up to InlineMax bytes) would be taken at once: the
// socket's send buffer has room for it, or the transport takes what the
// socket cannot and writes it on its own (web's raw TCP connection).
type WriteReadier interface {
	WriteReady() bool
}

// InlineMax bounds what one inline pass writes for another connection
// (Writer.FlushInline): a few small messages, which a socket that reports
// writable takes without blocking.
const InlineMax = 2048

// Writer state bits.
const (
	busy   = 1 // someone writes, or the write side has ended (then it stays set)
	parked = 2 // a write goroutine waits for work, without busy
)

// Writer schedules a connection's writes so that at most one goroutine
// writes at a time (gorilla's one-writer rule) without keeping one per idle
// connection. Work is done either by a write goroutine, started on demand
// by Wake and exiting after WriterLinger without work, or inline: by a
// goroutine that produced a reply (the read loop's receipts, a keepalive
// timer), or by a publisher that delivered to this connection (Flush),
// when nobody writes. Whoever holds the busy bit is the writer; a write
// goroutine waiting for work (parked) does not hold it, so an inline writer
// may go ahead meanwhile.
//
// The zero value needs Init before use.
type Writer struct {
	side   WriteSide
	inline InlineSide      // side, when it supports Flush; else nil
	notify <-chan struct{} // nil until a write goroutine first parks (Init)
	ready  atomic.Bool     // the handshake reply is written: writes may start
	state  atomic.Uint32   // busy, parked
	held   bool            // ReplyLater holds busy until FlushReplies; read loop only
}

// Init ties the writer to its connection side and the outbox's Notify
// channel. Call it before the session can be pushed to. When side is an
// InlineSide, the writer becomes its outbox's flusher, and notify may be
// nil: a write goroutine asks the outbox for the channel when it first
// parks, so a connection that never parks a write goroutine (an idle one)
// never makes it (Outbox.Notify keeps a signal sent before).
func (w *Writer) Init(side WriteSide, notify <-chan struct{}) {
	w.side, w.notify = side, notify
	if in, ok := side.(InlineSide); ok {
		w.inline = in
		in.Outbox().SetFlusher(w)
	}
}

// Ready allows writes once the protocol wrote its handshake reply (which it
// does itself, as the only writer until then), and starts a writer if work
// came in meanwhile.
func (w *Writer) Ready() {
	w.ready.Store(true)
	if w.side.WorkPending() {
		w.Wake()
	}
}

// CloseBeforeReady closes t with 1001 when ctx ends (server shutdown)
// before Ready: a connection still in its handshake has no session for the
// router's Shutdown to close, and would otherwise linger until its connect
// timeout. Call the returned stop when the connection ends.
func (w *Writer) CloseBeforeReady(ctx context.Context, t Transport) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		if !w.ready.Load() {
			t.Close(CloseGoingAway, "server shutting down")
		}
	})
}

// Wake makes sure someone writes: it starts a write goroutine unless
// someone writes (who looks again before letting go) or a write goroutine
// is parked (the Outbox signalled its notify channel before calling Wake,
// and the parked goroutine looks at the state when that signal arrives).
// The Outbox calls it on every push and on Close.
func (w *Writer) Wake() {
	if !w.ready.Load() {
		return // Ready wakes us once the handshake reply is out
	}
	if w.state.Load() == 0 && w.state.CompareAndSwap(0, busy) {
		go w.loop()
	}
}

// Acquire takes the busy bit for an inline write, when writes are allowed
// and no goroutine writes or waits to (a parked write goroutine writes
// the reply when it is signalled). A caller that gets true must call
// WriteInline.
func (w *Writer) Acquire() bool {
	return w.ready.Load() && w.state.CompareAndSwap(0, busy)
}

// acquireFlush takes the busy bit for FlushInline: also while a write
// goroutine is parked, which then waits on (park).
func (w *Writer) acquireFlush() bool {
	if !w.ready.Load() {
		return false
	}
	for {
		s := w.state.Load()
		if s&busy != 0 {
			return false
		}
		if w.state.CompareAndSwap(s, s|busy) {
			return true
		}
	}
}

// release clears the busy bit and, when work came in meanwhile (a push
// that found the bit set started nothing), makes sure someone writes it.
func (w *Writer) release() {
	w.unbusy()
	if w.side.WorkPending() {
		w.Wake()
	}
}

// unbusy clears the busy bit.
func (w *Writer) unbusy() {
	for {
		s := w.state.Load()
		if w.state.CompareAndSwap(s, s&^busy) {
			return
		}
	}
}

// WriteInline writes what is queued on the calling goroutine, which holds
// the busy bit from Acquire, then releases it.
func (w *Writer) WriteInline() {
	if !w.side.NewPasser().Pass() {
		return // the write side has ended; busy stays set
	}
	w.release()
}

// FlushInline is the outbox's flusher (Outbox.Flush): called by a publisher
// after it pushed deliveries here, with no broker lock held, it writes
// them on the publisher's goroutine and reports true when that cannot keep
// the publisher waiting: nobody writes, at most InlineMax bytes are queued
// and the transport has room (InlineSide.InlineReady). The outbox asks
// only for a subscriber whose deliveries come no more often than every
// broker.InlineGap on average. Otherwise it reports false and the
// outbox signals a write goroutine. This saves the wake-up of another
// goroutine per delivery to a subscriber that is not busy.
func (w *Writer) FlushInline() bool {
	in := w.inline
	if in == nil || !w.acquireFlush() {
		return false
	}
	o := in.Outbox()
	if !in.InlineReady() || !o.LimitDrain(InlineMax) {
		w.unbusy()
		return false // the outbox signals: a write goroutine writes it
	}
	ok := in.PassInline()
	o.LimitDrain(0) // in case the pass did not drain
	if !ok {
		return true // the write failed: the session is closed; busy stays set
	}
	w.unbusy()
	// What the pass left (past the limit, a closed session's final frame,
	// a push meanwhile that found us busy) may have come without a signal:
	// false makes the outbox signal.
	return !w.side.WorkPending()
}

// Writing reports whether someone holds the busy bit, a write goroutine is
// parked, or the write side has ended. For tests and diagnostics.
func (w *Writer) Writing() bool { return w.state.Load() != 0 }

// TryInline writes inline when nobody writes and reports whether it did.
func (w *Writer) TryInline() bool {
	if !w.Acquire() {
		return false
	}
	w.WriteInline()
	return true
}

// loop is a write goroutine: it passes at once (it was started because
// work is pending, which need not come with a signal: a window that
// opened, a queue a resumed session brought along), then on every signal
// that finds nobody writing, and exits after WriterLinger without work,
// or for good when a pass ends the write side. The caller holds busy.
// Between passes it parks: it lets go of busy, so that an inline writer
// may write meanwhile; a signal that finds one writing ends the goroutine
// (the inline writer looks again when it lets go).
func (w *Writer) loop() {
	p := w.side.NewPasser()
	var idle *time.Timer
	for {
		if !p.Pass() {
			break // busy stays set
		}
		w.state.Store(parked) // we held busy alone: nobody else sets a bit meanwhile
		if w.side.WorkPending() && w.state.CompareAndSwap(parked, busy) {
			continue // pushed during the pass without a signal we could see
		}
		if idle == nil {
			idle = time.NewTimer(WriterLinger)
		} else {
			idle.Reset(WriterLinger)
		}
		if !w.park(idle) {
			break
		}
	}
	if idle != nil {
		idle.Stop()
	}
}

// park waits for a signal or the linger timeout and reports whether the
// goroutine goes on to pass again, holding busy; false: it exited (parked
// is cleared).
func (w *Writer) park(idle *time.Timer) bool {
	if w.notify == nil {
		w.notify = w.inline.Outbox().Notify() // only write goroutines touch it, one at a time
	}
	for {
		select {
		case <-w.notify:
			for {
				s := w.state.Load()
				if s&busy != 0 {
					// FlushInline writes; it signals again if it leaves
					// work behind.
					break
				}
				if w.state.CompareAndSwap(s, busy) {
					return true
				}
			}
		case <-idle.C:
			for {
				s := w.state.Load()
				if w.state.CompareAndSwap(s, s&^parked) {
					break
				}
			}
			// A push between the timer and the store above found a
			// goroutine parked and started nothing; its signal may be in
			// the channel still: look again before leaving.
			if w.side.WorkPending() {
				w.Wake()
			}
			return false
		}
	}
}
