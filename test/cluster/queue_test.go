package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/duplexmq/duplex/internal/testutil"
)

// Cluster-wide STOMP /queue/ destinations (issue 11 Build 4 and 5): one
// queue in the whole cluster, kept in the replicated JetStream stream.

// queueWait bounds what involves a node's loss: the AckWait the tests
// set (3 s), JetStream's leader elections, a loaded 2-core machine.
const queueWait = 60 * time.Second

// queueArgs are the nodes' flags for the queue tests: a short AckWait so
// that a dead node's messages come back soon, and one redelivery.
func queueArgs(args func(int) []string) func(int) []string {
	return func(i int) []string {
		return append(args(i), "-cluster-queue-ack-wait", "3s", "-limits-max-redeliveries", "1")
	}
}

// qDial connects a STOMP client to addr. A client on a node the test
// kills is not disconnected at the end (its node is gone).
func qDial(t *testing.T, addr string, cleanup bool) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", addr, stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.HeartBeat(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if cleanup {
		t.Cleanup(func() { _ = c.Disconnect() })
	}
	return c
}

// qSend sends body to /queue/q and waits for its RECEIPT.
func qSend(t *testing.T, c *stomp.Conn, q, body string) {
	t.Helper()
	if err := c.Send("/queue/"+q, "text/plain", []byte(body), stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("SEND %s to /queue/%s: %v", body, q, err)
	}
}

// qMsg is a MESSAGE a queue consumer got.
type qMsg struct {
	body        string
	redelivered bool
	h           *frame.Header
	m           *stomp.Message
}

// qConsumer is a STOMP consumer of one queue (client-individual ack,
// prefetch as given) that records and, if ack, acknowledges everything.
type qConsumer struct {
	c   *stomp.Conn
	mu  sync.Mutex
	got []qMsg
}

func qConsume(t *testing.T, c *stomp.Conn, q string, prefetch int, ack bool) *qConsumer {
	t.Helper()
	sub, err := c.Subscribe("/queue/"+q, stomp.AckClientIndividual,
		stomp.SubscribeOpt.Header("prefetch-count", strconv.Itoa(prefetch)))
	if err != nil {
		t.Fatal(err)
	}
	qc := &qConsumer{c: c}
	go func() {
		for m := range sub.C {
			if m.Err != nil {
				return
			}
			qc.mu.Lock()
			qc.got = append(qc.got, qMsg{body: string(m.Body), redelivered: m.Header.Get("redelivered") == "true", h: m.Header, m: m})
			qc.mu.Unlock()
			if ack {
				_ = c.Ack(m)
			}
		}
	}()
	return qc
}

func (qc *qConsumer) messages() []qMsg {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	return slices.Clone(qc.got)
}

func (qc *qConsumer) bodies() []string {
	var out []string
	for _, m := range qc.messages() {
		out = append(out, m.body)
	}
	return out
}

// waitBody waits until qc got a message with body and returns it.
func (qc *qConsumer) waitBody(t *testing.T, who, body string, timeout time.Duration) qMsg {
	t.Helper()
	var found qMsg
	testutil.EventuallyErr(t, timeout, func() error {
		for _, m := range qc.messages() {
			if m.body == body {
				found = m
				return nil
			}
		}
		return fmt.Errorf("%s: no %q yet (got %q)", who, body, qc.bodies())
	})
	return found
}

// TestClusterQueue: three nodes on embedded routes. Consumers of one
// queue on two nodes compete (each message to one of them); NACK past
// max redeliveries dead-letters to a cluster queue another node's
// consumer reads; a message held unacknowledged by a node that is
// SIGKILLed comes to a consumer on another node, redelivered.
func TestClusterQueue(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, queueArgs(routedArgs(t, "queue")))
	queueCompete(t, nodes)
	queueDeadLetter(t, nodes)
	queueDisconnectHolder(t, nodes)
	queueKillHolder(t, nodes)
}

