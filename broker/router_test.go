package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/internal/testutil"
)

// checkFor polls cond until it holds or 5 s pass.
func checkFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, cond)
}

func openSession(t testing.TB, r *Router, id SessionID) *Session {
	t.Helper()
	s, err := r.Open(id, SessionOptions{Protocol: "test", RemoteAddr: "test"})
	if err != nil {
		t.Fatalf("Open(%q): %v", id, err)
	}
	return s
}

func topicSub(t testing.TB, r *Router, s *Session, key, filter string) *Subscription {
	t.Helper()
	sub := &Subscription{SubSpec: SubSpec{Key: key, Filter: filter, QoS: AtLeastOnce}}
	if err := r.Subscribe(s, sub); err != nil {
		t.Fatalf("Subscribe(%q, %q): %v", key, filter, err)
	}
	return sub
}

func publishTopic(t testing.TB, r *Router, from *Session, topic, body string) {
	t.Helper()
	m := &Message{Topic: topic, Payload: []byte(body), QoS: AtLeastOnce}
	if err := r.Publish(context.Background(), from, m); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

// drained takes every delivery queued for s.
func drained(s *Session) []Delivery {
	_, msgs, _ := s.Outbox.Drain(nil, nil)
	return msgs
}

func drainedBodies(s *Session) []string { return deliveryBodies(drained(s)) }

func TestRouterPublishMatching(t *testing.T) {
	r := New(Config{}, nil)
	a := openSession(t, r, "a")
	b := openSession(t, r, "b")
	c := openSession(t, r, "c")
	subA := topicSub(t, r, a, "1", "sensors/+/temp")
	topicSub(t, r, b, "1", "sensors/#")
	topicSub(t, r, c, "1", "other")

	publishTopic(t, r, nil, "sensors/k1/temp", "21.5")
	publishTopic(t, r, nil, "sensors/k1/hum", "40")

	da := drained(a)
	if got := deliveryBodies(da); !sameStrings(got, []string{"21.5"}) {
		t.Errorf("a got %q, want [21.5]", got)
	}
	if len(da) == 1 {
		if da[0].Sub != subA || da[0].Msg.Topic != "sensors/k1/temp" || da[0].Msg.ID == 0 {
			t.Errorf("a's delivery = sub %p topic %q id %d, want sub %p, the topic, an id", da[0].Sub, da[0].Msg.Topic, da[0].Msg.ID, subA)
		}
	}
	if got := drainedBodies(b); !sameStrings(got, []string{"21.5", "40"}) {
		t.Errorf("b got %q, want [21.5 40]", got)
	}
	if got := drainedBodies(c); len(got) != 0 {
		t.Errorf("c got %q, want nothing", got)
	}
	st := r.Stats()
	if st.Published != 2 || st.Delivered != 3 || st.Sessions != 3 || st.Subscriptions != 3 {
		t.Errorf("Stats = %+v, want Published 2, Delivered 3, Sessions 3, Subscriptions 3", st)
	}
}

func TestRouterDeliveryQoS(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "q0", Filter: "t", QoS: AtMostOnce}}); err != nil {
		t.Fatal(err)
	}
	publishTopic(t, r, nil, "t", "x") // QoS 1 message
	ds := drained(s)
	if len(ds) != 1 || ds[0].QoS != AtMostOnce {
		t.Fatalf("deliveries = %+v, want one at the granted QoS 0", ds)
	}
}

func TestRouterPublishInvalidTopic(t *testing.T) {
	r := New(Config{}, nil)
	for _, topic := range []string{"", "a/+", "a/#", "a\x00b"} {
		err := r.Publish(context.Background(), nil, &Message{Topic: topic})
		if !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Publish(%q) = %v, want ErrInvalidTopic", topic, err)
		}
	}
	s := openSession(t, r, "s")
	if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "k", Filter: "a/#/b"}}); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("Subscribe(a/#/b) = %v, want ErrInvalidFilter", err)
	}
}

