package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// shareSub subscribes s to the shared subscription $share/<group>/<filter>
// (MQTT 5 §4.8.2); the protocol strips the prefix and sets Group.
func shareSub(t testing.TB, r *Router, s *Session, group, filter string) *Subscription {
	t.Helper()
	sub := &Subscription{SubSpec: SubSpec{Key: "$share/" + group + "/" + filter, Filter: filter, Group: group, QoS: AtLeastOnce}}
	if err := r.Subscribe(s, sub); err != nil {
		t.Fatalf("Subscribe($share/%s/%s): %v", group, filter, err)
	}
	return sub
}

// receivers publishes n messages on topic and reports, per message, which of
// the sessions got it (by ID; "" for none). A session that got one message
// more than once fails the test.
func receivers(t *testing.T, r *Router, topic string, n int, members ...*Session) []string {
	t.Helper()
	out := make([]string, n)
	for i := range n {
		publishTopic(t, r, nil, topic, fmt.Sprint(i))
		got := 0
		for _, s := range members {
			ds := drained(s)
			if len(ds) > 1 {
				t.Fatalf("message %d: %s got %d copies", i, s.ID, len(ds))
			}
			if len(ds) == 1 {
				got++
				out[i] = string(s.ID)
				if ds[0].Sub.Session != s || ds[0].Sub.isProxy() {
					t.Fatalf("message %d: delivery to %s carries sub of session %v (proxy %v)", i, s.ID, ds[0].Sub.Session, ds[0].Sub.isProxy())
				}
			}
		}
		if got > 1 {
			t.Fatalf("message %d went to %d members of one group, want exactly one [MQTT 5 §4.8.2]", i, got)
		}
	}
	return out
}

func shareCount(r *Router) int {
	r.smu.Lock()
	defer r.smu.Unlock()
	return len(r.shares)
}

// shareMembers counts the members of a share group; -1 if there is none.
func shareMembers(r *Router, group, filter string) int {
	r.smu.Lock()
	g := r.shares[shareKey(group, filter)]
	r.smu.Unlock()
	if g == nil {
		return -1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.subs)
}

// TestShareRoundRobin: MQTT 5 §4.8.2: each message matching a shared
// subscription goes to exactly one session of the group; Duplex alternates
// round robin. A normal subscription on the same filter still gets every
// message.
func TestShareRoundRobin(t *testing.T) {
	r := New(Config{}, nil)
	a := openSession(t, r, "a")
	b := openSession(t, r, "b")
	c := openSession(t, r, "c")
	subA := shareSub(t, r, a, "g", "a/+")
	subB := shareSub(t, r, b, "g", "a/+")
	topicSub(t, r, c, "k", "a/+")
	if n := r.Stats().Subscriptions; n != 2 {
		t.Errorf("Stats().Subscriptions = %d, want 2 (the group's one entry and c)", n)
	}

	const n = 8
	var cGot []string
	got := make([]string, n)
	for i := range n {
		publishTopic(t, r, nil, "a/x", fmt.Sprint(i))
		da, db := drained(a), drained(b)
		cGot = append(cGot, drainedBodies(c)...)
		switch {
		case len(da)+len(db) != 1:
			t.Fatalf("message %d: a got %d, b got %d; want exactly one of them", i, len(da), len(db))
		case len(da) == 1:
			got[i] = "a"
			if da[0].Sub != subA {
				t.Errorf("message %d: a's delivery carries %p, want its own subscription %p", i, da[0].Sub, subA)
			}
		default:
			got[i] = "b"
			if db[0].Sub != subB {
				t.Errorf("message %d: b's delivery carries %p, want its own subscription %p", i, db[0].Sub, subB)
			}
		}
	}
	for i := 1; i < n; i++ {
		if got[i] == got[i-1] {
			t.Fatalf("members per message = %q, want strict alternation (round robin)", got)
		}
	}
	if !sameStrings(cGot, []string{"0", "1", "2", "3", "4", "5", "6", "7"}) {
		t.Errorf("normal subscriber got %q, want all %d", cGot, n)
	}
	// A non-matching topic reaches nobody.
	publishTopic(t, r, nil, "b/x", "no")
	if len(drained(a))+len(drained(b))+len(drained(c)) != 0 {
		t.Error("a non-matching topic was delivered")
	}
	if st := r.Stats(); st.Delivered != 2*n {
		t.Errorf("Stats().Delivered = %d, want %d", st.Delivered, 2*n)
	}
}

