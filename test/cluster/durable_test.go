package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"

	"github.com/duplexmq/duplex/internal/testutil"
)

// Persistent sessions outlive the node that holds them (issue 11 Build
// 5): once a node acknowledged a QoS 1 publish, a SIGKILL of any one node
// of three loses it for no persistent session; the client resumes on
// another node and gets every message, in publish order.

// durableSub is an MQTT 5 client of a persistent session (Session Expiry
// one hour) that records what it receives, in order, acknowledging each
// message unless hold.
type durableSub struct {
	c       *paho.Client
	present bool
	mu      sync.Mutex
	got     []string
	dups    int // received with DUP set
}

func connectDurable(t *testing.T, addr, id string, clean, hold bool) *durableSub {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &durableSub{}
	s.c = paho.NewClient(paho.ClientConfig{Conn: conn, EnableManualAcknowledgment: true,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			s.mu.Lock()
			s.got = append(s.got, string(pr.Packet.Payload))
			if pr.Packet.Duplicate() {
				s.dups++
			}
			s.mu.Unlock()
			if !hold {
				_ = s.c.Ack(pr.Packet)
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	expiry := uint32(3600)
	ca, err := s.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatalf("connect %s to %s: %v", id, addr, err)
	}
	s.present = ca.SessionPresent
	t.Cleanup(func() { _ = s.c.Disconnect(&paho.Disconnect{}) })
	return s
}

func (s *durableSub) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sa, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] != qos {
		t.Fatalf("subscribe %s: %v %+v", filter, err, sa)
	}
}

func (s *durableSub) close() { _ = s.c.Disconnect(&paho.Disconnect{}) }

func (s *durableSub) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// waitFor waits until the client has received want, in that order, as the
// last messages... exactly: every message of want, each first seen in
// want's order (a redelivery of one already seen may come again).
func (s *durableSub) waitFor(t *testing.T, who string, want []string) {
	t.Helper()
	testutil.EventuallyErr(t, wait, func() error {
		got := s.received()
		if firstSeen(got) == strings.Join(want, ",") {
			return nil
		}
		return fmt.Errorf("%s: got %v, want %v", who, got, want)
	})
}

// firstSeen lists the distinct messages of got in the order each was
// first received.
func firstSeen(got []string) string {
	seen := map[string]bool{}
	var out []string
	for _, g := range got {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return strings.Join(out, ",")
}

// publishQoS1 publishes n QoS 1 messages "<prefix>0".. on topic from a
// clean MQTT 5 client on addr, each acknowledged before the next.
func publishQoS1(t *testing.T, addr, id, topic, prefix string, from, n int) []string {
	t.Helper()
	return publishQoS(t, addr, id, topic, prefix, 1, from, n)
}

// publishQoS is publishQoS1 at QoS qos (2: each PUBCOMP before the next).
func publishQoS(t *testing.T, addr, id, topic, prefix string, qos byte, from, n int) []string {
	t.Helper()
	p := newV5(t, addr, id)
	var sent []string
	for i := from; i < from+n; i++ {
		body := fmt.Sprintf("%s%d", prefix, i)
		p.pub(t, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(body)})
		sent = append(sent, body)
	}
	_ = p.c.Disconnect(&paho.Disconnect{})
	return sent
}

// TestDurableSessionHolderKilledOffline: a persistent session subscribed
// on node 2 goes offline; QoS 1 messages are acknowledged on node 1;
// node 2 is SIGKILLed; the client resumes on node 3 and gets them all, in
// order.
func TestDurableSessionHolderKilledOffline(t *testing.T) {
	nodes := startEmbedded(t, "durable-off")
	s := connectDurable(t, nodes[1].mqtt, "ps-off", true, false)
	s.sub(t, "dur/#", 1)
	s.close()

	sent := publishQoS1(t, nodes[0].mqtt, "pub-off", "dur/a", "m", 0, 20)
	nodes[1].p.Kill()
	sent = append(sent, publishQoS1(t, nodes[0].mqtt, "pub-off2", "dur/b", "m", 20, 5)...)

	r := connectDurable(t, nodes[2].mqtt, "ps-off", false, false)
	if !r.present {
		t.Error("resumed on node 3 without Session Present")
	}
	r.waitFor(t, "resumed on node 3", sent)
	// The session goes on: a new message reaches it live.
	sent = append(sent, publishQoS1(t, nodes[0].mqtt, "pub-off3", "dur/c", "m", 25, 1)...)
	r.waitFor(t, "after the resume", sent)
}

// TestDurableSessionHolderKilledOnline: the subscriber is connected to
// node 2 and holds its messages unacknowledged when node 2 is SIGKILLed;
// on node 3 it gets them again (redelivered) and the later ones, in
// order.
func TestDurableSessionHolderKilledOnline(t *testing.T) {
	nodes := startEmbedded(t, "durable-on")
	s := connectDurable(t, nodes[1].mqtt, "ps-on", true, true)
	s.sub(t, "dur/#", 1)
	sent := publishQoS1(t, nodes[0].mqtt, "pub-on", "dur/a", "m", 0, 10)
	s.waitFor(t, "holding on node 2", sent)
	nodes[1].p.Kill()
	sent = append(sent, publishQoS1(t, nodes[0].mqtt, "pub-on2", "dur/a", "m", 10, 5)...)

	r := connectDurable(t, nodes[2].mqtt, "ps-on", false, false)
	r.waitFor(t, "resumed on node 3", sent)
	r.mu.Lock()
	dups := r.dups
	r.mu.Unlock()
	if dups < 10 {
		t.Errorf("%d of the 10 unacknowledged messages came with DUP set", dups)
	}
}

