package cluster

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/duplexmq/duplex/internal/testutil"
)

// TestClusterRetainedJetStream: retained messages live in the embedded
// servers' replicated JetStream stream, so a node that was down (SIGKILL)
// while a retained message was replaced, another added and a third
// deleted has the current set once it is back and ready.
func TestClusterRetainedJetStream(t *testing.T) {
	t.Parallel()
	nodes := startEmbedded(t, "ret")
	retainedWhileDown(t, nodes)
}

// TestClusterRetainedExternalJetStream: the same with an external NATS
// that has JetStream (the nodes use its stream, replicas 1).
func TestClusterRetainedExternalJetStream(t *testing.T) {
	t.Parallel()
	nodes := startExternal(t, "extjs", server.Options{MaxPayload: 8 << 20, JetStream: true, StoreDir: t.TempDir()})
	retainedWhileDown(t, nodes)
}

// retainedWhileDown: retained messages published on node 1 reach node 3;
// node 3 is killed; on node 1 one is replaced, one added and one deleted
// (empty payload); node 3 restarts with the same data folder and a new
// subscriber there gets exactly the current set.
func retainedWhileDown(t *testing.T, nodes []*node) {
	base := fmt.Sprintf("ret/%d", time.Now().UnixNano())
	pub := newV3(t, nodes[0].mqtt, "pub-"+base)
	pub.pub(t, base+"/a", "one", true)
	pub.pub(t, base+"/gone", "bye", true)

	first := newV5(t, nodes[2].mqtt, "first-"+base)
	first.sub(t, base+"/#")
	first.wait(t, "node 3 before the kill", base+"/a")
	first.wait(t, "node 3 before the kill", base+"/gone")

	// Node 2 has retained messages from the stream only: once its
	// subscriber got the changes live, the stream has them.
	live := newV3(t, nodes[1].mqtt, "live-"+base)
	live.sub(t, base+"/#")
	live.wait(t, "node 2", base+"/gone")

	nodes[2].p.Kill()
	pub.pub(t, base+"/a", "two", true)
	pub.pub(t, base+"/new", "three", true)
	pub.pub(t, base+"/gone", "", true)
	// check waits until in has a=two and new=three last, and gone last
	// empty (deleted: the live subscriber gets the empty message) or
	// never (the restarted node's new subscriber).
	check := func(who string, in *inbox, deleted bool) {
		t.Helper()
		testutil.EventuallyErr(t, wait, func() error {
			in.mu.Lock()
			defer in.mu.Unlock()
			last := map[string]msg{}
			for _, m := range in.got {
				last[m.topic] = m
			}
			a, n := last[base+"/a"], last[base+"/new"]
			if a.payload != "two" || n.payload != "three" {
				return fmt.Errorf("%s: a=%q new=%q, want two, three", who, a.payload, n.payload)
			}
			g, ok := last[base+"/gone"]
			if deleted && (!ok || g.payload != "") {
				return fmt.Errorf("%s: no delete of gone yet (%q)", who, g.payload)
			}
			if !deleted && ok {
				return fmt.Errorf("%s: the deleted retained message arrived (%q)", who, g.payload)
			}
			return nil
		})
	}
	check("node 2", live.inbox, true)

	// Restart node 3 on its data folder and route address.
	old := nodes[2].p
	p := testutil.StartConfig(t, testutil.Config{Bin: testutil.BuildBinary(t), Args: old.Args, Listeners: []string{"", "mqtt-tcp", "stomp-tcp"}})
	n3 := &node{p: p, http: "http://" + p.Addr(""), mqtt: p.Addr("mqtt-tcp"), stomp: p.Addr("stomp-tcp")}
	testutil.EventuallyErr(t, wait, func() error {
		if code, body := get(n3.http + "/readyz"); code != http.StatusOK {
			return fmt.Errorf("restarted node 3 /readyz: %d %s", code, body)
		}
		return nil
	})
	late := newV5(t, n3.mqtt, "late-"+base)
	late.sub(t, base+"/#")
	check("restarted node 3", late.inbox, false)
	if m := late.wait(t, "restarted node 3", base+"/a"); !m.retained {
		t.Errorf("restarted node 3: %+v not flagged retained", m)
	}
	if n := late.count(base + "/gone"); n != 0 {
		t.Errorf("restarted node 3: %d deleted retained messages", n)
	}
}

// TestClusterRetainedAckedAfterStore: a retained QoS 1 or QoS 2 message
// is acknowledged (PUBACK, PUBREC) only once the cluster's retained
// stream has it, so the publisher's node SIGKILLed right after the
// acknowledgements loses none: a new subscriber on another node gets
// every one [MQTT-3.3.1-5].
func TestClusterRetainedAckedAfterStore(t *testing.T) {
	nodes := startEmbedded(t, "ret-ack")
	base := fmt.Sprintf("retack/%d", time.Now().UnixNano())
	pub := newV5(t, nodes[0].mqtt, "pub-"+base)
	var want []string
	for i := range 6 {
		topic := fmt.Sprintf("%s/%d", base, i)
		pub.pub(t, &paho.Publish{Topic: topic, QoS: byte(1 + i%2), Retain: true, Payload: []byte(fmt.Sprint("v", i))})
		want = append(want, topic)
	}
	nodes[0].p.Kill()
	late := newV5(t, nodes[1].mqtt, "late-"+base)
	late.sub(t, base+"/#")
	for i, topic := range want {
		if m := late.wait(t, "new subscriber on node 2", topic); m.payload != fmt.Sprint("v", i) {
			t.Errorf("%s: %q, want v%d", topic, m.payload, i)
		}
	}
}
