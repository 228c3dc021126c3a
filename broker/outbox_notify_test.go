package broker

import (
	"sync"
	"testing"
)

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Notify's channel is made on the first call; a push before it is waiting
// in it, pushes coalesce, and later pushes signal it.
func TestOutboxNotifyLazy(t *testing.T) {
	o := NewOutbox(100, 1<<20, 10, nil)
	if o.notify.Load() != nil {
		t.Fatal("NewOutbox made the notify channel")
	}
	if err := o.PushControl([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := o.PushControl([]byte("b")); err != nil {
		t.Fatal(err)
	}
	ch := o.Notify()
	if ch != o.Notify() {
		t.Fatal("Notify returned two channels")
	}
	if !signalled(ch) {
		t.Fatal("a push before the first Notify call is not waiting")
	}
	if signalled(ch) {
		t.Fatal("two pushes gave two signals")
	}
	if err := o.PushControl([]byte("c")); err != nil {
		t.Fatal(err)
	}
	if !signalled(ch) {
		t.Fatal("a push after Notify did not signal")
	}
	o.Close()
	if !signalled(ch) {
		t.Fatal("Close did not signal")
	}

	quiet := NewOutbox(100, 1<<20, 10, nil)
	if signalled(quiet.Notify()) {
		t.Fatal("signalled with nothing pushed")
	}
}

// Pushes racing the first Notify call: the channel ends up signalled, and
// nothing blocks (run with -race).
func TestOutboxNotifyConcurrent(t *testing.T) {
	for range 200 {
		o := NewOutbox(1000, 1<<20, 1000, nil)
		var wg sync.WaitGroup
		chans := make([]<-chan struct{}, 4)
		for i := range chans {
			wg.Add(2)
			go func() {
				defer wg.Done()
				chans[i] = o.Notify()
			}()
			go func() {
				defer wg.Done()
				_ = o.PushControl([]byte("x"))
			}()
		}
		wg.Wait()
		for _, ch := range chans {
			if ch != chans[0] {
				t.Fatal("Notify returned two channels")
			}
		}
		if !signalled(chans[0]) {
			t.Fatal("pushes racing Notify left no signal")
		}
	}
}
