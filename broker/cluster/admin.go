package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The node directory: the management API's view of the whole cluster,
// carried over NATS (issue 11, Build 6).
//
// Each node answers requests on duplex.<name>.admin.<kind> (HandleAdmin)
// with a reply of its own making; GatherAdmin publishes one request on
// that subject with a fresh inbox as reply subject and collects the
// answers for a bounded time. Every answer carries its node's id in the
// Duplex-Node header. The directory remembers every node that ever
// answered or announced itself (duplex.<name>.admin.hello, published on
// each (re)connect), so a node that stops answering is listed as down
// with the time it was last seen; a node that stops cleanly says so
// (duplex.<name>.admin.bye) and is listed as stopped.
//
// The subjects are outside the topic space (duplex.<name>.t.…), so no
// client topic can reach them. The connection has NoEcho: a node never
// receives its own request, and the caller adds its own answer.

// headerNode names the answering node on admin replies and announcements.
const headerNode = "Duplex-Node"

// Admin request defaults and bounds.
const (
	// AdminWait bounds GatherAdmin when the context has no deadline.
	AdminWait = 1500 * time.Millisecond
	// maxPeers bounds the directory; beyond it the longest unseen
	// nodes are forgotten.
	maxPeers = 1024
	// joinProbe: how often a starting node asks who is there.
	joinProbe = 250 * time.Millisecond
)

// AdminHandler makes this node's answer to one admin request; req is the
// asking node's request body. It runs on nats.go's subscription
// goroutine: it must not block for long.
type AdminHandler func(req []byte) []byte

// AdminAnswer is one node's answer to a gathered request.
type AdminAnswer struct {
	Node string
	Data []byte
}

// PeerState is what the directory knows of another node.
type PeerState struct {
	ID       string
	LastSeen time.Time // its latest answer or announcement
	// Stopped: the node said it was stopping (a clean shutdown) and has
	// not announced itself since.
	Stopped bool
}

// directory is the set of other nodes seen, guarded by its own mutex
// (taken after none of the node's locks).
type directory struct {
	mu       sync.Mutex
	peers    map[string]*PeerState
	handlers map[string]AdminHandler
	subs     map[string]*nats.Subscription
	sys      []*nats.Subscription // hello, bye, the answers to this node's hello
	helloTo  string               // the reply subject of this node's hello
}

// adminSubject is duplex.<name>.admin.<kind>.
func (n *Node) adminSubject(kind string) string {
	return "duplex." + esc(n.cfg.Name) + ".admin." + kind
}

