package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeQueuePeers is a cluster that carries queues, in memory.
type fakeQueuePeers struct {
	fakePeers
	mu      sync.Mutex
	sent    []*Message // QueueSend, in order
	events  []string   // "send:<payload>", "wait:<payload>"
	consume []string   // "+name" / "-name"
	wakes   int
	sendErr error // ErrQueueLocal at once, others from wait
}

func (p *fakeQueuePeers) QueueSend(m *Message) (func() error, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sendErr == ErrQueueLocal {
		return nil, p.sendErr
	}
	err := p.sendErr
	p.events = append(p.events, "send:"+string(m.Payload))
	c := *m
	if err == nil {
		p.sent = append(p.sent, &c)
	}
	return func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.events = append(p.events, "wait:"+string(c.Payload))
		return err
	}, nil
}

func (p *fakeQueuePeers) QueueConsume(name string, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sign := "-"
	if add {
		sign = "+"
	}
	p.consume = append(p.consume, sign+name)
}

func (p *fakeQueuePeers) QueueWake(string) {
	p.mu.Lock()
	p.wakes++
	p.mu.Unlock()
}

func (p *fakeQueuePeers) sentTo() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.sent {
		out = append(out, m.Queue+":"+string(m.Payload))
	}
	return out
}

// fakePeerMsg records how the router settled it.
type fakePeerMsg struct {
	delivered uint64
	mu        sync.Mutex
	settled   []string
}

func (h *fakePeerMsg) settle(s string) {
	h.mu.Lock()
	h.settled = append(h.settled, s)
	h.mu.Unlock()
}
func (h *fakePeerMsg) Ack()                    { h.settle("ack") }
func (h *fakePeerMsg) Nak(delay time.Duration) { h.settle("nak") }
func (h *fakePeerMsg) Term()                   { h.settle("term") }
func (h *fakePeerMsg) Delivered() uint64       { return h.delivered }

func (h *fakePeerMsg) want(t *testing.T, what ...string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Equal(h.settled, what) {
		t.Fatalf("settled %q, want %q", h.settled, what)
	}
}

// TestQueuePeersSend: with peers that carry queues, a SEND to a shared
// queue is handed to them and returns their answer (the STOMP RECEIPT
// waits for it); nothing stays here. A temporary queue's message, and
// every message when the peers say ErrQueueLocal, stays local.
func TestQueuePeersSend(t *testing.T) {
	p := &fakeQueuePeers{}
	r := New(Config{Peers: p}, nil)
	s := openSession(t, r, "s")
	publishQueue(t, r, s, "work", "1")
	if got := p.sentTo(); !slices.Equal(got, []string{"work:1"}) {
		t.Fatalf("sent %q", got)
	}
	wantQueue(t, r, "work", 0, 0, 0)

	tmp, err := r.TempQueue(s)
	if err != nil {
		t.Fatal(err)
	}
	publishQueue(t, r, nil, tmp, "reply")
	wantQueue(t, r, tmp, 1, 0, 0)

	p.sendErr = ErrStore
	if err := r.Publish(context.Background(), s, &Message{Queue: "work", Payload: []byte("2"), QoS: AtLeastOnce}); !errors.Is(err, ErrStore) {
		t.Fatalf("Publish with the cluster refusing: %v, want ErrStore", err)
	}
	p.sendErr = ErrQueueLocal
	publishQueue(t, r, s, "work", "3")
	wantQueue(t, r, "work", 1, 0, 0)
	if got := p.sentTo(); len(got) != 1 {
		t.Fatalf("sent %q", got)
	}
}

// TestQueuePeersBatch: a publisher's batch (a pipelining STOMP client)
// hands every SEND to the cluster before it waits for the first one, and
// each gets its own answer, in order.
func TestQueuePeersBatch(t *testing.T) {
	p := &fakeQueuePeers{}
	r := New(Config{Peers: p}, nil)
	s := openSession(t, r, "s")
	var reqs []PublishReq
	for _, b := range []string{"1", "2", "3"} {
		reqs = append(reqs, PublishReq{Msg: &Message{Queue: "work", Payload: []byte(b), QoS: AtLeastOnce}})
	}
	reqs = append(reqs, PublishReq{Msg: &Message{Topic: "t", Payload: []byte("topic")}})
	r.PublishBatch(s, reqs)
	for i, q := range reqs {
		if q.Err != nil {
			t.Fatalf("request %d: %v", i, q.Err)
		}
	}
	p.mu.Lock()
	got := slices.Clone(p.events)
	p.mu.Unlock()
	if want := []string{"send:1", "send:2", "send:3", "wait:1", "wait:2", "wait:3"}; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	wantQueue(t, r, "work", 0, 0, 0)
}