func TestRouterNoLocal(t *testing.T) {
	r := New(Config{}, nil)
	a := openSession(t, r, "a")
	b := openSession(t, r, "b")
	if err := r.Subscribe(a, &Subscription{SubSpec: SubSpec{Key: "k", Filter: "chat", QoS: AtLeastOnce, NoLocal: true}}); err != nil {
		t.Fatal(err)
	}
	topicSub(t, r, b, "k", "chat")

	publishTopic(t, r, a, "chat", "from-a")
	publishTopic(t, r, b, "chat", "from-b")

	if got := drainedBodies(a); !sameStrings(got, []string{"from-b"}) {
		t.Errorf("no-local subscriber got %q, want only [from-b]", got)
	}
	if got := drainedBodies(b); !sameStrings(got, []string{"from-a", "from-b"}) {
		t.Errorf("b got %q, want [from-a from-b] (no-local is per subscription)", got)
	}
}

func TestRouterUnsubscribe(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	topicSub(t, r, s, "k", "t")
	topicSub(t, r, s, "k2", "t")
	publishTopic(t, r, nil, "t", "1")
	if got := drainedBodies(s); len(got) != 2 {
		t.Fatalf("before Unsubscribe got %q, want two deliveries", got)
	}
	if err := r.Unsubscribe(s, "k"); err != nil {
		t.Fatal(err)
	}
	if s.Subscription("k") != nil {
		t.Error("Subscription(k) still set after Unsubscribe")
	}
	publishTopic(t, r, nil, "t", "2")
	if got := drainedBodies(s); !sameStrings(got, []string{"2"}) {
		t.Errorf("after Unsubscribe(k) got %q, want one delivery through k2", got)
	}
	if err := r.Unsubscribe(s, "k"); !errors.Is(err, ErrNoSuchSub) {
		t.Errorf("second Unsubscribe = %v, want ErrNoSuchSub", err)
	}
	if n := r.Stats().Subscriptions; n != 1 {
		t.Errorf("Stats().Subscriptions = %d, want 1", n)
	}
}

func TestRouterDuplicateSub(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	topicSub(t, r, s, "k", "a")
	if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "k", Filter: "b"}}); !errors.Is(err, ErrDuplicateSub) {
		t.Fatalf("Subscribe with a used key = %v, want ErrDuplicateSub", err)
	}
	if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "k", Queue: "q"}}); !errors.Is(err, ErrDuplicateSub) {
		t.Fatalf("queue Subscribe with a used key = %v, want ErrDuplicateSub", err)
	}
	publishTopic(t, r, nil, "b", "x")
	if got := drainedBodies(s); len(got) != 0 {
		t.Errorf("the refused subscription receives: %q", got)
	}
	if n := r.Stats().Subscriptions; n != 1 {
		t.Errorf("Stats().Subscriptions = %d, want 1", n)
	}
	// Another session may use the same key.
	other := openSession(t, r, "o")
	topicSub(t, r, other, "k", "a")
}

func TestRouterMaxSubsPerSession(t *testing.T) {
	r := New(Config{MaxSubsPerSession: 2}, nil)
	s := openSession(t, r, "s")
	topicSub(t, r, s, "1", "a")
	topicSub(t, r, s, "2", "b")
	if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "3", Filter: "c"}}); !errors.Is(err, ErrTooManySubs) {
		t.Fatalf("third Subscribe = %v, want ErrTooManySubs", err)
	}
	if n := r.Stats().Subscriptions; n != 2 {
		t.Errorf("Stats().Subscriptions = %d, want 2", n)
	}
	if err := r.Unsubscribe(s, "1"); err != nil {
		t.Fatal(err)
	}
	topicSub(t, r, s, "3", "c") // room again
	// The limit is per session.
	topicSub(t, r, openSession(t, r, "o"), "1", "a")
}

