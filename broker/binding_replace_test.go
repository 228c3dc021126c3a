package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/duplexmq/duplex/store"
)

// storedTopics lists the topics of the messages the store holds for the
// queue qname, in order.
func storedTopics(t *testing.T, st store.Store, qname string) []string {
	t.Helper()
	page, err := st.QueuePending(qname, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, e := range page {
		topics = append(topics, e.Msg.Topic)
	}
	return topics
}

// storedBinding returns the store record of the durable subscription
// qname (its filter and mark).
func storedBinding(t *testing.T, st store.Store, qname string) store.Sub {
	t.Helper()
	_, subs, err := st.GetSession(bindingID(qname))
	if err != nil {
		t.Fatalf("binding record of %s: %v", qname, err)
	}
	if len(subs) != 1 {
		t.Fatalf("binding record of %s: %d subscriptions, want 1", qname, len(subs))
	}
	return subs[0]
}

// A durable name subscribed again on another destination is a new
// subscription at once, in memory and on disk (JMS): the old one's
// messages are dropped, the old topic no longer reaches it, the new one
// does, and a restart keeps the new destination. The same name on the
// same destination resumes with the messages kept.
func TestDurableReplaceOtherDestination(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{})
	qname := DurableQueuePrefix + "cid/x"

	c := openSession(t, r, "c1")
	durableSub(t, r, c, "a", "cid/x")
	r.Close(c, CloseClientClosed)
	publishQoS(t, r, "a", "a1", AtLeastOnce)
	publishQoS(t, r, "a", "a2", AtLeastOnce)

	// Same name, same destination: resumed, messages kept.
	c = openSession(t, r, "c2")
	durableSub(t, r, c, "a", "cid/x")
	if got := drainedBodies(c); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("resumed on the same destination: %q, want a1 a2", got)
	}
	r.Close(c, CloseClientClosed) // unacknowledged: back in the queue
	publishQoS(t, r, "a", "a3", AtLeastOnce)
	if got := storedTopics(t, st, qname); len(got) != 3 {
		t.Fatalf("stored before the replacement: %q, want 3 messages on a", got)
	}

	// Same name, another destination: a new, empty subscription.
	c = openSession(t, r, "c3")
	durableSub(t, r, c, "b", "cid/x")
	if got := drainedBodies(c); len(got) != 0 {
		t.Fatalf("replaced subscription got the old destination's messages %q", got)
	}
	if got := storedTopics(t, st, qname); len(got) != 0 {
		t.Fatalf("stored after the replacement: %q, want none", got)
	}
	if rec := storedBinding(t, st, qname); rec.Filter != "b" {
		t.Fatalf("stored filter %q, want b", rec.Filter)
	}
	publishQoS(t, r, "a", "a4", AtLeastOnce)
	publishQoS(t, r, "b", "b1", AtLeastOnce)
	got := drained(c)
	if b := deliveryBodies(got); !slices.Equal(b, []string{"b1"}) {
		t.Fatalf("after the replacement: %q, want b1 only", b)
	}
	if got := r.nbind.Load(); got != 1 {
		t.Fatalf("%d durable subscriptions, want 1", got)
	}
	r.Close(c, CloseClientClosed)
	publishQoS(t, r, "b", "b2", AtLeastOnce)
	publishQoS(t, r, "a", "a5", AtLeastOnce)

	r, st, stats := reopen(t, r, st, dir)
	if stats.Subs != 1 || stats.QueueMsgs != 2 {
		t.Fatalf("restore %+v, want 1 durable subscription with 2 messages (b1 unacknowledged, b2)", stats)
	}
	publishQoS(t, r, "a", "a6", AtLeastOnce)
	publishQoS(t, r, "b", "b3", AtLeastOnce)
	c = openSession(t, r, "c4")
	durableSub(t, r, c, "b", "cid/x")
	if b := drainedBodies(c); !slices.Equal(b, []string{"b1", "b2", "b3"}) {
		t.Fatalf("after the restart: %q, want b1 b2 b3", b)
	}
	if rec := storedBinding(t, st, qname); rec.Filter != "b" || rec.SubID != 0 {
		t.Fatalf("stored record after the restart %+v, want filter b, no replaced mark", rec)
	}
}

