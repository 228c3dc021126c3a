package broker

import (
	"fmt"
	"sort"
	"testing"
)

// subSet against a map, across the slice-to-map switch and back down.
func TestSubSet(t *testing.T) {
	var set subSet
	want := map[string]*Subscription{}
	check := func(step string) {
		t.Helper()
		if set.len() != len(want) {
			t.Fatalf("%s: len %d, want %d", step, set.len(), len(want))
		}
		seen := map[string]bool{}
		for k, s := range set.all() {
			if want[k] != s || s.Key != k || seen[k] {
				t.Fatalf("%s: all yields %q -> %p (want %p, seen %v)", step, k, s, want[k], seen[k])
			}
			seen[k] = true
		}
		for k, s := range want {
			if set.get(k) != s {
				t.Fatalf("%s: get(%q) = %p, want %p", step, k, set.get(k), s)
			}
		}
		if set.get("absent") != nil {
			t.Fatalf("%s: get of an absent key", step)
		}
	}
	put := func(key string) {
		s := &Subscription{SubSpec: SubSpec{Key: key}}
		set.put(s)
		want[key] = s
	}
	for i := range subSetSmall {
		put(fmt.Sprint("k", i))
		check(fmt.Sprint("put ", i))
	}
	if set.many != nil {
		t.Fatal("switched to a map at subSetSmall entries")
	}
	put("k3") // replace in the slice
	check("replace small")
	put("k8") // switch
	if set.many == nil || set.few != nil {
		t.Fatal("no map past subSetSmall entries")
	}
	check("switch")
	put("k8")
	check("replace large")
	if got := set.del("k0"); got != want["k0"] {
		t.Fatal("del in the map returned the wrong subscription")
	}
	delete(want, "k0")
	check("del large")
	if set.del("absent") != nil {
		t.Fatal("del of an absent key returned a subscription")
	}
	m := set.take()
	if len(m) != len(want) || set.len() != 0 {
		t.Fatalf("take: %d taken, %d left", len(m), set.len())
	}

	set = subSet{}
	want = map[string]*Subscription{}
	for _, k := range []string{"a", "b", "c"} {
		put(k)
	}
	if got := set.del("a"); got != want["a"] {
		t.Fatal("del in the slice returned the wrong subscription")
	}
	delete(want, "a")
	check("del small")
	m = set.take()
	if len(m) != 2 || m["b"] != want["b"] || m["c"] != want["c"] || set.len() != 0 {
		t.Fatalf("take small: %v", m)
	}
	for _, k := range []string{"x", "y"} {
		put(k)
	}
	all := set.drain()
	keys := []string{}
	for _, s := range all {
		keys = append(keys, s.Key)
	}
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[x y]" || set.len() != 0 {
		t.Fatalf("drain: %v, %d left", keys, set.len())
	}
}

// A session with more subscriptions than subSetSmall: subscribe, replace,
// unsubscribe and the admin listing work across the switch.
func TestSessionManySubs(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "many")
	n := 2*subSetSmall + 1
	for i := range n {
		topicSub(t, r, s, fmt.Sprint("s", i), fmt.Sprint("t/", i))
	}
	if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "s3", Filter: "x"}}); err != ErrDuplicateSub {
		t.Fatalf("duplicate key: %v, want ErrDuplicateSub", err)
	}
	if _, subs, ok := r.Client("many"); !ok || len(subs) != n {
		t.Fatalf("Client: %d subscriptions, want %d", len(subs), n)
	}
	for i := range n - 1 {
		if err := r.Unsubscribe(s, fmt.Sprint("s", i)); err != nil {
			t.Fatalf("Unsubscribe s%d: %v", i, err)
		}
	}
	if s.Subscription(fmt.Sprint("s", n-1)) == nil || s.Info().Subs != 1 {
		t.Fatalf("after unsubscribing all but one: %d left", s.Info().Subs)
	}
	r.Close(s, CloseClientClosed)
	if s.Info().Subs != 0 {
		t.Fatal("Close left subscriptions")
	}
}