// validKind: a kind is one subject token.
func validKind(kind string) bool {
	if kind == "" || len(kind) > 64 {
		return false
	}
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// HandleAdmin makes h this node's answer to admin requests of kind (a
// lower-case token such as "nodes"). It may be called before or after
// Start; a second call for a kind replaces the handler.
func (n *Node) HandleAdmin(kind string, h AdminHandler) error {
	if !validKind(kind) {
		return errors.New("cluster: admin kind must be a lower-case token")
	}
	d := &n.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.handlers == nil {
		d.handlers = map[string]AdminHandler{}
	}
	d.handlers[kind] = h
	if n.running.Load() {
		return n.subscribeAdminLocked(kind)
	}
	return nil
}

// subscribeAdminLocked subscribes kind's subject once. d.mu held.
func (n *Node) subscribeAdminLocked(kind string) error {
	d := &n.dir
	if d.subs == nil {
		d.subs = map[string]*nats.Subscription{}
	}
	if d.subs[kind] != nil {
		return nil
	}
	sub, err := n.nc.Subscribe(n.adminSubject(kind), func(m *nats.Msg) { n.answerAdmin(kind, m) })
	if err != nil {
		return err
	}
	d.subs[kind] = sub
	return nil
}

// answerAdmin replies to one request with the handler's answer.
func (n *Node) answerAdmin(kind string, m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	if from := m.Header.Get(headerNode); from != "" {
		n.seen(from)
	}
	n.dir.mu.Lock()
	h := n.dir.handlers[kind]
	n.dir.mu.Unlock()
	if h == nil {
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(headerNode, n.cfg.NodeID)
	r.Data = h(m.Data)
	if err := n.nc.PublishMsg(r); err != nil {
		n.cfg.Log.Debug("cluster: admin answer not sent", "kind", kind, "err", err)
	}
}

// startAdmin subscribes the announcements and the handlers registered
// before Start, and announces this node. Start calls it.
func (n *Node) startAdmin() {
	d := &n.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range []string{"hello", "bye"} {
		stopped := s == "bye"
		sub, err := n.nc.Subscribe(n.adminSubject(s), func(m *nats.Msg) {
			if from := m.Header.Get(headerNode); from != "" && from != n.cfg.NodeID {
				n.mark(from, stopped)
				if m.Reply != "" {
					// A node starting asks who is there (joined).
					r := nats.NewMsg(m.Reply)
					r.Header.Set(headerNode, n.cfg.NodeID)
					_ = n.nc.PublishMsg(r)
				}
			}
		})
		if err != nil {
			n.cfg.Log.Warn("cluster: admin subscription failed", "subject", n.adminSubject(s), "err", err)
			continue
		}
		d.sys = append(d.sys, sub)
	}
	d.helloTo = n.nc.NewInbox()
	if sub, err := n.nc.Subscribe(d.helloTo, func(m *nats.Msg) {
		if from := m.Header.Get(headerNode); from != "" && from != n.cfg.NodeID {
			n.mark(from, false)
		}
	}); err == nil {
		d.sys = append(d.sys, sub)
	} else {
		d.helloTo = ""
	}
	for kind := range d.handlers {
		if err := n.subscribeAdminLocked(kind); err != nil {
			n.cfg.Log.Warn("cluster: admin subscription failed", "kind", kind, "err", err)
		}
	}
}

// announce tells the other nodes that this node is up (hello) or
// stopping (bye). Errors are ignored: the directory also learns from
// answers.
func (n *Node) announce(kind string) {
	if n.nc == nil {
		return
	}
	m := nats.NewMsg(n.adminSubject(kind))
	m.Header.Set(headerNode, n.cfg.NodeID)
	if kind == "hello" {
		n.dir.mu.Lock()
		m.Reply = n.dir.helloTo // the other nodes answer: joined
		n.dir.mu.Unlock()
	}
	_ = n.nc.PublishMsg(m)
	if kind == "bye" {
		_ = n.nc.FlushTimeout(200 * time.Millisecond)
	}
}

func (n *Node) seen(id string) { n.mark(id, false) }

// mark records that id was seen now, or said it was stopping.
func (n *Node) mark(id string, stopped bool) {
	if id == n.cfg.NodeID {
		return
	}
	d := &n.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.peers == nil {
		d.peers = map[string]*PeerState{}
	}
	p := d.peers[id]
	if p == nil {
		if len(d.peers) >= maxPeers {
			var oldest *PeerState
			for _, q := range d.peers {
				if oldest == nil || q.LastSeen.Before(oldest.LastSeen) {
					oldest = q
				}
			}
			delete(d.peers, oldest.ID)
		}
		p = &PeerState{ID: id}
		d.peers[id] = p
	}
	p.LastSeen = time.Now()
	p.Stopped = stopped
}

// heardPeer reports whether another node not stopped has answered or
// announced itself: messages cross the routes both ways (a route the peer
// is about to refuse, for a wrong password, is counted by the server for a
// moment, but carries nothing).
func (n *Node) heardPeer() bool {
	d := &n.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.peers {
		if !p.Stopped {
			return true
		}
	}
	return false
}

// helloUntilHeard announces this node every joinProbe until another node
// answers: the first hello may go out before any route is up. Start
// runs it for an embedded node with peers.
func (n *Node) helloUntilHeard() {
	defer n.wg.Done()
	t := time.NewTicker(joinProbe)
	defer t.Stop()
	for !n.heardPeer() {
		select {
		case <-t.C:
			n.announce("hello")
		case <-n.done:
			return
		}
	}
}

// Peers returns the other nodes the directory knows, sorted by id.
func (n *Node) Peers() []PeerState {
	d := &n.dir
	d.mu.Lock()
	out := make([]PeerState, 0, len(d.peers))
	for _, p := range d.peers {
		out = append(out, *p)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerState) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// routedPeers returns the names of the embedded server's route peers (the
// other nodes' ids: each embedded server is named by its node id), nil
// in external mode.
func (n *Node) routedPeers() map[string]bool {
	if n.srv == nil || !n.running.Load() {
		return nil
	}
	rz, err := n.srv.Routez(&server.RoutezOptions{})
	if err != nil {
		return nil
	}
	names := map[string]bool{}
	for _, r := range rz.Routes {
		if r.RemoteName != "" {
			names[r.RemoteName] = true
		}
	}
	return names
}

// GatherAdmin asks every other node for its answer to req on kind's
// subject and returns the answers that arrived before ctx's deadline
// (AdminWait without one), in arrival order, one per node. It returns
// early once every node it expects has answered: in embedded mode the
// route peers, else every node of the directory not known to be stopped.
// Not running or not connected: no answers, no error.
func (n *Node) GatherAdmin(ctx context.Context, kind string, req []byte) ([]AdminAnswer, error) {
	if !validKind(kind) {
		return nil, errors.New("cluster: admin kind must be a lower-case token")
	}
	if !n.running.Load() || !n.nc.IsConnected() {
		return nil, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, AdminWait)
		defer cancel()
	}
	expect := n.routedPeers()
	if expect == nil {
		expect = map[string]bool{}
		for _, p := range n.Peers() {
			if !p.Stopped {
				expect[p.ID] = true
			}
		}
	}
	inbox := n.nc.NewInbox()
	ch := make(chan *nats.Msg, 256)
	sub, err := n.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	m := nats.NewMsg(n.adminSubject(kind))
	m.Reply = inbox
	m.Header.Set(headerNode, n.cfg.NodeID)
	m.Data = req
	if err := n.nc.PublishMsg(m); err != nil {
		return nil, err
	}
	var out []AdminAnswer
	got := map[string]bool{}
	for {
		if n.srv != nil && len(expect) == 0 {
			return out, nil // embedded and routed to nobody: nobody can answer
		}
		if len(expect) > 0 && allIn(expect, got) {
			return out, nil
		}
		select {
		case r := <-ch:
			if id, ok := n.newAnswer(r, got); ok {
				out = append(out, AdminAnswer{Node: id, Data: r.Data})
			}
		case <-ctx.Done():
			return out, nil
		}
	}
}

// newAnswer reports the node that sent r, an answer to a request to every
// node, and true when it is another node's first answer: it records the
// node in got, and as seen (the directory).
func (n *Node) newAnswer(r *nats.Msg, got map[string]bool) (string, bool) {
	id := r.Header.Get(headerNode)
	if id == "" || id == n.cfg.NodeID || got[id] {
		return "", false
	}
	got[id] = true
	n.seen(id)
	return id, true
}

// allIn reports whether every key of want is in got.
func allIn(want, got map[string]bool) bool {
	for id := range want {
		if !got[id] {
			return false
		}
	}
	return true
}

// PeersRouted is the number of other nodes the embedded server has a
// route to (several pooled routes to one node count once); 0 in
// external mode.
func (n *Node) PeersRouted() int { return len(n.routedPeers()) }

// Name is the cluster's name (Config.Name or its default).
func (n *Node) Name() string { return n.cfg.Name }