// TestClusterQueueExternal: the same with an external NATS that has
// JetStream (one server: the stream has one replica there).
func TestClusterQueueExternal(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, server.Options{MaxPayload: 8 << 20, JetStream: true, StoreDir: t.TempDir()})
	nodes := startNodes(t, queueArgs(externalArgs("qext", ns)))
	queueCompete(t, nodes)
	queueDeadLetter(t, nodes)
	queueKillHolder(t, nodes)
}

// queueCompete: SENDs with RECEIPT on node 1, consumers on nodes 2 and 3
// (prefetch 10, ACK each): together they get exactly the ids sent, none
// twice, and each gets some.
func queueCompete(t *testing.T, nodes []*node) {
	q := fmt.Sprintf("compete%d", time.Now().UnixNano())
	pub := qDial(t, nodes[0].stomp, true)
	b := qConsume(t, qDial(t, nodes[1].stomp, true), q, 10, true)
	c := qConsume(t, qDial(t, nodes[2].stomp, true), q, 10, true)
	var sent []string
	// Until both consumers' nodes fetch (their first consumer starts
	// it), then 100 more.
	for i := 0; len(b.messages()) == 0 || len(c.messages()) == 0; i++ {
		if i == 200 {
			t.Fatalf("after %d messages: node 2 got %d, node 3 %d", i, len(b.messages()), len(c.messages()))
		}
		body := "w" + strconv.Itoa(i)
		qSend(t, pub, q, body)
		sent = append(sent, body)
		testutil.EventuallyErr(t, wait, func() error {
			if n := len(b.messages()) + len(c.messages()); n < len(sent) {
				return fmt.Errorf("warm-up: %d of %d received", n, len(sent))
			}
			return nil
		})
	}
	for i := range 100 {
		body := strconv.Itoa(i)
		qSend(t, pub, q, body)
		sent = append(sent, body)
	}
	testutil.EventuallyErr(t, wait, func() error {
		if n := len(b.messages()) + len(c.messages()); n < len(sent) {
			return fmt.Errorf("%d of %d received", n, len(sent))
		}
		return nil
	})
	got := append(b.bodies(), c.bodies()...)
	slices.Sort(got)
	slices.Sort(sent)
	if !slices.Equal(got, sent) {
		t.Fatalf("received %d %q, want each of the %d sent once", len(got), got, len(sent))
	}
	t.Logf("node 2 got %d, node 3 got %d", len(b.messages()), len(c.messages()))
	if v := nodes[0].metric(t, "duplex_cluster_queue_messages_stored_total"); v < float64(len(sent)) {
		t.Errorf("node 1 counted %v SENDs stored in the cluster, want at least %d", v, len(sent))
	}
	if v := nodes[1].metric(t, "duplex_cluster_queue_messages_in_total"); v < float64(len(b.messages())) {
		t.Errorf("node 2 counted %v messages taken, want at least %d", v, len(b.messages()))
	}
}

// queueDeadLetter: with max redeliveries 1, a message NACKed twice by a
// consumer on node 2 goes to the cluster queue DLQ.<queue>, where a
// consumer on node 3 gets it with the death headers.
func queueDeadLetter(t *testing.T, nodes []*node) {
	q := fmt.Sprintf("poison%d", time.Now().UnixNano())
	pub := qDial(t, nodes[0].stomp, true)
	bc := qDial(t, nodes[1].stomp, true)
	b := qConsume(t, bc, q, 1, false)
	qSend(t, pub, q, "bad")
	for i := range 2 {
		testutil.EventuallyErr(t, wait, func() error {
			if n := len(b.messages()); n <= i {
				return fmt.Errorf("delivery %d of the poison message not there yet", i+1)
			}
			return nil
		})
		m := b.messages()[i]
		if m.body != "bad" || m.redelivered != (i > 0) {
			t.Fatalf("delivery %d: %q redelivered %v", i+1, m.body, m.redelivered)
		}
		if err := bc.Nack(m.m); err != nil {
			t.Fatal(err)
		}
	}
	dead := qConsume(t, qDial(t, nodes[2].stomp, true), "DLQ."+q, 1, true)
	m := dead.waitBody(t, "DLQ consumer on node 3", "bad", wait)
	for k, v := range map[string]string{"x-death-reason": "delivery_limit", "x-death-queue": q,
		"x-original-destination": "/queue/" + q, "x-delivery-count": "2"} {
		if got := m.h.Get(k); got != v {
			t.Errorf("dead letter %s: %q, want %q", k, got, v)
		}
	}
	if n := len(b.messages()); n != 2 {
		t.Errorf("the poison message was delivered %d times, want 2", n)
	}
}

