package cluster

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// retainRouter records what a node routes and what it only keeps.
type retainRouter struct {
	fakeRouter
	mu   sync.Mutex
	kept map[string]string // topic → payload of RetainFromPeer
}

func (r *retainRouter) RetainFromPeer(m *broker.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kept == nil {
		r.kept = map[string]string{}
	}
	r.kept[m.Topic] = string(m.Payload)
	return nil
}

func (r *retainRouter) keptPayload(topic string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.kept[topic]
	return p, ok
}

// routed returns the payload of the last routed message on topic.
func (r *fakeRouter) routed(topic string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.got) - 1; i >= 0; i-- {
		if r.got[i].Topic == topic {
			return string(r.got[i].Payload), true
		}
	}
	return "", false
}

// TestRetainedJetStream: three embedded nodes keep retained messages in
// the replicated stream; the live nodes route them, and a node that was
// down when a message was published and another deleted loads both at
// its restart (kept, not routed) before it is ready.
func TestRetainedJetStream(t *testing.T) {
	dir := t.TempDir()
	listen := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	cfg := func(i int) Config {
		var peers []string
		for j, l := range listen {
			if j != i {
				peers = append(peers, l)
			}
		}
		return Config{Name: "rt", Listen: listen[i], Peers: peers, StoreDir: filepath.Join(dir, fmt.Sprint(i))}
	}
	nodes := make([]*Node, 3)
	routers := make([]*retainRouter, 3)
	for i := range nodes {
		var err error
		if nodes[i], err = New(cfg(i)); err != nil {
			t.Fatal(err)
		}
		routers[i] = &retainRouter{}
		if err := nodes[i].Start(routers[i]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nodes[i].Close)
	}
	testutil.EventuallyErr(t, 60*time.Second, func() error {
		return errorsJoin(nodes[0].Ready(), nodes[1].Ready(), nodes[2].Ready())
	})
	if r := nodes[0].replicas(); r != 3 {
		t.Errorf("replicas %d, want 3", r)
	}
	long := strings.Repeat("l/", 2000) + "end"
	pub := func(topic, payload string) {
		nodes[0].Forward(&broker.Message{Topic: topic, Payload: []byte(payload), Retain: true, QoS: 1})
	}
	pub("r/keep", "v1")
	pub("r/gone", "x")
	pub(long, "long")
	for _, tp := range []string{"r/keep", "r/gone", long} {
		testutil.EventuallyErr(t, 20*time.Second, func() error {
			if _, ok := routers[2].routed(tp); !ok {
				return fmt.Errorf("node 3: no %.20q routed", tp)
			}
			return nil
		})
	}
	nodes[2].Close()
	pub("r/keep", "v2")
	pub("r/gone", "")
	// Both are stored once node 2 (live) routed them.
	testutil.EventuallyErr(t, 20*time.Second, func() error {
		if p, _ := routers[1].routed("r/keep"); p != "v2" {
			return fmt.Errorf("node 2 r/keep %q", p)
		}
		if p, _ := routers[1].routed("r/gone"); p != "" {
			return fmt.Errorf("node 2 r/gone %q", p)
		}
		return nil
	})
	n3, err := New(cfg(2))
	if err != nil {
		t.Fatal(err)
	}
	r3 := &retainRouter{}
	if err := n3.Start(r3); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n3.Close)
	testutil.EventuallyErr(t, 60*time.Second, n3.Ready)
	for topic, want := range map[string]string{"r/keep": "v2", "r/gone": "", long: "long"} {
		if p, ok := r3.keptPayload(topic); !ok || p != want {
			t.Errorf("restarted node kept %.20q = %q (%v), want %q", topic, p, ok, want)
		}
	}
	if got := r3.topics(); len(got) != 0 {
		t.Errorf("restarted node routed %d old retained messages, want 0", len(got))
	}
	// Live again: a new retained message is routed on the restarted node.
	pub("r/after", "new")
	testutil.EventuallyErr(t, 20*time.Second, func() error {
		if _, ok := r3.routed("r/after"); !ok {
			return fmt.Errorf("restarted node: r/after not routed")
		}
		return nil
	})
}

// TestNoPeersNoJetStream: a node with a route address but no peers (the
// others dial it) starts without JetStream, which nats-server refuses to
// cluster without configured routes, and is ready.
func TestNoPeersNoJetStream(t *testing.T) {
	n, err := New(Config{Name: "np", Listen: freeAddr(t), StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(&retainRouter{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	testutil.EventuallyErr(t, 10*time.Second, n.Ready)
}
