package broker

import (
	"context"
	"strings"
	"testing"

	"github.com/duplexmq/duplex/store"
)

// prop returns the value of the first property key of m.
func prop(m *Message, key string) string {
	for _, p := range m.Props {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

// wantDead checks a dead-lettered delivery's headers.
func wantDead(t *testing.T, d Delivery, body, reason, from, orig, count string) {
	t.Helper()
	m := d.Msg
	got := []string{string(m.Payload), prop(m, HeaderDeathReason), prop(m, HeaderDeathQueue),
		prop(m, HeaderOriginalDestination), prop(m, HeaderDeliveryCount)}
	want := []string{body, reason, from, orig, count}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("dead letter (body, reason, queue, destination, count) = %q, want %q; props %v", got, want, m.Props)
		}
	}
}

// A NACK with requeue:false (Reject) moves the message to DLQ.<queue> with
// headers saying why and from where, keeping its own; it is counted.
func TestDeadLetterReject(t *testing.T) {
	r := New(Config{}, nil)
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "orders", AckClientIndividual, 0)
	m := &Message{Queue: "orders", Payload: []byte("poison"), QoS: AtLeastOnce, ContentType: "text/plain",
		Props: []Property{{Key: "x-app", Value: "1"}, {Key: HeaderDeathReason, Value: "old"}}}
	if err := r.Publish(context.Background(), nil, m); err != nil {
		t.Fatal(err)
	}
	ds := drained(c)
	if len(ds) != 1 || ds[0].Redelivered {
		t.Fatalf("first delivery %+v, want one, not redelivered", ds)
	}
	r.Reject(ds[0])
	wantQueue(t, r, "orders", 0, 0, 1)
	wantQueue(t, r, "DLQ.orders", 1, 0, 0)
	if got := drained(c); len(got) != 0 {
		t.Fatalf("rejected message delivered again: %q", deliveryBodies(got))
	}
	d := openSession(t, r, "d")
	queueConsumer(t, r, d, "k", "DLQ.orders", AckClientIndividual, 0)
	dead := drained(d)
	if len(dead) != 1 {
		t.Fatalf("DLQ consumer got %d messages, want 1", len(dead))
	}
	wantDead(t, dead[0], "poison", DeathRejected, "orders", "/queue/orders", "1")
	dm := dead[0].Msg
	if dm.Queue != "DLQ.orders" || dm.ContentType != "text/plain" || prop(dm, "x-app") != "1" {
		t.Fatalf("dead letter %+v lost the original's fields", dm)
	}
	if n := strings.Count(propKeys(dm), HeaderDeathReason); n != 1 {
		t.Fatalf("dead letter carries %d %s headers, want 1: %v", n, HeaderDeathReason, dm.Props)
	}
	if st := r.Stats(); st.DeadLettered != 1 || st.DeadLetterDropped != 0 {
		t.Fatalf("DeadLettered %d, DeadLetterDropped %d; want 1, 0", st.DeadLettered, st.DeadLetterDropped)
	}
	if ct := r.Counters(); ct.DeadLettered != 1 || ct.DeadLetterDropped != 0 {
		t.Fatalf("Counters: DeadLettered %d, DeadLetterDropped %d; want 1, 0", ct.DeadLettered, ct.DeadLetterDropped)
	}
	if m.Queue != "orders" || len(m.Props) != 2 {
		t.Fatal("dead-lettering modified the original message")
	}

	// Never loop: a dead letter rejected again is dropped, counted.
	r.Reject(dead[0])
	wantQueue(t, r, "DLQ.orders", 0, 0, 1)
	if _, ok := r.Queue("DLQ.DLQ.orders"); ok {
		t.Fatal("a dead letter was dead-lettered again")
	}
	if st := r.Stats(); st.DeadLettered != 1 || st.DeadLetterDropped != 1 {
		t.Fatalf("DeadLettered %d, DeadLetterDropped %d; want 1, 1", st.DeadLettered, st.DeadLetterDropped)
	}
}

func propKeys(m *Message) string {
	var b strings.Builder
	for _, p := range m.Props {
		b.WriteString(p.Key + " ")
	}
	return b.String()
}

