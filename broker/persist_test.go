package broker

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openOpts(t testing.TB, r *Router, id SessionID, o SessionOptions) *Session {
	t.Helper()
	o.Protocol, o.RemoteAddr = "test", "test"
	s, err := r.Open(id, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", id, err)
	}
	return s
}

// mqttSub subscribes s to filter the MQTT way (key = filter) at QoS 1.
func mqttSub(t testing.TB, r *Router, s *Session, filter string) *Subscription {
	t.Helper()
	sub := &Subscription{SubSpec: SubSpec{Key: filter, Filter: filter, QoS: AtLeastOnce}}
	if _, _, err := r.SubscribeReplace(s, sub); err != nil {
		t.Fatalf("SubscribeReplace(%q): %v", filter, err)
	}
	return sub
}

func publishQoS(t testing.TB, r *Router, topic, body string, qos QoS) {
	t.Helper()
	if err := r.Publish(context.Background(), nil, &Message{Topic: topic, Payload: []byte(body), QoS: qos}); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

func offlineLen(s *Session) int {
	_, n := s.p.offlineInfo()
	return n
}

func sessionIDs(r *Router) []string {
	var ids []string
	for _, si := range r.Sessions() {
		ids = append(ids, si.ID)
	}
	return ids
}

// TestPersistSessionSurvivesClose: MQTT 3.1.1 §3.1.2.4 (Clean Session 0) /
// MQTT 5 §3.1.2.11.2 (Session Expiry Interval): the session and its
// subscriptions outlive the network connection.
func TestPersistSessionSurvivesClose(t *testing.T) {
	r := New(Config{}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	mqttSub(t, r, p, "t/+")
	r.Close(p, CloseClientClosed)
	if !p.Closed() || p.Reason() != CloseClientClosed {
		t.Fatalf("p: closed %v reason %v", p.Closed(), p.Reason())
	}
	if ids := sessionIDs(r); !slices.Equal(ids, []string{"p"}) {
		t.Fatalf("Sessions() = %q, want [p] (kept after its connection)", ids)
	}
	if st := r.Stats(); st.Sessions != 1 || st.Subscriptions != 1 {
		t.Fatalf("Stats: Sessions %d Subscriptions %d, want 1, 1", st.Sessions, st.Subscriptions)
	}
	if p.Subscription("t/+") == nil {
		t.Fatal("the kept session lost its subscription")
	}
	// A non-persistent session is removed as before.
	e := openSession(t, r, "e")
	topicSub(t, r, e, "k", "t/+")
	r.Close(e, CloseClientClosed)
	if ids := sessionIDs(r); !slices.Equal(ids, []string{"p"}) {
		t.Fatalf("Sessions() = %q after a clean session closed, want [p]", ids)
	}
	// Shutdown ends persistent sessions too.
	_ = r.Shutdown(context.Background())
}

// TestPersistOfflineQueueAndResume: while the client is disconnected the
// server keeps QoS 1 and 2 messages for its subscriptions and may keep QoS 0
// ones (MQTT 3.1.1 §3.1.2.4; Duplex does not). A reconnect with Clean Session
// 0 / Clean Start 0 resumes the session (Session Present, [MQTT-3.2.2-2]):
// its subscriptions deliver to the new connection, and the queued messages
// come first, in order [MQTT-4.6.0-6 ordered topic].
func TestPersistOfflineQueueAndResume(t *testing.T) {
	r := New(Config{}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	mqttSub(t, r, p, "t")
	if err := r.Subscribe(p, &Subscription{SubSpec: SubSpec{Key: "q0", Filter: "z", QoS: AtMostOnce}}); err != nil {
		t.Fatal(err)
	}
	publishQoS(t, r, "t", "unsent", AtLeastOnce) // still in the old outbox
	r.Close(p, CloseTransportError)
	publishQoS(t, r, "t", "1", AtLeastOnce)
	publishQoS(t, r, "t", "qos0", AtMostOnce) // not kept
	publishQoS(t, r, "t", "2", ExactlyOnce)
	publishQoS(t, r, "z", "granted0", ExactlyOnce) // granted QoS 0: delivery is QoS 0, not kept
	publishQoS(t, r, "t", "3", AtLeastOnce)
	if n := offlineLen(p); n != 3 {
		t.Fatalf("offline queue holds %d, want 3 (QoS 0 deliveries are not kept)", n)
	}

	n := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	if !n.Resumed() {
		t.Fatal("Resumed() = false, want true (session present)")
	}
	if p.Reason() != CloseTransportError {
		t.Errorf("old session's reason changed to %v", p.Reason())
	}
	sub := n.Subscription("t")
	if sub == nil || sub.Session != n {
		t.Fatalf("new session's subscription t = %+v, want one owned by the new session", sub)
	}
	if n.Subscription("q0") == nil {
		t.Error("the QoS 0 subscription was not moved")
	}
	if p.Subscription("t") != nil {
		t.Error("old session still lists subscription t")
	}
	ds := drained(n)
	if got := deliveryBodies(ds); !slices.Equal(got, []string{"unsent", "1", "2", "3"}) {
		t.Fatalf("resumed session got %q, want [unsent 1 2 3] in order", got)
	}
	for _, d := range ds {
		if d.Sub != sub {
			t.Errorf("queued delivery %q carries sub %p (session %s), want the new session's %p", d.Msg.Payload, d.Sub, d.Sub.Session.ID, sub)
		}
	}
	// Delivered at min(published, granted) QoS (MQTT 3.1.1 §3.8.4).
	if ds[2].QoS != AtLeastOnce {
		t.Errorf("queued QoS 2 delivery on a QoS 1 subscription has QoS %d, want 1", ds[2].QoS)
	}
	if offlineLen(p) != 0 {
		t.Error("old session still holds its offline queue")
	}
	publishQoS(t, r, "t", "live", AtLeastOnce)
	publishQoS(t, r, "z", "live0", AtMostOnce)
	if got := drainedBodies(n); !slices.Equal(got, []string{"live", "live0"}) {
		t.Fatalf("after resume got %q, want [live live0] once each", got)
	}
	if got := drainedBodies(p); len(got) != 0 {
		t.Errorf("old session's outbox received %q", got)
	}
	if st := r.Stats(); st.Sessions != 1 || st.Subscriptions != 2 {
		t.Errorf("Stats: Sessions %d Subscriptions %d, want 1, 2", st.Sessions, st.Subscriptions)
	}
	// The old connection's read loop detaching late changes nothing.
	r.Close(p, CloseTransportError)
	publishQoS(t, r, "t", "after", AtLeastOnce)
	if got := drainedBodies(n); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("after the old Close got %q, want [after]", got)
	}
}

// TestPersistMaxOfflineMsgs: Config.MaxOfflineMsgs bounds the queue of an
// offline session; newer messages are dropped and counted.
func TestPersistMaxOfflineMsgs(t *testing.T) {
	r := New(Config{MaxOfflineMsgs: 3}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	for i := range 5 {
		publishQoS(t, r, "t", fmt.Sprint(i), AtLeastOnce)
	}
	publishQoS(t, r, "t", "q0", AtMostOnce) // not kept, and not an offline drop
	if n := offlineLen(p); n != 3 {
		t.Fatalf("offline queue holds %d, want MaxOfflineMsgs 3", n)
	}
	if n := r.offlineDropped.Load(); n != 2 {
		t.Errorf("offlineDropped = %d, want 2", n)
	}
	st := r.Stats()
	if f := reflect.ValueOf(st).FieldByName("OfflineDropped"); f.IsValid() {
		if f.Uint() != 2 {
			t.Errorf("Stats().OfflineDropped = %d, want 2", f.Uint())
		}
	} else {
		t.Logf("Stats has no offline-dropped counter (router counts %d); Stats = %+v", r.offlineDropped.Load(), st)
	}
	n := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	if got := drainedBodies(n); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("resumed session got %q, want the oldest three [0 1 2]", got)
	}
}

// TestPersistStateHandoff: SaveState/TakeState carry the protocol's own
// session state (MQTT's unacknowledged QoS 1/2 deliveries, [MQTT-4.4.0-1])
// to the connection that resumes the session, once.
func TestPersistStateHandoff(t *testing.T) {
	r := New(Config{}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	st1, st2 := &SavedState{NextID: 1}, &SavedState{NextID: 2}
	p.SaveState(st1)
	r.Close(p, CloseClientClosed)
	n := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	if v := n.TakeState(); v != st1 {
		t.Fatalf("TakeState() = %v, want %v", v, st1)
	}
	if v := n.TakeState(); v != nil {
		t.Fatalf("second TakeState() = %v, want nil", v)
	}
	// Handed on again.
	n.SaveState(st2)
	r.Close(n, CloseClientClosed)
	n2 := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	if v := n2.TakeState(); v != st2 {
		t.Fatalf("second resume TakeState() = %v, want %v", v, st2)
	}
	// A clean start discards it.
	n2.SaveState(&SavedState{NextID: 3})
	r.Close(n2, CloseClientClosed)
	c := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute, CleanStart: true})
	if v := c.TakeState(); v != nil {
		t.Fatalf("TakeState() after a clean start = %v, want nil", v)
	}
}

// TestPersistCleanStart: Clean Start 1 discards the existing session
// [MQTT-3.1.2-4] (3.1.1: Clean Session 1 [MQTT-3.1.2-6]): Session Present is
// 0 [MQTT-3.2.2-1], the old subscriptions and queued messages are gone.
func TestPersistCleanStart(t *testing.T) {
	r := New(Config{}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	mqttSub(t, r, p, "t")
	publishQoS(t, r, "t", "unsent", AtLeastOnce)
	r.Close(p, CloseClientClosed)
	publishQoS(t, r, "t", "offline", AtLeastOnce)

	n := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute, CleanStart: true})
	if n.Resumed() {
		t.Fatal("Resumed() = true after a clean start")
	}
	if n.Subscription("t") != nil {
		t.Fatal("clean session inherited subscription t")
	}
	if st := r.Stats(); st.Subscriptions != 0 || st.Sessions != 1 {
		t.Fatalf("Stats: Subscriptions %d Sessions %d, want 0, 1", st.Subscriptions, st.Sessions)
	}
	publishQoS(t, r, "t", "new", AtLeastOnce)
	if got := drainedBodies(n); len(got) != 0 {
		t.Fatalf("clean session got %q, want nothing (no old messages, no old subscription)", got)
	}
	if offlineLen(p) != 0 {
		t.Fatal("old session's offline queue was not discarded")
	}
	// The new session's own subscription works.
	mqttSub(t, r, n, "t")
	publishQoS(t, r, "t", "mine", AtLeastOnce)
	if got := drainedBodies(n); !slices.Equal(got, []string{"mine"}) {
		t.Fatalf("got %q, want [mine]", got)
	}
}

