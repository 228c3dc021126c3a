package broker

import (
	"fmt"
	"time"

	"github.com/duplexmq/duplex/store"
)

// The operator's actions (admin API). Errors wrap those of admin.go.

// Disconnect closes a connected session with CloseAdminAction (each
// protocol sends its notice: STOMP ERROR, MQTT 5 DISCONNECT 0x98). A
// persistent session stays kept, as after any disconnection. A session
// kept offline is ErrNoSuchSession (there is no connection to close).
func (r *Router) Disconnect(id SessionID) error {
	r.mu.RLock()
	s := r.sessions[id]
	r.mu.RUnlock()
	if s == nil {
		return ErrNoSuchSession
	}
	if s.Closed() {
		return fmt.Errorf("%w: %s is not connected", ErrNoSuchSession, id)
	}
	s.Close(CloseAdminAction)
	return nil
}

// DeleteSession discards a session and everything kept for it (its
// subscriptions, offline and stored messages), disconnecting it first if
// connected, as a clean start would.
//
// A connected session's expiry is set to 0 before it is closed, so the
// Router.Close of its connection ends it instead of keeping it; the
// session leaves the listings before DeleteSession returns. A delayed will
// still pending for the id is cancelled.
func (r *Router) DeleteSession(id SessionID) error {
	closed := false
	for range 3 { // a takeover may replace the session meanwhile
		r.mu.RLock()
		s := r.sessions[id]
		r.mu.RUnlock()
		if s == nil {
			if closed {
				return nil // its connection ended it first
			}
			return ErrNoSuchSession
		}
		s.waitOpened() // its Open may still be taking its predecessor over
		// With no expiry, the Router.Close of its connection (to come, or
		// under way after the connection ended) ends it instead of
		// keeping it (saveKept).
		s.SetExpiry(0)
		if !s.Closed() {
			s.Close(CloseAdminAction)
			closed = true
		}
		if s.discard() {
			r.cancelWill(id)
			return nil
		}
	}
	return fmt.Errorf("%w: %s keeps being reconnected", ErrNoSuchSession, id)
}

// discard removes s and what is kept for it, as expire does, and reports
// whether s was still the session of its id.
func (s *Session) discard() bool {
	r := s.router
	r.mu.Lock()
	ok := r.removeLocked(s)
	r.mu.Unlock()
	if !ok {
		return false
	}
	s.discarded.Store(true)
	if s.p != nil {
		s.p.clear()
	}
	s.detach()
	if s.p != nil {
		// Commits under way for it land before its records go
		// (storeAccount.retire).
		s.p.end(r, s.ID)
	}
	return true
}

// PurgeQueue drops the ready messages of a queue or durable subscription
// (unacknowledged ones stay with their consumers) and returns how many.
// Stored copies leave the store before it returns.
func (r *Router) PurgeQueue(name string) (int, error) {
	r.qmu.Lock()
	q := r.queues[name]
	r.qmu.Unlock()
	if q == nil {
		return 0, ErrNoSuchQueue
	}
	var refs []store.Ref
	q.mu.Lock()
	ready := q.ready
	q.ready = nil
	for _, e := range ready {
		q.bytes -= int64(len(e.msg.Payload))
		if e.seq != 0 {
			refs = append(refs, store.Ref{Name: name, Seq: e.seq})
		}
	}
	q.mu.Unlock()
	if len(refs) > 0 && r.dur != nil {
		if _, err := r.dur.st.Commit(&store.Batch{QueueAcks: refs}); err != nil {
			return len(ready), fmt.Errorf("%w: %v", ErrStore, err)
		}
	}
	return len(ready), nil
}

// DeleteDurable deletes a durable subscription: its binding, its queue and
// its stored messages; a connected consumer's subscription ends (as with
// Unbind, it stays in its session and receives nothing more). name is the
// queue's name (QueueInfo.Name, "$durable/..."), whoever owns it; a
// point-to-point queue is ErrNotDurable.
func (r *Router) DeleteDurable(name string) error {
	r.qmu.Lock()
	b := r.bindings[name]
	if b == nil {
		_, isQueue := r.queues[name]
		r.qmu.Unlock()
		if isQueue {
			return ErrNotDurable
		}
		return ErrNoSuchQueue
	}
	return r.dropBindingLocked(name, b)
}

// DeleteRetained clears the retained message of topic (in memory and in
// the store).
func (r *Router) DeleteRetained(topic string) error {
	if !r.retained.remove(topic) {
		return ErrNoSuchRetained
	}
	if r.dur != nil {
		if err := r.dur.st.PutRetained(store.Msg{Topic: topic}); err != nil {
			return fmt.Errorf("%w: %v", ErrStore, err)
		}
	}
	return nil
}

// saveKept writes the record of a session kept after its connection
// (Router.Close). A DeleteSession that discarded the session meanwhile
// may have removed the record before this write: it goes again.
func (s *Session) saveKept(expiresAt time.Time) error {
	r := s.router
	err := r.saveSession(s, expiresAt, nil)
	if s.discarded.Load() {
		r.forgetSession(s.ID)
	}
	return err
}
