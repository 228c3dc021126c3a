package subprotocol

import (
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

// Writer schedules a connection's writes so that at most one goroutine
// writes at a time (gorilla's one-writer rule) without keeping one per idle
// connection. Work is done either by a write goroutine, started on demand
// by Wake and exiting after WriterLinger without work, or inline by a
// goroutine that produced a reply (the read loop's receipts, a keepalive
// timer) when no write goroutine runs. Whoever holds the writing flag is
// the writer.
//
// The zero value needs Init before use.
type Writer struct {
	side    WriteSide
	notify  <-chan struct{}
	ready   atomic.Bool // the handshake reply is written: writes may start
	writing atomic.Bool // someone writes, or the write side has ended
}

// Init ties the writer to its connection side and the outbox's Notify
// channel. Call it before the session can be pushed to.
func (w *Writer) Init(side WriteSide, notify <-chan struct{}) {
	w.side, w.notify = side, notify
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

// Wake makes sure someone writes: it starts a write goroutine unless one
// runs or an inline writer holds the flag (which looks again before it
// lets go). The Outbox calls it on every push and on Close.
func (w *Writer) Wake() {
	if !w.ready.Load() {
		return // Ready wakes us once the handshake reply is out
	}
	if !w.writing.Load() && w.writing.CompareAndSwap(false, true) {
		go w.loop()
	}
}

// Acquire takes the writing flag for an inline write, when writes are
// allowed and nobody writes. A caller that gets true must call
// WriteInline.
func (w *Writer) Acquire() bool {
	return w.ready.Load() && w.writing.CompareAndSwap(false, true)
}

// WriteInline writes what is queued on the calling goroutine, which holds
// the flag from Acquire, then releases it.
func (w *Writer) WriteInline() {
	if !w.side.NewPasser().Pass() {
		return // the write side has ended; the flag stays set
	}
	w.writing.Store(false)
	if w.side.WorkPending() {
		w.Wake() // pushed while we held the flag
	}
}

// Writing reports whether someone holds the writing flag (a write
// goroutine runs or an inline write is under way), or the write side has
// ended. For tests and diagnostics.
func (w *Writer) Writing() bool { return w.writing.Load() }

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
// opened, a queue a resumed session brought along), then on every signal,
// and exits after WriterLinger without one, or for good when a pass ends
// the write side. The caller holds the flag.
func (w *Writer) loop() {
	p := w.side.NewPasser()
	idle := time.NewTimer(WriterLinger)
	defer idle.Stop()
	for {
		if !p.Pass() {
			return
		}
		idle.Reset(WriterLinger)
		select {
		case <-w.notify:
		case <-idle.C:
			w.writing.Store(false)
			// A push between the timer and the store above found writing
			// set and started nothing: look again before leaving.
			if w.side.WorkPending() && w.writing.CompareAndSwap(false, true) {
				continue
			}
			return
		}
	}
}
