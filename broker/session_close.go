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
	if s.taken.Load() {
		// Open's takeover moves or drops this session's state; detaching
		// here would open a gap in which the new session misses messages.
		closeOnce(s.detached)
		return
	}
	if s.persistent() && why == CloseServerShutdown {
		// Kept as it is on disk, with the will (if any) published by the
		// protocol already: it is not sent again after the restart.
		if err := r.saveKept(s, time.Time{}); err != nil {
			r.log.Error("store: session not saved", "session", s.ID, "err", err)
		}
	}
	if s.persistent() && why != CloseServerShutdown {
		if d := s.Expiry(); d > 0 {
			s.offMu.Lock()
			if s.expireAt == nil {
				s.expireAt = time.AfterFunc(d, func() { r.expire(s) })
				s.expiresAt = time.Now().Add(d)
			}
			s.offMu.Unlock()
			if err := r.saveKept(s, time.Now().Add(d)); err != nil {
				r.log.Error("store: session not saved", "session", s.ID, "err", err)
			}
		} else if err := r.saveKept(s, time.Time{}); err != nil {
			r.log.Error("store: session not saved", "session", s.ID, "err", err)
		}
		closeOnce(s.detached)
		return
	}
	if s.Expiry() == 0 && r.dur != nil && s.gate != nil {
		// The session had state on disk and ends now: MQTT 5 DISCONNECT set
		// Session Expiry to 0, or it resumed with an expiry of 0.
		s.gate.retire()
		r.forgetSession(s.ID)
	}
	r.mu.Lock()
	r.removeLocked(s)
	r.mu.Unlock()
	r.detach(s)
	closeOnce(s.detached)
}

// removeLocked removes s from the sessions if it is there (not taken over)
// and reports whether it was. Caller holds r.mu.
func (r *Router) removeLocked(s *Session) bool {
	if r.sessions[s.ID] != s {
		return false
	}
	delete(r.sessions, s.ID)
	r.uncountLocked(s)
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
func (r *Router) expire(s *Session) {
	r.mu.Lock()
	if !r.removeLocked(s) {
		r.mu.Unlock()
		return // taken over meanwhile
	}
	r.mu.Unlock()
	s.offMu.Lock()
	s.offline, s.state = nil, nil
	s.offMu.Unlock()
	r.detach(s)
	if s.gate != nil {
		s.gate.retire()
	}
	r.forgetSession(s.ID)
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
func (r *Router) detach(s *Session) {
	s.mu.Lock()
	subs := make([]*Subscription, 0, len(s.subs))
	for k, sub := range s.subs {
		subs = append(subs, sub)
		delete(s.subs, k)
	}
	temps := s.tempQueues
	s.tempQueues = nil
	s.mu.Unlock()
	r.nsubs.Add(-int64(len(subs)))
	for _, sub := range subs {
		r.unlink(sub)
	}
	r.dropTempQueues(temps)
}