// While a consumer is attached, its durable subscription cannot change
// destination (JMS): ErrDurableInUse, which is ErrQueueExclusive to the
// protocols, and nothing changes. Once it has gone, the same SUBSCRIBE
// replaces the subscription.
func TestDurableReplaceRefusedWhileConsumed(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{})
	c1 := openSession(t, r, "c1")
	durableSub(t, r, c1, "a", "x")

	sub := func(s *Session, key, filter string) error {
		return r.SubscribeDurable(s, &Subscription{SubSpec: SubSpec{Key: key, Filter: filter, QoS: AtLeastOnce, Ack: AckClientIndividual}}, "x")
	}
	c2 := openSession(t, r, "c2")
	if err := sub(c2, "s", "b"); !errors.Is(err, ErrDurableInUse) || !errors.Is(err, ErrQueueExclusive) {
		t.Fatalf("another session, another destination: %v, want ErrDurableInUse (and ErrQueueExclusive)", err)
	}
	if err := sub(c1, "s2", "b"); !errors.Is(err, ErrDurableInUse) {
		t.Fatalf("the consumer's own session, another destination: %v, want ErrDurableInUse", err)
	}
	if err := sub(c2, "s", "a"); err != nil {
		t.Fatalf("a second consumer on the same destination: %v", err)
	}
	if c2.Subscription("s") == nil {
		t.Fatal("the second consumer is not subscribed")
	}
	publishQoS(t, r, "a", "a1", AtLeastOnce)
	publishQoS(t, r, "b", "b1", AtLeastOnce)
	if got := append(drainedBodies(c1), drainedBodies(c2)...); !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("after the refusals: %q, want a1 (the subscription is still on a)", got)
	}
	if rec := storedBinding(t, st, DurableQueuePrefix+"x"); rec.Filter != "a" {
		t.Fatalf("stored filter %q after the refusals, want a", rec.Filter)
	}

	r.Close(c1, CloseClientClosed)
	r.Close(c2, CloseClientClosed)
	c3 := openSession(t, r, "c3")
	if err := sub(c3, "s", "b"); err != nil {
		t.Fatalf("once the consumers have gone: %v", err)
	}
	publishQoS(t, r, "a", "a2", AtLeastOnce)
	publishQoS(t, r, "b", "b2", AtLeastOnce)
	if got := drainedBodies(c3); !slices.Equal(got, []string{"b2"}) {
		t.Fatalf("replaced: %q, want b2", got)
	}
}

// A SUBSCRIBE refused for its own reasons (its id is taken) replaces
// nothing: the old subscription keeps its destination and messages.
func TestDurableReplaceNotOnRefusedSubscribe(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	c := openSession(t, r, "c1")
	durableSub(t, r, c, "a", "x")
	r.Close(c, CloseClientClosed)
	publishQoS(t, r, "a", "a1", AtLeastOnce)

	c = openSession(t, r, "c2")
	topicSub(t, r, c, "s", "other")
	err := r.SubscribeDurable(c, &Subscription{SubSpec: SubSpec{Key: "s", Filter: "b", QoS: AtLeastOnce, Ack: AckClientIndividual}}, "x")
	if !errors.Is(err, ErrDuplicateSub) {
		t.Fatalf("SubscribeDurable with a taken id: %v, want ErrDuplicateSub", err)
	}
	c2 := openSession(t, r, "c3")
	durableSub(t, r, c2, "a", "x")
	if got := drainedBodies(c2); !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("after the refused SUBSCRIBE: %q, want a1 kept", got)
	}
}

// A publish under way when the subscription is replaced may commit its
// message for the old destination after the old messages were removed:
// it never reaches the new consumer, and the next restart removes it from
// the store (the record is marked replaced until then).
func TestDurableReplaceLateOldMessagePruned(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{})
	qname := DurableQueuePrefix + "x"
	c := openSession(t, r, "c1")
	durableSub(t, r, c, "a", "x")
	r.Close(c, CloseClientClosed)
	publishQoS(t, r, "a", "a1", AtLeastOnce)

	c = openSession(t, r, "c2")
	durableSub(t, r, c, "b", "x")
	if rec := storedBinding(t, st, qname); rec.Filter != "b" || rec.SubID != bindingReplaced {
		t.Fatalf("stored record %+v, want filter b marked replaced", rec)
	}
	// The late commit of a publish that matched the old filter.
	late := store.Msg{Topic: "a", Payload: []byte("late"), QoS: 1}
	if _, err := st.Commit(&store.Batch{Msg: &late, Queues: []string{qname}}); err != nil {
		t.Fatal(err)
	}
	publishQoS(t, r, "b", "b1", AtLeastOnce)
	if got := drainedBodies(c); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("live: %q, want b1", got)
	}
	r.Close(c, CloseClientClosed)

	r, st, stats := reopen(t, r, st, dir)
	if stats.QueueMsgs != 1 {
		t.Fatalf("restored %d messages, want 1 (b1; the late a pruned)", stats.QueueMsgs)
	}
	if got := storedTopics(t, st, qname); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("stored after the restart: %q, want b", got)
	}
	if rec := storedBinding(t, st, qname); rec.SubID != 0 {
		t.Fatalf("stored record %+v still marked replaced after the restart", rec)
	}
	c = openSession(t, r, "c3")
	durableSub(t, r, c, "b", "x")
	if got := drainedBodies(c); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("after the restart: %q, want b1", got)
	}
}

