package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// retainedMsg is a retained message whose payload is its topic (or body).
func retainedMsg(topic, body string) *Message {
	return &Message{Topic: topic, Payload: []byte(body), QoS: AtLeastOnce, Retain: true}
}

// retainedTopics returns the sorted topics of ms.
func retainedTopics(ms []*Message) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Topic)
	}
	slices.Sort(out)
	return out
}

// checkRetainedTrie verifies the trie's invariants: n equals the number of
// nodes holding a message, and no node below the root is empty (neither a
// message nor children), i.e. clearing pruned every dead branch.
func checkRetainedTrie(t testing.TB, rt *Retained) {
	t.Helper()
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if rt.root.msg != nil {
		t.Fatalf("root holds a message (topic %q)", rt.root.msg.Topic)
	}
	msgs := 0
	var bytes int64
	use := map[string]retainedUse{}
	var walk func(path string, n *rnode)
	walk = func(path string, n *rnode) {
		for tok, c := range n.kids {
			p := tok
			if path != "" || n != &rt.root {
				p = path + "/" + tok
			}
			if c.msg == nil && len(c.kids) == 0 {
				t.Fatalf("empty node %q left in the trie", p)
			}
			if c.msg != nil {
				msgs++
				bytes += int64(len(c.msg.Payload))
				if c.owner != "" {
					u := use[c.owner]
					u.n++
					u.bytes += int64(len(c.msg.Payload))
					use[c.owner] = u
				}
				if c.msg.Topic != p {
					t.Fatalf("node %q holds a message for topic %q", p, c.msg.Topic)
				}
			}
			walk(p, c)
		}
	}
	walk("", &rt.root)
	if msgs != rt.n {
		t.Fatalf("n = %d, but %d nodes hold a message", rt.n, msgs)
	}
	if bytes != rt.bytes {
		t.Fatalf("bytes = %d, but the messages hold %d", rt.bytes, bytes)
	}
	if len(use) != len(rt.owners) {
		t.Fatalf("%d owners counted, %d own messages", len(rt.owners), len(use))
	}
	for o, u := range use {
		if c := rt.owners[o]; c == nil || *c != u {
			t.Fatalf("owner %q counted %+v, owns %+v", o, c, u)
		}
	}
}

func retainedEmpty(rt *Retained) bool {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return len(rt.root.kids) == 0 && rt.n == 0
}

// TestRetainedSetReplaceClear: MQTT 3.1.1 §3.3.1.3: the server keeps the last
// retained message per topic, a new one replaces it, and a retained message
// with a zero-byte payload removes it [MQTT-3.3.1-10] and is not itself
// stored [MQTT-3.3.1-11].
func TestRetainedSetReplaceClear(t *testing.T) {
	var rt Retained
	if !rt.Set(retainedMsg("a/b", "1"), 0) {
		t.Fatal("Set(a/b) refused")
	}
	if n := rt.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1", n)
	}
	if !rt.Set(retainedMsg("a/b", "2"), 0) {
		t.Fatal("replacing Set(a/b) refused")
	}
	got := rt.Match("a/b", nil)
	if rt.Len() != 1 || len(got) != 1 || string(got[0].Payload) != "2" {
		t.Fatalf("after replace: Len %d, Match %v; want 1 and payload 2", rt.Len(), got)
	}
	rt.Set(retainedMsg("a/b/c", "3"), 0)
	rt.Set(retainedMsg("x", "4"), 0)
	if n := rt.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	checkRetainedTrie(t, &rt)

	// Clearing a/b keeps its node (a/b/c hangs below it) but not the message.
	if !rt.Set(retainedMsg("a/b", ""), 0) {
		t.Fatal("clearing Set refused")
	}
	if n := rt.Len(); n != 2 {
		t.Fatalf("after clearing a/b: Len = %d, want 2", n)
	}
	if got := rt.Match("a/b", nil); len(got) != 0 {
		t.Fatalf("Match(a/b) after clear = %v, want none", retainedTopics(got))
	}
	if got := retainedTopics(rt.Match("#", nil)); !slices.Equal(got, []string{"a/b/c", "x"}) {
		t.Fatalf("Match(#) = %q, want [a/b/c x]", got)
	}
	checkRetainedTrie(t, &rt)

	// Clearing a topic that holds nothing changes nothing and leaves no node.
	rt.Set(retainedMsg("no/such/topic", ""), 0)
	rt.Set(retainedMsg("a/b/c/d", ""), 0)
	if n := rt.Len(); n != 2 {
		t.Fatalf("after clearing absent topics: Len = %d, want 2", n)
	}
	checkRetainedTrie(t, &rt)

	rt.Set(retainedMsg("a/b/c", ""), 0)
	rt.Set(retainedMsg("x", ""), 0)
	if n := rt.Len(); n != 0 {
		t.Fatalf("all cleared: Len = %d, want 0", n)
	}
	if !retainedEmpty(&rt) {
		t.Fatal("all cleared: trie still has nodes (empty nodes not pruned)")
	}
	if got := rt.Match("#", nil); len(got) != 0 {
		t.Fatalf("Match(#) on an empty store = %q", retainedTopics(got))
	}
}

