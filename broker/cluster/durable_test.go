package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
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
