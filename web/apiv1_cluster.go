package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/broker/cluster"
	"github.com/duplexmq/duplex/store"
)

// The cluster view of the management API (issue 11, Build 6; docs/api.md
// "Cluster"): GET /api/v1/cluster lists the nodes, GET
// /api/v1/cluster/clients says which node holds each client. Every node
// answers the "nodes" and "clients" admin requests of the others with its
// own part (broker/cluster/admin.go carries them over NATS); the node
// asked by the browser gathers them for a bounded time and lists the
// nodes it knew that did not answer as down. Without a cluster both
// endpoints answer with this node alone.

// ClusterLink is the node's cluster link as the management API uses it:
// broker/cluster.Node plus the addresses this node listens on
// (cmd/duplex). Config.Cluster nil: a single node.
type ClusterLink interface {
	ID() string
	Routes() int
	PeersRouted() int
	Ready() error
	HandleAdmin(kind string, h cluster.AdminHandler) error
	GatherAdmin(ctx context.Context, kind string, req []byte) ([]cluster.AdminAnswer, error)
	Peers() []cluster.PeerState
	Addresses() []string
}

// Node states of ClusterNode.State.
const (
	NodeUp      = "up"      // answered this request
	NodeDown    = "down"    // known, did not answer
	NodeStopped = "stopped" // said it was shutting down, not back since
)

// The admin request kinds this package answers.
const (
	adminNodes   = "nodes"
	adminClients = "clients"
)

// initCluster registers this node's answers to the other nodes' admin
// requests. initConsole calls it last: the handlers may run at once on
// NATS's goroutine, and read only what New has set by then.
func (s *Server) initCluster() {
	c := s.cfg.Cluster
	if c == nil {
		return
	}
	for kind, h := range map[string]cluster.AdminHandler{
		adminNodes:   func([]byte) []byte { return mustJSON(s.selfNode()) },
		adminClients: s.answerClients,
	} {
		if err := c.HandleAdmin(kind, h); err != nil {
			s.cfg.Log.Warn("web: cluster admin request not answered", "kind", kind, "err", err)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the API's own types always marshal
	}
	return b
}

// selfNode is this node's line of the cluster view.
func (s *Server) selfNode() ClusterNode {
	o := s.overview()
	n := ClusterNode{
		State: NodeUp, Self: true, Version: o.Version, StartedAt: o.StartedAt, UptimeSeconds: o.UptimeSeconds,
		Connections: o.Connections, ByProtocol: o.ByProtocol, Rates: o.Rates, Sessions: o.Sessions,
		Subscriptions: o.Subscriptions, LastSeen: rfc3339(time.Now()), Addresses: []string{},
	}
	if err := s.readiness(); err != nil {
		n.NotReady = err.Error()
	} else {
		n.Ready = true
	}
	if c := s.cfg.Cluster; c != nil {
		n.ID = c.ID()
		n.Joined = c.Ready() == nil
		n.Routes = c.Routes()
		n.RoutedPeers = c.PeersRouted()
		if a := c.Addresses(); a != nil {
			n.Addresses = a
		}
	} else {
		n.ID, _ = os.Hostname()
		if n.ID == "" {
			n.ID = "local"
		}
	}
	return n
}

// readiness is what /readyz checks (serveReadyz), as an error.
func (s *Server) readiness() error {
	if !s.ready.Load() {
		return errors.New("not ready: listeners not serving")
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			return err
		}
	}
	if st := s.cfg.Store; st != nil {
		if _, _, err := st.GetSession(readyProbe); err != nil && !errors.Is(err, store.ErrNotFound) {
			return errors.New("store unavailable")
		}
	}
	return nil
}

// v1Cluster answers GET /api/v1/cluster: every node, this one first, then
// the others by id.
func (s *Server) v1Cluster(w http.ResponseWriter, r *http.Request) {
	self := s.selfNode()
	v := ClusterView{Cluster: s.cfg.Cluster != nil, Self: self.ID, Nodes: []ClusterNode{self}}
	c := s.cfg.Cluster
	if c == nil {
		apiJSON(w, v)
		return
	}
	answers, err := c.GatherAdmin(r.Context(), adminNodes, nil)
	if err != nil {
		s.cfg.Log.Warn("web: cluster nodes request failed", "err", err)
	}
	up := map[string]bool{self.ID: true}
	var others []ClusterNode
	for _, a := range answers {
		var n ClusterNode
		if err := json.Unmarshal(a.Data, &n); err != nil || up[a.Node] {
			continue
		}
		n.ID, n.Self, n.State = a.Node, false, NodeUp
		up[a.Node] = true
		others = append(others, n)
	}
	for _, p := range c.Peers() {
		if up[p.ID] {
			continue
		}
		st := NodeDown
		if p.Stopped {
			st = NodeStopped
		}
		others = append(others, ClusterNode{ID: p.ID, State: st, LastSeen: rfc3339(p.LastSeen),
			Addresses: []string{}, ByProtocol: []ConnGroup{}})
	}
	slices.SortFunc(others, func(a, b ClusterNode) int { return strings.Compare(a.ID, b.ID) })
	v.Nodes = append(v.Nodes, others...)
	apiJSON(w, v)
}