var retainedCorpus = []string{
	"a", "a/b", "a/b/c", "a//c", "a/", "/a", "/", "b", "a/$x",
	"$SYS", "$SYS/x", "$SYS/x/y", "$", "sport/tennis/player1", "sport",
}

// TestRetainedMatch walks filters through the trie (MQTT 3.1.1 §4.7): '+'
// matches one level, the empty one included (§4.7.1.3); '#' matches the
// parent and every level below (§4.7.1.2, "sport/#" matches "sport"); and a
// filter starting with a wildcard never matches a topic starting with '$'
// [MQTT-4.7.2-1], while "$SYS/#" does (§4.7.2).
func TestRetainedMatch(t *testing.T) {
	var rt Retained
	for _, tp := range retainedCorpus {
		if !rt.Set(retainedMsg(tp, tp), 0) {
			t.Fatalf("Set(%q) refused", tp)
		}
	}
	checkRetainedTrie(t, &rt)
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"#", []string{"/", "/a", "a", "a/", "a/$x", "a//c", "a/b", "a/b/c", "b", "sport", "sport/tennis/player1"}},
		{"+", []string{"a", "b", "sport"}},
		{"+/+", []string{"/", "/a", "a/", "a/$x", "a/b"}},
		{"a/#", []string{"a", "a/", "a/$x", "a//c", "a/b", "a/b/c"}}, // '#' includes the parent "a"
		{"a/+", []string{"a/", "a/$x", "a/b"}},                       // '$' rule is for the first level only
		{"a/+/c", []string{"a//c", "a/b/c"}},
		{"a/b/c/#", []string{"a/b/c"}},
		{"+/b/#", []string{"a/b", "a/b/c"}},
		{"/+", []string{"/", "/a"}},
		{"/#", []string{"/", "/a"}},
		{"+/#", []string{"/", "/a", "a", "a/", "a/$x", "a//c", "a/b", "a/b/c", "b", "sport", "sport/tennis/player1"}},
		{"$SYS/#", []string{"$SYS", "$SYS/x", "$SYS/x/y"}},
		{"$SYS/+", []string{"$SYS/x"}},
		{"$SYS", []string{"$SYS"}},
		{"+/x", nil},   // not $SYS/x [MQTT-4.7.2-1]
		{"+/x/y", nil}, // not $SYS/x/y
		{"$", []string{"$"}},
		{"sport/+", nil},      // '+' needs a level (§4.7.1.3)
		{"sport/tennis", nil}, // literal levels must all match
		{"a/b/c/d", nil},      // longer than every topic
		{"sport/#", []string{"sport", "sport/tennis/player1"}},
	} {
		got := retainedTopics(rt.Match(tc.filter, nil))
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("Match(%q) = %q, want %q", tc.filter, got, tc.want)
		}
		// Keep the table honest against the reference matcher.
		var naive []string
		for _, tp := range retainedCorpus {
			if MatchTopic(tc.filter, tp) {
				naive = append(naive, tp)
			}
		}
		slices.Sort(naive)
		if !slices.Equal(naive, tc.want) && !(len(naive) == 0 && len(tc.want) == 0) {
			t.Errorf("table row %q disagrees with MatchTopic: %q", tc.filter, naive)
		}
	}
	// Match appends to dst.
	dst := []*Message{retainedMsg("pre", "pre")}
	dst = rt.Match("b", dst)
	if len(dst) != 2 || dst[0].Topic != "pre" || dst[1].Topic != "b" {
		t.Errorf("Match with dst = %q, want [pre b]", retainedTopics(dst))
	}
}

