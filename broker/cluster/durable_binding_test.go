package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// bindingSink is a node's local queue of one durable subscription, as
// bindingLoop sees it (bindingRouter): it takes and acknowledges every
// message at once, in arrival order.
type bindingSink struct {
	mu        sync.Mutex
	got       []string
	consumers int
	// beforeFirstRoom runs at the loop's first QueueRoom: the consumer is
	// looked up (and reset) by then.
	beforeFirstRoom func()
	roomAsked       bool
}

func (s *bindingSink) EnqueueBindingFromPeer(_ string, m *broker.Message, h broker.PeerMsg) bool {
	s.mu.Lock()
	s.got = append(s.got, string(m.Payload))
	s.mu.Unlock()
	h.Ack()
	return true
}

func (s *bindingSink) BindingConsumers(string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consumers
}

func (s *bindingSink) QueueRoom(string) int {
	s.mu.Lock()
	hook := s.beforeFirstRoom
	first := !s.roomAsked
	s.roomAsked = true
	s.mu.Unlock()
	if first && hook != nil {
		hook()
	}
	return 100
}

func (s *bindingSink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// startBindingLoop runs node n's fetch loop of durable subscription qname
// for sink, until the sink has no consumer or n closes.
func startBindingLoop(n *Node, qname string, sink *bindingSink) {
	sink.mu.Lock()
	sink.consumers = 1
	sink.mu.Unlock()
	n.dur.mu.Lock()
	if n.dur.bloops == nil {
		n.dur.bloops = map[string]bool{}
	}
	n.dur.bloops[qname] = true
	n.dur.mu.Unlock()
	go n.bindingLoop(qname, sink)
}

func publishDurable(t *testing.T, n *Node, topic string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := n.DurablePublish(&broker.Message{Topic: topic, Payload: []byte(p), QoS: 1}, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBindingOrderAfterLostDelivery: a delivery taken by a fetch that is
// gone (as a node that died with its pull request) is given again before
// the messages after it, not a minute later behind them (STOMP 1.2:
// MESSAGE frames in order).
func TestBindingOrderAfterLostDelivery(t *testing.T) {
	nodes := startDurableTrio(t, "bo")
	const qname = broker.DurableQueuePrefix + "order"
	if err := nodes[0].SaveBinding(qname, "order/t"); err != nil {
		t.Fatal(err)
	}
	publishDurable(t, nodes[0], "order/t", "one", "two", "three")
	sink := &bindingSink{}
	var stolen string
	sink.beforeFirstRoom = func() {
		// Another node's fetch takes "one" and dies with it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := nodes[2].dur.st.Consumer(ctx, bindingConsumer(qname))
		if err != nil {
			t.Error(err)
			return
		}
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Error(err)
			return
		}
		for m := range batch.Messages() {
			stolen = string(m.Data())
		}
	}
	startBindingLoop(nodes[1], qname, sink)
	testutil.EventuallyErr(t, 30*time.Second, func() error {
		if got := sink.received(); len(got) < 3 {
			return fmt.Errorf("received %q", got)
		}
		return nil
	})
	if stolen == "" {
		t.Fatal("the other fetch took nothing")
	}
	if got := sink.received(); !slices.Equal(got[:3], []string{"one", "two", "three"}) {
		t.Fatalf("received %q, want one, two, three first", got)
	}
}

// TestBindingCompetingNodes: two nodes fetching one durable subscription
// (consumers of one durable name on both) share its messages; neither
// takes the other's deliveries for lost ones and resets for ever.
func TestBindingCompetingNodes(t *testing.T) {
	nodes := startDurableTrio(t, "bc")
	const qname = broker.DurableQueuePrefix + "shared"
	if err := nodes[0].SaveBinding(qname, "shared/t"); err != nil {
		t.Fatal(err)
	}
	a, b := &bindingSink{}, &bindingSink{}
	startBindingLoop(nodes[1], qname, a)
	startBindingLoop(nodes[2], qname, b)
	const total = 300
	want := make([]string, total)
	for i := range want {
		want[i] = fmt.Sprint("m", i)
	}
	publishDurable(t, nodes[0], "shared/t", want...)
	testutil.EventuallyErr(t, 60*time.Second, func() error {
		seen := map[string]bool{}
		for _, p := range append(a.received(), b.received()...) {
			seen[p] = true
		}
		if len(seen) < total {
			return fmt.Errorf("%d of %d messages delivered (%d at one node, %d at the other)", len(seen), total, len(a.received()), len(b.received()))
		}
		return nil
	})
	dups := len(a.received()) + len(b.received()) - total
	t.Logf("node 2 got %d, node 3 got %d, %d duplicates", len(a.received()), len(b.received()), dups)
}
