package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func queueConsumer(t testing.TB, r *Router, s *Session, key, queue string, ack AckMode, prefetch int) *Subscription {
	t.Helper()
	sub := &Subscription{SubSpec: SubSpec{Key: key, Queue: queue, QoS: AtLeastOnce, Ack: ack, Prefetch: prefetch}}
	if err := r.Subscribe(s, sub); err != nil {
		t.Fatalf("Subscribe(%q, queue %q): %v", key, queue, err)
	}
	return sub
}

func publishQueue(t testing.TB, r *Router, from *Session, queue, body string) {
	t.Helper()
	if err := r.Publish(context.Background(), from, &Message{Queue: queue, Payload: []byte(body), QoS: AtLeastOnce}); err != nil {
		t.Fatalf("Publish(queue %q, %q): %v", queue, body, err)
	}
}

// queueStats returns the named queue's description.
func queueStats(r *Router, name string) (QueueInfo, bool) { return r.Queue(name) }

func wantQueue(t testing.TB, r *Router, name string, ready, unacked, consumers int) {
	t.Helper()
	q, ok := queueStats(r, name)
	if !ok {
		t.Fatalf("queue %q not in Stats", name)
	}
	if q.Ready != ready || q.Unacked != unacked || q.Consumers != consumers {
		t.Fatalf("queue %q: ready %d unacked %d consumers %d; want %d, %d, %d",
			name, q.Ready, q.Unacked, q.Consumers, ready, unacked, consumers)
	}
}

func TestQueueRoundRobin(t *testing.T) {
	r := New(Config{}, nil)
	a := openSession(t, r, "a")
	b := openSession(t, r, "b")
	queueConsumer(t, r, a, "k", "work", AckAuto, 0)
	queueConsumer(t, r, b, "k", "work", AckAuto, 0)
	for i := range 6 {
		publishQueue(t, r, nil, "work", fmt.Sprint(i))
	}
	ga, gb := drainedBodies(a), drainedBodies(b)
	if !sameStrings(ga, []string{"0", "2", "4"}) || !sameStrings(gb, []string{"1", "3", "5"}) {
		t.Errorf("a got %q, b got %q; want alternating [0 2 4] and [1 3 5]", ga, gb)
	}
	// Auto-acked deliveries are settled at once.
	wantQueue(t, r, "work", 0, 0, 2)
	if st := r.Stats(); st.Delivered != 6 {
		t.Errorf("Delivered = %d, want 6", st.Delivered)
	}
}

func TestQueueDeliveryTags(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	auto := openSession(t, r, "auto")
	queueConsumer(t, r, s, "k", "q", AckClientIndividual, 0)
	queueConsumer(t, r, auto, "k", "q", AckAuto, 0)
	publishQueue(t, r, nil, "q", "1")
	publishQueue(t, r, nil, "q", "2")
	ds, da := drained(s), drained(auto)
	if len(ds) != 1 || len(da) != 1 {
		t.Fatalf("got %d and %d deliveries, want one each", len(ds), len(da))
	}
	if ds[0].Tag == 0 {
		t.Error("client-individual delivery has no tag")
	}
	if da[0].Tag != 0 {
		t.Errorf("auto delivery has tag %d, want 0", da[0].Tag)
	}
	if ds[0].Msg.Topic != "" || ds[0].Msg.Queue != "q" || ds[0].Redelivered {
		t.Errorf("delivery = %+v", ds[0])
	}
	wantQueue(t, r, "q", 0, 1, 2)
}

// TestQueuePrefetch: a consumer with Prefetch 1 gets the next message only
// after it acks the previous one.
func TestQueuePrefetch(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	queueConsumer(t, r, s, "k", "q", AckClientIndividual, 1)
	for i := range 3 {
		publishQueue(t, r, nil, "q", fmt.Sprint(i))
	}
	ds := drained(s)
	if got := deliveryBodies(ds); !sameStrings(got, []string{"0"}) {
		t.Fatalf("with prefetch 1 got %q, want [0]", got)
	}
	wantQueue(t, r, "q", 2, 1, 1)
	r.Ack(ds[0])
	ds2 := drained(s)
	if got := deliveryBodies(ds2); !sameStrings(got, []string{"1"}) {
		t.Fatalf("after Ack got %q, want [1]", got)
	}
	wantQueue(t, r, "q", 1, 1, 1)
	r.Ack(ds[0]) // settling twice is harmless and frees nothing
	if got := drainedBodies(s); len(got) != 0 {
		t.Fatalf("a repeated Ack released %q", got)
	}
	wantQueue(t, r, "q", 1, 1, 1)
	r.Ack(ds2[0])
	if got := drainedBodies(s); !sameStrings(got, []string{"2"}) {
		t.Fatalf("after second Ack got %q, want [2]", got)
	}
}