// TestRouterSlowConsumer: a subscriber that does not drain is closed with
// CloseSlowConsumer once its outbox is full; the others keep receiving.
func TestRouterSlowConsumer(t *testing.T) {
	r := New(Config{MaxPendingMsgs: 2}, nil)
	slow := openSession(t, r, "slow")
	fast := openSession(t, r, "fast")
	topicSub(t, r, slow, "k", "t")
	topicSub(t, r, fast, "k", "t")

	var fastGot []string
	for i := range 5 {
		publishTopic(t, r, nil, "t", fmt.Sprint(i))
		fastGot = append(fastGot, drainedBodies(fast)...)
		if i < 2 && slow.Closed() {
			t.Fatalf("slow closed after %d messages, within its limit of 2", i+1)
		}
	}
	if !sameStrings(fastGot, []string{"0", "1", "2", "3", "4"}) {
		t.Errorf("fast consumer got %q, want all five", fastGot)
	}
	if !slow.Closed() || slow.Reason() != CloseSlowConsumer {
		t.Fatalf("slow: closed %v reason %v, want closed as %v", slow.Closed(), slow.Reason(), CloseSlowConsumer)
	}
	select {
	case <-slow.Done():
	default:
		t.Error("slow.Done() not closed")
	}
	if fast.Closed() {
		t.Errorf("fast closed: %v", fast.Reason())
	}
	st := r.Stats()
	if st.SlowConsumers != 1 {
		t.Errorf("Stats().SlowConsumers = %d, want 1 (counted once)", st.SlowConsumers)
	}
	if st.Delivered != 7 {
		t.Errorf("Stats().Delivered = %d, want 7 (5 fast + 2 slow)", st.Delivered)
	}
	// What was queued before the close is still there for the final flush.
	ctrl, msgs, closed := slow.Outbox.Drain(nil, nil)
	if !closed || len(msgs) != 2 || len(ctrl) != 0 {
		t.Errorf("slow outbox: closed %v, %d msgs, %d ctrl; want closed with the 2 queued", closed, len(msgs), len(ctrl))
	}
	r.Close(slow, CloseSlowConsumer)
	if n := r.Stats().Subscriptions; n != 1 {
		t.Errorf("after Router.Close(slow): Subscriptions = %d, want 1", n)
	}
}

// TestRouterPublishNeverBlocks publishes far more than a stuck subscriber's
// outbox holds; Publish must keep returning.
func TestRouterPublishNeverBlocks(t *testing.T) {
	const n = 20000
	r := New(Config{MaxPendingMsgs: 8, MaxPendingBytes: 1 << 10}, nil)
	var stuck []*Session
	for i := range 3 {
		s := openSession(t, r, SessionID(fmt.Sprint("stuck", i)))
		topicSub(t, r, s, "k", "t/#")
		stuck = append(stuck, s)
	}
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := r.Publish(context.Background(), nil, &Message{Topic: "t/x", Payload: []byte{byte(i)}, QoS: AtLeastOnce}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Publish blocked on subscribers that never drain")
	}
	for _, s := range stuck {
		if s.Reason() != CloseSlowConsumer {
			t.Errorf("%s: reason %v, want %v", s.ID, s.Reason(), CloseSlowConsumer)
		}
	}
	if st := r.Stats(); st.SlowConsumers != 3 || st.Published != n {
		t.Errorf("Stats: SlowConsumers %d Published %d, want 3, %d", st.SlowConsumers, st.Published, n)
	}
}

