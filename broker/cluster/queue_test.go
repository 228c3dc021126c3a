package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// queueRouterFake is a router with queue consumers: room messages at a
// time, acknowledged at once (auto) or held.
type queueRouterFake struct {
	fakeRouter
	room atomic.Int32
	auto atomic.Bool
	mu   sync.Mutex
	got  []queueGot
}

type queueGot struct {
	name, payload string
	props         []broker.Property
	h             broker.PeerMsg
	delivered     uint64
}

func (r *queueRouterFake) EnqueueFromPeer(name string, m *broker.Message, h broker.PeerMsg) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.room.Load() <= 0 {
		return false
	}
	r.got = append(r.got, queueGot{name: name, payload: string(m.Payload), props: m.Props, h: h, delivered: h.Delivered()})
	if r.auto.Load() {
		h.Ack()
	} else {
		r.room.Add(-1)
	}
	return true
}

func (r *queueRouterFake) QueueRoom(string) int { return int(r.room.Load()) }

func (r *queueRouterFake) received() []queueGot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// payloads is what r received, in order.
func (r *queueRouterFake) payloads() []string {
	var out []string
	for _, g := range r.received() {
		out = append(out, g.payload)
	}
	return out
}

// startJetStreamNATS runs a NATS server with JetStream in the test.
func startJetStreamNATS(t *testing.T, js bool) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true,
		JetStream: js, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	return s
}

// testAckWait is the nodes' AckWait: InProgress every third of it keeps
// a held message even when the ticker runs late on a loaded machine.
const testAckWait = 2 * time.Second

func startQueueNode(t *testing.T, url string, r Router) *Node {
	t.Helper()
	n, err := New(Config{Name: "qt", NATSURLs: []string{url}, QueueAckWait: testAckWait})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	testutil.EventuallyErr(t, 30*time.Second, n.Ready)
	return n
}

func send(t *testing.T, n *Node, queue, payload string) {
	t.Helper()
	m := &broker.Message{Queue: queue, Payload: []byte(payload), QoS: broker.AtLeastOnce, ContentType: "text/plain",
		Props: []broker.Property{{Key: "k", Value: " v.1 "}}}
	if err := sendWait(n, m); err != nil {
		t.Fatalf("QueueSend(%s, %s): %v", queue, payload, err)
	}
}

// sendWait is QueueSend and its wait.
func sendWait(n *Node, m *broker.Message) error {
	wait, err := n.QueueSend(m)
	if err != nil {
		return err
	}
	return wait()
}

// TestQueueJetStream: queue messages are stored in the work-queue stream
// before QueueSend returns; two nodes fetching one queue share its one
// consumer, so each message goes to one of them; a node fetches only as
// much as its room; a held message is kept from redelivery (InProgress)
// while its node lives and goes to the other node, redelivered, once the
// node is gone; a NACK hands it out again.
func TestQueueJetStream(t *testing.T) {
	s := startJetStreamNATS(t, true)
	ra, rb := &queueRouterFake{}, &queueRouterFake{}
	a := startQueueNode(t, s.ClientURL(), ra)
	b := startQueueNode(t, s.ClientURL(), rb)

	long := strings.Repeat("ü", 1100) // its subject would pass MaxSubject
	for i := range 20 {
		send(t, a, "work", fmt.Sprint(i))
	}
	send(t, b, long, "long")
	js, err := jetstream.New(a.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := js.Stream(ctx, streamName("qt", "queues"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Retention != jetstream.WorkQueuePolicy || info.State.Msgs != 21 {
		t.Fatalf("stream %v with %d messages, want a work queue with 21", info.Config.Retention, info.State.Msgs)
	}

	// Competition: both fetch "work", each message to one of them.
	ra.room.Store(3)
	rb.room.Store(3)
	ra.auto.Store(true)
	rb.auto.Store(true)
	a.QueueConsume("work", true)
	b.QueueConsume("work", true)
	b.QueueConsume(long, true)
	testutil.EventuallyErr(t, 30*time.Second, func() error {
		if n := len(ra.payloads()) + len(rb.payloads()); n < 21 {
			return fmt.Errorf("%d of 21 received", n)
		}
		return nil
	})
	all := append(ra.payloads(), rb.payloads()...)
	slices.Sort(all)
	want := []string{"long"}
	for i := range 20 {
		want = append(want, fmt.Sprint(i))
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("received %q, want each of %q once", all, want)
	}
	for _, g := range append(ra.received(), rb.received()...) {
		if g.delivered != 1 || len(g.props) != 1 || g.props[0] != (broker.Property{Key: "k", Value: " v.1 "}) {
			t.Fatalf("message %+v: want delivered once, props kept", g)
		}
		if g.payload == "long" && g.name != long {
			t.Fatalf("long queue name came back as %q", g.name)
		}
	}
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		info, err := st.Info(ctx)
		if err != nil || info.State.Msgs != 0 {
			return fmt.Errorf("stream after the acks: %v, %v messages", err, info)
		}
		return nil
	})

	// Room: b fetches nothing while it has none, and the message waits
	// in the stream for it.
	a.QueueConsume("work", false)
	rb.auto.Store(false)
	rb.room.Store(0)
	cons, err := st.Consumer(ctx, queueConsumer("work"))
	if err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyErr(t, 10*time.Second, func() error { // the pull requests made before have expired
		ci, err := cons.Info(ctx)
		if err != nil || ci.NumWaiting != 0 {
			return fmt.Errorf("consumer %v: %v waiting pull requests", err, ci)
		}
		return nil
	})
	before := len(rb.received())
	send(t, a, "work", "held")
	info, _ = st.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages in the stream, want the one waiting", info.State.Msgs)
	}
	rb.room.Store(1)
	b.QueueWake("work")
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		if len(rb.received()) == before {
			return errors.New("b did not fetch once it had room")
		}
		return nil
	})

	// Held on b for 2.5 AckWaits: InProgress keeps it there (an
	// observation window: nothing may happen in it).
	for end := time.Now().Add(5 * testAckWait / 2); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumRedelivered != 0 || ci.NumAckPending != 1 || len(rb.received()) != before+1 {
			t.Fatalf("held message redelivered while its node lives: %+v", ci)
		}
	}
	// NACK: handed out again, to a now (b has no room left).
	ra.room.Store(1)
	ra.auto.Store(false)
	a.QueueConsume("work", true)
	rb.received()[before].h.Nak(0)
	var got queueGot
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		r := ra.received()
		if g := r[len(r)-1]; g.payload == "held" {
			got = g
			return nil
		}
		return errors.New("a did not get the NACKed message")
	})
	if got.delivered != 2 {
		t.Fatalf("NACKed message delivered %d times, want 2", got.delivered)
	}

	// a dies holding it: after AckWait it goes to b, a third delivery.
	rb.room.Store(1)
	a.Close()
	testutil.EventuallyErr(t, 20*time.Second, func() error {
		r := rb.received()
		if g := r[len(r)-1]; g.payload == "held" && g.delivered == 3 {
			return nil
		}
		return errors.New("b did not get the message its dead peer held")
	})
	rb.received()[len(rb.received())-1].h.Ack()
	jb, err := jetstream.New(b.nc) // a's connection is closed
	if err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		st, err := jb.Stream(ctx, streamName("qt", "queues"))
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil || info.State.Msgs != 0 {
			return fmt.Errorf("stream after the last ack: %v, %v", err, info)
		}
		return nil
	})
}

