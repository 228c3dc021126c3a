package subprotocol

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/duplexmq/duplex/broker"
)

// inlineSide is an InlineSide over a real broker.Outbox: a pass drains it
// and counts what it took; an inline pass drains what LimitDrain allows.
// It checks that no two passes overlap.
type inlineSide struct {
	o                 *broker.Outbox
	w                 *Writer
	written, inlined  atomic.Int64
	passing, overlaps atomic.Int32
	ready             atomic.Bool // InlineReady's answer
	onPass            func(ctrl int)
}

type inlinePasser struct{ s *inlineSide }

func (s *inlineSide) NewPasser() Passer      { return inlinePasser{s} }
func (s *inlineSide) WorkPending() bool      { return !s.o.Empty() }
func (s *inlineSide) Outbox() *broker.Outbox { return s.o }
func (s *inlineSide) InlineReady() bool      { return s.ready.Load() }
func (s *inlineSide) PassInline() bool {
	n := s.pass()
	s.inlined.Add(int64(n))
	return true
}

func (p inlinePasser) Pass() bool { p.s.pass(); return true }

func (s *inlineSide) pass() int {
	if s.passing.Add(1) != 1 {
		s.overlaps.Add(1)
	}
	ctrl, msgs, _ := s.o.Drain(nil, nil)
	s.written.Add(int64(len(msgs)))
	if s.onPass != nil {
		s.onPass(len(ctrl))
	}
	s.passing.Add(-1)
	return len(msgs)
}

func newInlineSide(t *testing.T) *inlineSide {
	gap := broker.InlineGap
	broker.InlineGap = 0
	t.Cleanup(func() { broker.InlineGap = gap })
	s := &inlineSide{w: new(Writer)}
	s.o = broker.NewOutbox(1<<20, 1<<30, 16, func() { s.w.Wake() })
	s.w.Init(s, s.o.Notify())
	s.ready.Store(true)
	s.w.Ready()
	return s
}

func smallDelivery() broker.Delivery {
	return broker.Delivery{Msg: &broker.Message{Topic: "t", Payload: []byte("x")}}
}

// TestWriterFlushInline: a flush with nobody writing writes on the calling
// goroutine; one the side refuses (no room) is left to a write goroutine.
func TestWriterFlushInline(t *testing.T) {
	s := newInlineSide(t)
	_ = s.o.PushDelivery(smallDelivery())
	waitFor(t, "the first delivery written", func() bool { return s.written.Load() == 1 })
	waitFor(t, "the write goroutine to park", func() bool { return s.w.state.Load() == parked })
	// Parked: an inline flush may write meanwhile.
	_ = s.o.PushDelivery(smallDelivery())
	// The push signalled the parked goroutine, which may have written
	// already; either way the delivery is written exactly once.
	s.o.Flush(true)
	waitFor(t, "the second delivery written", func() bool { return s.written.Load() == 2 })

	s.ready.Store(false) // no room: the flush signals instead
	before := s.inlined.Load()
	_ = s.o.PushDelivery(smallDelivery())
	s.o.Flush(true)
	waitFor(t, "the third delivery written", func() bool { return s.written.Load() == 3 })
	if s.inlined.Load() != before {
		t.Error("written inline although the transport had no room")
	}
}

// TestWriterFlushLimit: an inline pass takes at most InlineMax bytes; what
// it leaves is written by a write goroutine (no lost wake-up).
func TestWriterFlushLimit(t *testing.T) {
	s := newInlineSide(t)
	waitFor(t, "no writer", func() bool { return !s.w.Writing() })
	big := broker.Delivery{Msg: &broker.Message{Topic: "t", Payload: make([]byte, InlineMax/2)}}
	for range 3 { // more than InlineMax in all: LimitDrain refuses
		_ = s.o.PushDelivery(big)
	}
	s.o.Flush(true)
	waitFor(t, "all three written", func() bool { return s.written.Load() == 3 })
}

// TestWriterFlushConcurrent: publishers push and flush inline while the
// write goroutine runs and parks; every delivery is written once, no two
// passes overlap, and the write goroutine exits when idle.
func TestWriterFlushConcurrent(t *testing.T) {
	s := newInlineSide(t)
	const pubs, each = 8, 2000
	var wg sync.WaitGroup
	for g := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_ = s.o.PushDelivery(smallDelivery())
				if (i+g)%3 == 0 {
					s.o.Flush(true)
				}
				if (i+g)%101 == 0 {
					s.w.TryInline()
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every delivery written", func() bool { return s.written.Load() == pubs*each })
	if n := s.overlaps.Load(); n != 0 {
		t.Fatalf("%d overlapping passes: two writers at once", n)
	}
	if s.inlined.Load() == 0 {
		t.Error("nothing was written inline")
	}
	waitFor(t, "the idle write goroutine to exit", func() bool { return !s.w.Writing() })
}
