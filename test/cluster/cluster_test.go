package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/duplexmq/duplex/internal/testutil"
)

// TestClusterEmbedded: three nodes joined by their embedded NATS servers'
// routes (each lists the other two as peers).
func TestClusterEmbedded(t *testing.T) {
	t.Parallel()
	nodes := startEmbedded(t, "emb")
	crossNode(t, nodes)
}

// TestClusterExternalNATS: three nodes on one NATS server run in the
// test process; their embedded servers stay off.
func TestClusterExternalNATS(t *testing.T) {
	t.Parallel()
	nodes := startExternal(t, "ext", server.Options{MaxPayload: 8 << 20})
	crossNode(t, nodes)
}

// crossNode is the cross-node suite: STOMP on node 1, MQTT 3.1.1 on node
// 2, MQTT 5 on node 3.
func crossNode(t *testing.T, nodes []*node) {
	base := fmt.Sprintf("cl/%d", time.Now().UnixNano())
	st := newStomp(t, nodes[0].stomp)
	v3 := newV3(t, nodes[1].mqtt, "v3-"+base)
	v5 := newV5(t, nodes[2].mqtt, "v5-"+base)
	st.sub(t, base+"/#")
	v3.sub(t, base+"/#") // '#' matches the parent level: base itself
	v5.sub(t, base+"/+")

	// Interest crosses the cluster asynchronously (NATS propagates the
	// subscriptions through routes): probe from every node until the
	// other two get it.
	probe(t, base+"/probe-stomp", func(topic string) {
		if err := st.c.Send("/topic/"+topic, "text/plain", []byte("p"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}, v3.inbox, v5.inbox)
	probe(t, base+"/probe-v3", func(topic string) { v3.pub(t, topic, "p", false) }, st.inbox, v5.inbox)
	probe(t, base+"/probe-v5", func(topic string) {
		v5.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("p")})
	}, st.inbox, v3.inbox)

	// MQTT 5 on node 3 → STOMP on node 1 and MQTT 3.1.1 on node 2, with
	// its properties.
	payload := "{\"t\":21.5}\x00\xff binary"
	v5.pub(t, &paho.Publish{Topic: base + "/x", QoS: 1, Payload: []byte(payload), Properties: &paho.PublishProperties{
		ContentType: "application/json", ResponseTopic: base + "/replies", CorrelationData: []byte("corr-1"),
		User: paho.UserProperties{{Key: "unit", Value: "C"}, {Key: "site", Value: "lab 7"}, {Key: "unit", Value: "F"}},
	}})
	m := st.wait(t, "STOMP node 1", base+"/x")
	if m.payload != payload || m.contentType != "application/json" || m.corr != "corr-1" || m.replyTo != "/topic/"+base+"/replies" ||
		!slices.Equal(userProps(m.props), []string{"unit=C", "site=lab 7", "unit=F"}) {
		t.Errorf("STOMP on node 1 got %+v", m)
	}
	if m := v3.wait(t, "MQTT 3.1.1 node 2", base+"/x"); m.payload != payload {
		t.Errorf("MQTT 3.1.1 on node 2 got %q", m.payload)
	}

	// STOMP on node 1 → MQTT 5 on node 3 ('+') and MQTT 3.1.1 on node 2.
	if err := st.c.Send("/topic/"+base+"/y", "text/plain", []byte("from stomp"), stomp.SendOpt.Receipt,
		stomp.SendOpt.Header("mode", "eco"), stomp.SendOpt.Header("correlation-id", "abc-123")); err != nil {
		t.Fatal(err)
	}
	m = v5.wait(t, "MQTT 5 node 3", base+"/y")
	if m.payload != "from stomp" || !strings.HasPrefix(m.contentType, "text/plain") || m.corr != "abc-123" || !slices.Contains(m.props, "mode=eco") {
		t.Errorf("MQTT 5 on node 3 got %+v", m)
	}
	v3.wait(t, "MQTT 3.1.1 node 2", base+"/y")

	// '#' matches the parent level across nodes: base itself, from node 3.
	v5.pub(t, &paho.Publish{Topic: base, QoS: 1, Payload: []byte("parent")})
	if m := v3.wait(t, "MQTT 3.1.1 node 2", base); m.payload != "parent" {
		t.Errorf("parent level: %+v", m)
	}
	st.wait(t, "STOMP node 1", base)

	// Awkward levels and a 64 KiB topic (past any NATS subject: it goes on
	// the long subject) cross from node 3 to node 2 unchanged.
	for _, topic := range []string{
		base + "/a.b/*/>/ sp\ttab//$x/%2E",
		base + "/" + strings.Repeat("ü", (65535-len(base)-1)/2),
	} {
		v5.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("odd")})
		if m := v3.wait(t, "MQTT 3.1.1 node 2", topic); m.payload != "odd" {
			t.Errorf("topic %.40q: %+v", topic, m)
		}
	}

	// Message expiry crosses nodes as the time left: MQTT 5 node 3 → MQTT
	// 5 node 1 [MQTT-3.3.2-6].
	v5n1 := newV5(t, nodes[0].mqtt, "v5n1-"+base)
	v5n1.sub(t, base+"/exp/#")
	probe(t, base+"/exp/probe", func(topic string) {
		v5.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("p")})
	}, v5n1.inbox)
	ttl := uint32(300)
	v5.pub(t, &paho.Publish{Topic: base + "/exp/m", QoS: 1, Payload: []byte("e"), Properties: &paho.PublishProperties{MessageExpiry: &ttl}})
	if m := v5n1.wait(t, "MQTT 5 node 1", base+"/exp/m"); m.expiry == nil || *m.expiry == 0 || *m.expiry > ttl {
		t.Errorf("message expiry on node 1: %v, want 1..%d", m.expiry, ttl)
	}

	// Retained, published on node 1 by MQTT 3.1.1, reaches a new
	// subscriber on node 3.
	pub1 := newV3(t, nodes[0].mqtt, "pub1-"+base)
	pub1.pub(t, base+"/ret", "kept", true)
	v5.wait(t, "MQTT 5 node 3", base+"/ret") // through node 3's live subscription
	late := newV5(t, nodes[2].mqtt, "late-"+base)
	late.sub(t, base+"/ret")
	if m := late.wait(t, "new MQTT 5 subscriber node 3", base+"/ret"); m.payload != "kept" || !m.retained {
		t.Errorf("retained on node 3: %+v", m)
	}

	// Interest-based: node 3 has no subscriber on other/: what node 1
	// publishes there reaches node 2 (which subscribes) and never node 3.
	other := "other/" + base
	v3.sub(t, other+"/#")
	before := nodes[2].metric(t, "duplex_cluster_messages_in_total")
	if before == 0 {
		t.Fatal("node 3 counted no message from NATS, though the probes from nodes 1 and 2 reached it")
	}
	probe(t, other+"/probe", func(topic string) { pub1.pub(t, topic, "o", false) }, v3.inbox)
	for i := range 20 {
		pub1.pub(t, fmt.Sprintf("%s/n%d", other, i), "o", false)
	}
	v3.wait(t, "MQTT 3.1.1 node 2", other+"/n19")
	// A marker node 3 wants, after them from the same node: when it is in,
	// anything node 1 sent node 3 before it is in too.
	pub1.pub(t, base+"/marker", "m", false)
	v5.wait(t, "MQTT 5 node 3", base+"/marker")
	if got := nodes[2].metric(t, "duplex_cluster_messages_in_total") - before; got != 1 {
		t.Errorf("node 3 received %v messages from NATS, want 1 (the marker only)", got)
	}

	// One copy each: NoEcho and the copies of overlapping subjects.
	for who, b := range map[string]*inbox{"STOMP node 1": st.inbox, "MQTT 3.1.1 node 2": v3.inbox} {
		for _, topic := range []string{base + "/x", base + "/y", base} {
			if n := b.count(topic); n != 1 {
				t.Errorf("%s got %d copies of %s", who, n, topic)
			}
		}
	}
}

// probe sends numbered messages on prefix-1, prefix-2, … with send until
// each inbox has one of them.
func probe(t *testing.T, prefix string, send func(topic string), inboxes ...*inbox) {
	t.Helper()
	i := 0
	testutil.EventuallyErr(t, wait, func() error {
		i++
		send(fmt.Sprintf("%s-%d", prefix, i))
		for _, b := range inboxes {
			if !b.has(prefix + "-") {
				return fmt.Errorf("no %s-N through yet", prefix)
			}
		}
		return nil
	})
}

// userProps keeps the test's user properties ("unit", "site") of props.
func userProps(props []string) []string {
	var out []string
	for _, p := range props {
		if strings.HasPrefix(p, "unit=") || strings.HasPrefix(p, "site=") {
			out = append(out, p)
		}
	}
	return out
}
