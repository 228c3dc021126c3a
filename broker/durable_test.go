package broker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// restart stops r and returns a new router restored from the same store,
// as a broker process restart does.
func restart(t *testing.T, r *Router, st store.Store, cfg Config) (*Router, RestoreStats) {
	t.Helper()
	if r != nil {
		r.Stop()
	}
	cfg.Store = st
	nr := New(cfg, nil)
	stats, err := nr.Restore()
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(nr.Stop)
	return nr, stats
}

// collectStored drains s until it has n deliveries or the deadline passes.
func collectStored(t *testing.T, s *Session, n int) []Delivery {
	t.Helper()
	var got []Delivery
	checkFor(t, "deliveries", func() bool {
		got = append(got, drained(s)...)
		if len(got) < n && s.Paging() {
			s.router.Refill(s)
		}
		return len(got) >= n
	})
	return got
}

// durableSub makes s a client-individual consumer of the durable
// subscription name on filter.
func durableSub(t *testing.T, r *Router, s *Session, filter, name string) {
	t.Helper()
	if err := r.SubscribeDurable(s, &Subscription{SubSpec: SubSpec{Key: "s", Filter: filter, QoS: AtLeastOnce, Ack: AckClientIndividual}}, name); err != nil {
		t.Fatalf("SubscribeDurable(%q, %q): %v", filter, name, err)
	}
}