// A consumer that NACKs for ever gets the message MaxRedeliveries+1 times;
// then it is in the dead-letter queue.
func TestDeadLetterMaxRedeliveries(t *testing.T) {
	r := New(Config{MaxRedeliveries: 3}, nil)
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "q", AckClientIndividual, 1)
	publishQueue(t, r, nil, "q", "p")
	publishQueue(t, r, nil, "q", "next")
	got := 0
	for {
		ds := drained(c)
		if len(ds) != 1 {
			t.Fatalf("delivery %d: got %d", got+1, len(ds))
		}
		if string(ds[0].Msg.Payload) != "p" {
			break
		}
		got++
		if ds[0].Redelivered != (got > 1) {
			t.Fatalf("delivery %d: redelivered %v", got, ds[0].Redelivered)
		}
		r.Redeliver(ds[0]) // NACK
	}
	if got != 4 {
		t.Fatalf("delivered %d times, want MaxRedeliveries+1 = 4", got)
	}
	wantQueue(t, r, "DLQ.q", 1, 0, 0)
	d := openSession(t, r, "d")
	queueConsumer(t, r, d, "k", "DLQ.q", AckAuto, 0)
	wantDead(t, drained(d)[0], "p", DeathDeliveryLimit, "q", "/queue/q", "4")
}

// A consumer that leaves holding the message counts as a return too (a
// message that crashes its consumer is the classic poison message).
func TestDeadLetterConsumerLeaves(t *testing.T) {
	r := New(Config{MaxRedeliveries: 1}, nil)
	a := openSession(t, r, "a")
	queueConsumer(t, r, a, "k", "q", AckClient, 0)
	publishQueue(t, r, nil, "q", "p")
	drained(a)
	r.Close(a, CloseTransportError) // return 1: back in the queue
	wantQueue(t, r, "q", 1, 0, 0)
	b := openSession(t, r, "b")
	queueConsumer(t, r, b, "k", "q", AckClient, 0)
	if ds := drained(b); len(ds) != 1 || !ds[0].Redelivered {
		t.Fatalf("b got %+v, want the redelivery", ds)
	}
	if err := r.Unsubscribe(b, "k"); err != nil { // return 2: past the limit
		t.Fatal(err)
	}
	wantQueue(t, r, "q", 0, 0, 0)
	wantQueue(t, r, "DLQ.q", 1, 0, 0)
	// No limit: negative.
	r = New(Config{MaxRedeliveries: -1}, nil)
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "q", AckClient, 0)
	publishQueue(t, r, nil, "q", "p")
	for range DefaultMaxRedeliveries + 5 {
		ds := drained(c)
		if len(ds) != 1 {
			t.Fatal("message gone with no redelivery limit")
		}
		r.Redeliver(ds[0])
	}
}

// A copy goes to the topic $DLQ/<queue> for MQTT subscribers; '$' keeps it
// out of '#'.
func TestDeadLetterTopicCopy(t *testing.T) {
	r := New(Config{}, nil)
	mq := openSession(t, r, "mq")
	topicSub(t, r, mq, "dlq", "$DLQ/#")
	all := openSession(t, r, "all")
	topicSub(t, r, all, "all", "#")
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "jobs/eu", AckClientIndividual, 0)
	publishQueue(t, r, nil, "jobs/eu", "p")
	r.Reject(drained(c)[0])
	ds := drained(mq)
	if len(ds) != 1 || ds[0].Msg.Topic != "$DLQ/jobs/eu" || ds[0].Msg.Queue != "" {
		t.Fatalf("$DLQ/# subscriber got %+v, want one message on $DLQ/jobs/eu", ds)
	}
	wantDead(t, ds[0], "p", DeathRejected, "jobs/eu", "/queue/jobs/eu", "1")
	if got := drainedBodies(all); len(got) != 0 {
		t.Fatalf("# subscriber got the dead letter: %q", got)
	}

	// Configurable, and off.
	r = New(Config{DeadLetterPrefix: "dead-", DeadLetterTopic: "dead/", NoDeadLetterTopic: false}, nil)
	mq = openSession(t, r, "mq")
	topicSub(t, r, mq, "dlq", "dead/#")
	c = openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "q", AckClientIndividual, 0)
	publishQueue(t, r, nil, "q", "p")
	r.Reject(drained(c)[0])
	wantQueue(t, r, "dead-q", 1, 0, 0)
	if got := drained(mq); len(got) != 1 || got[0].Msg.Topic != "dead/q" {
		t.Fatalf("dead/# subscriber got %+v", got)
	}
	r = New(Config{NoDeadLetterTopic: true}, nil)
	mq = openSession(t, r, "mq")
	topicSub(t, r, mq, "dlq", "$DLQ/#")
	c = openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "q", AckClientIndividual, 0)
	publishQueue(t, r, nil, "q", "p")
	r.Reject(drained(c)[0])
	wantQueue(t, r, "DLQ.q", 1, 0, 0)
	if got := drained(mq); len(got) != 0 {
		t.Fatalf("topic copy with NoDeadLetterTopic: %+v", got)
	}
}

