package broker

import (
	"reflect"
	"testing"
)

// TestSubscriptionMoveTo: a takeover's copy has the whole spec, the kind
// and its group, the new session, and none of the places the router kept
// the original (its index slot, its unacknowledged queue deliveries).
func TestSubscriptionMoveTo(t *testing.T) {
	g := &shareGroup{key: "g\x00a/+"}
	old := &Subscription{
		SubSpec: SubSpec{
			Key: "$share/g/a/+", Filter: "a/+", QoS: ExactlyOnce, Ack: AckClientIndividual, Prefetch: 3,
			NoLocal: true, Durable: true, Group: "g", RetainAsPublished: true, RetainHandling: 2, SubID: 9,
			Data: "protocol state",
		},
		Session: &Session{ID: "old"},
		kind:    kindShared,
		share:   g,
		at:      subPlace{pos: 4, inflight: 2},
	}
	to := &Session{ID: "new"}
	ns := old.moveTo(to)
	if !reflect.DeepEqual(ns.SubSpec, old.SubSpec) {
		t.Fatalf("spec %+v, want %+v", ns.SubSpec, old.SubSpec)
	}
	if ns.Session != to || ns.kind != kindShared || ns.share != g || ns.bind != nil || ns.at != (subPlace{}) {
		t.Fatalf("moved copy %+v: want session new, kind shared, the group, no place", ns)
	}
}

// TestSubscriptionKinds: the router gives every subscription its kind
// where it takes it: topic, share member, queue consumer (durable
// subscriptions' consumers included), share proxy and durable entry.
func TestSubscriptionKinds(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	subs := map[string]*Subscription{
		"topic":  {SubSpec: SubSpec{Key: "t", Filter: "a/b"}},
		"shared": {SubSpec: SubSpec{Key: "$share/g/a/b", Filter: "a/b", Group: "g"}},
		"queue":  {SubSpec: SubSpec{Key: "q", Queue: "jobs"}},
	}
	for name, sub := range subs {
		if err := r.Subscribe(s, sub); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	d := &Subscription{SubSpec: SubSpec{Key: "d", Filter: "a/#"}}
	if err := r.SubscribeDurable(s, d, "dur"); err != nil {
		t.Fatal(err)
	}
	want := map[*Subscription]subKind{subs["topic"]: kindTopic, subs["shared"]: kindShared, subs["queue"]: kindQueue, d: kindQueue}
	for sub, k := range want {
		if sub.kind != k {
			t.Errorf("%s: kind %d, want %d", sub.Key, sub.kind, k)
		}
	}
	got := map[subKind]int{}
	for _, m := range r.idx.Match("a/b", nil) {
		got[m.kind]++
		switch m.kind {
		case kindShareProxy:
			if m.Session != nil || m.share == nil || m.bind != nil {
				t.Errorf("share proxy %+v", m)
			}
		case kindBinding:
			if m.Session != nil || m.bind == nil || m.share != nil {
				t.Errorf("durable entry %+v", m)
			}
		}
	}
	if want := map[subKind]int{kindTopic: 1, kindShareProxy: 1, kindBinding: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("index kinds for a/b: %v, want %v", got, want)
	}
}