func countStored(t *testing.T, st store.Store, id string) int {
	t.Helper()
	n, _, err := st.Count(id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A persistent session's offline messages are on disk once Publish
// returns, survive a restart, and are paged in, in order, when it resumes;
// an acknowledgement removes them.
func TestDurableOfflineAcrossRestart(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t/#")
	r.Close(p, CloseClientClosed)
	for _, b := range []string{"1", "2", "3"} {
		publishQoS(t, r, "t/x", b, AtLeastOnce)
	}
	publishQoS(t, r, "t/x", "qos0", AtMostOnce) // not kept offline
	if n := countStored(t, st, "p"); n != 3 {
		t.Fatalf("stored for p: %d, want 3", n)
	}

	r, stats := restart(t, r, st, Config{})
	if stats.Sessions != 1 || stats.Subs != 1 || stats.Queued != 3 {
		t.Fatalf("restore stats %+v, want 1 session, 1 sub, 3 queued", stats)
	}
	if n := r.Stats().StoredMsgs; n != 3 {
		t.Fatalf("Stats().StoredMsgs = %d, want 3", n)
	}
	p2 := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	if !p2.Resumed() {
		t.Fatal("resumed session not reported as Resumed")
	}
	got := collectStored(t, p2, 3)
	if b := deliveryBodies(got); !slices.Equal(b, []string{"1", "2", "3"}) {
		t.Fatalf("after restart: %q, want 1 2 3", b)
	}
	for _, d := range got {
		if d.Seq == 0 || d.Redelivered || d.Sub == nil || d.Sub.Session != p2 {
			t.Fatalf("paged delivery %+v: want Seq, p2's subscription, not redelivered (never sent)", d)
		}
		r.Ack(d)
	}
	// A message published now goes straight to the outbox (caught up).
	checkFor(t, "caught up", func() bool { return !p2.Paging() })
	publishQoS(t, r, "t/x", "4", AtLeastOnce)
	if b := drainedBodies(p2); !slices.Equal(b, []string{"4"}) {
		t.Fatalf("live after catch-up: %q", b)
	}
	r.Stop()
	if n := countStored(t, st, "p"); n != 1 {
		t.Fatalf("stored after acks: %d, want 1 (the unacknowledged 4)", n)
	}
}

// Messages committed but not yet acknowledged when a connection is taken
// over reach the new one exactly once, in order, with live ones after.
func TestDurableTakeoverPagesInOrder(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t")
	for _, b := range []string{"1", "2"} {
		publishQoS(t, r, "t", b, AtLeastOnce)
	}
	first := drained(p) // sent, never acknowledged
	if len(first) != 2 {
		t.Fatalf("online deliveries: %d", len(first))
	}
	for _, d := range first {
		p.NoteSent(d.Seq) // as the protocol does once it wrote them
	}
	publishQoS(t, r, "t", "3", AtLeastOnce) // still in p's outbox
	r.Close(p, CloseTransportError)
	p2 := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	publishQoS(t, r, "t", "4", AtLeastOnce)
	got := collectStored(t, p2, 4)
	checkFor(t, "caught up", func() bool { return !p2.Paging() })
	publishQoS(t, r, "t", "5", AtLeastOnce)
	got = append(got, drained(p2)...)
	if b := deliveryBodies(got); !slices.Equal(b, []string{"1", "2", "3", "4", "5"}) {
		t.Fatalf("after takeover: %q, want 1..5 once each", b)
	}
	// Only what the old connection wrote is a redelivery (MQTT DUP).
	for i, d := range got {
		if want := i < 2; d.Redelivered != want {
			t.Errorf("%s: Redelivered %v, want %v", d.Msg.Payload, d.Redelivered, want)
		}
	}
}

// A durable subscription (STOMP) collects messages while nobody consumes
// and across a restart; Unbind deletes it with its messages.
func TestDurableSubscriptionAcrossRestart(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	c := openSession(t, r, "c1")
	durableSub(t, r, c, "news/#", "cid/s")
	r.Close(c, CloseClientClosed)
	publishQoS(t, r, "news/a", "1", AtLeastOnce)
	publishQoS(t, r, "other", "x", AtLeastOnce)
	publishQoS(t, r, "news/b", "2", AtLeastOnce)

	r, stats := restart(t, r, st, Config{})
	if stats.QueueMsgs != 2 || stats.Subs != 1 {
		t.Fatalf("restore stats %+v, want 2 queue messages, 1 durable subscription", stats)
	}
	publishQoS(t, r, "news/c", "3", AtLeastOnce) // the binding is live before anyone subscribes
	c2 := openSession(t, r, "c2")
	durableSub(t, r, c2, "news/#", "cid/s")
	got := drained(c2)
	if b := deliveryBodies(got); !slices.Equal(b, []string{"1", "2", "3"}) {
		t.Fatalf("durable subscription after restart: %q", b)
	}
	r.Ack(got[0])
	// Unacknowledged ones come back after another restart.
	r, _ = restart(t, r, st, Config{})
	c3 := openSession(t, r, "c3")
	durableSub(t, r, c3, "news/#", "cid/s")
	if b := drainedBodies(c3); !slices.Equal(b, []string{"2", "3"}) {
		t.Fatalf("unacknowledged after restart: %q, want 2 3", b)
	}
	if err := r.Unbind(c3, "cid/s"); err != nil {
		t.Fatal(err)
	}
	publishQoS(t, r, "news/d", "4", AtLeastOnce)
	r, stats = restart(t, r, st, Config{})
	if stats.QueueMsgs != 0 || stats.Subs != 0 {
		t.Fatalf("after Unbind: %+v, want nothing", stats)
	}
	if err := r.Subscribe(openSession(t, r, "x"), &Subscription{SubSpec: SubSpec{Key: "k", Queue: DurableQueuePrefix + "cid/s"}}); !errors.Is(err, ErrInvalidQueue) {
		t.Fatalf("direct consumer of a durable queue: %v, want ErrInvalidQueue", err)
	}
}

// Queue (STOMP /queue/) messages are stored before Publish returns and
// redelivered after a restart until acknowledged.
func TestDurableQueueAcrossRestart(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	for _, b := range []string{"1", "2"} {
		if err := r.Publish(context.Background(), nil, &Message{Queue: "jobs", Payload: []byte(b), QoS: AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}
	r, stats := restart(t, r, st, Config{})
	if stats.QueueMsgs != 2 {
		t.Fatalf("restore stats %+v, want 2 queue messages", stats)
	}
	c := openSession(t, r, "c")
	if err := r.Subscribe(c, &Subscription{SubSpec: SubSpec{Key: "k", Queue: "jobs", QoS: AtLeastOnce, Ack: AckClientIndividual}}); err != nil {
		t.Fatal(err)
	}
	got := drained(c)
	if b := deliveryBodies(got); !slices.Equal(b, []string{"1", "2"}) {
		t.Fatalf("queue after restart: %q", b)
	}
	r.Ack(got[0])
	r.Ack(got[1])
	r.Stop()
	if p, _ := st.QueuePending("jobs", 0, 0); len(p) != 0 {
		t.Fatalf("acknowledged queue messages still stored: %d", len(p))
	}
}

func TestDurableRetainedAcrossRestart(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	for _, m := range []*Message{
		{Topic: "a", Payload: []byte("A"), Retain: true},
		{Topic: "b", Payload: []byte("B"), Retain: true, QoS: AtLeastOnce},
		{Topic: "b", Payload: nil, Retain: true}, // clears b
	} {
		if err := r.Publish(context.Background(), nil, m); err != nil {
			t.Fatal(err)
		}
	}
	r, stats := restart(t, r, st, Config{})
	if stats.Retained != 1 {
		t.Fatalf("restore stats %+v, want 1 retained", stats)
	}
	if got := r.Retained("#"); len(got) != 1 || string(got[0].Payload) != "A" {
		t.Fatalf("retained after restart: %v", got)
	}
}

// Past MaxOfflineMsgs a persistent session gets no more; the publisher is
// told (ErrQuotaExceeded) and other subscribers still get the message.
func TestDurableQuota(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{MaxOfflineMsgs: 2})
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	other := openSession(t, r, "o")
	topicSub(t, r, other, "k", "t")
	publishQoS(t, r, "t", "1", AtLeastOnce)
	publishQoS(t, r, "t", "2", AtLeastOnce)
	err := r.Publish(context.Background(), nil, &Message{Topic: "t", Payload: []byte("3"), QoS: AtLeastOnce})
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("third publish: %v, want ErrQuotaExceeded", err)
	}
	if b := drainedBodies(other); !slices.Equal(b, []string{"1", "2", "3"}) {
		t.Fatalf("other subscriber: %q", b)
	}
	if n := countStored(t, st, "p"); n != 2 {
		t.Fatalf("stored: %d, want 2", n)
	}
}

// A will of a session connected at a crash is published once after the
// restart, never again.
func TestDurableWillOnceAfterCrash(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	openOpts(t, r, "w", SessionOptions{Expiry: time.Hour, Will: &Message{Topic: "wills/w", Payload: []byte("gone"), QoS: AtLeastOnce}})
	// Crash: no Close, no Shutdown.
	r, _ = restart(t, r, st, Config{})
	watcher := openOpts(t, r, "watch", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, watcher, "wills/#")
	_ = watcher
	r2, stats := restart(t, r, st, Config{})
	_ = r2
	if stats.Wills != 0 {
		t.Fatalf("second restart published %d wills, want 0", stats.Wills)
	}

	// Once more, with the watcher subscribed before the crash.
	st2 := store.NewMemory()
	r, _ = restart(t, nil, st2, Config{})
	watch := openOpts(t, r, "watch", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, watch, "wills/#")
	r.Close(watch, CloseClientClosed)
	openOpts(t, r, "w", SessionOptions{Expiry: time.Hour, Will: &Message{Topic: "wills/w", Payload: []byte("gone"), QoS: AtLeastOnce}})
	r, stats = restart(t, r, st2, Config{})
	if stats.Wills != 1 {
		t.Fatalf("restart after crash published %d wills, want 1", stats.Wills)
	}
	if n := countStored(t, st2, "watch"); n != 1 {
		t.Fatalf("will stored for the offline watcher: %d, want 1", n)
	}
	if _, stats = restart(t, r, st2, Config{}); stats.Wills != 0 {
		t.Fatalf("next restart published %d wills, want 0", stats.Wills)
	}
}

// A session whose expiry passed while the broker was down is removed at
// startup with everything it had.
func TestDurableExpiryAcrossRestart(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	publishQoS(t, r, "t", "1", AtLeastOnce)
	r.Stop()
	s, _, err := st.GetSession("p")
	if err != nil {
		t.Fatal(err)
	}
	if s.ExpiresAt.IsZero() || s.ExpiresAt.Before(time.Now()) {
		t.Fatalf("offline session record ExpiresAt %v, want an hour ahead", s.ExpiresAt)
	}
	s.ExpiresAt = time.Now().Add(-time.Second) // as if the broker had been down for an hour
	if err := st.PutSession(s); err != nil {
		t.Fatal(err)
	}
	_, stats := restart(t, nil, st, Config{})
	if stats.Sessions != 0 || stats.Removed != 1 {
		t.Fatalf("restore stats %+v, want the expired session removed", stats)
	}
	if n := countStored(t, st, "p"); n != 0 {
		t.Fatalf("expired session's messages still stored: %d", n)
	}
}

// QoS 2 packet ids of a persistent session are on disk: inbound ones with
// the message, outbound ones at PUBREC, and come back after a restart.
func TestDurableQoS2Marks(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	sub := openOpts(t, r, "sub", SessionOptions{Expiry: time.Hour})
	s := &Subscription{SubSpec: SubSpec{Key: "t", Filter: "t", QoS: ExactlyOnce}}
	if _, _, err := r.SubscribeReplace(sub, s); err != nil {
		t.Fatal(err)
	}
	pub := openOpts(t, r, "pub", SessionOptions{Expiry: time.Hour})
	if err := r.PublishExactlyOnce(context.Background(), pub, &Message{Topic: "t", Payload: []byte("x"), QoS: ExactlyOnce}, 7); err != nil {
		t.Fatal(err)
	}
	d := drained(sub)[0]
	if err := r.ConfirmTaken([]Taken{{Delivery: d, PacketID: 42}}); err != nil {
		t.Fatal(err)
	}
	if n := countStored(t, st, "sub"); n != 0 {
		t.Fatalf("PUBREC left the message stored: %d", n)
	}
	r, _ = restart(t, r, st, Config{})
	released := func(st *SavedState) (ids []uint16) {
		for _, f := range st.Flights {
			if f.Released && f.Delivery.QoS == ExactlyOnce {
				ids = append(ids, f.ID)
			}
		}
		return ids
	}
	for id, want := range map[SessionID]*SavedState{"pub": {InboundIDs: []uint16{7}}, "sub": {Flights: []SavedFlight{{ID: 42}}}} {
		s2 := openOpts(t, r, id, SessionOptions{Expiry: time.Hour})
		got := s2.TakeState()
		if got == nil || !slices.Equal(got.InboundIDs, want.InboundIDs) || len(got.Flights) != len(want.Flights) ||
			(len(want.Flights) > 0 && !slices.Equal(released(got), []uint16{want.Flights[0].ID})) {
			t.Fatalf("%s restored state %+v, want %+v", id, got, want)
		}
		if id == "pub" {
			if err := r.ForgetInboundID(s2, 7); err != nil {
				t.Fatal(err)
			}
		} else {
			r.ForgetOutboundID(s2, 42)
		}
	}
	r.Stop()
	for _, id := range []string{"pub", "sub"} {
		if m, _ := st.Marks(id); len(m) != 0 {
			t.Fatalf("%s marks after release: %v", id, m)
		}
	}
}

// Byte limits: a persistent session's stored payload bytes
// (MaxOfflineBytes) and a queue's held bytes (MaxQueueBytes).
func TestDurableByteLimits(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{MaxOfflineBytes: 10, MaxQueueBytes: 10})
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	publishQoS(t, r, "t", "123456", AtLeastOnce)
	if err := r.Publish(context.Background(), nil, &Message{Topic: "t", Payload: []byte("12345"), QoS: AtLeastOnce}); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("6+5 bytes past a 10-byte session limit: %v, want ErrQuotaExceeded", err)
	}
	publishQoS(t, r, "t", "1234", AtLeastOnce) // 6+4 fits
	if n := countStored(t, st, "p"); n != 2 {
		t.Fatalf("stored %d, want 2", n)
	}
	// The limit holds after a restart (the store counts the bytes).
	r, _ = restart(t, r, st, Config{MaxOfflineBytes: 10, MaxQueueBytes: 10})
	if err := r.Publish(context.Background(), nil, &Message{Topic: "t", Payload: []byte("1"), QoS: AtLeastOnce}); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("after restart, a full session took more: %v", err)
	}

	send := func(body string) error {
		return r.Publish(context.Background(), nil, &Message{Queue: "q", Payload: []byte(body), QoS: AtLeastOnce})
	}
	if err := send("12345678"); err != nil {
		t.Fatal(err)
	}
	if err := send("123"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("8+3 bytes past a 10-byte queue: %v, want ErrQueueFull", err)
	}
	c := openSession(t, r, "c")
	if err := r.Subscribe(c, &Subscription{SubSpec: SubSpec{Key: "k", Queue: "q", QoS: AtLeastOnce, Ack: AckClientIndividual}}); err != nil {
		t.Fatal(err)
	}
	got := drained(c)
	if err := send("123"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("unacknowledged bytes still count: %v, want ErrQueueFull", err)
	}
	r.Ack(got[0])
	if err := send("123"); err != nil {
		t.Fatalf("after the ack: %v", err)
	}
}

