package broker

import (
	"sort"
	"strings"
)

// Stats is a snapshot of the router for the admin API and logs: plain
// copied data, no live pointers.
type Stats struct {
	Sessions      int
	Subscriptions int // topic subscriptions in the index
	// Queues counts point-to-point queues and durable subscriptions;
	// QueueReady and QueueUnacked add up their messages. QueuePage lists
	// them a page at a time.
	Queues        int
	QueueReady    int
	QueueUnacked  int
	Published     uint64
	Delivered     uint64
	Dropped       uint64 // QoS 0 deliveries dropped by the drop policy, late replies
	SlowConsumers uint64 // sessions closed as slow consumers
	// OfflineDropped counts QoS 1/2 messages not kept for an offline
	// persistent session (past MaxOfflineMsgs) or lost in a takeover hand-over.
	OfflineDropped uint64
	Retained       int // topics holding a retained message
	// StoredMsgs counts QoS 1/2 messages in the store for persistent
	// sessions (sent but unacknowledged, or waiting); 0 without a store.
	StoredMsgs int64

	RetainedBytes int64 // payload bytes of the retained messages
	// AllSubscriptions counts the subscriptions of all sessions (online
	// and offline, queue consumers included), against MaxSubscriptions.
	AllSubscriptions int64
	// PersistentSessions counts persistent sessions (online and offline),
	// against MaxSessionsPerUser per owner.
	PersistentSessions int

	// Refusals since the start.
	RetainedRefused     uint64 // retained publishes not retained (ErrRetainedQuota)
	SessionQuotaRefused uint64 // Open refused with ErrSessionQuota
	ClientIDRefused     uint64 // Open refused with ErrClientIDOwned
	PublishDenied       uint64 // publishes (and wills) the Authorizer refused
	SubscribeDenied     uint64 // subscriptions the Authorizer refused

	// DeadLettered counts queue messages moved to a dead-letter queue
	// (rejected, or past MaxRedeliveries); DeadLetterDropped those
	// dropped instead: a dead-letter or temporary queue's own, a rejected
	// topic delivery, or one whose dead-letter queue was full.
	DeadLettered, DeadLetterDropped uint64
}

// QueueInfo describes one point-to-point queue.
type QueueInfo struct {
	Name      string
	Ready     int
	Unacked   int
	Consumers int
}

// Stats copies the router's counters.
func (r *Router) Stats() Stats {
	r.mu.RLock()
	n := len(r.sessions)
	persistent := 0
	for _, n := range r.owners {
		persistent += n
	}
	r.mu.RUnlock()
	var stored int64
	if r.dur != nil {
		stored = r.dur.stored.Load()
	}
	st := Stats{
		Sessions: n, Subscriptions: r.idx.Len(),
		Published: r.published.Load(), Delivered: r.delivered.Load(),
		Dropped: r.dropped.Load(), SlowConsumers: r.slowConsumers.Load(),
		OfflineDropped: r.offlineDropped.Load(), Retained: r.retained.Len(), StoredMsgs: stored,
		RetainedBytes: r.retained.Bytes(), AllSubscriptions: r.nsubs.Load(), PersistentSessions: persistent,
		RetainedRefused: r.retainedRefused.Load(), SessionQuotaRefused: r.sessionQuotaRefused.Load(),
		ClientIDRefused: r.clientIDRefused.Load(), PublishDenied: r.publishDenied.Load(),
		SubscribeDenied: r.subscribeDenied.Load(),
		DeadLettered:    r.dl.moved.Load(), DeadLetterDropped: r.dl.dropped.Load(),
	}
	// qmu is released before any queue.mu (broker/doc.go): copy the
	// pointers (8 bytes a queue), then add up the depths.
	r.qmu.Lock()
	qs := make([]*queue, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	r.qmu.Unlock()
	st.Queues = len(qs)
	for _, q := range qs {
		ready, unacked, _ := q.depth()
		st.QueueReady += ready
		st.QueueUnacked += unacked
	}
	return st
}

// Sessions copies every session's state (connected, and persistent ones
// kept offline): O(sessions) memory per call, for tests and small
// deployments; the admin API pages with SessionPage.
func (r *Router) Sessions() []SessionInfo {
	r.mu.RLock()
	all := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		all = append(all, s)
	}
	r.mu.RUnlock()
	out := make([]SessionInfo, len(all))
	for i, s := range all {
		out[i] = s.Info()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SessionPage returns up to limit sessions (connected, and persistent ones
// kept offline) with ids after cursor, in id order, whose id, user or
// owner contains q (all when q is ""), and the cursor of the next page
// ("" when this is the last). limit is clamped to 1..MaxPage.
//
// Cost: one pass over the sessions under the read lock with a pager:
// O(n log limit) time and O(limit) memory per call, whatever the number of
// sessions. SessionInfo copies are made after the lock is released.
func (r *Router) SessionPage(cursor string, limit int, q string) (page []SessionInfo, next string) {
	p := newPager(cursor, limit, func(s *Session) string { return string(s.ID) })
	r.mu.RLock()
	for id, s := range r.sessions {
		if !p.wants(string(id)) {
			continue
		}
		if q != "" && !strings.Contains(string(id), q) && !strings.Contains(s.Identity.Name, q) && !strings.Contains(s.owner, q) {
			continue
		}
		p.add(s)
	}
	r.mu.RUnlock()
	sessions, next := p.page()
	page = make([]SessionInfo, len(sessions))
	for i, s := range sessions {
		page[i] = s.Info()
	}
	return page, next
}

// QueuePage returns up to limit point-to-point queues and durable
// subscriptions' queues with names after cursor, in name order, whose name
// contains q, and the next page's cursor ("" on the last), at the cost of
// SessionPage.
func (r *Router) QueuePage(cursor string, limit int, q string) (page []QueueInfo, next string) {
	p := newPager(cursor, limit, func(q *queue) string { return q.name })
	r.qmu.Lock()
	for name, qu := range r.queues {
		if p.wants(name) && (q == "" || strings.Contains(name, q)) {
			p.add(qu)
		}
	}
	r.qmu.Unlock()
	queues, next := p.page()
	page = make([]QueueInfo, len(queues))
	for i, qu := range queues {
		ready, unacked, consumers := qu.depth()
		page[i] = QueueInfo{Name: qu.name, Ready: ready, Unacked: unacked, Consumers: consumers}
	}
	return page, next
}

// Queue describes the queue name, and reports whether it exists.
func (r *Router) Queue(name string) (QueueInfo, bool) {
	r.qmu.Lock()
	qu := r.queues[name]
	r.qmu.Unlock()
	if qu == nil {
		return QueueInfo{}, false
	}
	ready, unacked, consumers := qu.depth()
	return QueueInfo{Name: name, Ready: ready, Unacked: unacked, Consumers: consumers}, true
}
