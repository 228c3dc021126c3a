package cluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// TestDurableTopicInData: a topic too long for a subject travels in the
// durable message's data (JetStream refuses headers past 64 KiB) and
// decodes as it was, retained or not; a short one keeps its subject.
func TestDurableTopicInData(t *testing.T) {
	n := &Node{subs: NewSubjects("c"), self: origin{node: "n", boot: "b"}}
	ds := n.durableSubjects()
	for _, m := range []*broker.Message{
		{Topic: "a/b", Payload: []byte("short"), QoS: 1},
		{Topic: strings.Repeat("ü", 40000), Payload: []byte("long"), QoS: 1},
		{Topic: strings.Repeat("x/", 3000) + "y", Payload: []byte("retained long"), QoS: 2, Retain: true},
		{Topic: "r/s", Payload: []byte("retained short"), QoS: 1, Retain: true},
	} {
		nm := encodeMsg(ds, n.self, 1, m, time.Now())
		if m.Retain {
			nm.Subject, _ = ds.Topic(m.Topic)
		}
		topicInData(nm)
		if h := nm.Header.Get(hdrTopic); h != "" {
			t.Fatalf("%.20s: topic still in a header", m.Topic)
		}
		if !strings.HasPrefix(nm.Subject, ds.Prefix) && nm.Subject != ds.Long {
			t.Fatalf("%.20s: subject %.40s outside the stream", m.Topic, nm.Subject)
		}
		back, err := fromDurable(nm)
		if err != nil {
			t.Fatal(err)
		}
		got, _, _, err := decodeMsg(ds, back, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got.Topic != m.Topic || string(got.Payload) != string(m.Payload) || got.QoS != m.QoS || got.Retain != m.Retain {
			t.Fatalf("%.20s: decoded %.20s %q qos %d retain %v", m.Topic, got.Topic, got.Payload, got.QoS, got.Retain)
		}
	}
}

// TestDurableSubsConsumers: only QoS 1/2 subscriptions that are neither
// shared nor queue consumers get a consumer, each its own name.
func TestDurableSubsConsumers(t *testing.T) {
	rec := &broker.SessionRecord{Subs: []broker.SubSpec{
		{Key: "a/#", Filter: "a/#", QoS: 1},
		{Key: "+/b", Filter: "+/b", QoS: 2},
		{Key: "q0", Filter: "q0", QoS: 0},
		{Key: "$share/g/s", Filter: "s", Group: "g", QoS: 1},
	}}
	got := durableSubs("k", rec)
	if len(got) != 2 || got[consumerName("k", "a/#")].Filter != "a/#" || got[consumerName("k", "+/b")].Filter != "+/b" {
		t.Fatalf("consumers %v", got)
	}
	if consumerName("k", "a/#") == consumerName("k2", "a/#") || len(durableSubs("k", nil)) != 0 {
		t.Fatal("consumer names collide")
	}
}

// TestDurableSessionJetStream: three embedded nodes; a session's record
// and consumer made on node 1 are read on node 2; a message stored on
// node 1 reaches the session attached on node 3, and one it never
// acknowledged comes again, marked redelivered and with the same
// sequence, when it attaches on node 2; a record deleted on one node
// reads as none on another.
func TestDurableSessionJetStream(t *testing.T) {
	nodes := startDurableTrio(t, "ds")
	rec := &broker.SessionRecord{Owner: "o", Expiry: time.Hour, Subs: []broker.SubSpec{{Key: "a/+", Filter: "a/+", QoS: 1}}}
	if err := nodes[0].SaveSession("k1", rec); err != nil {
		t.Fatal(err)
	}
	// A replica may serve the read before it has the write (as for the
	// delete below).
	testutil.EventuallyErr(t, 20*time.Second, func() error {
		got, err := nodes[1].LoadSession("k1")
		if err != nil || got == nil || got.Owner != "o" || len(got.Subs) != 1 || got.Subs[0].Filter != "a/+" {
			return fmt.Errorf("record on node 2: %+v %v", got, err)
		}
		return nil
	})

	type taken struct {
		pd broker.PeerDelivery
	}
	var mu sync.Mutex
	var seen []taken
	deliver := func(pd broker.PeerDelivery) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, taken{pd})
		return true
	}
	last := func(n int) broker.PeerDelivery {
		t.Helper()
		var pd broker.PeerDelivery
		testutil.EventuallyErr(t, 20*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(seen) < n {
				return fmt.Errorf("%d deliveries, want %d", len(seen), n)
			}
			pd = seen[n-1].pd
			return nil
		})
		return pd
	}
	detach := nodes[2].AttachSession("k1", deliver)
	if err := nodes[0].DurablePublish(&broker.Message{Topic: "a/b", Payload: []byte("one"), QoS: 1}, ""); err != nil {
		t.Fatal(err)
	}
	one := last(1)
	if string(one.Msg.Payload) != "one" || one.SubKey != "a/+" || one.Redelivered {
		t.Fatalf("first delivery %+v", one)
	}
	one.H.Ack()
	if err := nodes[0].DurablePublish(&broker.Message{Topic: "a/c", Payload: []byte("two"), QoS: 1}, ""); err != nil {
		t.Fatal(err)
	}
	two := last(2)
	detach() // never acknowledged
	detach = nodes[1].AttachSession("k1", deliver)
	again := last(3)
	if string(again.Msg.Payload) != "two" || again.Seq != two.Seq || !again.Redelivered {
		t.Fatalf("after the move: %q seq %d (was %d) redelivered %v", again.Msg.Payload, again.Seq, two.Seq, again.Redelivered)
	}
	again.H.Ack()
	detach()
	nodes[1].DeleteSession("k1")
	// KV reads may be served by a replica (direct get): the delete
	// reaches the other node's reads within the replication lag.
	testutil.EventuallyErr(t, 20*time.Second, func() error {
		if got, err := nodes[2].LoadSession("k1"); got != nil || err != nil {
			return fmt.Errorf("deleted record read as %+v %v", got, err)
		}
		return nil
	})
}
