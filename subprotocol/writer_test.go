package subprotocol

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexmq/duplex/internal/testutil"
)

// fakeSide is a WriteSide over a counter of queued items: a pass "writes"
// everything queued, and checks that no two passes overlap.
type fakeSide struct {
	queued, written atomic.Int64
	passing         atomic.Int32
	overlaps        atomic.Int32
	notify          chan struct{}
	w               *Writer
	afterDrain      func() // runs inside a pass, after it took what was queued
}

type fakePasser struct{ s *fakeSide }

func (s *fakeSide) NewPasser() Passer { return fakePasser{s} }
func (s *fakeSide) WorkPending() bool { return s.queued.Load() > s.written.Load() }

func (p fakePasser) Pass() bool {
	if p.s.passing.Add(1) != 1 {
		p.s.overlaps.Add(1)
	}
	p.s.written.Store(p.s.queued.Load())
	if f := p.s.afterDrain; f != nil {
		p.s.afterDrain = nil
		f()
	}
	p.s.passing.Add(-1)
	return true
}

// push queues one item and wakes the writer, as Outbox.PushDelivery does.
func (s *fakeSide) push() {
	s.queued.Add(1)
	select {
	case s.notify <- struct{}{}:
	default:
	}
	s.w.Wake()
}

func newFakeSide() *fakeSide {
	s := &fakeSide{notify: make(chan struct{}, 1), w: new(Writer)}
	s.w.Init(s, s.notify)
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, cond)
}

// TestWriterNothingBeforeReady: pushes before Ready start no writer; Ready
// writes them.
func TestWriterNothingBeforeReady(t *testing.T) {
	s := newFakeSide()
	s.push()
	if s.w.Writing() || s.written.Load() != 0 {
		t.Fatal("wrote before Ready")
	}
	s.w.Ready()
	waitFor(t, "the queued item written after Ready", func() bool { return s.written.Load() == 1 })
}

// TestWriterConcurrentPushes: many goroutines push while inline writers
// take the flag now and then; every item is written (no lost wake-up), no
// two passes overlap, and the write goroutine exits when idle.
func TestWriterConcurrentPushes(t *testing.T) {
	s := newFakeSide()
	s.w.Ready()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				s.push()
				if (i+g)%97 == 0 {
					s.w.TryInline()
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every item written", func() bool { return s.written.Load() == 8*2000 })
	if n := s.overlaps.Load(); n != 0 {
		t.Fatalf("%d overlapping passes: two writers at once", n)
	}
	waitFor(t, "the idle write goroutine to exit", func() bool { return !s.w.Writing() })
}

// TestWriterInlineReleasesAndRechecks: a push that arrives while an inline
// writer holds the flag, after its pass took what was queued, finds the
// flag held and starts nothing; WriteInline must look again when it lets
// go and hand the item to a write goroutine.
func TestWriterInlineReleasesAndRechecks(t *testing.T) {
	s := newFakeSide()
	s.w.Ready()
	s.queued.Add(1)
	s.afterDrain = s.push
	if !s.w.Acquire() {
		t.Fatal("Acquire failed with nobody writing")
	}
	s.w.WriteInline()
	waitFor(t, "the item pushed during the inline pass written", func() bool { return s.written.Load() == 2 })
}

// TestWriterReadyWithoutSignal: work that is pending without a signal on
// the notify channel (a resumed session's queue, a window that opened) is
// written once Ready starts the writer; it does not wait for the next push.
func TestWriterReadyWithoutSignal(t *testing.T) {
	s := newFakeSide()
	s.queued.Add(1) // pending, but nothing signalled
	s.w.Ready()
	waitFor(t, "the pending item written without a signal", func() bool { return s.written.Load() == 1 })
}