// TestShareGroupsIndependent: each share group gets its own copy (MQTT 5
// §4.8.2: "each Shared Subscription... each message is delivered to one
// session per group"); the same group name with another filter is another
// shared subscription.
func TestShareGroupsIndependent(t *testing.T) {
	r := New(Config{}, nil)
	a1, a2 := openSession(t, r, "a1"), openSession(t, r, "a2")
	b1, b2 := openSession(t, r, "b1"), openSession(t, r, "b2")
	o := openSession(t, r, "o")
	shareSub(t, r, a1, "g1", "a/+")
	shareSub(t, r, a2, "g1", "a/+")
	shareSub(t, r, b1, "g2", "a/+")
	shareSub(t, r, b2, "g2", "a/+")
	shareSub(t, r, o, "g1", "a/#") // same group name, different filter
	if n := shareCount(r); n != 3 {
		t.Fatalf("%d share groups, want 3", n)
	}
	const n = 6
	for i := range n {
		publishTopic(t, r, nil, "a/y", fmt.Sprint(i))
		na := len(drained(a1)) + len(drained(a2))
		nb := len(drained(b1)) + len(drained(b2))
		no := len(drained(o))
		if na != 1 || nb != 1 || no != 1 {
			t.Fatalf("message %d: group g1/a/+ got %d, g2/a/+ got %d, g1/a/# got %d; want 1 each", i, na, nb, no)
		}
	}
	if st := r.Stats(); st.Subscriptions != 3 || st.Delivered != 3*n {
		t.Errorf("Stats: Subscriptions %d Delivered %d, want 3 and %d", st.Subscriptions, st.Delivered, 3*n)
	}
}

// TestShareMembersLeave: a member that unsubscribes or closes leaves the
// group; the rest keep sharing; when the last one leaves the group's index
// entry goes too.
func TestShareMembersLeave(t *testing.T) {
	r := New(Config{}, nil)
	a, b, c := openSession(t, r, "a"), openSession(t, r, "b"), openSession(t, r, "c")
	shareSub(t, r, a, "g", "t")
	subB := shareSub(t, r, b, "g", "t")
	shareSub(t, r, c, "g", "t")

	first := receivers(t, r, "t", 3, a, b, c)
	if !sameStrings(first, []string{"a", "b", "c"}) {
		t.Fatalf("three members got %q, want one each", first)
	}
	if err := r.Unsubscribe(b, subB.Key); err != nil {
		t.Fatal(err)
	}
	got := receivers(t, r, "t", 4, a, b, c)
	for i, who := range got {
		if who == "b" || who == "" {
			t.Fatalf("after b unsubscribed, message %d went to %q (all: %q)", i, who, got)
		}
		if i > 0 && who == got[i-1] {
			t.Fatalf("after b left: %q, want a and c alternating", got)
		}
	}
	r.Close(a, CloseClientClosed)
	got = receivers(t, r, "t", 3, a, b, c)
	if !sameStrings(got, []string{"c", "c", "c"}) {
		t.Fatalf("after a closed: %q, want everything to c", got)
	}
	if n := r.Stats().Subscriptions; n != 1 {
		t.Fatalf("Subscriptions with one member left = %d, want 1", n)
	}
	r.Close(c, CloseClientClosed)
	if n := r.Stats().Subscriptions; n != 0 {
		t.Fatalf("Subscriptions after the last member left = %d, want 0 (proxy removed)", n)
	}
	if n := shareCount(r); n != 0 {
		t.Fatalf("%d share groups left after the last member left, want 0", n)
	}
	publishTopic(t, r, nil, "t", "nobody")
	if st := r.Stats(); st.Delivered != 10 {
		t.Errorf("Delivered = %d, want 10 (nothing for the empty group)", st.Delivered)
	}
	// The group can be formed again.
	d := openSession(t, r, "d")
	shareSub(t, r, d, "g", "t")
	if got := receivers(t, r, "t", 2, d); !sameStrings(got, []string{"d", "d"}) {
		t.Fatalf("re-formed group: %q, want d twice", got)
	}
}

