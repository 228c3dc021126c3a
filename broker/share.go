package broker

import "sync"

// shareGroup is an MQTT shared subscription ($share/<group>/<filter>,
// MQTT 5 §4.8.2): the index holds one proxy Subscription for the group, and
// each matching message goes to one member, round robin.
//
// Lock order: Router.smu → shareGroup.mu; mu is otherwise a leaf.
type shareGroup struct {
	key   string        // group + "\x00" + filter
	proxy *Subscription // the group's entry in the Index
	mu    sync.Mutex
	subs  []*Subscription
	next  int
	// cluster: the router's Peers carry share groups (SharePeers): the
	// cluster picks the node, PublishToShare the member.
	cluster bool
}

// pick returns the member a message routed through the index goes to
// (plan's target), or nil. In a cluster that carries share groups it is
// always nil: the cluster picks one node per message and group, and that
// node delivers through PublishToShare (peers_share.go).
func (g *shareGroup) pick() *Subscription {
	if g.cluster {
		return nil
	}
	return g.member()
}

// member returns the next local member, round robin, preferring connected
// ones; only when none is connected does an offline persistent member get
// the message to keep (MQTT 5 §4.8.2: the server picks the member).
func (g *shareGroup) member() *Subscription {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.subs)
	for _, online := range []bool{true, false} {
		for i := 0; i < n; i++ {
			s := g.subs[(g.next+i)%n]
			if ok := !s.Session.Closed(); ok == online && (ok || s.Session.persistent()) {
				g.next = (g.next + i + 1) % n
				return s
			}
		}
	}
	return nil
}

// Redistribute hands shared-subscription deliveries that a session ending
// with its connection could not complete (unsent, or unacknowledged) to
// another member of their group: "If the Client's Session terminates
// before the Client reconnects, the Server SHOULD send the Application
// Message to another Client that is subscribed to the same Shared
// Subscription" (MQTT 5 §4.8.2). Call it after Router.Close, so the
// session is out of its groups. Other deliveries are ignored.
func (r *Router) Redistribute(ds []Delivery) {
	for _, d := range ds {
		if d.Sub.kind != kindShared || d.QoS == AtMostOnce || d.Msg.Expired() {
			continue
		}
		g := d.Sub.share
		if sub := g.member(); sub != nil { // a local one, in a cluster too
			_ = r.route(d.Msg, sub)
		}
	}
}

// replace swaps old for sub (a resumed session's copy).
func (g *shareGroup) replace(old, sub *Subscription) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, s := range g.subs {
		if s == old {
			g.subs[i] = sub
			return
		}
	}
}

func shareKey(group, filter string) string { return group + "\x00" + filter }

// joinShare adds sub to its group, creating the group and its index entry
// on first use.
func (r *Router) joinShare(sub *Subscription) {
	key := shareKey(sub.Group, sub.Filter)
	r.smu.Lock()
	defer r.smu.Unlock()
	g := r.shares[key]
	if g == nil {
		g = &shareGroup{key: key}
		g.proxy = &Subscription{SubSpec: SubSpec{Filter: sub.Filter, Group: sub.Group, QoS: ExactlyOnce}, kind: kindShareProxy, share: g}
		r.shares[key] = g
		if sp := r.sharePeers(); sp != nil {
			g.cluster = true
			r.idx.Insert(g.proxy) // no Interest: the group's own (ShareInterest)
			sp.ShareInterest(sub.Group, sub.Filter, true)
		} else {
			r.indexInsert(g.proxy)
		}
	}
	sub.share = g // before a pick can return it
	g.mu.Lock()
	g.subs = append(g.subs, sub)
	g.mu.Unlock()
}

// leaveShare removes sub from its group and drops an empty group.
func (r *Router) leaveShare(sub *Subscription) {
	r.smu.Lock()
	defer r.smu.Unlock()
	g := sub.share
	if g == nil {
		return
	}
	g.mu.Lock()
	for i, s := range g.subs {
		if s == sub {
			g.subs = append(g.subs[:i], g.subs[i+1:]...)
			if g.next > i {
				g.next--
			}
			break
		}
	}
	empty := len(g.subs) == 0
	g.mu.Unlock()
	if empty && r.shares[g.key] == g {
		delete(r.shares, g.key)
		if g.cluster {
			r.idx.Remove(g.proxy)
			r.sharePeers().ShareInterest(g.proxy.Group, g.proxy.Filter, false)
		} else {
			r.indexRemove(g.proxy)
		}
	}
}