// TestRetainedExpired: MQTT 5 §3.3.2.3.3: a retained message whose Message
// Expiry Interval has passed is no longer sent to new subscribers.
func TestRetainedExpired(t *testing.T) {
	var rt Retained
	past := retainedMsg("e/past", "x")
	past.Expires = time.Now().Add(-time.Second)
	soon := retainedMsg("e/soon", "x")
	soon.Expires = time.Now().Add(30 * time.Millisecond)
	later := retainedMsg("e/later", "x")
	later.Expires = time.Now().Add(time.Hour)
	rt.Set(past, 0)
	rt.Set(soon, 0)
	rt.Set(later, 0)
	rt.Set(retainedMsg("e/never", "x"), 0)

	for _, f := range []string{"e/past", "e/+", "#", "e/#"} {
		for _, m := range rt.Match(f, nil) {
			if m == past {
				t.Errorf("Match(%q) returned the expired message", f)
			}
		}
	}
	if got := retainedTopics(rt.Match("e/+", nil)); !slices.Contains(got, "e/soon") || !slices.Contains(got, "e/later") || !slices.Contains(got, "e/never") {
		t.Fatalf("Match(e/+) = %q, want e/soon, e/later and e/never", got)
	}
	checkFor(t, "e/soon to expire", func() bool { return len(rt.Match("e/soon", nil)) == 0 })
	if got := retainedTopics(rt.Match("e/#", nil)); !slices.Equal(got, []string{"e/later", "e/never"}) {
		t.Errorf("after expiry Match(e/#) = %q, want [e/later e/never]", got)
	}
}

// TestRetainedMax: Config.MaxRetained bounds the topics holding a retained
// message; a new topic past it is refused, but an existing topic may still be
// replaced or cleared.
func TestRetainedMax(t *testing.T) {
	var rt Retained
	if !rt.Set(retainedMsg("a", "1"), 2) || !rt.Set(retainedMsg("b/c", "1"), 2) {
		t.Fatal("Set within the limit refused")
	}
	if rt.Set(retainedMsg("c/d/e", "1"), 2) {
		t.Fatal("Set of a third topic with max 2 accepted")
	}
	if n := rt.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	if got := rt.Match("c/d/e", nil); len(got) != 0 {
		t.Fatalf("refused topic is retained: %q", retainedTopics(got))
	}
	checkRetainedTrie(t, &rt) // the refusal left no dangling nodes
	if !rt.Set(retainedMsg("a", "2"), 2) {
		t.Fatal("replacing an existing topic at the limit refused")
	}
	if got := rt.Match("a", nil); len(got) != 1 || string(got[0].Payload) != "2" {
		t.Fatalf("Match(a) after replace at the limit = %v, want payload 2", got)
	}
	if !rt.Set(retainedMsg("b/c", ""), 2) {
		t.Fatal("clearing at the limit refused")
	}
	if !rt.Set(retainedMsg("c/d/e", "1"), 2) {
		t.Fatal("Set refused with room again")
	}
	if n := rt.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	checkRetainedTrie(t, &rt)
}

// TestRetainedMaxPrefixTopic: a new topic whose trie node already exists
// (because a longer topic passes through it) is still a new topic and must be
// refused past the limit.
func TestRetainedMaxPrefixTopic(t *testing.T) {
	var rt Retained
	if !rt.Set(retainedMsg("a/b/c", "1"), 1) {
		t.Fatal("first Set refused")
	}
	if rt.Set(retainedMsg("a/b", "1"), 1) {
		t.Errorf("Set(a/b) with max 1 and a/b/c stored was accepted; Len now %d", rt.Len())
	}
	if n := rt.Len(); n > 1 {
		t.Errorf("Len = %d exceeds MaxRetained 1", n)
	}
}