func TestRouterSlowConsumerDropNewest(t *testing.T) {
	r := New(Config{MaxPendingMsgs: 2, SlowConsumer: SlowConsumerDropNewest}, nil)
	s := openSession(t, r, "s")
	topicSub(t, r, s, "k", "t")
	pub := func(body string, qos QoS) {
		t.Helper()
		if err := r.Publish(context.Background(), nil, &Message{Topic: "t", Payload: []byte(body), QoS: qos}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		pub(fmt.Sprint(i), AtMostOnce)
	}
	if s.Closed() {
		t.Fatalf("QoS 0 overflow under DropNewest closed the session: %v", s.Reason())
	}
	st := r.Stats()
	if st.Dropped != 3 || st.Delivered != 2 || st.SlowConsumers != 0 {
		t.Errorf("Stats: Dropped %d Delivered %d SlowConsumers %d, want 3, 2, 0", st.Dropped, st.Delivered, st.SlowConsumers)
	}
	// A QoS 1 delivery cannot be dropped: the subscriber is disconnected.
	pub("qos1", AtLeastOnce)
	if s.Reason() != CloseSlowConsumer {
		t.Fatalf("QoS 1 overflow: reason %v, want %v", s.Reason(), CloseSlowConsumer)
	}
	st = r.Stats()
	if st.SlowConsumers != 1 || st.Dropped != 3 {
		t.Errorf("Stats after QoS 1 overflow: SlowConsumers %d Dropped %d, want 1, 3", st.SlowConsumers, st.Dropped)
	}
	if got := drainedBodies(s); !sameStrings(got, []string{"0", "1"}) {
		t.Errorf("queued = %q, want the first two (newest dropped)", got)
	}
}

func TestParseSlowConsumerPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SlowConsumerPolicy
		ok   bool
	}{
		{"", SlowConsumerDisconnect, true},
		{"disconnect", SlowConsumerDisconnect, true},
		{"drop", SlowConsumerDropNewest, true},
		{"drop-newest", SlowConsumerDropNewest, true},
		{"block", 0, false},
	} {
		got, err := ParseSlowConsumerPolicy(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSlowConsumerPolicy(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestRouterCloseDetaches(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	other := openSession(t, r, "o")
	topicSub(t, r, s, "1", "a")
	topicSub(t, r, s, "2", "b/#")
	topicSub(t, r, other, "1", "a")
	if n := r.Stats().Subscriptions; n != 3 {
		t.Fatalf("Subscriptions = %d, want 3", n)
	}
	r.Close(s, CloseClientClosed)
	if s.Reason() != CloseClientClosed {
		t.Errorf("Reason = %v, want %v", s.Reason(), CloseClientClosed)
	}
	st := r.Stats()
	if st.Subscriptions != 1 || st.Sessions != 1 {
		t.Errorf("after Close: Subscriptions %d Sessions %d, want 1, 1", st.Subscriptions, st.Sessions)
	}
	if s.Subscription("1") != nil {
		t.Error("closed session still lists its subscription")
	}
	publishTopic(t, r, nil, "a", "x")
	if got := drainedBodies(other); len(got) != 1 {
		t.Errorf("other got %q, want one", got)
	}
	if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "3", Filter: "c"}}); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Subscribe on a closed session = %v, want ErrSessionClosed", err)
	}
	r.Close(s, CloseProtocolError) // idempotent; the first reason stays
	if s.Reason() != CloseClientClosed {
		t.Errorf("second Close changed the reason to %v", s.Reason())
	}
	r.Close(other, CloseClientClosed)
	if st := r.Stats(); st.Subscriptions != 0 || st.Sessions != 0 {
		t.Errorf("all closed: Subscriptions %d Sessions %d, want 0, 0", st.Subscriptions, st.Sessions)
	}
}

func TestRouterTakeover(t *testing.T) {
	r := New(Config{}, nil)
	first := openSession(t, r, "client-1")
	topicSub(t, r, first, "k", "t")
	second := openSession(t, r, "client-1")
	if first == second {
		t.Fatal("Open returned the same session twice")
	}
	if !first.Closed() || first.Reason() != CloseTakenOver {
		t.Fatalf("first session: closed %v reason %v, want %v", first.Closed(), first.Reason(), CloseTakenOver)
	}
	if second.Closed() {
		t.Fatalf("second session closed: %v", second.Reason())
	}
	st := r.Stats()
	if st.Sessions != 1 || st.Subscriptions != 0 {
		t.Errorf("after takeover: Sessions %d Subscriptions %d, want 1, 0", st.Sessions, st.Subscriptions)
	}
	topicSub(t, r, second, "k", "t") // the key is free in the new session
	// The old connection's read loop detaching late must not remove the
	// new session.
	r.Close(first, CloseTakenOver)
	if st := r.Stats(); st.Sessions != 1 || st.Subscriptions != 1 {
		t.Errorf("after the old session's Close: Sessions %d Subscriptions %d, want 1, 1", st.Sessions, st.Subscriptions)
	}
	publishTopic(t, r, nil, "t", "x")
	if got := drainedBodies(second); len(got) != 1 {
		t.Errorf("second got %q, want one delivery", got)
	}
}

