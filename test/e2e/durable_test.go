package e2e

import (
	"fmt"
	"testing"

	"github.com/duplexmq/duplex/store"
)

// durableDialect is one way STOMP clients ask for a durable topic
// subscription (README, Durability).
type durableDialect struct {
	name    string
	connect []string // extra CONNECT headers
	sub     []string // extra SUBSCRIBE headers (id comes separately)
	unsub   []string // UNSUBSCRIBE headers that delete it
}

var durableDialects = []durableDialect{
	{"rabbitmq", nil, []string{"durable", "true", "auto-delete", "false"}, []string{"durable", "true"}},
	{"activemq", []string{"client-id", "c1"}, []string{"activemq.subscriptionName", "s1"}, []string{"activemq.subscriptionName", "s1"}},
	{"artemis", []string{"client-id", "c1"}, []string{"durable-subscription-name", "s1"}, []string{"durable-subscription-name", "s1"}},
}

// A durable subscription keeps collecting while its subscriber is away,
// across connections; UNSUBSCRIBE with the dialect's header deletes it.
func TestDurableSubscriptionDialects(t *testing.T) {
	for _, d := range durableDialects {
		t.Run(d.name, func(t *testing.T) {
			s := startServer(t, func(c *serverConfig) { c.Broker.Store = store.NewMemory() })
			dest := "/topic/durable/" + d.name
			subscribe := func() *rawClient {
				c := newRaw(t, s)
				c.connect(d.connect...)
				c.send("SUBSCRIBE", "", append([]string{"id", "sub-1", "destination", dest, "ack", "client-individual"}, d.sub...)...)
				c.send("SEND", "", "destination", "/topic/$e2e/barrier", "receipt", "b")
				return c
			}
			c := subscribe()
			c.expect("RECEIPT")
			c.send("DISCONNECT", "", "receipt", "bye")
			c.expect("RECEIPT")

			pub := newRaw(t, s)
			pub.connect()
			for i := 1; i <= 2; i++ {
				pub.send("SEND", fmt.Sprint(i), "destination", dest, "receipt", fmt.Sprint(i))
				pub.expect("RECEIPT")
			}
			c = subscribe()
			// Receipts travel in their own lane and may overtake the
			// backlog: take the two MESSAGEs and the RECEIPT in any order.
			var bodies []string
			for receipt := false; len(bodies) < 2 || !receipt; {
				f, err := c.next(waitShort)
				if err != nil {
					t.Fatalf("waiting for the backlog: %v (got %q)", err, bodies)
				}
				switch f.Command {
				case "RECEIPT":
					receipt = true
				case "MESSAGE":
					if f.Header.Get("destination") != dest {
						t.Fatalf("MESSAGE destination %q, want %q", f.Header.Get("destination"), dest)
					}
					bodies = append(bodies, string(f.Body))
					c.send("ACK", "", "id", f.Header.Get("ack"))
				default:
					t.Fatalf("unexpected %s %q", f.Command, f.Body)
				}
			}
			if fmt.Sprint(bodies) != "[1 2]" {
				t.Fatalf("backlog %q, want [1 2] in order", bodies)
			}
			// Delete it; what is sent next has no subscription to wait in.
			c.send("UNSUBSCRIBE", "", append([]string{"id", "sub-1", "receipt", "u"}, d.unsub...)...)
			c.expect("RECEIPT")
			pub.send("SEND", "lost", "destination", dest, "receipt", "3")
			pub.expect("RECEIPT")
			c.send("SUBSCRIBE", "", append([]string{"id", "sub-2", "destination", dest, "ack", "client-individual"}, d.sub...)...)
			c.send("SEND", "", "destination", "/topic/$e2e/barrier", "receipt", "b2")
			c.expect("RECEIPT")
			pub.send("SEND", "4", "destination", dest, "receipt", "4")
			pub.expect("RECEIPT")
			if m := c.expect("MESSAGE"); string(m.Body) != "4" {
				t.Fatalf("after deleting the durable subscription got %q, want only the new 4", m.Body)
			}
		})
	}
}

// A SEND to a full durable subscription is dropped for that subscriber
// only: the publisher gets its RECEIPT and stays connected (one
// subscriber's full queue must not fail every publisher to the topic), and
// the subscriber finds only what fitted.
func TestDurableSubscriptionFull(t *testing.T) {
	s := startServer(t, func(c *serverConfig) {
		c.Broker.Store = store.NewMemory()
		c.Broker.MaxQueueDepth = 1
	})
	c := newRaw(t, s)
	c.connect()
	c.send("SUBSCRIBE", "", "id", "1", "destination", "/topic/full", "durable", "true", "auto-delete", "false", "receipt", "s")
	c.send("UNSUBSCRIBE", "", "id", "1", "receipt", "u") // detach; the subscription stays
	c.expect("RECEIPT")
	if r := c.expect("RECEIPT"); r.Header.Get("receipt-id") != "u" {
		t.Fatalf("second RECEIPT %q, want u", r.Header.Get("receipt-id"))
	}
	pub := newRaw(t, s)
	pub.connect()
	pub.send("SEND", "1", "destination", "/topic/full", "receipt", "r1")
	pub.expect("RECEIPT")
	pub.send("SEND", "2", "destination", "/topic/full") // no receipt: dropped quietly
	pub.send("SEND", "3", "destination", "/topic/full", "receipt", "r3")
	if r := pub.expect("RECEIPT"); r.Header.Get("receipt-id") != "r3" {
		t.Fatalf("RECEIPT %q, want r3", r.Header.Get("receipt-id"))
	}
	c.send("SUBSCRIBE", "", "id", "1", "destination", "/topic/full", "durable", "true", "auto-delete", "false", "ack", "client-individual")
	if m := c.expect("MESSAGE"); string(m.Body) != "1" {
		t.Fatalf("the full subscription holds %q, want 1", m.Body)
	}
	pub.send("SEND", "4", "destination", "/topic/other", "receipt", "r4")
	if r := pub.expect("RECEIPT"); r.Header.Get("receipt-id") != "r4" {
		t.Fatalf("publisher after the drops: RECEIPT %q, want r4", r.Header.Get("receipt-id"))
	}
}

// SENDs with receipts pipelined to a stored queue: every RECEIPT comes, in
// order, and the consumer gets every message in order.
func TestDurableQueuePipelinedSends(t *testing.T) {
	s := startServer(t, func(c *serverConfig) { c.Broker.Store = store.NewMemory() })
	pub := newRaw(t, s)
	pub.connect()
	const n = 300
	for i := 0; i < n; i++ {
		pub.send("SEND", fmt.Sprint(i), "destination", "/queue/pipelined", "receipt", fmt.Sprint(i))
	}
	for i := 0; i < n; i++ {
		if id := pub.expect("RECEIPT").Header.Get("receipt-id"); id != fmt.Sprint(i) {
			t.Fatalf("RECEIPT %d has receipt-id %q", i, id)
		}
	}
	c := newRaw(t, s)
	c.connect()
	c.send("SUBSCRIBE", "", "id", "1", "destination", "/queue/pipelined")
	for i := 0; i < n; i++ {
		if m := c.expect("MESSAGE"); string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, m.Body)
		}
	}
}