// TestQueuePrefetchSkipsFullConsumer: round robin passes over a consumer at
// its prefetch limit.
func TestQueuePrefetchSkipsFullConsumer(t *testing.T) {
	r := New(Config{}, nil)
	a := openSession(t, r, "a")
	b := openSession(t, r, "b")
	queueConsumer(t, r, a, "k", "q", AckClientIndividual, 1)
	queueConsumer(t, r, b, "k", "q", AckClientIndividual, 0)
	for i := range 4 {
		publishQueue(t, r, nil, "q", fmt.Sprint(i))
	}
	if ga, gb := drainedBodies(a), drainedBodies(b); !sameStrings(ga, []string{"0"}) || !sameStrings(gb, []string{"1", "2", "3"}) {
		t.Errorf("a got %q, b got %q; want [0] and [1 2 3]", ga, gb)
	}
}

// TestQueueRedeliver: NACK puts the message back at the head, marked
// redelivered, ahead of messages that were waiting.
func TestQueueRedeliver(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	queueConsumer(t, r, s, "k", "q", AckClientIndividual, 1)
	publishQueue(t, r, nil, "q", "first")
	publishQueue(t, r, nil, "q", "second")
	ds := drained(s)
	if len(ds) != 1 || string(ds[0].Msg.Payload) != "first" || ds[0].Redelivered {
		t.Fatalf("first delivery = %q, want [first] not redelivered", deliveryBodies(ds))
	}
	r.Redeliver(ds[0])
	again := drained(s)
	if len(again) != 1 {
		t.Fatalf("after Redeliver got %q, want one delivery", deliveryBodies(again))
	}
	if string(again[0].Msg.Payload) != "first" || !again[0].Redelivered {
		t.Fatalf("after Redeliver got %q redelivered=%v, want first, redelivered", again[0].Msg.Payload, again[0].Redelivered)
	}
	if again[0].Msg != ds[0].Msg {
		t.Error("redelivery carries a different *Message")
	}
	if again[0].Tag == ds[0].Tag {
		t.Error("redelivery reuses the old tag")
	}
	wantQueue(t, r, "q", 1, 1, 1)
	r.Redeliver(ds[0]) // the old tag is settled: no effect
	if got := drainedBodies(s); len(got) != 0 {
		t.Fatalf("Redeliver of a settled tag delivered %q", got)
	}
	r.Ack(again[0])
	next := drained(s)
	if len(next) != 1 || string(next[0].Msg.Payload) != "second" || next[0].Redelivered {
		t.Fatalf("after Ack got %q, want [second] not redelivered", deliveryBodies(next))
	}
}

// TestTopicRedeliver: a topic delivery (no tag) is sent again to the same
// subscription, marked redelivered.
func TestTopicRedeliver(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	topicSub(t, r, s, "k", "t")
	publishTopic(t, r, nil, "t", "x")
	ds := drained(s)
	r.Redeliver(ds[0])
	again := drained(s)
	if len(again) != 1 || !again[0].Redelivered || again[0].Sub != ds[0].Sub {
		t.Fatalf("topic Redeliver = %+v, want one redelivered delivery on the same subscription", again)
	}
	r.Ack(again[0]) // no-op for topics; must not panic
}