// clientsRequest is the "clients" admin request: one page of clients.
type clientsRequest struct {
	Q      string `json:"q,omitempty"`
	Cursor string `json:"cursor,omitempty"`
	Limit  int    `json:"limit"`
}

// clientsAnswer is one node's answer.
type clientsAnswer struct {
	Items []ClusterClient `json:"items"`
	More  bool            `json:"more,omitempty"`
}

// localClients is this node's page of clients, sorted by id, after
// cursor, matching q; node names the node on each item.
func (s *Server) localClients(req clientsRequest, node string) clientsAnswer {
	limit := min(max(req.Limit, 1), MaxPageLimit)
	infos, next, err := s.router.ClientPage(req.Cursor, limit, req.Q, broker.SortByID, 0, false)
	if err != nil {
		return clientsAnswer{Items: []ClusterClient{}}
	}
	out := clientsAnswer{Items: make([]ClusterClient, len(infos)), More: next != ""}
	for i := range infos {
		c := clientOf(&infos[i])
		out.Items[i] = ClusterClient{
			ID: c.ID, ClientID: c.ClientID, Node: node, Protocol: c.Protocol, Version: c.Version,
			Transport: c.Transport, User: c.User, RemoteAddr: c.RemoteAddr, Online: c.Online,
			Persistent: c.Persistent, ConnectedAt: c.ConnectedAt,
		}
	}
	return out
}

// answerClients is this node's answer to another node's "clients"
// request. The request's limit is bounded here too.
func (s *Server) answerClients(body []byte) []byte {
	var req clientsRequest
	if len(body) > maxAPIBody || json.Unmarshal(body, &req) != nil ||
		len(req.Q) > maxV1Query || len(req.Cursor) > maxV1Cursor {
		return mustJSON(clientsAnswer{Items: []ClusterClient{}})
	}
	return mustJSON(s.localClients(req, s.cfg.Cluster.ID()))
}

// v1ClusterClients answers GET /api/v1/cluster/clients?q&limit&cursor:
// the clients of every node (connected, and persistent sessions kept
// offline) whose id, client id, user or remote address contains q, by
// id, each with the node that holds it. Each node sends at most limit
// items after cursor; the page is the first limit of their union (plus
// any more items with the last id, which several nodes may hold), and
// its next_cursor is that last id. unanswered lists the nodes known up
// that did not answer in time: the page may lack their clients.
func (s *Server) v1ClusterClients(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	req := clientsRequest{Q: p.q, Cursor: p.cursor, Limit: p.limit}
	self := "local"
	c := s.cfg.Cluster
	if c != nil {
		self = c.ID()
	} else if h, _ := os.Hostname(); h != "" {
		self = h
	}
	local := s.localClients(req, self)
	all, more := local.Items, local.More
	out := ClusterClientPage{Unanswered: []string{}}
	if c != nil {
		answers, err := c.GatherAdmin(r.Context(), adminClients, mustJSON(req))
		if err != nil {
			s.cfg.Log.Warn("web: cluster clients request failed", "err", err)
		}
		got := map[string]bool{}
		for _, a := range answers {
			var ans clientsAnswer
			if json.Unmarshal(a.Data, &ans) != nil || len(ans.Items) > MaxPageLimit {
				continue
			}
			got[a.Node] = true
			for i := range ans.Items {
				ans.Items[i].Node = a.Node // the header's word, not the body's
			}
			all = append(all, ans.Items...)
			more = more || ans.More
		}
		for _, peer := range c.Peers() {
			if !got[peer.ID] && !peer.Stopped {
				out.Unanswered = append(out.Unanswered, peer.ID)
			}
		}
	}
	slices.SortFunc(all, func(a, b ClusterClient) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	if len(all) > p.limit {
		n := p.limit
		for n < len(all) && all[n].ID == all[p.limit-1].ID {
			n++ // one id on several nodes stays on one page
		}
		more = more || n < len(all)
		all = all[:n]
	}
	out.Items = all
	if out.Items == nil {
		out.Items = []ClusterClient{}
	}
	if more && len(all) > 0 {
		out.NextCursor = all[len(all)-1].ID
	}
	apiJSON(w, out)
}