// TestQueuePeersConsume: a queue's first and last local consumers are
// reported; messages from the cluster go to a consumer with room (never
// past its prefetch: QueueRoom says how many to take), marked
// redelivered from their second delivery, and are settled with the
// consumer's ACK and NACK, or given back when it leaves holding them.
func TestQueuePeersConsume(t *testing.T) {
	p := &fakeQueuePeers{}
	r := New(Config{Peers: p}, nil)
	if r.QueueRoom("work") != 0 {
		t.Fatal("room without a queue")
	}
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "work", AckClientIndividual, 2)
	if got := r.QueueRoom("work"); got != 2 {
		t.Fatalf("QueueRoom = %d, want the prefetch 2", got)
	}
	h1, h2, h3 := &fakePeerMsg{delivered: 1}, &fakePeerMsg{delivered: 2}, &fakePeerMsg{delivered: 1}
	if !r.EnqueueFromPeer("work", &Message{Payload: []byte("1"), QoS: AtLeastOnce}, h1) ||
		!r.EnqueueFromPeer("work", &Message{Payload: []byte("2"), QoS: AtLeastOnce}, h2) {
		t.Fatal("EnqueueFromPeer refused with room")
	}
	if got := r.QueueRoom("work"); got != 0 {
		t.Fatalf("QueueRoom = %d with the prefetch used, want 0", got)
	}
	if r.EnqueueFromPeer("work", &Message{Payload: []byte("3"), QoS: AtLeastOnce}, h3) {
		t.Fatal("EnqueueFromPeer took a message past the prefetch")
	}
	h3.want(t) // the caller gives it back
	ds := drained(c)
	if len(ds) != 2 || ds[0].Redelivered || !ds[1].Redelivered || ds[0].Msg.Queue != "work" {
		t.Fatalf("deliveries %+v: want 1 (first delivery) and 2 (redelivered) from work", ds)
	}
	wantQueue(t, r, "work", 0, 2, 1)
	r.Ack(ds[0])
	h1.want(t, "ack")
	r.Redeliver(ds[1]) // NACK: back to the cluster, for any node
	h2.want(t, "nak")
	wantQueue(t, r, "work", 0, 0, 1)
	if got := drained(c); len(got) != 0 {
		t.Fatalf("NACKed message redelivered here, not by the cluster: %v", deliveryBodies(got))
	}

	h4 := &fakePeerMsg{delivered: 1}
	r.EnqueueFromPeer("work", &Message{Payload: []byte("4"), QoS: AtLeastOnce}, h4)
	if err := r.Unsubscribe(c, "k"); err != nil {
		t.Fatal(err)
	}
	h4.want(t, "nak")
	q := r.queues["work"]
	q.mu.Lock()
	if q.bytes != 0 {
		t.Errorf("queue bytes %d after all settled", q.bytes)
	}
	q.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Equal(p.consume, []string{"+work", "-work"}) || p.wakes == 0 {
		t.Fatalf("QueueConsume %q, %d wakes", p.consume, p.wakes)
	}
}

// TestQueuePeersAutoAck: an ack:auto consumer's message is settled as
// soon as it is handed over; QueueRoom gives such a consumer a fixed room.
func TestQueuePeersAutoAck(t *testing.T) {
	r := New(Config{Peers: &fakeQueuePeers{}}, nil)
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "work", AckAuto, 0)
	if got := r.QueueRoom("work"); got != peerRoomUnlimited {
		t.Fatalf("QueueRoom = %d, want %d", got, peerRoomUnlimited)
	}
	h := &fakePeerMsg{delivered: 1}
	r.EnqueueFromPeer("work", &Message{Payload: []byte("1")}, h)
	h.want(t, "ack")
	if got := drainedBodies(c); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("got %q", got)
	}
}