// TestQueueConsumerLeaves: a consumer's unacknowledged messages go back, in
// order and ahead of waiting ones, to the remaining consumer.
func TestQueueConsumerLeaves(t *testing.T) {
	for _, how := range []string{"unsubscribe", "close"} {
		t.Run(how, func(t *testing.T) {
			r := New(Config{}, nil)
			a := openSession(t, r, "a")
			queueConsumer(t, r, a, "k", "q", AckClientIndividual, 3)
			for i := range 5 {
				publishQueue(t, r, nil, "q", fmt.Sprint(i))
			}
			if got := drainedBodies(a); !sameStrings(got, []string{"0", "1", "2"}) {
				t.Fatalf("a got %q, want [0 1 2]", got)
			}
			wantQueue(t, r, "q", 2, 3, 1)
			b := openSession(t, r, "b")
			queueConsumer(t, r, b, "k", "q", AckClientIndividual, 0)
			// b takes what was waiting.
			if got := drainedBodies(b); !sameStrings(got, []string{"3", "4"}) {
				t.Fatalf("b got %q, want [3 4]", got)
			}
			publishQueue(t, r, nil, "q", "5") // round robin: goes to b (a is full)
			if how == "close" {
				r.Close(a, CloseClientClosed)
			} else if err := r.Unsubscribe(a, "k"); err != nil {
				t.Fatal(err)
			}
			ds := drained(b)
			if got := deliveryBodies(ds); !sameStrings(got, []string{"5", "0", "1", "2"}) {
				t.Fatalf("b got %q after a left, want [5 0 1 2]", got)
			}
			for _, d := range ds[1:] {
				if !d.Redelivered {
					t.Errorf("requeued %q not marked redelivered", d.Msg.Payload)
				}
			}
			if ds[0].Redelivered {
				t.Error("a fresh message is marked redelivered")
			}
			wantQueue(t, r, "q", 0, 6, 1)
			for _, d := range ds {
				r.Ack(d)
			}
			wantQueue(t, r, "q", 0, 2, 1) // 3 and 4 still unacked by b
		})
	}
}

// TestQueueRequeueWithoutConsumers: a leaving last consumer's messages wait
// in the queue, in order, for the next one.
func TestQueueRequeueWithoutConsumers(t *testing.T) {
	r := New(Config{}, nil)
	a := openSession(t, r, "a")
	queueConsumer(t, r, a, "k", "q", AckClient, 0)
	publishQueue(t, r, nil, "q", "0")
	publishQueue(t, r, nil, "q", "1")
	drained(a)
	r.Close(a, CloseTransportError)
	wantQueue(t, r, "q", 2, 0, 0)
	b := openSession(t, r, "b")
	queueConsumer(t, r, b, "k", "q", AckAuto, 0)
	ds := drained(b)
	if got := deliveryBodies(ds); !sameStrings(got, []string{"0", "1"}) {
		t.Fatalf("b got %q, want [0 1]", got)
	}
	for _, d := range ds {
		if !d.Redelivered {
			t.Errorf("%q not marked redelivered", d.Msg.Payload)
		}
	}
}

func TestQueueWaitsForConsumer(t *testing.T) {
	r := New(Config{}, nil)
	for i := range 3 {
		publishQueue(t, r, nil, "jobs", fmt.Sprint(i))
	}
	wantQueue(t, r, "jobs", 3, 0, 0)
	if st := r.Stats(); st.Delivered != 0 || st.Published != 3 {
		t.Errorf("Delivered %d Published %d, want 0, 3", st.Delivered, st.Published)
	}
	s := openSession(t, r, "s")
	queueConsumer(t, r, s, "k", "jobs", AckAuto, 0)
	if got := drainedBodies(s); !sameStrings(got, []string{"0", "1", "2"}) {
		t.Fatalf("late consumer got %q, want [0 1 2]", got)
	}
	wantQueue(t, r, "jobs", 0, 0, 1)
}

func TestQueueMaxDepth(t *testing.T) {
	r := New(Config{MaxQueueDepth: 2}, nil)
	publishQueue(t, r, nil, "q", "0")
	publishQueue(t, r, nil, "q", "1")
	err := r.Publish(context.Background(), nil, &Message{Queue: "q", Payload: []byte("2")})
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Publish to a full queue = %v, want ErrQueueFull", err)
	}
	wantQueue(t, r, "q", 2, 0, 0)
	s := openSession(t, r, "s")
	queueConsumer(t, r, s, "k", "q", AckAuto, 0)
	if got := drainedBodies(s); !sameStrings(got, []string{"0", "1"}) {
		t.Fatalf("got %q, want [0 1] (the refused message must not be queued)", got)
	}
	publishQueue(t, r, nil, "q", "3") // room again
}