// FuzzRetained checks Retained.Match against the reference matcher
// MatchTopic (MQTT 3.1.1 §4.7): every stored, unexpired topic that matches
// the filter is returned exactly once and nothing else is. Inputs are
// newline-separated topics and filters; invalid entries are skipped. It also
// clears half the topics (zero-byte payloads, [MQTT-3.3.1-10]) and checks
// again, then clears the rest and expects an empty trie.
func FuzzRetained(f *testing.F) {
	f.Add("sport/tennis/player1\nsport/tennis/player1/ranking\nsport\n/finance\n$SYS/monitor/Clients\na//b",
		"sport/tennis/player1/#\nsport/#\n+/+\n/+\n+\n$SYS/#\n#\n+/monitor/Clients\na/+/b")
	f.Add("a\na/\na/b\n/\n//\n$a\n$a/b\na/$b", "a/#\na/+\na\n+/#\n#\n/#\n//\n+//+\n$a/#\n+/$b")
	f.Add("$SYS\n$SYS/x\n$\n$/\nx", "$SYS/+\n$SYS\n+/#\n$\n$/#\n+")
	f.Add("a/b/c\na/b\na/b/c/d\nb/b/c", "a/b/c\na/+/c\na/b/+\n+/b/c\na/#\na/b/#\na/b/c/#\n+/+/+/+")
	f.Add("caf\u00e9/x\n\U0001F600", "caf\u00e9/+\n\U0001F600/#")
	f.Fuzz(func(t *testing.T, topics, filters string) {
		const maxEntries = 64
		var tops []string
		seen := map[string]bool{}
		for i, tp := range strings.Split(topics, "\n") {
			if i == maxEntries {
				break
			}
			if ValidTopicName(tp) == nil && !seen[tp] {
				seen[tp] = true
				tops = append(tops, tp)
			}
		}
		var fils []string
		for i, fl := range strings.Split(filters, "\n") {
			if i == maxEntries {
				break
			}
			if ValidFilter(fl) == nil {
				fils = append(fils, fl)
			}
		}
		// Filters derived from topics, so positive matches are common.
		for _, tp := range tops {
			lv := strings.Split(tp, "/")
			for i := range lv {
				c := slices.Clone(lv)
				c[i] = "+"
				fils = append(fils, strings.Join(c, "/"), strings.Join(lv[:i], "/")+"/#", strings.Join(lv[:i+1], "/")+"/#")
			}
		}

		var rt Retained
		var expired *Message
		for i, tp := range tops {
			m := retainedMsg(tp, tp)
			if i%7 == 3 { // some already expired
				m.Expires = time.Now().Add(-time.Minute)
				expired = m
			}
			if !rt.Set(m, 0) {
				t.Fatalf("Set(%q) refused with no limit", tp)
			}
		}
		check := func(live map[string]bool) {
			t.Helper()
			checkRetainedTrie(t, &rt)
			for _, fl := range fils {
				if ValidFilter(fl) != nil {
					continue
				}
				got := map[string]int{}
				for _, m := range rt.Match(fl, nil) {
					if m == expired || m.Expired() {
						t.Fatalf("Match(%q) returned expired %q", fl, m.Topic)
					}
					got[m.Topic]++
				}
				for tp, ok := range live {
					want := ok && MatchTopic(fl, tp)
					switch n := got[tp]; {
					case want && n != 1:
						t.Fatalf("Match(%q) returned %q %d times, want once", fl, tp, n)
					case !want && n != 0:
						t.Fatalf("Match(%q) returned %q, which does not match or is expired", fl, tp)
					}
					delete(got, tp)
				}
				for tp := range got {
					t.Fatalf("Match(%q) returned %q, which is not stored", fl, tp)
				}
			}
		}
		live := map[string]bool{}
		for i, tp := range tops {
			live[tp] = i%7 != 3
		}
		if rt.Len() != len(tops) {
			t.Fatalf("Len = %d, want %d", rt.Len(), len(tops))
		}
		check(live)

		for i, tp := range tops {
			if i%2 == 0 {
				rt.Set(retainedMsg(tp, ""), 0)
				delete(live, tp)
			}
		}
		if rt.Len() != len(live) {
			t.Fatalf("after clearing half: Len = %d, want %d", rt.Len(), len(live))
		}
		check(live)
		for tp := range live {
			rt.Set(retainedMsg(tp, ""), 0)
		}
		if !retainedEmpty(&rt) {
			t.Fatal("trie not empty after clearing every topic")
		}
	})
}