// TestPersistExpiry: MQTT 5 §3.1.2.11.2: the server deletes the session
// when the Session Expiry Interval passes after the connection closed
// [MQTT-4.1.0-2]; its subscriptions stop collecting messages.
func TestPersistExpiry(t *testing.T) {
	r := New(Config{}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: 50 * time.Millisecond})
	mqttSub(t, r, p, "t")
	p.SaveState(&SavedState{})
	r.Close(p, CloseClientClosed)
	publishQoS(t, r, "t", "before expiry", AtLeastOnce)
	checkFor(t, "the session to expire", func() bool { return len(r.Sessions()) == 0 })
	if n := r.Stats().Subscriptions; n != 0 {
		t.Fatalf("Subscriptions after expiry = %d, want 0", n)
	}
	publishQoS(t, r, "t", "after expiry", AtLeastOnce)
	if n := offlineLen(p); n != 0 {
		t.Fatalf("expired session holds %d offline messages", n)
	}
	n := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	if n.Resumed() {
		t.Fatal("Resumed() = true for an expired session")
	}
	if n.Subscription("t") != nil || n.TakeState() != nil {
		t.Fatal("expired session's subscription or state came back")
	}
	if got := drainedBodies(n); len(got) != 0 {
		t.Fatalf("new session got %q from the expired one", got)
	}
}

