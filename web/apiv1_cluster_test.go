package web

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker/cluster"
)

// TestV1ClusterSingle: without a cluster, GET /api/v1/cluster is this
// node alone with "cluster": false, and /api/v1/cluster/clients names it
// on each client.
func TestV1ClusterSingle(t *testing.T) {
	s := startV1(t)
	s.gw.SetReady(true)
	s.mqtt("c1", 0)
	var v ClusterView
	s.get("/api/v1/cluster", &v)
	if v.Cluster || len(v.Nodes) != 1 || !v.Nodes[0].Self || v.Nodes[0].State != NodeUp || v.Self != v.Nodes[0].ID {
		t.Fatalf("single node view: %+v", v)
	}
	if n := v.Nodes[0]; !n.Ready || n.Connections != 1 || n.Version == "" {
		t.Fatalf("self: %+v", n)
	}
	var p ClusterClientPage
	s.get("/api/v1/cluster/clients?q=c1", &p)
	if len(p.Items) != 1 || p.Items[0].ID != "c1" || p.Items[0].Node != v.Self || !p.Items[0].Online {
		t.Fatalf("clients: %+v", p)
	}
	s.wantError("GET", "/api/v1/cluster/clients?limit=0", "", 400)
}

// fakeLink is a cluster of this node and two others whose answers are
// canned; "n3" is known and does not answer.
type fakeLink struct {
	clients map[string][]ClusterClient // node -> its clients, by id
}

func (f *fakeLink) ID() string                                     { return "n1" }
func (f *fakeLink) Routes() int                                    { return 2 }
func (f *fakeLink) PeersRouted() int                               { return 1 }
func (f *fakeLink) Ready() error                                   { return nil }
func (f *fakeLink) Addresses() []string                            { return []string{"127.0.0.1:1"} }
func (f *fakeLink) HandleAdmin(string, cluster.AdminHandler) error { return nil }
func (f *fakeLink) Peers() []cluster.PeerState {
	return []cluster.PeerState{{ID: "n2", LastSeen: time.Now()}, {ID: "n3", LastSeen: time.Unix(1, 0)}}
}

func (f *fakeLink) GatherAdmin(_ context.Context, kind string, req []byte) ([]cluster.AdminAnswer, error) {
	switch kind {
	case adminNodes:
		return []cluster.AdminAnswer{{Node: "n2", Data: mustJSON(ClusterNode{ID: "spoof", Connections: 7})}}, nil
	case adminClients:
		var r clientsRequest
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, err
		}
		var out []ClusterClient
		for _, c := range f.clients["n2"] {
			if c.ID > r.Cursor && len(out) < r.Limit {
				out = append(out, c)
			}
		}
		return []cluster.AdminAnswer{{Node: "n2", Data: mustJSON(clientsAnswer{Items: out, More: true})}}, nil
	}
	return nil, errors.New("unknown kind")
}

// TestV1ClusterMerge: the view lists this node, the node that answered
// (under the id its answer came from) and the known node that did not,
// as down; the client pages merge both nodes' clients by id, keep one id
// held on two nodes on one page, and name the unanswering node.
func TestV1ClusterMerge(t *testing.T) {
	f := &fakeLink{clients: map[string][]ClusterClient{"n2": {{ID: "a"}, {ID: "m1"}, {ID: "z"}}}}
	s := startV1(t, func(c *Config) { c.Cluster = f })
	s.gw.SetReady(true)
	s.mqtt("m1", 0)
	s.mqtt("b", 0)
	var v ClusterView
	s.get("/api/v1/cluster", &v)
	if !v.Cluster || len(v.Nodes) != 3 || v.Self != "n1" {
		t.Fatalf("view: %+v", v)
	}
	if n := v.Nodes[1]; n.ID != "n2" || n.State != NodeUp || n.Connections != 7 {
		t.Fatalf("n2: %+v", n)
	}
	if n := v.Nodes[2]; n.ID != "n3" || n.State != NodeDown || n.LastSeen == "" {
		t.Fatalf("n3: %+v", n)
	}
	var p ClusterClientPage
	s.get("/api/v1/cluster/clients?limit=2", &p)
	// a (n2), b (n1), then m1 on both nodes: the page grows to keep them together.
	got := []string{}
	for _, c := range p.Items {
		got = append(got, c.ID+"@"+c.Node)
	}
	if len(got) != 2 || got[0] != "a@n2" || got[1] != "b@n1" || p.NextCursor != "b" {
		t.Fatalf("page 1: %v next %q", got, p.NextCursor)
	}
	if len(p.Unanswered) != 1 || p.Unanswered[0] != "n3" {
		t.Fatalf("unanswered: %v", p.Unanswered)
	}
	s.get("/api/v1/cluster/clients?limit=1&cursor=b", &p)
	got = got[:0]
	for _, c := range p.Items {
		got = append(got, c.ID+"@"+c.Node)
	}
	if len(got) != 2 || got[0] != "m1@n1" || got[1] != "m1@n2" || p.NextCursor != "m1" {
		t.Fatalf("page 2: %v next %q", got, p.NextCursor)
	}
}