// TestRouterPublishRetain: Router.Publish with Retain stores the message
// (MQTT 3.1.1 §3.3.1.3), SubscribeReplace returns the retained messages that
// match a new subscription [MQTT-3.3.1-6], and a shared subscription gets none
// (MQTT 5 §4.8.2: retained messages are not sent to shared subscriptions).
func TestRouterPublishRetain(t *testing.T) {
	r := New(Config{}, nil)
	pub := func(m *Message) {
		t.Helper()
		if err := r.Publish(context.Background(), nil, m); err != nil {
			t.Fatalf("Publish(%q): %v", m.Topic, err)
		}
	}
	pub(retainedMsg("s/1", "one"))
	pub(retainedMsg("s/2", "two"))
	pub(retainedMsg("s/2/deep", "deep"))
	pub(retainedMsg("$SYS/up", "1"))
	pub(&Message{Topic: "s/3", Payload: []byte("not retained"), QoS: AtLeastOnce})
	pub(&Message{Topic: "s/1", Payload: []byte("live only"), QoS: AtLeastOnce}) // does not replace

	if got := retainedTopics(r.Retained("#")); !slices.Equal(got, []string{"s/1", "s/2", "s/2/deep"}) {
		t.Fatalf("Retained(#) = %q, want [s/1 s/2 s/2/deep]", got)
	}
	if got := r.Retained("s/1"); len(got) != 1 || string(got[0].Payload) != "one" {
		t.Fatalf("Retained(s/1) = %v, want payload one (a non-retained publish must not replace it)", got)
	}

	s := openSession(t, r, "sub")
	ret, existed, err := r.SubscribeReplace(s, &Subscription{SubSpec: SubSpec{Key: "s/+", Filter: "s/+", QoS: AtLeastOnce}})
	if err != nil || existed {
		t.Fatalf("SubscribeReplace = existed %v, %v; want a new subscription", existed, err)
	}
	if got := retainedTopics(ret); !slices.Equal(got, []string{"s/1", "s/2"}) {
		t.Fatalf("SubscribeReplace(s/+) retained = %q, want [s/1 s/2]", got)
	}
	// Same key again: replaced, retained messages still reported.
	ret, existed, err = r.SubscribeReplace(s, &Subscription{SubSpec: SubSpec{Key: "s/+", Filter: "s/+", QoS: AtMostOnce}})
	if err != nil || !existed || len(ret) != 2 {
		t.Fatalf("second SubscribeReplace = %d retained, existed %v, %v; want 2, true, nil", len(ret), existed, err)
	}
	if n := r.Stats().Subscriptions; n != 1 {
		t.Fatalf("Subscriptions after replace = %d, want 1", n)
	}
	ret, _, err = r.SubscribeReplace(s, &Subscription{SubSpec: SubSpec{Key: "$SYS/#", Filter: "$SYS/#", QoS: AtLeastOnce}})
	if err != nil || len(ret) != 1 || ret[0].Topic != "$SYS/up" {
		t.Fatalf("SubscribeReplace($SYS/#) = %q, %v; want [$SYS/up]", retainedTopics(ret), err)
	}
	ret, _, err = r.SubscribeReplace(s, &Subscription{SubSpec: SubSpec{Key: "all", Filter: "#", QoS: AtLeastOnce}})
	if err != nil || slices.Contains(retainedTopics(ret), "$SYS/up") || len(ret) != 3 {
		t.Fatalf("SubscribeReplace(#) = %q, %v; want the 3 non-$ topics", retainedTopics(ret), err)
	}

	// Shared subscription: no retained messages.
	g := openSession(t, r, "member")
	ret, existed, err = r.SubscribeReplace(g, &Subscription{SubSpec: SubSpec{Key: "$share/g/s/+", Filter: "s/+", Group: "g", QoS: AtLeastOnce}})
	if err != nil || existed || len(ret) != 0 {
		t.Fatalf("shared SubscribeReplace = %q, existed %v, %v; want no retained messages", retainedTopics(ret), existed, err)
	}

	// A zero-byte retained publish clears the topic [MQTT-3.3.1-10/11] and is
	// still delivered as normal to current subscribers.
	drained(s)
	drained(g)
	pub(retainedMsg("s/1", ""))
	if got := r.Retained("s/1"); len(got) != 0 {
		t.Fatalf("Retained(s/1) after a zero-byte retained publish = %v, want none", got)
	}
	if ds := drained(s); len(ds) != 2 || len(ds[0].Msg.Payload) != 0 { // through s/+ and #
		t.Fatalf("subscriber got %d deliveries of the clearing message, want 2 (s/+ and #)", len(ds))
	}
	ret, _, _ = r.SubscribeReplace(openSession(t, r, "late"), &Subscription{SubSpec: SubSpec{Key: "k", Filter: "s/+"}})
	if got := retainedTopics(ret); !slices.Equal(got, []string{"s/2"}) {
		t.Fatalf("late subscriber retained = %q, want [s/2]", got)
	}
}