// TestQueueNoJetStream: without JetStream (an external NATS without it,
// an embedded node without peers) queues stay local: QueueSend says
// ErrQueueLocal.
func TestQueueNoJetStream(t *testing.T) {
	s := startJetStreamNATS(t, false)
	ext, err := New(Config{Name: "nojs", NATSURLs: []string{s.ClientURL()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(&queueRouterFake{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ext.Close)
	alone, err := New(Config{Name: "alone", Listen: freeAddr(t), StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := alone.Start(&queueRouterFake{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alone.Close)
	for _, n := range []*Node{ext, alone} {
		testutil.EventuallyErr(t, 30*time.Second, n.Ready)
		testutil.EventuallyErr(t, 30*time.Second, func() error {
			_, err := n.QueueSend(&broker.Message{Queue: "q", Payload: []byte("x")})
			if !errors.Is(err, broker.ErrQueueLocal) {
				return fmt.Errorf("QueueSend: %v, want ErrQueueLocal", err)
			}
			return nil
		})
		n.QueueConsume("q", true) // nothing to do, nothing started
	}
}

// depthRouter is a queue router whose limits.max_queue_depth is 2.
type depthRouter struct{ queueRouterFake }

func (*depthRouter) Config() broker.Config { return broker.Config{MaxQueueDepth: 2} }

// TestQueueDepth: limits.max_queue_depth holds per queue in the stream
// too: a SEND to a full queue is refused at once with ErrQueueFull, and
// other queues are not affected.
func TestQueueDepth(t *testing.T) {
	s := startJetStreamNATS(t, true)
	n := startQueueNode(t, s.ClientURL(), &depthRouter{})
	send(t, n, "full", "1")
	send(t, n, "full", "2")
	// ErrQueueFull, not the ErrStore of a SEND retried until it gave up.
	err := sendWait(n, &broker.Message{Queue: "full", Payload: []byte("3")})
	if !errors.Is(err, broker.ErrQueueFull) {
		t.Fatalf("third SEND: %v, want ErrQueueFull", err)
	}
	send(t, n, "other", "1")
	// Headers past JetStream's 64 KiB are refused for good: ErrStore
	// with the stream's reason, not a quorum retry.
	err = sendWait(n, &broker.Message{Queue: "other", Payload: []byte("x"),
		Props: []broker.Property{{Key: "big", Value: strings.Repeat("h", 70<<10)}}})
	if !errors.Is(err, broker.ErrStore) || !strings.Contains(err.Error(), "header") {
		t.Fatalf("SEND with 70 KiB of headers: %v, want ErrStore for its header size", err)
	}
}

// TestQueueSendPipelined: SENDs started one after the other and waited
// for together (a STOMP client's pipelined batch) are all stored, and
// come out in the order they were sent.
func TestQueueSendPipelined(t *testing.T) {
	s := startJetStreamNATS(t, true)
	r := &queueRouterFake{}
	n := startQueueNode(t, s.ClientURL(), r)
	var waits []func() error
	var want []string
	for i := range 200 {
		want = append(want, fmt.Sprint(i))
		w, err := n.QueueSend(&broker.Message{Queue: "order", Payload: []byte(want[i])})
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("SEND %d: %v", i, err)
		}
	}
	r.room.Store(7)
	r.auto.Store(true)
	n.QueueConsume("order", true)
	testutil.EventuallyErr(t, 30*time.Second, func() error {
		if got := len(r.payloads()); got < len(want) {
			return fmt.Errorf("%d of %d received", got, len(want))
		}
		return nil
	})
	if got := r.payloads(); !slices.Equal(got, want) {
		t.Fatalf("received %q, want %q", got, want)
	}
}