// What is dropped instead (counted): with NoDeadLetter, a temporary
// queue's message, a rejected topic delivery, and one whose dead-letter
// queue is full.
func TestDeadLetterDropped(t *testing.T) {
	r := New(Config{NoDeadLetter: true}, nil)
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "q", AckClientIndividual, 0)
	publishQueue(t, r, nil, "q", "p")
	r.Reject(drained(c)[0])
	wantQueue(t, r, "q", 0, 0, 1)
	if _, ok := r.Queue("DLQ.q"); ok {
		t.Fatal("NoDeadLetter made a dead-letter queue")
	}

	r = New(Config{MaxQueueDepth: 1}, nil)
	c = openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "q", AckClientIndividual, 0)
	publishQueue(t, r, nil, "q", "1")
	publishQueue(t, r, nil, "q", "2")
	for _, d := range drained(c) {
		r.Reject(d)
	}
	wantQueue(t, r, "DLQ.q", 1, 0, 0)
	if st := r.Stats(); st.DeadLettered != 1 || st.DeadLetterDropped != 1 {
		t.Fatalf("full DLQ: DeadLettered %d, DeadLetterDropped %d; want 1, 1", st.DeadLettered, st.DeadLetterDropped)
	}

	topicSub(t, r, c, "t", "t")
	publishTopic(t, r, nil, "t", "x")
	r.Reject(drained(c)[0])
	if got := drained(c); len(got) != 0 {
		t.Fatal("rejected topic delivery redelivered")
	}
	if st := r.Stats(); st.DeadLetterDropped != 2 {
		t.Fatalf("rejected topic delivery: DeadLetterDropped %d, want 2", st.DeadLetterDropped)
	}

	name, err := r.TempQueue(c)
	if err != nil {
		t.Fatal(err)
	}
	queueConsumer(t, r, c, "tq", name, AckClientIndividual, 0)
	publishQueue(t, r, nil, name, "reply")
	r.Reject(drained(c)[0])
	if _, ok := r.Queue("DLQ." + name); ok {
		t.Fatal("a temporary queue's message was dead-lettered")
	}
	if st := r.Stats(); st.DeadLetterDropped != 3 {
		t.Fatalf("temporary queue: DeadLetterDropped %d, want 3", st.DeadLetterDropped)
	}
}

// A durable subscription is a queue too: its rejected message goes to
// DLQ.<its queue name>, saying which topic it came from.
func TestDeadLetterDurableSubscription(t *testing.T) {
	r := New(Config{}, nil)
	c := openSession(t, r, "c")
	durableSub(t, r, c, "news/#", "n")
	publishTopic(t, r, nil, "news/eu", "p")
	r.Reject(drained(c)[0])
	qname := DurableQueuePrefix + "n"
	wantQueue(t, r, "DLQ."+qname, 1, 0, 0)
	d := openSession(t, r, "d")
	queueConsumer(t, r, d, "k", "DLQ."+qname, AckAuto, 0)
	dead := drained(d)
	wantDead(t, dead[0], "p", DeathRejected, qname, "/topic/news/eu", "1")
	if dead[0].Msg.Topic != "" || dead[0].Msg.Queue != "DLQ."+qname {
		t.Fatalf("dead letter topic %q queue %q, want a queue message", dead[0].Msg.Topic, dead[0].Msg.Queue)
	}
}