// PublishBatch holds the limits within one batch: each message counts
// against them before the batch commits.
func TestDurableBatchLimits(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{MaxOfflineMsgs: 2, MaxQueueDepth: 2})
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	reqs := make([]PublishReq, 3)
	for i := range reqs {
		reqs[i].Msg = &Message{Topic: "t", Payload: []byte{byte('1' + i)}, QoS: AtLeastOnce}
	}
	r.PublishBatch(nil, reqs)
	if reqs[0].Err != nil || reqs[1].Err != nil || !errors.Is(reqs[2].Err, ErrQuotaExceeded) {
		t.Fatalf("batch of 3 into a 2-message session: %v %v %v", reqs[0].Err, reqs[1].Err, reqs[2].Err)
	}
	for i := range reqs {
		reqs[i] = PublishReq{Msg: &Message{Queue: "q", Payload: []byte{byte('1' + i)}, QoS: AtLeastOnce}}
	}
	r.PublishBatch(nil, reqs)
	if reqs[0].Err != nil || reqs[1].Err != nil || !errors.Is(reqs[2].Err, ErrQueueFull) {
		t.Fatalf("batch of 3 into a 2-message queue: %v %v %v", reqs[0].Err, reqs[1].Err, reqs[2].Err)
	}
	if n := countStored(t, st, "p"); n != 2 {
		t.Fatalf("stored for p: %d", n)
	}
	if q, _ := st.QueuePending("q", 0, 0); len(q) != 2 {
		t.Fatalf("stored in q: %d", len(q))
	}
}

