package broker

import "strings"

// Subscriptions and share groups for the admin API (admin.go has the types).

// SubscriptionPage returns up to limit subscriptions of all sessions in
// (filter-or-queue, session id, key) order after cursor, whose filter,
// queue, session id, client id or user contains q.
//
// Cost: one pass over the sessions and their subscriptions under the
// router's read lock (each session's lock taken in turn, doc.go), with
// the pager's O(limit) memory. The cursor is opaque.
func (r *Router) SubscriptionPage(cursor string, limit int, q string) (page []SubscriptionInfo, next string) {
	p := newPager(cursor, limit, func(e keyed[*Subscription]) string { return e.key })
	r.mu.RLock()
	for id, s := range r.sessions {
		sessionHit := q == "" || strings.Contains(string(id), q) || strings.Contains(s.ClientID, q) ||
			strings.Contains(userOf(s), q)
		s.mu.Lock()
		for key, sub := range s.subs {
			dest := sub.Filter
			if sub.Queue != "" {
				dest = sub.Queue
			}
			if !sessionHit && !strings.Contains(dest, q) {
				continue
			}
			if k := dest + "\x00" + string(id) + "\x00" + key; p.wants(k) {
				p.add(keyed[*Subscription]{k, sub})
			}
		}
		s.mu.Unlock()
	}
	r.mu.RUnlock()
	items, next := p.page()
	page = make([]SubscriptionInfo, len(items))
	for i, e := range items {
		page[i] = r.subscriptionInfo(e.v)
	}
	return page, next
}

// subscriptionInfo copies sub. Its fields do not change once the router
// has it; a durable subscription's filter is its binding's.
func (r *Router) subscriptionInfo(sub *Subscription) SubscriptionInfo {
	s := sub.Session
	si := SubscriptionInfo{
		SessionID: string(s.ID), ClientID: s.AuthClientID(), User: userOf(s),
		Key: sub.Key, Kind: "topic", Filter: sub.Filter, Queue: sub.Queue, Group: sub.Group,
		QoS: sub.QoS, Ack: sub.Ack.String(), NoLocal: sub.NoLocal, SubID: sub.SubID,
	}
	switch {
	case sub.Group != "":
		si.Kind = "share"
	case isDurableQueue(sub.Queue):
		si.Kind = "durable"
		r.qmu.Lock()
		if b := r.bindings[sub.Queue]; b != nil {
			si.Filter = b.filter
		}
		r.qmu.Unlock()
	case sub.Queue != "":
		si.Kind = "queue"
	}
	return si
}

// ShareGroupPage lists share groups in (group, filter) order after cursor
// whose group or filter contains q. The cursor is opaque.
func (r *Router) ShareGroupPage(cursor string, limit int, q string) (page []ShareGroupInfo, next string) {
	p := newPager(cursor, limit, func(g *shareGroup) string { return g.key })
	r.smu.Lock()
	for key, g := range r.shares {
		if p.wants(key) && (q == "" || strings.Contains(g.proxy.Group, q) || strings.Contains(g.proxy.Filter, q)) {
			p.add(g)
		}
	}
	r.smu.Unlock()
	groups, next := p.page()
	page = make([]ShareGroupInfo, len(groups))
	for i, g := range groups {
		g.mu.Lock()
		n := len(g.subs)
		g.mu.Unlock()
		page[i] = ShareGroupInfo{Group: g.proxy.Group, Filter: g.proxy.Filter, Members: n}
	}
	return page, next
}
