package broker

import "strings"

// Subscriptions and share groups for the admin API (admin.go has the types).

// SubscriptionPage returns up to limit subscriptions of all sessions in
// (filter-or-queue, session id, key) order after cursor, whose filter,
// queue, session id, client id or user contains q.
//
// Cost: one pass over the sessions and their subscriptions under the
// router's read lock (each session's lock taken in turn, doc.go), with
// the pager's O(limit) memory; a key string is made only for the
// subscriptions that enter the page's heap. The cursor is opaque.
func (r *Router) SubscriptionPage(cursor string, limit int, q string) (page []SubscriptionInfo, next string) {
	p := newPager(cursor, limit, func(e subEntry) string { return e.key })
	after := parseSubCursor(cursor)
	r.mu.RLock()
	for id, s := range r.sessions {
		sessionHit := q == "" || strings.Contains(string(id), q) || strings.Contains(s.ClientID, q) ||
			strings.Contains(userOf(s), q)
		s.mu.Lock()
		for key, sub := range s.subs.all() {
			e := subEntry{dest: sub.Filter, id: string(id), skey: key, sub: sub}
			if sub.Queue != "" {
				e.dest = sub.Queue
			}
			if !sessionHit && !strings.Contains(e.dest, q) {
				continue
			}
			if cursor != "" && !after.before(e) {
				continue
			}
			if w, full := p.worst(); full && !e.before(w) {
				continue
			}
			e.key = e.dest + "\x00" + e.id + "\x00" + e.skey
			p.add(e)
		}
		s.mu.Unlock()
	}
	r.mu.RUnlock()
	items, next := p.page()
	page = make([]SubscriptionInfo, len(items))
	for i, e := range items {
		page[i] = r.subscriptionInfo(e.sub)
	}
	return page, next
}

// subEntry is a subscription in SubscriptionPage's heap. Its key joins
// dest, id and skey with NULs, which none of them holds, so the key's
// byte order is the order of before.
type subEntry struct {
	key, dest, id, skey string
	sub                 *Subscription
}

func (a subEntry) before(b subEntry) bool {
	switch {
	case a.dest != b.dest:
		return a.dest < b.dest
	case a.id != b.id:
		return a.id < b.id
	}
	return a.skey < b.skey
}

// parseSubCursor splits a SubscriptionPage cursor; a cursor without NULs
// is a bare filter or queue, which sorts before all of its subscriptions,
// as its string does.
func parseSubCursor(cursor string) subEntry {
	dest, rest, _ := strings.Cut(cursor, "\x00")
	id, skey, _ := strings.Cut(rest, "\x00")
	return subEntry{key: cursor, dest: dest, id: id, skey: skey}
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
	case sub.kind == kindShared:
		si.Kind = "share"
	case sub.kind == kindQueue && isDurableQueue(sub.Queue):
		si.Kind = "durable"
		r.qmu.Lock()
		if b := r.bindings[sub.Queue]; b != nil {
			si.Filter = b.filter
		}
		r.qmu.Unlock()
	case sub.kind == kindQueue:
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