// A consumer that drains each page at once and asks for the next one, as
// the MQTT write loop does, gets every stored message: a Refill that
// arrives while the previous page is still being pushed is not lost.
func TestDurableRefillNeverStalls(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{MaxOfflineMsgs: 1 << 20, MaxPendingMsgs: 40})
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	const total = 5000
	reqs := make([]PublishReq, total)
	for i := range reqs {
		reqs[i].Msg = &Message{Topic: "t", Payload: []byte{byte(i)}, QoS: AtLeastOnce}
	}
	r.PublishBatch(nil, reqs)
	p2 := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	got := 0
	var last uint64
	for got < total {
		msgs := drained(p2)
		for _, d := range msgs {
			if d.Seq <= last {
				t.Fatalf("seq %d after %d: out of order or repeated", d.Seq, last)
			}
			last = d.Seq
			r.Ack(d)
		}
		got += len(msgs)
		r.Refill(p2) // every drain asks for more, like the write loop
		if len(msgs) == 0 && got < total {
			select {
			case <-p2.Outbox.Notify():
			case <-time.After(5 * time.Second):
				t.Fatalf("stalled at %d of %d (paging %v)", got, total, p2.Paging())
			}
		}
	}
}

// blockingStore holds each Commit until the test releases it.
type blockingStore struct {
	*store.Memory
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) Commit(bt *store.Batch) ([]uint64, error) {
	if bt.Msg != nil {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Memory.Commit(bt)
}

// A clean start waits for a commit under way for the old session before
// deleting its records: the message does not land under the new session.
func TestDurableCleanStartWaitsForCommit(t *testing.T) {
	bs := &blockingStore{Memory: store.NewMemory(), entered: make(chan struct{}), release: make(chan struct{})}
	r, _ := restart(t, nil, bs, Config{})
	p := openOpts(t, r, "x", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	published := make(chan error, 1)
	go func() {
		published <- r.Publish(context.Background(), nil, &Message{Topic: "t", Payload: []byte("old"), QoS: AtLeastOnce})
	}()
	<-bs.entered // the commit for the old session is under way
	waits := make(chan struct{}, 1)
	testHookRetireWaits = func() { waits <- struct{}{} }
	t.Cleanup(func() { testHookRetireWaits = nil })
	opened := make(chan *Session, 1)
	go func() {
		s, err := r.Open("x", SessionOptions{Protocol: "test", Expiry: time.Hour, CleanStart: true})
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	select {
	case <-waits: // the clean start waits for the commit
	case <-opened:
		t.Fatal("the clean start did not wait for the commit under way")
	}
	// Let the commit through; the clean start then deletes what it wrote.
	close(bs.release)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	s := <-opened
	if n := countStored(t, bs, "x"); n != 0 {
		t.Fatalf("after the clean start %d message(s) of the old session stored for x", n)
	}
	if b := drainedBodies(s); len(b) != 0 {
		t.Fatalf("clean session got %q", b)
	}
}

// MQTT 5 CleanStart 0 with Session Expiry 0 resumes the stored messages
// (they are paged in, not deleted first) and the session ends with the
// connection, on disk too.
func TestDurableResumeWithExpiryZero(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	p := openOpts(t, r, "z", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	publishQoS(t, r, "t", "kept", AtLeastOnce)
	p2 := openOpts(t, r, "z", SessionOptions{}) // expiry 0, not a clean start
	if b := deliveryBodies(collectStored(t, p2, 1)); len(b) != 1 || b[0] != "kept" {
		t.Fatalf("resumed with expiry 0: %q, want kept", b)
	}
	r.Close(p2, CloseClientClosed)
	if _, _, err := st.GetSession("z"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session record after its last connection: %v, want ErrNotFound", err)
	}
	if n := countStored(t, st, "z"); n != 0 {
		t.Fatalf("%d messages still stored", n)
	}
}

// Deleting a durable subscription removes every stored message of it, even
// one whose acknowledgement has not reached the store yet; after a crash
// in between, the restart removes what is left, and a new subscription
// with the same name starts empty.
func TestDurableUnbindRemovesEverything(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	c := openSession(t, r, "c")
	durableSub(t, r, c, "t", "n")
	qname := DurableQueuePrefix + "n"
	// A message acknowledged in memory whose removal is still queued:
	// only the store has it.
	m := store.Msg{Topic: "t", Payload: []byte("acked"), QoS: 1}
	if _, err := st.Commit(&store.Batch{Msg: &m, Queues: []string{qname}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Unbind(c, "n"); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.QueuePending(qname, 0, 0); len(p) != 0 {
		t.Fatalf("%d stored messages left after Unbind", len(p))
	}

	// A crash between the binding's removal and its messages': the
	// restart finishes the job.
	if _, err := st.Commit(&store.Batch{Msg: &m, Queues: []string{qname}}); err != nil {
		t.Fatal(err)
	}
	r, stats := restart(t, r, st, Config{})
	if stats.QueueMsgs != 0 {
		t.Fatalf("restored %d messages of a deleted durable subscription", stats.QueueMsgs)
	}
	c2 := openSession(t, r, "c2")
	durableSub(t, r, c2, "t", "n")
	if b := drainedBodies(c2); len(b) != 0 {
		t.Fatalf("new durable subscription got %q", b)
	}
}