// Replacing while publishers keep sending to both destinations: once
// SubscribeDurable has returned, the consumer gets messages of the new
// destination only, and after a restart the store holds none of the old.
func TestDurableReplaceUnderPublishLoad(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{MaxPendingMsgs: 1 << 16})
	qname := DurableQueuePrefix + "x"
	c := openSession(t, r, "c1")
	durableSub(t, r, c, "a", "x")
	r.Close(c, CloseClientClosed)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var sentB atomic.Int64
	for _, topic := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := r.Publish(context.Background(), nil, &Message{Topic: topic, Payload: []byte(topic), QoS: AtLeastOnce}); err != nil {
					t.Errorf("Publish(%s): %v", topic, err)
					return
				}
				if topic == "b" {
					sentB.Add(1)
				}
			}
		}()
	}
	// Let both publishers run into the old subscription first.
	checkFor(t, "publishes to b", func() bool { return sentB.Load() >= 20 })
	c = openSession(t, r, "c2")
	durableSub(t, r, c, "b", "x")
	after := sentB.Load()
	checkFor(t, "publishes to b after the replacement", func() bool { return sentB.Load() >= after+20 })
	stop.Store(true)
	wg.Wait()

	got := drained(c)
	if len(got) == 0 {
		t.Fatal("the replaced subscription got nothing from b")
	}
	for _, d := range got {
		if d.Msg.Topic != "b" {
			t.Fatalf("the replaced subscription got a message on %q", d.Msg.Topic)
		}
	}
	r.Close(c, CloseClientClosed)
	r, st, _ = reopen(t, r, st, dir)
	for _, topic := range storedTopics(t, st, qname) {
		if topic != "b" {
			t.Fatalf("after the restart the store holds a message on %q for the replaced subscription", topic)
		}
	}
	_ = r
}

// Concurrent subscribes of one name on different destinations, with
// deletes among them, leave memory and the store agreeing: one index
// entry on the filter the store holds, or none and no record.
func TestDurableReplaceConcurrentAgrees(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{})
	qname := DurableQueuePrefix + "x"
	filters := []string{"a", "b", "c/+"}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				s, err := r.Open(SessionID(fmt.Sprintf("w%d-%d", w, i)), SessionOptions{Protocol: "test", RemoteAddr: "test"})
				if err != nil {
					t.Error(err)
					return
				}
				if (w+i)%7 == 0 {
					if err := r.Unbind(s, "x"); err != nil {
						t.Error(err)
					}
				} else {
					err := r.SubscribeDurable(s, &Subscription{SubSpec: SubSpec{Key: "k", Filter: filters[(w+i)%3], QoS: AtLeastOnce}}, "x")
					if err != nil && !errors.Is(err, ErrDurableInUse) {
						t.Error(err)
					}
				}
				r.Close(s, CloseClientClosed)
			}
		}()
	}
	wg.Wait()

	r.qmu.Lock()
	b := r.bindings[qname]
	r.qmu.Unlock()
	_, subs, err := st.GetSession(bindingID(qname))
	switch {
	case b == nil:
		if err == nil {
			t.Fatalf("no durable subscription in memory, but the store has %+v", subs)
		}
		if n := r.idx.Len(); n != 0 {
			t.Fatalf("no durable subscription, %d index entries", n)
		}
	case err != nil:
		t.Fatalf("durable subscription on %q in memory, none in the store: %v", b.filter, err)
	case len(subs) != 1 || subs[0].Filter != b.filter:
		t.Fatalf("memory has %q, the store %+v", b.filter, subs)
	default:
		if n := r.idx.Len(); n != 1 {
			t.Fatalf("%d index entries, want 1", n)
		}
		if got := r.idx.Match(strings.Replace(b.filter, "+", "z", 1), nil); len(got) != 1 || got[0] != b.entry {
			t.Fatalf("the entry is not under its filter %q: %v", b.filter, got)
		}
	}
}
