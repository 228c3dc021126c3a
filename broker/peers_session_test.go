package broker

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// twoNodes is a SessionPeers that claims on another router in the same
// process, as broker/cluster does over NATS (without the encoding).
type twoNodes struct {
	mu    sync.Mutex
	held  map[string]int
	other *Router
}

func (f *twoNodes) Interest(string, bool) {}
func (f *twoNodes) Forward(*Message)      {}

func (f *twoNodes) Hold(key string, add bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		f.held = map[string]int{}
	}
	if add {
		f.held[key]++
	} else if f.held[key]--; f.held[key] <= 0 {
		delete(f.held, key)
	}
}

func (f *twoNodes) holds(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[key]
}

func (f *twoNodes) Claim(c SessionClaim) (*SessionState, error) {
	if f.other == nil || f.holdsOther(c.Key) == 0 {
		return nil, nil // no responders
	}
	return f.other.ReleaseToPeer(c)
}

func (f *twoNodes) holdsOther(key string) int {
	return f.other.cfg.Peers.(*twoNodes).holds(key)
}

// pairOfNodes returns routers a and b, each claiming on the other, with a
// store each.
func pairOfNodes(t *testing.T) (a, b *Router, pa, pb *twoNodes) {
	pa, pb = &twoNodes{}, &twoNodes{}
	a = New(Config{Store: store.NewMemory(), Peers: pa}, nil)
	b = New(Config{Store: store.NewMemory(), Peers: pb}, nil)
	pa.other, pb.other = b, a
	for _, r := range []*Router{a, b} {
		if _, err := r.Restore(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
	}
	return a, b, pa, pb
}

// TestPeersSessionMoves: a persistent session with messages stored while
// offline moves to the other node with its subscription, the messages in
// order, and Resumed [MQTT-3.1.2-5]; the old node keeps nothing of it.
func TestPeersSessionMoves(t *testing.T) {
	a, b, pa, pb := pairOfNodes(t)
	p := openOpts(t, a, "p", SessionOptions{Expiry: time.Minute})
	mqttSub(t, a, p, "x/+")
	if pa.holds("mp") != 1 {
		t.Fatalf("node a holds mp %d times, want 1", pa.holds("mp"))
	}
	a.Close(p, CloseClientClosed)
	for _, body := range []string{"1", "2", "3"} {
		publishQoS(t, a, "x/y", body, AtLeastOnce)
	}

	q := openOpts(t, b, "p", SessionOptions{Expiry: time.Minute})
	if !q.Resumed() {
		t.Fatal("not resumed on the other node")
	}
	if got := drainedBodies(q); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("moved session got %q, want [1 2 3]", got)
	}
	if q.Subscription("x/+") == nil {
		t.Fatal("subscription x/+ did not move")
	}
	publishQoS(t, b, "x/z", "4", AtLeastOnce)
	if got := drainedBodies(q); !slices.Equal(got, []string{"4"}) {
		t.Fatalf("after the move got %q, want [4]", got)
	}
	if ids := sessionIDs(a); len(ids) != 0 {
		t.Fatalf("old node still has sessions %v", ids)
	}
	if n, _, _ := a.dur.st.Count("p"); n != 0 {
		t.Fatalf("old node's store still holds %d messages for p", n)
	}
	if pa.holds("mp") != 0 || pb.holds("mp") != 1 {
		t.Fatalf("holds: a %d, b %d; want 0 and 1", pa.holds("mp"), pb.holds("mp"))
	}
}

// TestPeersSessionTakeover: a live clean session on the other node is
// closed with CloseTakenOver [MQTT-3.1.4-3] and its state discarded; one
// of another owner is refused and left alone.
func TestPeersSessionTakeover(t *testing.T) {
	a, b, _, _ := pairOfNodes(t)
	old := openOpts(t, a, "c", SessionOptions{})
	mqttSub(t, a, old, "t")
	s := openOpts(t, b, "c", SessionOptions{Expiry: time.Minute})
	if old.Reason() != CloseTakenOver {
		t.Fatalf("old session: %v, want taken over", old.Reason())
	}
	if s.Resumed() {
		t.Fatal("resumed a clean session's state")
	}
	publishQoS(t, a, "t", "x", AtLeastOnce)
	if got := drainedBodies(old); len(got) != 0 {
		t.Fatalf("taken-over session still subscribed: %q", got)
	}

	a.cfg.AnonymousOwnerByAddress, b.cfg.AnonymousOwnerByAddress = true, true
	mustOpenAs(t, a, "o", Identity{Name: "alice"}, "1.2.3.4:1", SessionOptions{})
	if _, err := openAs(b, "o", Identity{Name: "bob"}, "1.2.3.5:1", SessionOptions{}); !errors.Is(err, ErrClientIDOwned) {
		t.Fatalf("claim of alice's id by bob: %v, want ErrClientIDOwned", err)
	}
	if ids := sessionIDs(a); !slices.Contains(ids, "o") {
		t.Fatalf("alice's session left node a: %v", ids)
	}
}

// TestPeersSessionWillCancelled: a will waiting for its delay on one node
// is cancelled when the id connects to the other (MQTT 5 §3.1.3.2.2).
func TestPeersSessionWillCancelled(t *testing.T) {
	a, b, pa, _ := pairOfNodes(t)
	a.PublishWill("w", &Message{Topic: "wills/w", Payload: []byte("gone"), QoS: AtLeastOnce}, time.Hour)
	if pa.holds("mw") != 1 {
		t.Fatal("a pending will is not held")
	}
	openOpts(t, b, "w", SessionOptions{})
	a.wmu.Lock()
	n := len(a.wills)
	a.wmu.Unlock()
	if n != 0 || pa.holds("mw") != 0 {
		t.Fatalf("will still pending on node a (%d, held %d)", n, pa.holds("mw"))
	}
}

// TestPeersSessionLocalIsNewer: when both nodes hold the id (a claim raced
// the holder's subscription), a session connected on this node since it
// started wins: the other node's copy is discarded, not imported.
func TestPeersSessionLocalIsNewer(t *testing.T) {
	a, b, pa, _ := pairOfNodes(t)
	s := openOpts(t, b, "d", SessionOptions{Expiry: time.Minute})
	mqttSub(t, b, s, "k")
	b.Close(s, CloseClientClosed)
	pa.other = nil // a's claim does not reach b
	s = openOpts(t, a, "d", SessionOptions{Expiry: time.Minute})
	mqttSub(t, a, s, "j")
	a.Close(s, CloseClientClosed)
	pa.other = b

	s = openOpts(t, b, "d", SessionOptions{Expiry: time.Minute})
	if !s.Resumed() || s.Subscription("k") == nil || s.Subscription("j") != nil {
		t.Fatalf("resumed %v with k %v and j %v; want this node's own session (k only)",
			s.Resumed(), s.Subscription("k") != nil, s.Subscription("j") != nil)
	}
	if ids := sessionIDs(a); len(ids) != 0 {
		t.Fatalf("the other node kept its copy: %v", ids)
	}
}