// With a store, the move is one commit: right after Reject the store has
// the message in the dead-letter queue and no longer in its own, and a
// restart restores it there with its headers.
func TestDeadLetterStored(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	cfg := Config{MaxRedeliveries: 1}
	r, _ := restart(t, nil, st, cfg)
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "orders", AckClientIndividual, 0)
	publishQueue(t, r, nil, "orders", "rejected")
	publishQueue(t, r, nil, "orders", "limit")
	publishQueue(t, r, nil, "orders", "kept")
	ds := drained(c)
	r.Reject(ds[0])
	r.Redeliver(ds[1])
	r.Redeliver(drained(c)[0]) // second return of "limit": dead-lettered
	pendingBodies := func(name string) []string {
		t.Helper()
		page, err := st.QueuePending(name, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, q := range page {
			out = append(out, string(q.Msg.Payload))
		}
		return out
	}
	if got := pendingBodies("orders"); !sameStrings(got, []string{"kept"}) {
		t.Fatalf("stored in orders: %q, want [kept]", got)
	}
	if got := pendingBodies("DLQ.orders"); !sameStrings(got, []string{"rejected", "limit"}) {
		t.Fatalf("stored in DLQ.orders: %q, want [rejected limit]", got)
	}

	// A crash now (no Stop: nothing else flushed) loses nothing.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = boltStore(t, dir)
	r, stats := restart(t, nil, st, cfg)
	if stats.QueueMsgs != 3 {
		t.Fatalf("restored %d queue messages, want 3", stats.QueueMsgs)
	}
	d := openSession(t, r, "d")
	queueConsumer(t, r, d, "k", "DLQ.orders", AckClientIndividual, 0)
	dead := drained(d)
	if len(dead) != 2 {
		t.Fatalf("restored DLQ delivered %q, want 2", deliveryBodies(dead))
	}
	wantDead(t, dead[0], "rejected", DeathRejected, "orders", "/queue/orders", "1")
	wantDead(t, dead[1], "limit", DeathDeliveryLimit, "orders", "/queue/orders", "2")
	for _, x := range dead {
		r.Ack(x)
	}
	r.Stop()
	if got := pendingBodies("DLQ.orders"); len(got) != 0 {
		t.Fatalf("acknowledged dead letters still stored: %q", got)
	}
}

// A store failure leaves the message in its own queue (in the store and
// in memory), not lost.
func TestDeadLetterStoreFailure(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "q", AckClientIndividual, 0)
	publishQueue(t, r, nil, "q", "p")
	d := drained(c)[0]
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r.Reject(d)
	ds := drained(c)
	if len(ds) != 1 || string(ds[0].Msg.Payload) != "p" || !ds[0].Redelivered {
		t.Fatalf("after a failed move got %+v, want p again", ds)
	}
	if st := r.Stats(); st.DeadLettered != 0 {
		t.Fatalf("DeadLettered %d after a failed move", st.DeadLettered)
	}
}

// A topic delivery NACKed for ever is sent MaxRedeliveries+1 times, then
// dropped (counted): no loop there either.
func TestDeadLetterTopicNackLimit(t *testing.T) {
	r := New(Config{MaxRedeliveries: 2}, nil)
	c := openSession(t, r, "c")
	topicSub(t, r, c, "k", "t")
	publishTopic(t, r, nil, "t", "p")
	n := 0
	for ds := drained(c); len(ds) == 1; ds = drained(c) {
		n++
		if ds[0].Redelivered != (n > 1) {
			t.Fatalf("delivery %d: redelivered %v", n, ds[0].Redelivered)
		}
		r.Nack(ds[0])
	}
	if n != 3 {
		t.Fatalf("topic delivery sent %d times, want MaxRedeliveries+1 = 3", n)
	}
	if st := r.Stats(); st.DeadLetterDropped != 1 || st.DeadLettered != 0 {
		t.Fatalf("DeadLetterDropped %d, DeadLettered %d; want 1, 0", st.DeadLetterDropped, st.DeadLettered)
	}
}
