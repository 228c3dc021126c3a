package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// skippingDurable is a fakeDurable whose store keeps nothing under skip/,
// as broker/cluster's does for a topic no cluster-durable subscription
// wants (durable_interest.go).
type skippingDurable struct{ fakeDurable }

func (f *skippingDurable) DurablePublish(m *Message, dedup string) error {
	skip := strings.HasPrefix(m.Topic, "skip/")
	m.SetNotInCluster(skip)
	if skip {
		return nil
	}
	return f.fakeDurable.DurablePublish(m, dedup)
}

// TestNotInClusterDelivery: a QoS 1 message the cluster store did not
// keep reaches a cluster-durable session from local routing (published
// here, or marked so by the node that published it); one it kept comes
// only from the store, as before.
func TestNotInClusterDelivery(t *testing.T) {
	f := &skippingDurable{}
	r := New(Config{Store: store.NewMemory(), Peers: f}, nil)
	if _, err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	if p.clusterDurable() == nil {
		t.Fatal("no cluster link")
	}
	mqttSub(t, r, p, "skip/+")
	mqttSub(t, r, p, "keep/+")

	publishQoS(t, r, "skip/a", "s1", AtLeastOnce)
	publishQoS(t, r, "keep/a", "k1", AtLeastOnce)
	if len(f.published) != 1 || string(f.published[0].Payload) != "k1" {
		t.Fatalf("stored in the cluster: %d messages", len(f.published))
	}
	ds := drained(p)
	if len(ds) != 1 || string(ds[0].Msg.Payload) != "s1" || ds[0].QoS != AtLeastOnce || ds[0].Seq != 0 {
		t.Fatalf("delivered locally %+v, want only s1 at QoS 1, not from a store", ds)
	}

	// From another node: marked, it is delivered here; unmarked, the
	// cluster store brings it.
	for _, not := range []bool{true, false} {
		m := &Message{Topic: "keep/b", Payload: []byte("peer"), QoS: AtLeastOnce}
		m.SetNotInCluster(not)
		if err := r.PublishFromPeer(m); err != nil {
			t.Fatal(err)
		}
		if got := drainedBodies(p); (len(got) == 1) != not {
			t.Fatalf("NotInCluster %v: delivered locally %v", not, got)
		}
	}
}