// TestShareLeaveKeepsTurn: removing a member before the round-robin cursor
// keeps the turn with the member that was next.
func TestShareLeaveKeepsTurn(t *testing.T) {
	r := New(Config{}, nil)
	a, b, c := openSession(t, r, "a"), openSession(t, r, "b"), openSession(t, r, "c")
	subA := shareSub(t, r, a, "g", "t")
	shareSub(t, r, b, "g", "t")
	shareSub(t, r, c, "g", "t")
	if got := receivers(t, r, "t", 1, a, b, c); got[0] != "a" {
		t.Fatalf("first message went to %q, want a (join order)", got[0])
	}
	if err := r.Unsubscribe(a, subA.Key); err != nil {
		t.Fatal(err)
	}
	if got := receivers(t, r, "t", 3, a, b, c); !sameStrings(got, []string{"b", "c", "b"}) || got[0] != "b" {
		t.Fatalf("after a left: %q, want [b c b] (b's turn was next)", got)
	}
}

// TestShareClosedMemberSkipped: a member whose session is closed but not yet
// detached (its read loop has not called Router.Close) gets nothing; the
// other members take its turns. With every member closed the message is
// dropped for the group.
func TestShareClosedMemberSkipped(t *testing.T) {
	r := New(Config{}, nil)
	a, b := openSession(t, r, "a"), openSession(t, r, "b")
	shareSub(t, r, a, "g", "t")
	shareSub(t, r, b, "g", "t")
	a.Close(CloseTransportError)
	if got := receivers(t, r, "t", 4, a, b); !sameStrings(got, []string{"b", "b", "b", "b"}) {
		t.Fatalf("with a closed: %q, want everything to b", got)
	}
	b.Close(CloseTransportError)
	before := r.Stats().Delivered
	publishTopic(t, r, nil, "t", "lost")
	if after := r.Stats().Delivered; after != before {
		t.Errorf("Delivered went %d -> %d with every member closed", before, after)
	}
	if n := r.Stats().Subscriptions; n != 1 {
		t.Errorf("Subscriptions = %d, want 1 until the members detach", n)
	}
}

// TestShareSubscribeReplace: SubscribeReplace of a shared subscription
// replaces the member, it does not add a second one [MQTT-3.8.4-3].
func TestShareSubscribeReplace(t *testing.T) {
	r := New(Config{}, nil)
	a, b := openSession(t, r, "a"), openSession(t, r, "b")
	for range 2 {
		if _, _, err := r.SubscribeReplace(a, &Subscription{SubSpec: SubSpec{Key: "$share/g/t", Filter: "t", Group: "g", QoS: AtLeastOnce}}); err != nil {
			t.Fatal(err)
		}
	}
	shareSub(t, r, b, "g", "t")
	if members := shareMembers(r, "g", "t"); members != 2 {
		t.Fatalf("group has %d members, want 2 (a's replaced subscription left)", members)
	}
	if got := receivers(t, r, "t", 4, a, b); !sameStrings(got, []string{"a", "b", "a", "b"}) {
		t.Fatalf("got %q, want a and b alternating", got)
	}
}

// TestShareConcurrent publishes while members join and leave, for the race
// detector; every message reaches at most one member.
func TestShareConcurrent(t *testing.T) {
	r := New(Config{MaxPendingMsgs: 1 << 20, MaxPendingBytes: 1 << 30}, nil)
	stable := openSession(t, r, "stable")
	shareSub(t, r, stable, "g", "c/+")
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := openSession(t, r, SessionID(fmt.Sprint("churn", w)))
			for i := range 300 {
				sub := &Subscription{SubSpec: SubSpec{Key: "k", Filter: "c/+", Group: "g", QoS: AtLeastOnce}}
				if err := r.Subscribe(s, sub); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					r.Close(s, CloseClientClosed)
					s = openSession(t, r, SessionID(fmt.Sprintf("churn%d-%d", w, i)))
					continue
				}
				if err := r.Unsubscribe(s, "k"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	const n = 3000
	for i := range n {
		if err := r.Publish(context.Background(), nil, &Message{Topic: "c/x", Payload: []byte{byte(i)}, QoS: AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	st := r.Stats()
	if st.Delivered > n {
		t.Errorf("Delivered %d deliveries for %d messages to one group", st.Delivered, n)
	}
	if m, _ := stable.Outbox.Pending(); m == 0 {
		t.Error("the stable member got nothing")
	}
}
