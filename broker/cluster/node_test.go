package cluster

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// fakeRouter records what a node routes.
type fakeRouter struct {
	mu  sync.Mutex
	got []*broker.Message
}

func (r *fakeRouter) PublishFromPeer(m *broker.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m)
	return nil
}

func (r *fakeRouter) topics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.got {
		out = append(out, m.Topic)
	}
	return out
}

func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := testutil.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startPair starts two embedded nodes routed to each other.
func startPair(t testing.TB) (a, b *Node, ra, rb *fakeRouter) {
	t.Helper()
	la, lb := freeAddr(t), freeAddr(t)
	var err error
	if a, err = New(Config{Name: "t", Listen: la, Peers: []string{lb}}); err != nil {
		t.Fatal(err)
	}
	if b, err = New(Config{Name: "t", Listen: lb, Peers: []string{la}}); err != nil {
		t.Fatal(err)
	}
	ra, rb = &fakeRouter{}, &fakeRouter{}
	if err := a.Start(ra); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if err := b.Start(rb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		return errorsJoin(a.Ready(), b.Ready())
	})
	return a, b, ra, rb
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// TestNodesRouteByInterest: a message crosses only to the node that
// declared interest, wildcards and '#' on the parent level included, and
// overlapping filters give one copy; a retained message reaches every
// node.
func TestNodesRouteByInterest(t *testing.T) {
	a, b, ra, rb := startPair(t)
	b.Interest("x/+", true)
	b.Interest("x/#", true) // overlaps x/+ and covers "x" itself
	// Interest propagates through the route asynchronously: probe until
	// a message gets through.
	probe := 0
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		probe++
		a.Forward(&broker.Message{Topic: "x/probe", Payload: []byte(fmt.Sprint(probe))})
		if len(rb.topics()) == 0 {
			return fmt.Errorf("no probe through yet")
		}
		return nil
	})
	for _, topic := range []string{"x", "x/1", "y/1", "x/a/b", "$x"} {
		a.Forward(&broker.Message{Topic: topic, Payload: []byte("p")})
	}
	a.Forward(&broker.Message{Topic: "z/kept", Retain: true}) // no interest in z, but retained
	a.Forward(&broker.Message{Topic: "x/end"})
	testutil.EventuallyErr(t, 5*time.Second, func() error {
		if got := rb.topics(); got[len(got)-1] != "x/end" {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
	var got []string
	for _, topic := range rb.topics() {
		if topic != "x/probe" {
			got = append(got, topic)
		}
	}
	if want := []string{"x", "x/1", "x/a/b", "z/kept", "x/end"}; !slices.Equal(got, want) {
		t.Fatalf("b got %q, want %q (one copy each, nothing without interest but the retained)", got, want)
	}
	if len(ra.topics()) != 0 {
		t.Fatalf("a got its own messages back: %q", ra.topics())
	}
	if d := b.Stats().Duplicates.Load(); d == 0 {
		t.Errorf("no copy counted for the overlapping x/+ and x/#")
	}
}

// TestNodeForwardBeforeStart: Forward and Interest before Start never
// block; the messages are dropped and counted.
func TestNodeForwardBeforeStart(t *testing.T) {
	n, err := New(Config{Listen: "127.0.0.1:1", ForwardQueue: 2})
	if err != nil {
		t.Fatal(err)
	}
	n.Interest("a/#", true)
	for range 5 {
		n.Forward(&broker.Message{Topic: "a"})
	}
	if d := n.Stats().ForwardDropped.Load(); d != 3 {
		t.Fatalf("dropped %d, want 3 (queue of 2)", d)
	}
	if n.Ready() == nil {
		t.Fatal("ready before Start")
	}
}

// TestInterestChurn: a filter added and removed many times ends with the
// NATS subscriptions of what is wanted last, and a subject shared by two
// filters (long) stays while either wants it.
func TestInterestChurn(t *testing.T) {
	n, err := New(Config{Listen: freeAddr(t), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(&fakeRouter{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	n.Interest("b/+", true) // b.*, long
	for i := range 1000 {
		n.Interest("a/#", i%2 == 0) // a, a.>, long
	}
	n.Interest("b/+", false)
	n.Interest("c", true)
	// Left: retained, c, and nothing of a/# (its last call removed it)
	// nor of b/+, long included.
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		n.mu.Lock()
		pending := len(n.dirty)
		n.mu.Unlock()
		if got := n.Stats().Subscriptions.Load(); got != 2 || pending != 0 {
			return fmt.Errorf("%d NATS subscriptions, %d changes pending; want 2 (retained, c), 0", got, pending)
		}
		return nil
	})
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.wanted) != 2 {
		t.Fatalf("wanted %v", n.wanted)
	}
}