// TestPersistResumeStopsExpiry: a reconnect within the expiry resumes the
// session, and the old expiry timer must not end the resumed session.
func TestPersistResumeStopsExpiry(t *testing.T) {
	const d = 100 * time.Millisecond
	r := New(Config{}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: d})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	n := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	if !n.Resumed() {
		t.Skip("reconnect took longer than the expiry on this machine")
	}
	// A clock: a session closed now with the same expiry. Once it is gone,
	// p's old timer has fired too.
	clock := openOpts(t, r, "clock", SessionOptions{Expiry: d})
	r.Close(clock, CloseClientClosed)
	checkFor(t, "the clock session to expire", func() bool { return !slices.Contains(sessionIDs(r), "clock") })
	if ids := sessionIDs(r); !slices.Equal(ids, []string{"p"}) {
		t.Fatalf("Sessions() = %q, want [p] (the resumed session must not expire)", ids)
	}
	publishQoS(t, r, "t", "still here", AtLeastOnce)
	if got := drainedBodies(n); !slices.Equal(got, []string{"still here"}) {
		t.Fatalf("resumed session got %q, want [still here]", got)
	}
}

// TestPersistNeverExpire: NeverExpire (MQTT 5 Session Expiry Interval
// 0xFFFFFFFF, §3.1.2.11.2) keeps the session until a clean start.
func TestPersistNeverExpire(t *testing.T) {
	r := New(Config{}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: NeverExpire})
	mqttSub(t, r, p, "t")
	r.Close(p, CloseClientClosed)
	p.p.mu.Lock()
	timer := p.p.expireAt
	p.p.mu.Unlock()
	if timer != nil {
		t.Fatal("NeverExpire session got an expiry timer")
	}
	clock := openOpts(t, r, "clock", SessionOptions{Expiry: 20 * time.Millisecond})
	r.Close(clock, CloseClientClosed)
	checkFor(t, "the clock session to expire", func() bool { return !slices.Contains(sessionIDs(r), "clock") })
	if ids := sessionIDs(r); !slices.Equal(ids, []string{"p"}) {
		t.Fatalf("Sessions() = %q, want [p]", ids)
	}
	publishQoS(t, r, "t", "kept", AtLeastOnce)
	n := openOpts(t, r, "p", SessionOptions{Expiry: NeverExpire})
	if !n.Resumed() {
		t.Fatal("NeverExpire session not resumed")
	}
	if got := drainedBodies(n); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("got %q, want [kept]", got)
	}
}

