package broker

import "time"

// Close ends s for why and removes its subscriptions and temporary queues.
// Unacknowledged queue deliveries go back to their queues. Idempotent.
//
// A persistent session (SessionOptions.Expiry) stays: its subscriptions keep
// collecting QoS 1/2 messages until the same id connects again or the
// expiry passes.
func (r *Router) Close(s *Session, why CloseReason) {
	s.Close(why)
	p := s.p
	if p != nil && p.cj != nil {
		s.detachDurable() // the cluster store keeps its messages
	}
	if s.taken.Load() {
		// Open's takeover moves or drops this session's state; detaching
		// here would open a gap in which the new session misses messages.
		if p != nil {
			closeOnce(p.detached)
		}
		return
	}
	if s.persistent() && p != nil && why != CloseServerShutdown {
		var at time.Time
		if d := s.Expiry(); d > 0 {
			at = time.Now().Add(d)
			p.armExpiry(s, d, at)
		}
		if err := s.saveKept(at); err != nil {
			r.log.Error("store: session not saved", "session", s.ID, "err", err)
		}
		if p.cj != nil {
			r.offline(s) // its expiry keeps counting if this node dies (peers_session.go)
		}
		closeOnce(p.detached)
		return
	}
	switch {
	case s.persistent() && why == CloseServerShutdown:
		// Kept as it is on disk, with the will (if any) published by the
		// protocol already: it is not sent again after the restart.
		if err := s.saveKept(time.Time{}); err != nil {
			r.log.Error("store: session not saved", "session", s.ID, "err", err)
		}
	case p != nil && r.dur != nil && s.Expiry() == 0:
		// The session had state on disk and ends now: MQTT 5 DISCONNECT set
		// Session Expiry to 0, or it resumed with an expiry of 0.
		p.end(r, s.ID)
		s.endDurable()
	}
	r.mu.Lock()
	r.removeLocked(s)
	r.mu.Unlock()
	s.detach()
	if p != nil {
		closeOnce(p.detached)
	}
}

// removeLocked removes s from the sessions if it is there (not taken over)
// and reports whether it was. Caller holds r.mu.
func (r *Router) removeLocked(s *Session) bool {
	if r.sessions[s.ID] != s {
		return false
	}
	delete(r.sessions, s.ID)
	r.uncountLocked(s)
	if sp := r.sessionPeers(); sp != nil {
		r.hold(sp, s, false)
	}
	return true
}

// uncountLocked takes s out of its owner's persistent-session count.
// Caller holds r.mu.
func (r *Router) uncountLocked(s *Session) {
	if !s.counted {
		return
	}
	s.counted = false
	if r.owners[s.owner]--; r.owners[s.owner] <= 0 {
		delete(r.owners, s.owner)
	}
}

// expire ends a persistent session whose expiry passed while offline.
func (s *Session) expire() {
	r := s.router
	r.mu.Lock()
	if !r.removeLocked(s) {
		r.mu.Unlock()
		return // taken over meanwhile
	}
	r.mu.Unlock()
	s.p.clear()
	s.detach()
	s.p.end(r, s.ID)
	s.endDurable()
}

// closeOnce closes ch unless it is nil or closed already. Callers
// serialise per session (Router.Close runs on the session's own read loop).
func closeOnce(ch chan struct{}) {
	if ch == nil {
		return
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// detach removes every subscription and temporary queue of a closed session.
func (s *Session) detach() {
	r := s.router
	s.mu.Lock()
	subs := s.subs.drain()
	temps := s.tempQueues
	s.tempQueues = nil
	s.mu.Unlock()
	r.nsubs.Add(-int64(len(subs)))
	for _, sub := range subs {
		r.unlink(sub)
	}
	r.dropTempQueues(temps)
}
