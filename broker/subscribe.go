package broker

import "fmt"

// Subscribe adds sub for its session: a topic subscription when sub.Filter
// is set, a queue consumer when sub.Queue is set. Waiting queue messages are
// dispatched at once.
func (r *Router) Subscribe(s *Session, sub *Subscription) error {
	if isDurableQueue(sub.Queue) {
		return fmt.Errorf("%w: %s names a durable subscription's queue", ErrInvalidQueue, DurableQueuePrefix)
	}
	return r.subscribe(s, sub)
}

func (r *Router) subscribe(s *Session, sub *Subscription) error {
	sub.Session, sub.kind = s, sessionKind(&sub.SubSpec)
	switch {
	case sub.Queue != "":
		if err := ValidQueueName(sub.Queue); err != nil {
			return err
		}
	default:
		if err := ValidFilter(sub.Filter); err != nil {
			return err
		}
	}
	op, dest := OpSubscribe, sub.Filter
	if sub.Queue != "" {
		op, dest = OpQueueReceive, sub.Queue
	}
	// A durable subscription's queue is the owner's own: SubscribeDurable
	// has checked the topic filter, which is what the ACL speaks of.
	if !sub.Durable && !r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), op, dest) {
		return r.denySubscribe()
	}
	var q *queue
	if sub.Queue != "" {
		var err error
		if q, err = r.queueFor(sub.Queue, s); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.Closed() {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	if s.subs.get(sub.Key) != nil {
		s.mu.Unlock()
		return ErrDuplicateSub
	}
	if s.subs.len() >= r.cfg.MaxSubsPerSession || !r.reserveSub() {
		s.mu.Unlock()
		return ErrTooManySubs
	}
	s.subs.put(sub)
	s.mu.Unlock()
	if q != nil {
		q.addConsumer(r, sub)
	} else {
		r.link(sub)
	}
	return nil
}

// SubscribeReplace is Subscribe for MQTT: a subscription with the same key
// is replaced, not refused [MQTT-3.8.4-3] (the new one is linked before the
// old one leaves, so nothing is missed), and the retained messages that
// match the filter are returned [MQTT-3.3.1-6]. existed reports a
// replacement (MQTT 5 Retain Handling 1 sends retained messages only for a
// new subscription).
func (r *Router) SubscribeReplace(s *Session, sub *Subscription) (retained []*Message, existed bool, err error) {
	sub.Session, sub.kind = s, sessionKind(&sub.SubSpec)
	if err := ValidFilter(sub.Filter); err != nil {
		return nil, false, err
	}
	if !r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), OpSubscribe, sub.Filter) {
		return nil, false, r.denySubscribe()
	}
	s.mu.Lock()
	if s.Closed() {
		s.mu.Unlock()
		return nil, false, ErrSessionClosed
	}
	old := s.subs.get(sub.Key)
	if old == nil && (s.subs.len() >= r.cfg.MaxSubsPerSession || !r.reserveSub()) {
		s.mu.Unlock()
		return nil, false, ErrTooManySubs
	}
	s.subs.put(sub)
	s.mu.Unlock()
	r.link(sub)
	if old != nil {
		r.unlink(old)
	}
	if err := r.saveSub(s, sub); err != nil {
		r.log.Error("store: subscription not saved", "session", s.ID, "key", sub.Key, "err", err)
	}
	if s.p != nil && s.p.cj != nil {
		// A cluster-durable session's subscription is a consumer in the
		// cluster store before SUBACK (peers_durable.go).
		if err := r.saveDurable(s); err != nil {
			_ = r.Unsubscribe(s, sub.Key)
			return nil, false, fmt.Errorf("%w: %v", ErrStore, err)
		}
	}
	if sub.Group == "" { // shared subscriptions get no retained messages [MQTT-4.8.2-? v5 §3.3.1.3]
		retained = r.retained.Match(sub.Filter, nil)
	}
	return retained, old != nil, nil
}

// Unsubscribe removes s's subscription with key. A queue consumer's
// unacknowledged messages go back to the queue.
func (r *Router) Unsubscribe(s *Session, key string) error {
	s.mu.Lock()
	sub := s.subs.del(key)
	s.mu.Unlock()
	if sub == nil {
		return ErrNoSuchSub
	}
	r.nsubs.Add(-1)
	r.unlink(sub)
	r.forgetSub(s, key)
	if s.p != nil && s.p.cj != nil {
		_ = r.saveDurable(s) // its consumer goes (logged on failure)
	}
	return nil
}

// reserveSub counts one more subscription if MaxSubscriptions allows it.
func (r *Router) reserveSub() bool {
	if n := r.nsubs.Add(1); r.cfg.MaxSubscriptions > 0 && n > int64(r.cfg.MaxSubscriptions) {
		r.nsubs.Add(-1)
		return false
	}
	return true
}

// denySubscribe counts and returns a refused subscription.
func (r *Router) denySubscribe() error {
	r.subscribeDenied.Add(1)
	return ErrNotAuthorized
}

// link puts a topic subscription into the index or its share group.
func (r *Router) link(sub *Subscription) {
	if sub.kind == kindShared {
		r.joinShare(sub)
		return
	}
	r.countOverlap(sub, 1) // before: a message matching both sees it
	r.indexInsert(sub)
}

// unlink takes a session's subscription out of where link or
// Subscribe put it: the index, its share group or its queue.
func (r *Router) unlink(sub *Subscription) {
	switch sub.kind {
	case kindShared:
		r.leaveShare(sub)
		return
	case kindTopic:
		r.indexRemove(sub)
		r.countOverlap(sub, -1)
		return
	}
	r.qmu.Lock()
	q := r.queues[sub.Queue]
	r.qmu.Unlock()
	if q != nil {
		q.removeConsumer(r, sub)
	}
}

// oneCopy reports a session whose overlapping topic subscriptions share
// one copy of a message (route.go merge): an MQTT client's, unless
// Config.PerSubscriptionCopies. A STOMP client gets a MESSAGE per
// subscription id, as STOMP says.
func (r *Router) oneCopy(s *Session) bool {
	return !r.cfg.PerSubscriptionCopies && s.Protocol == "mqtt"
}

// countOverlap adds n to the count of sub's session's subscriptions that
// may overlap (Session.overlaps), for a topic subscription entering (1) or
// leaving (-1) the index.
func (r *Router) countOverlap(sub *Subscription, n int32) {
	if !r.oneCopy(sub.Session) {
		return
	}
	switch c := sub.Session.overlaps.Add(n); {
	case n > 0 && c == 2:
		r.overlapping.Add(1)
	case n < 0 && c == 1:
		r.overlapping.Add(-1)
	}
}
