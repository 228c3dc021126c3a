package broker

import "sort"

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
	for _, s := range r.sessions {
		stored += s.storedMsgs()
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
	}
	for _, q := range qs {
		ready, unacked, consumers := q.depth()
		st.Queues = append(st.Queues, QueueInfo{Name: q.name, Ready: ready, Unacked: unacked, Consumers: consumers})
	}
	sort.Slice(st.Queues, func(i, j int) bool { return st.Queues[i].Name < st.Queues[j].Name })
	return st
}

// Sessions copies every open session's state.
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
