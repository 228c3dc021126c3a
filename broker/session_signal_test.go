package broker

import (
	"fmt"
	"sync"
	"testing"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Done made before Close is closed by it; Done first asked after Close is
// closed already; both are the same channel on every call.
func TestSessionDoneLazy(t *testing.T) {
	r := New(Config{}, nil)
	before := openSession(t, r, "before")
	if before.done.p.Load() != nil {
		t.Fatal("Open made the Done channel; it should wait for the first Done call")
	}
	d := before.Done()
	if d != before.Done() {
		t.Error("Done returned two different channels")
	}
	if isClosed(d) {
		t.Fatal("Done closed before Close")
	}
	r.Close(before, CloseClientClosed)
	if !isClosed(d) {
		t.Error("the Done channel made before Close was not closed by it")
	}

	after := openSession(t, r, "after")
	r.Close(after, CloseClientClosed)
	if !isClosed(after.Done()) {
		t.Error("Done first asked after Close is not closed")
	}
	after.Close(CloseAdminAction) // a second Close changes nothing
	if !isClosed(after.Done()) || after.Reason() != CloseClientClosed {
		t.Errorf("after a second Close: reason %v", after.Reason())
	}
}

// Done racing Close from many goroutines: every caller's channel ends
// closed, and there is one channel (run with -race).
func TestSessionDoneConcurrent(t *testing.T) {
	r := New(Config{}, nil)
	for i := range 50 {
		s := openSession(t, r, SessionID(fmt.Sprint("c", i)))
		var wg sync.WaitGroup
		chans := make([]<-chan struct{}, 8)
		for j := range chans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				chans[j] = s.Done()
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Close(s, CloseClientClosed)
		}()
		wg.Wait()
		for j, ch := range chans {
			<-ch // blocks forever (the test times out) if Close missed it
			if pre := s.Done(); ch != pre && !isClosed(pre) {
				t.Fatalf("session %d waiter %d: Done's channel not closed", i, j)
			}
		}
	}
}

// waitOpened: returns at once for an opened or restored session; blocks
// while Open runs (armed) until markOpened, for waiters that came before
// and after the channel was made.
func TestSessionWaitOpened(t *testing.T) {
	var s Session
	s.waitOpened() // never armed (restored): no wait

	s.opening()
	released := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.waitOpened()
			select {
			case <-released:
			default:
				t.Error("waitOpened returned before markOpened")
			}
		}()
	}
	// Wait until a waiter made the channel, so markOpened must close it.
	checkFor(t, "a waiter made the opened channel", func() bool {
		p := s.opened.p.Load()
		return p != nil && p != pendingSignal
	})
	close(released)
	s.markOpened()
	wg.Wait()
	s.waitOpened() // opened: no wait
	if s.opened.p.Load() != nil {
		t.Error("opened keeps a channel after markOpened")
	}

	// Armed with no waiter: markOpened closes nothing and waits return.
	var q Session
	q.opening()
	q.markOpened()
	q.waitOpened()
}

// Open leaves opened nil (no channel) once it returns.
func TestOpenLeavesNoOpenedChannel(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "o")
	if s.opened.p.Load() != nil {
		t.Error("opened holds a channel after Open returned")
	}
	s2 := openSession(t, r, "o") // takes s over
	if !s.Closed() || s2.opened.p.Load() != nil {
		t.Error("takeover: old not closed, or the new session keeps an opened channel")
	}
}
