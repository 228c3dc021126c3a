package cluster

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/duplexmq/duplex/internal/testutil"
)

// overlapSub is an MQTT 5 client of a persistent session that records
// each message it receives: how often without DUP, and at which QoS.
type overlapSub struct {
	c       *paho.Client
	present bool
	mu      sync.Mutex
	fresh   map[string]int // receptions without DUP, by payload
	qos     map[string]byte
	ids     map[string]int // a subscription identifier it carried
}

func connectOverlap(t *testing.T, addr, id string, clean bool) *overlapSub {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &overlapSub{fresh: map[string]int{}, qos: map[string]byte{}, ids: map[string]int{}}
	s.c = paho.NewClient(paho.ClientConfig{Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := string(pr.Packet.Payload)
			s.mu.Lock()
			if !pr.Packet.Duplicate() {
				s.fresh[p]++
			}
			s.qos[p] = pr.Packet.QoS
			if pr.Packet.Properties != nil && pr.Packet.Properties.SubscriptionIdentifier != nil {
				s.ids[p] = *pr.Packet.Properties.SubscriptionIdentifier
			}
			s.mu.Unlock()
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ca, err := s.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30, Properties: expiry(3600)})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	s.present = ca.SessionPresent
	t.Cleanup(func() { _ = conn.Close() })
	return s
}

func (s *overlapSub) sub(t *testing.T, filter string, qos byte, id int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sa, err := s.c.Subscribe(ctx, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &id},
		Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] != qos {
		t.Fatalf("subscribe %s: %v %+v", filter, err, sa)
	}
}

// check waits until every payload of want came, then checks that each
// came once (not counting resends marked DUP) at its QoS.
func (s *overlapSub) check(t *testing.T, who string, want map[string]byte) {
	t.Helper()
	testutil.EventuallyErr(t, wait, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for p := range want {
			if s.fresh[p] == 0 {
				return fmt.Errorf("%s: %s not received", who, p)
			}
		}
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, q := range want {
		if s.fresh[p] != 1 || s.qos[p] != q {
			t.Errorf("%s: %s came %d times at QoS %d, want once at QoS %d", who, p, s.fresh[p], s.qos[p], q)
		}
	}
	if id := s.ids["one0"]; want["one0"] != 0 && id != 1 {
		t.Errorf("%s: one0 carried subscription identifier %d, want 1", who, id)
	}
}

// TestClusterOverlappingSubscriptions: a message matching two QoS 1/2
// subscriptions of one persistent session comes to it once, as on one
// node, at the higher QoS (broker/peers_overlap.go; each subscription is
// its own consumer in the cluster store). The session subscribes on node
// 2 to ov/# (QoS 1, identifier 1) and ov/+/x (QoS 2, identifier 2);
// messages are published on node 1: ov/a/x (both match) at QoS 2, ov/b
// (only ov/#) at QoS 1. Then the session goes offline, more are
// published, node 2 is SIGKILLed and the session resumes on node 3: the
// same there.
func TestClusterOverlappingSubscriptions(t *testing.T) {
	nodes := startEmbedded(t, "overlap")
	s := connectOverlap(t, nodes[1].mqtt, "ov-sess", true)
	s.sub(t, "ov/#", 1, 1)
	s.sub(t, "ov/+/x", 2, 2)

	publish := func(addr, id string, from, n int) map[string]byte {
		p := newV5(t, addr, id)
		want := map[string]byte{}
		for i := from; i < from+n; i++ {
			both, one := fmt.Sprintf("both%d", i), fmt.Sprintf("one%d", i)
			p.pub(t, &paho.Publish{Topic: "ov/a/x", QoS: 2, Payload: []byte(both)})
			p.pub(t, &paho.Publish{Topic: "ov/b", QoS: 1, Payload: []byte(one)})
			want[both], want[one] = 2, 1
		}
		_ = p.c.Disconnect(&paho.Disconnect{})
		return want
	}
	s.check(t, "on node 2", publish(nodes[0].mqtt, "ov-pub1", 0, 10))

	_ = s.c.Disconnect(&paho.Disconnect{})
	later := publish(nodes[0].mqtt, "ov-pub2", 10, 5)
	nodes[1].p.Kill()
	r := connectOverlap(t, nodes[2].mqtt, "ov-sess", false)
	if !r.present {
		t.Fatal("resumed on node 3 without Session Present")
	}
	r.check(t, "resumed on node 3", later)
}

// TestClusterOverlappingSubscriptionsPerCopy: with
// mqtt.per_subscription_copies each matching subscription gets its own
// copy in the cluster too, at its own QoS.
func TestClusterOverlappingSubscriptionsPerCopy(t *testing.T) {
	args := routedArgs(t, "overlap-copies")
	nodes := startNodes(t, func(i int) []string { return append(args(i), "-mqtt-per-subscription-copies=true") })
	s := connectOverlap(t, nodes[1].mqtt, "ovc-sess", true)
	s.sub(t, "ov/#", 1, 1)
	s.sub(t, "ov/+/x", 2, 2)
	p := newV5(t, nodes[0].mqtt, "ovc-pub")
	for i := range 3 {
		p.pub(t, &paho.Publish{Topic: "ov/a/x", QoS: 2, Payload: []byte(fmt.Sprintf("both%d", i))})
	}
	testutil.EventuallyErr(t, wait, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := range 3 {
			if n := s.fresh[fmt.Sprintf("both%d", i)]; n != 2 {
				return fmt.Errorf("both%d came %d times, want twice (once per subscription)", i, n)
			}
		}
		return nil
	})
}