func TestRouterOpenGeneratesIDs(t *testing.T) {
	r := New(Config{}, nil)
	a := openSession(t, r, "")
	b := openSession(t, r, "")
	if a.ID == "" || b.ID == "" || a.ID == b.ID {
		t.Fatalf("generated ids %q, %q: want distinct and non-empty", a.ID, b.ID)
	}
	if a.Closed() {
		t.Fatal("a generated id took over another session")
	}
}

func TestRouterShutdown(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Reason() != CloseServerShutdown {
		t.Errorf("Reason = %v, want %v", s.Reason(), CloseServerShutdown)
	}
	if _, err := r.Open("n", SessionOptions{}); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("Open after Shutdown = %v, want ErrShuttingDown", err)
	}
}

// TestRouterConcurrent runs publishers, draining subscribers and
// subscription churn at once, for the race detector.
func TestRouterConcurrent(t *testing.T) {
	const pubs, subs, each = 4, 4, 500
	r := New(Config{MaxPendingMsgs: pubs * each * 2, MaxPendingBytes: 1 << 30}, nil)
	var sessions []*Session
	for i := range subs {
		s := openSession(t, r, SessionID(fmt.Sprint("sub", i)))
		topicSub(t, r, s, "k", "load/+")
		sessions = append(sessions, s)
	}
	var wg sync.WaitGroup
	counts := make([]int, subs)
	stop := make(chan struct{})
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msgs []Delivery
			var ctrl [][]byte
			for counts[i] < pubs*each {
				select {
				case <-s.Outbox.Notify():
				case <-stop:
					return
				}
				ctrl, msgs, _ = s.Outbox.Drain(ctrl, msgs)
				counts[i] += len(msgs)
				clear(msgs)
			}
		}()
	}
	var pwg sync.WaitGroup
	for p := range pubs {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			from := openSession(t, r, SessionID(fmt.Sprint("pub", p)))
			for i := range each {
				m := &Message{Topic: fmt.Sprintf("load/%d", p), Payload: []byte{byte(i)}, QoS: AtLeastOnce}
				if err := r.Publish(context.Background(), from, m); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 { // churn: subscribe and unsubscribe alongside
					key := fmt.Sprint("churn", i)
					if err := r.Subscribe(from, &Subscription{SubSpec: SubSpec{Key: key, Filter: "load/#"}}); err != nil {
						t.Error(err)
						return
					}
					_ = r.Stats()
					if err := r.Unsubscribe(from, key); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	pwg.Wait()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		close(stop)
		<-finished
	}
	for i, n := range counts {
		if n != pubs*each {
			t.Errorf("subscriber %d got %d deliveries, want %d", i, n, pubs*each)
		}
	}
	for _, s := range sessions {
		if s.Closed() {
			t.Errorf("%s closed: %v", s.ID, s.Reason())
		}
	}
}

// BenchmarkPublishFanout publishes to one topic with 1, 100 and 1000
// subscribers and drains every subscriber's outbox in the loop, as the write
// loops would.
func BenchmarkPublishFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			r := New(Config{}, nil)
			sessions := make([]*Session, n)
			for i := range sessions {
				sessions[i] = openSession(b, r, "")
				topicSub(b, r, sessions[i], "k", "bench/+/temp")
			}
			ctrl := make([][][]byte, n)
			msgs := make([][]Delivery, n)
			// One message reused: every delivery of the previous iteration
			// has been drained before Publish writes its ID again.
			m := &Message{Topic: "bench/k1/temp", Payload: make([]byte, 64), QoS: AtLeastOnce}
			ctx := context.Background()
			iters := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := r.Publish(ctx, nil, m); err != nil {
					b.Fatal(err)
				}
				for i, s := range sessions {
					ctrl[i], msgs[i], _ = s.Outbox.Drain(ctrl[i], msgs[i])
					if len(msgs[i]) != 1 {
						b.Fatalf("subscriber %d drained %d deliveries, want 1", i, len(msgs[i]))
					}
					clear(msgs[i])
				}
				iters++
			}
			b.StopTimer()
			if st := r.Stats(); st.Delivered != uint64(iters*n) || st.SlowConsumers != 0 {
				b.Fatalf("Delivered %d SlowConsumers %d, want %d, 0", st.Delivered, st.SlowConsumers, iters*n)
			}
		})
	}
}
