package cluster

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/duplexmq/duplex/internal/testutil"
)

// TestClusterShareGroups: MQTT shared subscriptions compete across nodes
// (MQTT 5 §4.8.2, issue 11 Build 4). Group g has an MQTT 5 and an MQTT
// 3.1.1 member on each of the three nodes, group h one member per node on
// the same filter, and a plain subscriber sits beside them on node 2. A
// publisher on node 1 sends N QoS 1 messages: each group gets every
// message exactly once in the whole cluster, every member gets some, and
// the plain subscriber gets every one.
func TestClusterShareGroups(t *testing.T) {
	t.Parallel()
	nodes := startEmbedded(t, "share")
	shareSuite(t, nodes)
}

// TestClusterShareGroupsExternalNATS: the same over one external NATS
// server (the share connection is then a second client connection).
func TestClusterShareGroupsExternalNATS(t *testing.T) {
	t.Parallel()
	nodes := startExternal(t, "share-ext", server.Options{})
	shareSuite(t, nodes)
}

// member is one share group member: its name and what it received.
type member struct {
	name string
	*inbox
}

func shareSuite(t *testing.T, nodes []*node) {
	const n = 300
	base := fmt.Sprintf("sh/%d", time.Now().UnixNano())
	filter := base + "/#"
	var g, h []member
	for i, nd := range nodes {
		v5 := newV5(t, nd.mqtt, fmt.Sprintf("g5-%d-%s", i+1, base))
		v5.sub(t, "$share/g/"+filter)
		v3 := newV3(t, nd.mqtt, fmt.Sprintf("g3-%d-%s", i+1, base))
		v3.sub(t, "$share/g/"+filter)
		g = append(g, member{fmt.Sprintf("g/node%d/mqtt5", i+1), v5.inbox}, member{fmt.Sprintf("g/node%d/mqtt3", i+1), v3.inbox})
		if i%2 == 0 {
			c := newV3(t, nd.mqtt, fmt.Sprintf("h3-%d-%s", i+1, base))
			c.sub(t, "$share/h/"+filter)
			h = append(h, member{fmt.Sprintf("h/node%d/mqtt3", i+1), c.inbox})
		} else {
			c := newV5(t, nd.mqtt, fmt.Sprintf("h5-%d-%s", i+1, base))
			c.sub(t, "$share/h/"+filter)
			h = append(h, member{fmt.Sprintf("h/node%d/mqtt5", i+1), c.inbox})
		}
	}
	plain := newV5(t, nodes[1].mqtt, "plain-"+base)
	plain.sub(t, filter)
	pub := newV5(t, nodes[0].mqtt, "pub-"+base)

	// Until every node's queue subscriptions have reached node 1 (and
	// the plain interest node 2's), some members get nothing: probe
	// until each has had a message.
	var all []*inbox
	for _, m := range append(append([]member{}, g...), h...) {
		all = append(all, m.inbox)
	}
	probe(t, base+"/probe", func(topic string) {
		pub.pub(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("probe")})
	}, append(all, plain.inbox)...)

	data := base + "/data"
	for i := range n {
		pub.pub(t, &paho.Publish{Topic: data, QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	total := func(ms []member) int {
		s := 0
		for _, m := range ms {
			s += m.count(data)
		}
		return s
	}
	testutil.EventuallyErr(t, wait, func() error {
		if a, b, c := total(g), total(h), plain.count(data); a < n || b < n || c < n {
			return fmt.Errorf("received so far: group g %d, group h %d, plain %d of %d", a, b, c, n)
		}
		return nil
	})
	once := func(what string, inboxes ...member) {
		t.Helper()
		seen := make(map[string]string, n)
		for _, m := range inboxes {
			got := m.payloads(data)
			if len(got) == 0 && what != "plain" {
				t.Errorf("%s: %s got none of the %d messages", what, m.name, n)
			}
			t.Logf("%s: %s got %d", what, m.name, len(got))
			for _, p := range got {
				if prev, dup := seen[p]; dup {
					t.Errorf("%s: message %s reached %s and %s", what, p, prev, m.name)
				}
				seen[p] = m.name
			}
		}
		if len(seen) != n {
			t.Errorf("%s: %d distinct messages of %d", what, len(seen), n)
		}
	}
	once("group g", g...)
	once("group h", h...)
	once("plain", member{"plain/node2/mqtt5", plain.inbox})

	// A retained publication travels on the retained subject(s), not the
	// topic's: each group still gets it once, and messages published
	// after it come through.
	ret, after := base+"/ret", base+"/after"
	pub.pub(t, &paho.Publish{Topic: ret, QoS: 1, Retain: true, Payload: []byte("kept")})
	const m = 30
	for i := range m {
		pub.pub(t, &paho.Publish{Topic: after, QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	count := func(ms []member, topic string) int {
		s := 0
		for _, x := range ms {
			s += x.count(topic)
		}
		return s
	}
	testutil.EventuallyErr(t, wait, func() error {
		if a, b, c, d := count(g, ret), count(h, ret), count(g, after), count(h, after); a < 1 || b < 1 || c < m || d < m {
			return fmt.Errorf("retained: group g %d, group h %d; after it: %d and %d of %d", a, b, c, d, m)
		}
		return nil
	})
	if a, b := count(g, ret), count(h, ret); a != 1 || b != 1 {
		t.Errorf("the retained publication reached group g %d times and group h %d times, want once each", a, b)
	}
	if c, d := count(g, after), count(h, after); c != m || d != m {
		t.Errorf("group g got %d and group h %d of the %d messages after it", c, d, m)
	}
}

// payloads lists the payloads of the messages on topic, in arrival order.
func (b *inbox) payloads(topic string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.got {
		if m.topic == topic {
			out = append(out, m.payload)
		}
	}
	return out
}