// TestRouterMaxRetained: past Config.MaxRetained a new topic is not retained
// (Publish says so with ErrRetainedQuota) but the publish is still
// delivered; an existing topic is still replaced.
func TestRouterMaxRetained(t *testing.T) {
	r := New(Config{MaxRetained: 1}, nil)
	s := openSession(t, r, "s")
	topicSub(t, r, s, "k", "#")
	for i, m := range []*Message{retainedMsg("t1", "a"), retainedMsg("t2", "b"), retainedMsg("t1", "c")} {
		err := r.Publish(context.Background(), nil, m)
		if want := i == 1; errors.Is(err, ErrRetainedQuota) != want || (!want && err != nil) {
			t.Fatalf("publish %d: %v (want ErrRetainedQuota: %v)", i, err, want)
		}
	}
	if got := drainedBodies(s); !sameStrings(got, []string{"a", "b", "c"}) {
		t.Errorf("subscriber got %q, want all three delivered", got)
	}
	got := r.Retained("#")
	if len(got) != 1 || got[0].Topic != "t1" || string(got[0].Payload) != "c" {
		t.Errorf("Retained(#) = %q, want only t1 with payload c", retainedTopics(got))
	}
}

// TestRetainedConcurrent exercises Set, clear and Match at once for the race
// detector.
func TestRetainedConcurrent(t *testing.T) {
	var rt Retained
	done := make(chan struct{})
	// No topic is a prefix of another: TestRetainedMaxPrefixTopic covers that.
	topics := []string{"c/a/1", "c/b/2", "c/c", "c/d", "c/e/3"}
	for w := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				tp := topics[(i+w)%len(topics)]
				body := "x"
				if i%3 == 0 {
					body = ""
				}
				rt.Set(retainedMsg(tp, body), 3)
			}
		}()
	}
	go func() {
		defer func() { done <- struct{}{} }()
		for range 2000 {
			for _, m := range rt.Match("c/#", nil) {
				if !MatchTopic("c/#", m.Topic) {
					t.Errorf("Match(c/#) returned %q", m.Topic)
					return
				}
			}
		}
	}()
	for range 3 {
		<-done
	}
	checkRetainedTrie(t, &rt)
	if n := rt.Len(); n > 3 {
		t.Errorf("Len = %d, past the limit 3", n)
	}
}

// TestRouterSysRetainedOutsideQuota: the broker's own $SYS values (no
// session, a $SYS/ topic) are retained whatever the quotas, leave
// clients' quota room untouched, and are not client traffic.
func TestRouterSysRetainedOutsideQuota(t *testing.T) {
	r := New(Config{MaxRetained: 1, MaxRetainedBytes: 8}, nil)
	for i := range 5 {
		if err := r.Publish(context.Background(), nil, retainedMsg(fmt.Sprintf("$SYS/broker/x/%d", i), "0123456789")); err != nil {
			t.Fatalf("$SYS publish %d: %v", i, err)
		}
	}
	if n := len(r.Retained("$SYS/#")); n != 5 {
		t.Fatalf("Retained($SYS/#) = %d messages, want 5", n)
	}
	if err := r.Publish(context.Background(), nil, retainedMsg("a", "1234")); err != nil {
		t.Fatalf("client retained message after $SYS values: %v", err)
	}
	if err := r.Publish(context.Background(), nil, retainedMsg("b", "1")); !errors.Is(err, ErrRetainedQuota) {
		t.Fatalf("second client topic: %v, want ErrRetainedQuota (MaxRetained 1)", err)
	}
	if c := r.Counters(); c.Published != 2 || c.NoSubscriber != 2 {
		t.Errorf("Counters: Published %d, NoSubscriber %d; want 2 and 2 (the $SYS values left out)", c.Published, c.NoSubscriber)
	}
}