// queueDisconnectHolder: a consumer on node 3 holds a message without
// ACK and disconnects; its node gives the message back to the cluster
// and a consumer on node 2 gets it, redelivered:true.
func queueDisconnectHolder(t *testing.T, nodes []*node) {
	q := fmt.Sprintf("left%d", time.Now().UnixNano())
	pub := qDial(t, nodes[0].stomp, true)
	cc := qDial(t, nodes[2].stomp, false)
	c := qConsume(t, cc, q, 1, false)
	qSend(t, pub, q, "left")
	if m := c.waitBody(t, "node 3", "left", wait); m.redelivered {
		t.Fatal("first delivery marked redelivered")
	}
	b := qConsume(t, qDial(t, nodes[1].stomp, true), q, 1, true)
	if err := cc.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if m := b.waitBody(t, "node 2 after node 3's consumer left", "left", queueWait); !m.redelivered {
		t.Fatal("message its consumer left holding not marked redelivered")
	}
}

// queueKillHolder: a consumer on node 2 holds a message without ACK;
// node 2 is SIGKILLed; a consumer on node 3 gets it, redelivered:true.
func queueKillHolder(t *testing.T, nodes []*node) {
	q := fmt.Sprintf("held%d", time.Now().UnixNano())
	pub := qDial(t, nodes[0].stomp, true)
	b := qConsume(t, qDial(t, nodes[1].stomp, false), q, 1, false)
	qSend(t, pub, q, "held")
	if m := b.waitBody(t, "node 2", "held", wait); m.redelivered {
		t.Fatal("first delivery marked redelivered")
	}
	c := qConsume(t, qDial(t, nodes[2].stomp, true), q, 1, true)
	nodes[1].p.Kill()
	if m := c.waitBody(t, "node 3 after node 2's loss", "held", queueWait); !m.redelivered {
		t.Fatal("message of the dead node not marked redelivered")
	}
	if got := c.bodies(); len(got) != 1 {
		t.Fatalf("node 3 got %q, want the one message once", got)
	}
}

// TestClusterQueueDurable: 50 SENDs with RECEIPT on node 1, then node 1
// is SIGKILLed: a consumer on node 2 gets all 50, in order. Before them,
// 200 SENDs without RECEIPT, sent without waiting (the node stores them
// in batches): a RECEIPT answers after everything sent before it, so
// those are there too, first and in order.
func TestClusterQueueDurable(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, queueArgs(routedArgs(t, "qdur")))
	q := "durable"
	pub := qDial(t, nodes[0].stomp, false)
	var sent []string
	start := time.Now()
	for i := range 200 {
		sent = append(sent, "p"+strconv.Itoa(i))
		if err := pub.Send("/queue/"+q, "text/plain", []byte(sent[i])); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		sent = append(sent, strconv.Itoa(i))
		qSend(t, pub, q, sent[len(sent)-1])
	}
	t.Logf("200 SENDs without RECEIPT, then 50 each waiting for its RECEIPT: %v", time.Since(start))
	nodes[0].p.Kill()
	b := qConsume(t, qDial(t, nodes[1].stomp, true), q, 10, true)
	testutil.EventuallyErr(t, queueWait, func() error {
		if n := len(b.messages()); n < len(sent) {
			return fmt.Errorf("node 2 got %d of %d", n, len(sent))
		}
		return nil
	})
	if got := b.bodies(); !slices.Equal(got, sent) {
		t.Fatalf("node 2 got %q, want %q in order", got, sent)
	}
	for _, m := range b.messages() {
		if m.redelivered {
			t.Fatalf("message %s marked redelivered: it was never delivered before", m.body)
		}
	}
}
