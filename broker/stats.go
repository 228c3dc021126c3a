package broker

import (
	"container/heap"
	"sort"
	"strings"
)

// Stats is a snapshot of the router for the admin API and logs: plain
// copied data, no live pointers.
type Stats struct {
	Sessions      int
	Subscriptions int // topic subscriptions in the index
	Queues        []QueueInfo
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
	var stored int64
	persistent := 0
	for _, s := range r.sessions {
		stored += s.storedMsgs()
	}
	for _, n := range r.owners {
		persistent += n
	}
	r.mu.RUnlock()
	r.qmu.Lock()
	qs := make([]*queue, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	r.qmu.Unlock()
	st := Stats{
		Sessions: n, Subscriptions: r.idx.Len(),
		Published: r.published.Load(), Delivered: r.delivered.Load(),
		Dropped: r.dropped.Load(), SlowConsumers: r.slowConsumers.Load(),
		OfflineDropped: r.offlineDropped.Load(), Retained: r.retained.Len(), StoredMsgs: stored,
		RetainedBytes: r.retained.Bytes(), AllSubscriptions: r.nsubs.Load(), PersistentSessions: persistent,
		RetainedRefused: r.retainedRefused.Load(), SessionQuotaRefused: r.sessionQuotaRefused.Load(),
		ClientIDRefused: r.clientIDRefused.Load(), PublishDenied: r.publishDenied.Load(),
		SubscribeDenied: r.subscribeDenied.Load(),
	}
	for _, q := range qs {
		ready, unacked, consumers := q.depth()
		st.Queues = append(st.Queues, QueueInfo{Name: q.name, Ready: ready, Unacked: unacked, Consumers: consumers})
	}
	sort.Slice(st.Queues, func(i, j int) bool { return st.Queues[i].Name < st.Queues[j].Name })
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

// MaxSessionPage bounds SessionPage's limit.
const MaxSessionPage = 1000

// SessionPage returns up to limit sessions (connected, and persistent ones
// kept offline) with ids after cursor, in id order, whose id, user or
// owner contains q (all when q is ""), and the cursor of the next page
// ("" when this is the last). limit is clamped to 1..MaxSessionPage.
//
// Cost: one pass over the sessions under the read lock, keeping the limit
// smallest matching ids in a bounded heap: O(n log limit) time and
// O(limit) memory per call, whatever the number of sessions (no copy of
// the session table, no sort of every id). SessionInfo copies are made
// after the lock is released.
func (r *Router) SessionPage(cursor string, limit int, q string) (page []SessionInfo, next string) {
	limit = max(1, min(limit, MaxSessionPage))
	h := make(sessionHeap, 0, limit+1)
	r.mu.RLock()
	for id, s := range r.sessions {
		if string(id) <= cursor {
			continue
		}
		if len(h) > limit && string(id) >= string(h[0].ID) {
			continue // not among the limit+1 smallest
		}
		if q != "" && !strings.Contains(string(id), q) && !strings.Contains(s.Identity.Name, q) && !strings.Contains(s.owner, q) {
			continue
		}
		heap.Push(&h, s)
		if len(h) > limit+1 {
			heap.Pop(&h)
		}
	}
	r.mu.RUnlock()
	sort.Slice(h, func(i, j int) bool { return h[i].ID < h[j].ID })
	if len(h) > limit {
		h = h[:limit]
		next = string(h[limit-1].ID)
	}
	page = make([]SessionInfo, len(h))
	for i, s := range h {
		page[i] = s.Info()
	}
	return page, next
}

// sessionHeap is a max-heap of sessions by id (SessionPage keeps the
// smallest ones).
type sessionHeap []*Session

func (h sessionHeap) Len() int           { return len(h) }
func (h sessionHeap) Less(i, j int) bool { return h[i].ID > h[j].ID }
func (h sessionHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sessionHeap) Push(x any)        { *h = append(*h, x.(*Session)) }
func (h *sessionHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}
