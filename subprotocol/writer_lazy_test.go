package subprotocol

import (
	"sync"
	"testing"

	"github.com/duplexmq/duplex/broker"
)

// newLazySide is newInlineSide with Init(side, nil): the write goroutine
// asks the outbox for its Notify channel when it first parks.
func newLazySide(t *testing.T) *inlineSide {
	gap := broker.InlineGap
	broker.InlineGap = 0
	t.Cleanup(func() { broker.InlineGap = gap })
	s := &inlineSide{w: new(Writer)}
	s.o = broker.NewOutbox(1<<20, 1<<30, 16, func() { s.w.Wake() })
	s.w.Init(s, nil)
	s.ready.Store(true)
	s.w.Ready()
	return s
}

// TestWriterLazyNotify: with a nil notify channel, pushes before and after
// the write goroutine first parks are all written, the parked goroutine
// wakes on a push, and concurrent publishers lose nothing.
func TestWriterLazyNotify(t *testing.T) {
	s := newLazySide(t)
	s.ready.Store(false) // no inline writes: the write goroutine does it all
	if s.w.notify != nil {
		t.Fatal("Init made the notify channel")
	}
	_ = s.o.PushDelivery(smallDelivery())
	waitFor(t, "the first delivery written", func() bool { return s.written.Load() == 1 })
	waitFor(t, "the write goroutine to park", func() bool { return s.w.state.Load() == parked })
	_ = s.o.PushDelivery(smallDelivery()) // the parked goroutine's channel
	waitFor(t, "the second delivery written", func() bool { return s.written.Load() == 2 })

	const pubs, each = 8, 1000
	var wg sync.WaitGroup
	for range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_ = s.o.PushDelivery(smallDelivery())
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every delivery written", func() bool { return s.written.Load() == 2+pubs*each })
	if n := s.overlaps.Load(); n != 0 {
		t.Fatalf("%d overlapping passes", n)
	}
	waitFor(t, "the idle write goroutine to exit", func() bool { return !s.w.Writing() })
}