func TestQueueInvalidName(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	for _, name := range []string{"a\x00b", strings.Repeat("x", MaxQueueNameLength+1), "\xff"} {
		if err := r.Publish(context.Background(), nil, &Message{Queue: name}); !errors.Is(err, ErrInvalidQueue) {
			t.Errorf("Publish(queue %q) = %v, want ErrInvalidQueue", name, err)
		}
		if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "k", Queue: name}}); !errors.Is(err, ErrInvalidQueue) {
			t.Errorf("Subscribe(queue %q) = %v, want ErrInvalidQueue", name, err)
		}
	}
}

// TestQueueSlowConsumer: a queue consumer whose outbox refuses is closed as
// a slow consumer and the message goes to the next consumer instead.
func TestQueueSlowConsumer(t *testing.T) {
	r := New(Config{MaxPendingMsgs: 1}, nil)
	a := openSession(t, r, "a")
	b := openSession(t, r, "b")
	queueConsumer(t, r, a, "k", "q", AckClientIndividual, 0)
	queueConsumer(t, r, b, "k", "q", AckClientIndividual, 0)
	publishQueue(t, r, nil, "q", "0") // → a
	publishQueue(t, r, nil, "q", "1") // → b
	if got := drainedBodies(b); !sameStrings(got, []string{"1"}) {
		t.Fatalf("b got %q, want [1]", got)
	}
	publishQueue(t, r, nil, "q", "2") // → a, whose outbox is full: a closed, b gets it
	if a.Reason() != CloseSlowConsumer {
		t.Fatalf("a: reason %v, want %v", a.Reason(), CloseSlowConsumer)
	}
	if got := drainedBodies(b); !sameStrings(got, []string{"2"}) {
		t.Fatalf("b got %q, want [2]", got)
	}
	if n := r.Stats().SlowConsumers; n != 1 {
		t.Errorf("SlowConsumers = %d, want 1", n)
	}
	// a's read loop detaches it: its unacked message goes to b.
	r.Close(a, a.Reason())
	ds := drained(b)
	if got := deliveryBodies(ds); !sameStrings(got, []string{"0"}) || !ds[0].Redelivered {
		t.Fatalf("b got %q after a was detached, want [0] redelivered", got)
	}
}

func TestTempQueue(t *testing.T) {
	r := New(Config{}, nil)
	owner := openSession(t, r, "owner")
	other := openSession(t, r, "other")
	name, err := r.TempQueue(owner)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, TempQueuePrefix) || len(name) <= len(TempQueuePrefix) {
		t.Fatalf("TempQueue name %q, want %q prefix", name, TempQueuePrefix)
	}
	if name2, _ := r.TempQueue(owner); name2 == name {
		t.Fatalf("two temp queues named %q", name)
	}
	if err := r.Subscribe(other, &Subscription{SubSpec: SubSpec{Key: "k", Queue: name}}); !errors.Is(err, ErrQueueExclusive) {
		t.Fatalf("another session's Subscribe = %v, want ErrQueueExclusive", err)
	}
	queueConsumer(t, r, owner, "k", name, AckAuto, 0)
	publishQueue(t, r, other, name, "reply")
	if got := drainedBodies(owner); !sameStrings(got, []string{"reply"}) {
		t.Fatalf("owner got %q, want [reply]", got)
	}
	// A name that was never issued cannot be created by subscribing.
	if err := r.Subscribe(other, &Subscription{SubSpec: SubSpec{Key: "k2", Queue: TempQueuePrefix + "made-up"}}); !errors.Is(err, ErrInvalidQueue) {
		t.Errorf("Subscribe to an unissued temp queue = %v, want ErrInvalidQueue", err)
	}

	r.Close(owner, CloseClientClosed)
	if _, ok := queueStats(r, name); ok {
		t.Fatalf("temp queue %q still exists after its owner closed", name)
	}
	dropped := r.Stats().Dropped
	if err := r.Publish(context.Background(), other, &Message{Queue: name, Payload: []byte("late")}); err != nil {
		t.Fatalf("Publish to a vanished temp queue = %v, want nil (dropped silently)", err)
	}
	if _, ok := queueStats(r, name); ok {
		t.Fatal("a publish re-created the vanished temp queue")
	}
	if d := r.Stats().Dropped; d != dropped+1 {
		t.Errorf("Dropped = %d, want %d", d, dropped+1)
	}
	if _, err := r.TempQueue(owner); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("TempQueue on a closed session = %v, want ErrSessionClosed", err)
	}
}