// TestQueuePeersDeadLetter: max redeliveries and NACK requeue:false keep
// their meaning for a cluster queue's messages: the dead-letter copy, with
// its headers, is sent to the cluster's DLQ.<queue> and the original is
// ended there (Term). A message the cluster delivered past the limit
// (nodes that died holding it) goes straight to the dead-letter queue.
func TestQueuePeersDeadLetter(t *testing.T) {
	p := &fakeQueuePeers{}
	r := New(Config{Peers: p, MaxRedeliveries: 1}, nil)
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "orders", AckClientIndividual, 0)

	rej := &fakePeerMsg{delivered: 1}
	r.EnqueueFromPeer("orders", &Message{Payload: []byte("rejected"), QoS: AtLeastOnce}, rej)
	r.Reject(drained(c)[0])
	rej.want(t, "term")

	again := &fakePeerMsg{delivered: 1}
	r.EnqueueFromPeer("orders", &Message{Payload: []byte("nacked"), QoS: AtLeastOnce}, again)
	r.Redeliver(drained(c)[0])
	again.want(t, "nak") // first return: within max 1
	twice := &fakePeerMsg{delivered: 2}
	r.EnqueueFromPeer("orders", &Message{Payload: []byte("nacked"), QoS: AtLeastOnce}, twice)
	d := drained(c)[0]
	if !d.Redelivered {
		t.Fatal("second delivery not marked redelivered")
	}
	r.Redeliver(d)
	twice.want(t, "term")

	lost := &fakePeerMsg{delivered: 3} // two nodes died holding it
	if !r.EnqueueFromPeer("orders", &Message{Payload: []byte("lost"), QoS: AtLeastOnce}, lost) {
		t.Fatal("EnqueueFromPeer refused a message to dead-letter")
	}
	lost.want(t, "term")
	if got := drained(c); len(got) != 0 {
		t.Fatalf("a message past the limit was delivered: %v", deliveryBodies(got))
	}

	if got := p.sentTo(); !slices.Equal(got, []string{"DLQ.orders:rejected", "DLQ.orders:nacked", "DLQ.orders:lost"}) {
		t.Fatalf("sent %q", got)
	}
	p.mu.Lock()
	sent := slices.Clone(p.sent)
	p.mu.Unlock()
	for i, want := range [][2]string{{DeathRejected, "1"}, {DeathDeliveryLimit, "2"}, {DeathDeliveryLimit, "2"}} {
		m := sent[i]
		if prop(m, HeaderDeathReason) != want[0] || prop(m, HeaderDeliveryCount) != want[1] ||
			prop(m, HeaderDeathQueue) != "orders" || prop(m, HeaderOriginalDestination) != "/queue/orders" {
			t.Errorf("dead letter %d: props %v, want reason %s, count %s", i, m.Props, want[0], want[1])
		}
	}
	if st := r.Stats(); st.DeadLettered != 3 {
		t.Errorf("DeadLettered = %d, want 3", st.DeadLettered)
	}

	// The dead-letter queue refusing: the message goes back to its queue
	// (Nak), not lost.
	p.sendErr = ErrStore
	full := &fakePeerMsg{delivered: 1}
	r.EnqueueFromPeer("orders", &Message{Payload: []byte("full"), QoS: AtLeastOnce}, full)
	r.Reject(drained(c)[0])
	full.want(t, "nak")
}

// TestQueuePeersStayLocal: on a single node, and with peers that do not
// carry queues, queues are this node's alone: a SEND is kept here and
// delivered from here, as before.
func TestQueuePeersStayLocal(t *testing.T) {
	for _, cfg := range []Config{{}, {Peers: &fakePeers{}}} {
		r := New(cfg, nil)
		if r.queuePeers() != nil {
			t.Fatalf("queuePeers with %T", cfg.Peers)
		}
		publishQueue(t, r, nil, "work", "1")
		wantQueue(t, r, "work", 1, 0, 0)
		c := openSession(t, r, "c")
		queueConsumer(t, r, c, "k", "work", AckClientIndividual, 0)
		ds := drained(c)
		if len(ds) != 1 || string(ds[0].Msg.Payload) != "1" {
			t.Fatalf("got %v", deliveryBodies(ds))
		}
		r.Ack(ds[0])
		wantQueue(t, r, "work", 0, 0, 1)
	}
	// Durable subscriptions' and temporary queues stay local in a
	// cluster too.
	r := New(Config{Peers: &fakeQueuePeers{}}, nil)
	for _, q := range []*queue{newQueue(DurableQueuePrefix+"x", nil), newQueue(TempQueuePrefix+"x", nil)} {
		if r.peersOf(q) != nil {
			t.Errorf("queue %s carried by the cluster", q.name)
		}
	}
	if r.peersOf(newQueue("work", nil)) == nil {
		t.Error("shared queue not carried by the cluster")
	}
}
