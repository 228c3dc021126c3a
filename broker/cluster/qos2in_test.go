package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// startInboundNode starts a node on the NATS server at url and waits
// until it keeps persistent sessions (the inbound bucket comes first).
func startInboundNode(t *testing.T, url string) *Node {
	t.Helper()
	n, err := New(Config{Name: "q2", NATSURLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(&fakeRouter{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	testutil.EventuallyErr(t, 30*time.Second, func() error {
		if err := n.Ready(); err != nil {
			return err
		}
		if !n.DurableOn() || !n.q2.on.Load() {
			return errors.New("the durable stream and inbound bucket are not on yet")
		}
		return nil
	})
	return n
}

// TestInboundQoS2Records: two nodes on one NATS with JetStream handle one
// client's inbound QoS 2 packet id as when the client resends to another
// node. A hold made on node 1 reads as pending on node 2, under the same
// message name; node 2 marks it stored and node 1's mark on the old
// revision is refused as moved; a resend then reads as done
// [MQTT-4.3.3-10]; another session's id is its own; PUBREL's release is
// reported held once, after which a resend is a new message under a new
// name [MQTT-4.3.3-12], as is a PUBLISH without DUP.
func TestInboundQoS2Records(t *testing.T) {
	s := startJetStreamNATS(t, true)
	a, b := startInboundNode(t, s.ClientURL()), startInboundNode(t, s.ClientURL())
	const key, ttl = "0123abcd", time.Hour

	h1, err := a.HoldInbound(key, 7, false, ttl)
	if err != nil || h1.Done || h1.Dedup == "" || h1.Rev == 0 {
		t.Fatalf("hold on node 1: %+v %v", h1, err)
	}
	r1, err := b.HoldInbound(key, 7, true, ttl)
	if err != nil || r1.Done || r1.Dedup != h1.Dedup || r1.Rev != h1.Rev {
		t.Fatalf("resend on node 2: %+v %v, want pending %+v", r1, err, h1)
	}
	if err := b.StoredInbound(key, 7, r1, ttl); err != nil {
		t.Fatalf("node 2 marks it stored: %v", err)
	}
	if err := a.StoredInbound(key, 7, h1, ttl); !errors.Is(err, broker.ErrInboundMoved) {
		t.Fatalf("node 1 marks it stored after node 2: %v, want ErrInboundMoved", err)
	}
	if r2, err := a.HoldInbound(key, 7, true, ttl); err != nil || !r2.Done {
		t.Fatalf("resend of a stored id: %+v %v, want done", r2, err)
	}
	if o, err := b.HoldInbound("4567cdef", 7, true, ttl); err != nil || o.Done || o.Dedup == h1.Dedup {
		t.Fatalf("another session's id 7: %+v %v", o, err)
	}

	if held, err := b.ReleaseInbound(key, 7, true); err != nil || !held {
		t.Fatalf("PUBREL of an id the cluster holds: %v %v", held, err)
	}
	if held, err := a.ReleaseInbound(key, 7, true); err != nil || held {
		t.Fatalf("second PUBREL: %v %v, want not held", held, err)
	}
	r3, err := a.HoldInbound(key, 7, true, ttl)
	if err != nil || r3.Done || r3.Dedup == h1.Dedup {
		t.Fatalf("resend after the release: %+v %v, want a new message", r3, err)
	}
	h4, err := b.HoldInbound(key, 7, false, 0)
	if err != nil || h4.Done || h4.Dedup == r3.Dedup {
		t.Fatalf("PUBLISH without DUP: %+v %v, want a new message", h4, err)
	}
	if err := a.StoredInbound(key, 7, r3, ttl); !errors.Is(err, broker.ErrInboundMoved) {
		t.Fatalf("mark of a replaced hold: %v, want ErrInboundMoved", err)
	}
	if err := b.StoredInbound(key, 7, h4, 0); err != nil {
		t.Fatal(err)
	}
	if r5, err := a.HoldInbound(key, 7, true, ttl); err != nil || !r5.Done {
		t.Fatalf("resend of the new message: %+v %v, want done", r5, err)
	}
}

// TestStoreRetainedWaits: StoreRetained returns once the retained stream
// has the message; a second store under the same name, from another
// node, is reported as a duplicate and not stored again; without a name
// every store is new.
func TestStoreRetainedWaits(t *testing.T) {
	s := startJetStreamNATS(t, true)
	a, b := startInboundNode(t, s.ClientURL()), startInboundNode(t, s.ClientURL())
	msg := func(p string) *broker.Message {
		return &broker.Message{Topic: "ret/x", Payload: []byte(p), QoS: broker.AtLeastOnce, Retain: true}
	}
	last := func() string {
		t.Helper()
		st, err := a.q2.js.Stream(t.Context(), streamName("q2", "retained"))
		if err != nil {
			t.Fatal(err)
		}
		rm, err := st.GetLastMsgForSubject(t.Context(), a.retainedSubject("ret/x"))
		if err != nil {
			t.Fatal(err)
		}
		return string(rm.Data)
	}
	if dup, err := a.StoreRetained(msg("one"), "q2.k.7.1.r"); err != nil || dup {
		t.Fatalf("first store: %v %v", dup, err)
	}
	if got := last(); got != "one" {
		t.Fatalf("stream has %q right after the store, want one", got)
	}
	if dup, err := b.StoreRetained(msg("one"), "q2.k.7.1.r"); err != nil || !dup {
		t.Fatalf("store under the same name on node 2: %v %v, want a duplicate", dup, err)
	}
	if dup, err := b.StoreRetained(msg("two"), ""); err != nil || dup {
		t.Fatalf("store without a name: %v %v", dup, err)
	}
	if got := last(); got != "two" {
		t.Fatalf("stream has %q, want two", got)
	}
}