// openAsync runs Open in a goroutine and reports the session when it returns,
// with whether closed was set at that moment.
type openResult struct {
	s           *Session
	err         error
	afterSignal bool
}

func openAsync(r *Router, id SessionID, o SessionOptions, signal *atomic.Bool) <-chan openResult {
	ch := make(chan openResult, 1)
	go func() {
		s, err := r.Open(id, o)
		ch <- openResult{s, err, signal.Load()}
	}()
	return ch
}

// TestPersistOnlineTakeoverWaits: a connection with the client id of an
// online persistent session takes it over [MQTT-3.1.4-3]: the first is closed
// with CloseTakenOver, and Open waits for the old connection to finish (its
// read loop calls Router.Close) before moving the state, so the messages
// still in the old outbox move over in order.
func TestPersistOnlineTakeoverWaits(t *testing.T) {
	r := New(Config{}, nil)
	old := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	mqttSub(t, r, old, "t")
	publishQoS(t, r, "t", "1", AtLeastOnce)
	publishQoS(t, r, "t", "2", AtLeastOnce)

	var closed atomic.Bool
	res := openAsync(r, "p", SessionOptions{Expiry: time.Minute}, &closed)
	checkFor(t, "the old session to be closed", old.Closed)
	if old.Reason() != CloseTakenOver {
		t.Fatalf("old session reason %v, want %v", old.Reason(), CloseTakenOver)
	}
	select {
	case r := <-res:
		t.Fatalf("Open returned (%v) before the old connection finished", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	closeDone := make(chan struct{})
	go func() { // the old connection's read loop
		closed.Store(true)
		r.Close(old, CloseTakenOver)
		close(closeDone)
	}()
	var got openResult
	select {
	case got = <-res:
	case <-time.After(5 * time.Second):
		t.Fatal("Open did not return after the old connection finished")
	}
	<-closeDone
	if got.err != nil {
		t.Fatal(got.err)
	}
	if !got.afterSignal {
		t.Fatal("Open returned before Router.Close(old) was called")
	}
	n := got.s
	if !n.Resumed() || n.Closed() {
		t.Fatalf("new session: resumed %v closed %v, want resumed and open", n.Resumed(), n.Closed())
	}
	ds := drained(n)
	if b := deliveryBodies(ds); !slices.Equal(b, []string{"1", "2"}) {
		t.Fatalf("new session got %q, want the old outbox's [1 2]", b)
	}
	if sub := n.Subscription("t"); len(ds) > 0 && ds[0].Sub != sub {
		t.Errorf("moved delivery carries sub %p, want new %p", ds[0].Sub, sub)
	}
	publishQoS(t, r, "t", "3", AtLeastOnce)
	if b := drainedBodies(n); !slices.Equal(b, []string{"3"}) {
		t.Fatalf("after takeover got %q, want [3]", b)
	}
	if st := r.Stats(); st.Sessions != 1 || st.Subscriptions != 1 {
		t.Errorf("Stats: Sessions %d Subscriptions %d, want 1, 1", st.Sessions, st.Subscriptions)
	}
	if ids := sessionIDs(r); !slices.Equal(ids, []string{"p"}) {
		t.Errorf("Sessions() = %q", ids)
	}
}

// TestPersistTakeoverKeepsMessagesDuringWait: a QoS 1 message published
// while Open waits for the taken-over connection to finish must still reach
// the session (MQTT 3.1.1 §3.1.2.4: QoS 1/2 messages are part of the session
// state), in order after the old outbox's messages.
func TestPersistTakeoverKeepsMessagesDuringWait(t *testing.T) {
	r := New(Config{}, nil)
	old := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	mqttSub(t, r, old, "t")
	publishQoS(t, r, "t", "before", AtLeastOnce)
	var closed atomic.Bool
	res := openAsync(r, "p", SessionOptions{Expiry: time.Minute}, &closed)
	checkFor(t, "the old session to be closed", old.Closed)
	publishQoS(t, r, "t", "during", AtLeastOnce) // Open is waiting for the old connection
	closed.Store(true)
	r.Close(old, CloseTakenOver)
	got := <-res
	if got.err != nil {
		t.Fatal(got.err)
	}
	publishQoS(t, r, "t", "after", AtLeastOnce)
	if b := drainedBodies(got.s); !slices.Equal(b, []string{"before", "during", "after"}) {
		t.Fatalf("session got %q, want [before during after]: a QoS 1 message published during the takeover was lost", b)
	}
}

// TestTakeoverNonPersistentDoesNotWait: taking over a session that is not
// kept (expiry 0, or a clean start) does not wait for the old connection and
// drops its subscriptions [MQTT-3.1.2-6].
func TestTakeoverNonPersistentDoesNotWait(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new SessionOptions
	}{
		{"expiry 0", SessionOptions{}, SessionOptions{Expiry: time.Minute}},
		{"clean start", SessionOptions{Expiry: time.Minute}, SessionOptions{Expiry: time.Minute, CleanStart: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Config{}, nil)
			old := openOpts(t, r, "p", tc.old)
			mqttSub(t, r, old, "t")
			publishQoS(t, r, "t", "old", AtLeastOnce)
			var never atomic.Bool
			var got openResult
			select {
			case got = <-openAsync(r, "p", tc.new, &never):
			case <-time.After(5 * time.Second): // Open would wait takeoverWait (10s)
				t.Fatal("Open waited for a non-persistent old connection")
			}
			if got.err != nil {
				t.Fatal(got.err)
			}
			n := got.s
			if old.Reason() != CloseTakenOver {
				t.Errorf("old reason %v, want %v", old.Reason(), CloseTakenOver)
			}
			if n.Resumed() || n.Subscription("t") != nil || old.Subscription("t") != nil {
				t.Errorf("resumed %v, new sub %v, old sub %v; want nothing kept", n.Resumed(), n.Subscription("t"), old.Subscription("t"))
			}
			if st := r.Stats(); st.Subscriptions != 0 || st.Sessions != 1 {
				t.Errorf("Stats: Subscriptions %d Sessions %d, want 0, 1", st.Subscriptions, st.Sessions)
			}
			publishQoS(t, r, "t", "x", AtLeastOnce)
			if b := drainedBodies(n); len(b) != 0 {
				t.Errorf("new session got %q", b)
			}
			r.Close(old, CloseTakenOver) // late: must not remove the new session
			if ids := sessionIDs(r); !slices.Equal(ids, []string{"p"}) || n.Closed() {
				t.Errorf("after the old Close: Sessions %q, new closed %v", ids, n.Closed())
			}
		})
	}
}