// TestDurableSessionPublisherKilled: the publisher's node is SIGKILLed
// right after its PUBACKs; the session's messages are in the cluster.
func TestDurableSessionPublisherKilled(t *testing.T) {
	nodes := startEmbedded(t, "durable-pub")
	s := connectDurable(t, nodes[1].mqtt, "ps-pub", true, false)
	s.sub(t, "dur/+", 1)
	s.close()
	sent := publishQoS1(t, nodes[0].mqtt, "pub-pub", "dur/a", "m", 0, 20)
	nodes[0].p.Kill()
	r := connectDurable(t, nodes[2].mqtt, "ps-pub", false, false)
	r.waitFor(t, "resumed on node 3", sent)
}

// TestDurableStompSubscriptionHolderKilled: a STOMP durable topic
// subscription (ActiveMQ dialect) made on node 2; SENDs with RECEIPT on
// node 1 while its consumer is away; node 2 is SIGKILLed; the consumer
// subscribes again with the same name on node 3 and gets every message,
// in order, then one sent after.
func TestDurableStompSubscriptionHolderKilled(t *testing.T) {
	nodes := startEmbedded(t, "durable-stomp")
	const dest = "/topic/dur/s"
	subscribe := func(addr string) (*stomp.Conn, *stomp.Subscription) {
		c, err := stomp.Dial("tcp", addr, stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.HeartBeat(0, 0),
			stomp.ConnOpt.Header("client-id", "dur-stomp"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Disconnect() })
		s, err := c.Subscribe(dest, stomp.AckClientIndividual, stomp.SubscribeOpt.Header("activemq.subscriptionName", "ds1"))
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	c, _ := subscribe(nodes[1].stomp)
	// The subscription is made once SUBSCRIBE's receipt came: a SEND
	// with a receipt on the same connection orders after it.
	if err := c.Send("/topic/other", "text/plain", []byte("sync"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect()

	p, err := stomp.Dial("tcp", nodes[0].stomp, stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.HeartBeat(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	for i := range 20 {
		body := fmt.Sprintf("s%d", i)
		if err := p.Send(dest, "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
			t.Fatalf("SEND %s: %v", body, err)
		}
		sent = append(sent, body)
	}
	nodes[1].p.Kill()

	_, s := subscribe(nodes[2].stomp)
	got := map[string]bool{}
	var order []string
	next := func() {
		t.Helper()
		var m *stomp.Message
		testutil.EventuallyErr(t, wait, func() error {
			select {
			case m = <-s.C:
				return nil
			default:
				return fmt.Errorf("node 3: %d of %d messages so far: %v", len(order), len(sent), order)
			}
		})
		if m.Err != nil {
			t.Fatal(m.Err)
		}
		if b := string(m.Body); !got[b] {
			got[b] = true
			order = append(order, b)
		}
		_ = m.Conn.Ack(m)
	}
	for len(order) < len(sent) {
		next()
	}
	if strings.Join(order, ",") != strings.Join(sent, ",") {
		t.Fatalf("node 3 got %v, want %v", order, sent)
	}
	if err := p.Send(dest, "text/plain", []byte("after"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	sent = append(sent, "after")
	for len(order) < len(sent) {
		next()
	}
	if order[len(order)-1] != "after" {
		t.Fatalf("node 3 got %v after the kill", order)
	}
	_ = p.Disconnect()
}

// TestDurableSessionQoS2: QoS 2 messages for a persistent session whose
// node is SIGKILLed while it is offline reach it on node 3 exactly once,
// in order; so do those published after, while it is connected.
func TestDurableSessionQoS2(t *testing.T) {
	nodes := startEmbedded(t, "durable-q2")
	s := connectDurable(t, nodes[1].mqtt, "ps-q2", true, false)
	s.sub(t, "dur/#", 2)
	s.close()
	sent := publishQoS(t, nodes[0].mqtt, "pub-q2", "dur/a", "m", 2, 0, 20)
	nodes[1].p.Kill()
	r := connectDurable(t, nodes[2].mqtt, "ps-q2", false, false)
	r.sub(t, "dur/#", 2) // the same subscription again: replaced, nothing lost or doubled
	sent = append(sent, publishQoS(t, nodes[0].mqtt, "pub-q2b", "dur/b", "m", 2, 20, 10)...)
	r.waitFor(t, "resumed on node 3", sent)
	if got := r.received(); len(got) != len(sent) {
		t.Fatalf("QoS 2: %d deliveries for %d messages: %v", len(got), len(sent), got)
	}
}
