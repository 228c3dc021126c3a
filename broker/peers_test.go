package broker

import (
	"slices"
	"sync"
	"testing"
)

// fakePeers records what the router tells its cluster link.
type fakePeers struct {
	mu        sync.Mutex
	interest  []string // "+filter" or "-filter", in order
	forwarded []string // topics
}

func (p *fakePeers) Interest(filter string, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sign := "-"
	if add {
		sign = "+"
	}
	p.interest = append(p.interest, sign+filter)
}

func (p *fakePeers) Forward(m *Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forwarded = append(p.forwarded, m.Topic)
}

func (p *fakePeers) snapshot() (interest, forwarded []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.interest), slices.Clone(p.forwarded)
}

// TestPeersInterestCounted: a filter is declared once however many local
// subscriptions share it, and withdrawn with the last one; share groups
// and the broker's own $SYS are handled as documented on Peers.
func TestPeersInterestCounted(t *testing.T) {
	fp := &fakePeers{}
	r := New(Config{Peers: fp}, nil)
	a := openSession(t, r, "a")
	b := openSession(t, r, "b")
	topicSub(t, r, a, "1", "x/+")
	topicSub(t, r, b, "1", "x/+")
	topicSub(t, r, b, "2", "y/#")
	if err := r.Unsubscribe(a, "1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := fp.snapshot(); !slices.Equal(got, []string{"+x/+", "+y/#"}) {
		t.Fatalf("interest after one of two left = %v", got)
	}
	if err := r.Unsubscribe(b, "1"); err != nil {
		t.Fatal(err)
	}
	r.Close(b, CloseClientClosed)
	got, _ := fp.snapshot()
	if want := []string{"+x/+", "+y/#", "-x/+", "-y/#"}; !slices.Equal(got, want) {
		t.Fatalf("interest = %v, want %v", got, want)
	}
	if f := r.Filters(); len(f) != 0 {
		t.Fatalf("Filters() = %v after every subscription left", f)
	}
}

// TestPeersForward: local publications are forwarded once, messages from
// a peer reach local subscribers and are not forwarded back.
func TestPeersForward(t *testing.T) {
	fp := &fakePeers{}
	r := New(Config{Peers: fp}, nil)
	sub := openSession(t, r, "sub")
	topicSub(t, r, sub, "1", "t/#")
	publishTopic(t, r, nil, "t/local", "one")
	if err := r.PublishFromPeer(&Message{Topic: "t/remote", Payload: []byte("two"), From: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if got := drainedBodies(sub); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("delivered %v, want [one two]", got)
	}
	if _, fwd := fp.snapshot(); !slices.Equal(fwd, []string{"t/local"}) {
		t.Fatalf("forwarded %v, want [t/local]", fwd)
	}
}