// TestPersistShared: while a persistent member is offline, the group's
// messages go to its connected member (none are parked offline while
// someone can take them); the shared subscription moves to the resumed
// session, which then takes turns again.
func TestPersistShared(t *testing.T) {
	r := New(Config{}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	o := openSession(t, r, "o")
	shareSub(t, r, p, "g", "t")
	shareSub(t, r, o, "g", "t")
	r.Close(p, CloseClientClosed)
	// The connected member takes every message while the other is offline.
	publishQoS(t, r, "t", "0", AtLeastOnce)
	publishQoS(t, r, "t", "1", AtLeastOnce)
	if got := drainedBodies(o); len(got) != 2 || offlineLen(p) != 0 {
		t.Fatalf("o got %q, p queued %d; want o both, p none", got, offlineLen(p))
	}
	n := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	if got := drainedBodies(n); len(got) != 0 {
		t.Fatalf("resumed member got %q, want nothing queued", got)
	}
	if m := shareMembers(r, "g", "t"); m != 2 {
		t.Fatalf("group has %d members, want 2", m)
	}
	if got := receivers(t, r, "t", 4, n, o); got[0] == got[1] || got[1] == got[2] || got[2] == got[3] || slices.Contains(got, "") {
		t.Fatalf("after resume: %q, want n and o alternating", got)
	}
}

// TestPersistTakeoverConcurrent resumes a persistent session over and over
// while other sessions subscribe to and leave the same filter and a
// publisher runs, for the race detector. Every QoS 1 message must reach the
// chain of resumed sessions exactly once and in publish order (MQTT 3.1.1
// §4.6 ordering; QoS 1/2 messages are session state, §3.1.2.4), and the
// index must end consistent.
func TestPersistTakeoverConcurrent(t *testing.T) {
	const msgs = 3000
	r := New(Config{MaxPendingMsgs: 1 << 20, MaxPendingBytes: 1 << 30, MaxOfflineMsgs: 1 << 20}, nil)
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	mqttSub(t, r, p, "t")
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for w := range 4 {
		churn.Add(1)
		go func() {
			defer churn.Done()
			s := openSession(t, r, SessionID(fmt.Sprint("churn", w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "k", Filter: "t"}}); err != nil {
					t.Error(err)
					return
				}
				if err := r.Unsubscribe(s, "k"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := range msgs {
			_ = r.Publish(context.Background(), nil, &Message{Topic: "t", Payload: []byte(fmt.Sprint(i)), QoS: AtLeastOnce})
		}
	}()
	var got []string
	cur := p
	// Take the session over again and again for as long as the publisher
	// runs, so every part of its run overlaps a takeover.
	takeovers := 0
	for running := true; running || takeovers < 50; takeovers++ {
		select {
		case <-pubDone:
			running = false
		default:
		}
		r.Close(cur, CloseClientClosed)
		n, err := r.Open("p", SessionOptions{Expiry: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !n.Resumed() {
			t.Fatal("not resumed")
		}
		got = append(got, drainedBodies(n)...)
		cur = n
		runtime.Gosched() // let the churn interleave with the takeovers
	}
	close(stop)
	churn.Wait()
	<-pubDone
	got = append(got, drainedBodies(cur)...)
	if st := r.Stats(); st.Subscriptions != 1 {
		t.Fatalf("Subscriptions = %d, want 1 (only p's)", st.Subscriptions)
	}
	next := 0
	for _, b := range got {
		if b != fmt.Sprint(next) {
			t.Fatalf("message %d: got %q, want %d (lost, duplicated or reordered around a takeover); %d received for %d published, %d takeovers",
				next, b, next, len(got), msgs, takeovers)
		}
		next++
	}
	if next != msgs {
		t.Fatalf("received %d of %d messages", next, msgs)
	}
	publishQoS(t, r, "t", "end", AtLeastOnce)
	if b := drainedBodies(cur); !slices.Equal(b, []string{"end"}) {
		t.Fatalf("final session got %q, want [end]", b)
	}
}
