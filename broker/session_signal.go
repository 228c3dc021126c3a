package broker

import "sync/atomic"

// signal is a one-shot event whose channel is made only when someone
// waits: most sessions are opened and closed without anyone waiting, and
// an idle connection would otherwise keep a 112-byte channel for nothing.
//
// States of p: nil (not fired, no waiter, or for an opening signal: not
// armed), a pointer to a fresh channel (not fired, waited on), firedSignal
// (fired). Every change is a compare-and-swap or swap, so a waiter that
// makes the channel and a concurrent fire agree on one channel, which is
// closed exactly once.
type signal struct {
	p atomic.Pointer[chan struct{}]
}

// firedSignal is the state of a fired signal: a closed channel shared by all.
var firedSignal = func() *chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return &ch
}()

// pendingSignal is the state of an armed signal nobody waits on yet
// (Session.opened during Open).
var pendingSignal = new(chan struct{})

// wait returns a channel that is closed once fire is called, making it
// on the first call.
func (g *signal) wait() <-chan struct{} {
	for {
		p := g.p.Load()
		if p != nil && p != pendingSignal {
			return *p
		}
		ch := make(chan struct{})
		if g.p.CompareAndSwap(p, &ch) {
			return ch
		}
	}
}

// fire closes the channel if a waiter made one; later waits return a
// closed channel. Only the first call counts.
func (g *signal) fire() {
	if p := g.p.Swap(firedSignal); p != nil && p != pendingSignal && p != firedSignal {
		close(*p)
	}
}

// opening arms s.opened: waitOpened blocks until markOpened. Open calls it
// under Router.mu before it puts s in Router.sessions, where the waiters
// find s (under the same lock).
func (s *Session) opening() { s.opened.p.Store(pendingSignal) }

// markOpened ends Open: waiters go on, later ones do not wait.
func (s *Session) markOpened() {
	if p := s.opened.p.Swap(nil); p != nil && p != pendingSignal {
		close(*p)
	}
}

// waitOpened waits until the Open that created s has returned; it returns
// at once for a session that is open or was restored from the store.
func (s *Session) waitOpened() {
	for {
		p := s.opened.p.Load()
		if p == nil {
			return
		}
		if p != pendingSignal {
			<-*p
			return
		}
		ch := make(chan struct{})
		if s.opened.p.CompareAndSwap(pendingSignal, &ch) {
			<-ch
			return
		}
	}
}
