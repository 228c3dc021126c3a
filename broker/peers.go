package broker

import "sync"

// Peers carries topic messages between this router and the other nodes of
// a cluster (Config.Peers; package broker/cluster implements it on NATS).
// A router without Peers is a single node and pays one nil check per
// publish.
//
// The router tells Peers which topic filters its local clients want
// (Interest, reference-counted per filter here, so a node asks the cluster
// only for what it needs) and hands it every topic message a local client
// or the broker publishes (Forward). Messages arriving from other nodes
// come back in through Router.PublishFromPeer, which routes them to local
// subscribers only and never forwards them again.
//
// Neither method may block on the network or call back into the router:
// both are called with router state held in order.
type Peers interface {
	// Interest reports that the first local subscription on filter (an
	// MQTT-form filter) appeared (add) or that the last one left (!add).
	// Share groups count here by their filter too, except when the Peers
	// is also a SharePeers (peers_share.go): then a group is declared with
	// ShareInterest and competes across nodes instead.
	Interest(filter string, add bool)
	// Forward hands a topic message published on this node to the nodes
	// that want it. m is immutable (Message).
	Forward(m *Message)
}

// interest counts the local subscriptions per topic filter for Peers.
// Lock order: interest.mu is taken under Index and share locks' callers
// only (link/unlink), never the other way round, and Peers.Interest is
// called under it so that add and remove for one filter stay in order.
type interest struct {
	mu     sync.Mutex
	counts map[string]int
}

// change adds n (1 or -1) to filter's count and tells p when the count
// leaves or reaches zero.
func (in *interest) change(p Peers, filter string, n int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.counts == nil {
		in.counts = make(map[string]int)
	}
	c := in.counts[filter] + n
	switch {
	case c <= 0:
		delete(in.counts, filter)
		if c == 0 {
			p.Interest(filter, false)
		}
	case c == 1 && n > 0:
		in.counts[filter] = c
		p.Interest(filter, true)
	default:
		in.counts[filter] = c
	}
}

// Filters returns the filters local clients subscribe to, for a Peers
// that (re)connects and must declare its whole interest again.
func (r *Router) Filters() []string {
	r.interest.mu.Lock()
	defer r.interest.mu.Unlock()
	out := make([]string, 0, len(r.interest.counts))
	for f := range r.interest.counts {
		out = append(out, f)
	}
	return out
}

// PublishFromPeer routes a topic message that another node published to
// this node's matching subscribers, as Publish would for a local one, but
// without forwarding it again. m.From names the publishing session on its
// node (no-local never matches it here). Retained messages are kept here
// too, so a new local subscriber gets them.
func (r *Router) PublishFromPeer(m *Message) error {
	m.Queue = ""
	m.fromPeer = true
	return r.publish(nil, m, nil)
}

// indexInsert puts sub into the topic index and counts its filter for
// Peers. Every topic entry (subscription, share-group proxy, durable
// binding) enters the index through it.
func (r *Router) indexInsert(sub *Subscription) {
	if r.idx.Insert(sub) && r.cfg.Peers != nil {
		r.interest.change(r.cfg.Peers, sub.Filter, 1)
	}
}

// indexRemove takes sub out of the topic index and uncounts its filter.
func (r *Router) indexRemove(sub *Subscription) bool {
	if !r.idx.Remove(sub) {
		return false
	}
	if r.cfg.Peers != nil {
		r.interest.change(r.cfg.Peers, sub.Filter, -1)
	}
	return true
}
