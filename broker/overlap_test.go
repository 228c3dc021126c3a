package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// openProto opens a session speaking proto ("mqtt", "stomp").
func openProto(t testing.TB, r *Router, id SessionID, proto string, o SessionOptions) *Session {
	t.Helper()
	o.Protocol, o.RemoteAddr = proto, "test"
	s, err := r.Open(id, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", id, err)
	}
	return s
}

// subMQTT subscribes s to filter the MQTT way with qos, subscription
// identifier id and the given options.
func subMQTT(t testing.TB, r *Router, s *Session, filter string, qos QoS, id uint32, mod func(*Subscription)) {
	t.Helper()
	sub := &Subscription{SubSpec: SubSpec{Key: filter, Filter: filter, QoS: qos, SubID: id}}
	if mod != nil {
		mod(sub)
	}
	if _, _, err := r.SubscribeReplace(s, sub); err != nil {
		t.Fatalf("SubscribeReplace(%q): %v", filter, err)
	}
}

func subIDs(d Delivery) []uint32 {
	ids := d.SubIDs(nil)
	slices.Sort(ids)
	return ids
}

// Overlapping subscriptions of one MQTT client: one copy, at the highest
// granted QoS, with every matching subscription identifier
// [MQTT-3.3.4-2] [MQTT-3.3.4-4].
func TestOverlapOneCopyPerClient(t *testing.T) {
	r := New(Config{}, nil)
	s := openProto(t, r, "c", "mqtt", SessionOptions{})
	subMQTT(t, r, s, "a/+", AtMostOnce, 1, nil)
	subMQTT(t, r, s, "a/b", ExactlyOnce, 2, nil)
	subMQTT(t, r, s, "#", AtLeastOnce, 0, nil) // no identifier
	subMQTT(t, r, s, "x/#", ExactlyOnce, 9, nil)

	publishQoS(t, r, "a/b", "m", ExactlyOnce)
	ds := drained(s)
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	if d := ds[0]; d.QoS != ExactlyOnce || d.Sub.Filter != "a/b" || !slices.Equal(subIDs(d), []uint32{1, 2}) {
		t.Fatalf("delivery QoS %d via %q ids %v; want QoS 2 via a/b, ids [1 2]", d.QoS, d.Sub.Filter, subIDs(d))
	}
	// Only one subscription matches: its own identifier, its QoS.
	publishQoS(t, r, "q", "m", ExactlyOnce)
	if ds := drained(s); len(ds) != 1 || ds[0].QoS != AtLeastOnce || len(subIDs(ds[0])) != 0 {
		t.Fatalf("single match: %+v", ds)
	}
	// Unsubscribing leaves the others merging.
	if err := r.Unsubscribe(s, "a/b"); err != nil {
		t.Fatal(err)
	}
	publishQoS(t, r, "a/b", "m", ExactlyOnce)
	if ds := drained(s); len(ds) != 1 || ds[0].QoS != AtLeastOnce || !slices.Equal(subIDs(ds[0]), []uint32{1}) {
		t.Fatalf("after unsubscribe: %d deliveries %+v, want one at QoS 1 with id 1", len(ds), ds)
	}
	if n := s.overlaps.Load(); n != 3 {
		t.Fatalf("overlaps %d, want 3", n)
	}
}

// Config.PerSubscriptionCopies keeps Mosquitto's behaviour: a copy per
// matching subscription, each at its QoS with its identifier
// [MQTT-3.3.4-5]; STOMP gets a MESSAGE per subscription whatever the
// setting.
func TestOverlapPerSubscriptionCopies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		proto string
	}{
		{"mqtt per subscription", Config{PerSubscriptionCopies: true}, "mqtt"},
		{"stomp", Config{}, "stomp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(tc.cfg, nil)
			s := openProto(t, r, "c", tc.proto, SessionOptions{})
			subMQTT(t, r, s, "a/+", AtMostOnce, 1, nil)
			subMQTT(t, r, s, "a/b", ExactlyOnce, 2, nil)
			publishQoS(t, r, "a/b", "m", ExactlyOnce)
			ds := drained(s)
			if len(ds) != 2 {
				t.Fatalf("%d deliveries, want 2", len(ds))
			}
			for _, d := range ds {
				if d.QoS != d.Sub.QoS || !slices.Equal(subIDs(d), []uint32{d.Sub.SubID}) {
					t.Errorf("delivery via %q: QoS %d ids %v", d.Sub.Filter, d.QoS, subIDs(d))
				}
			}
			if s.overlaps.Load() != 0 {
				t.Errorf("overlaps counted for a session that takes a copy per subscription")
			}
		})
	}
}

// No-local applies per subscription before the copies merge
// [MQTT-3.8.3-3]; Retain As Published holds if any merged subscription
// asked for it; a shared subscription's delivery stays separate.
func TestOverlapRules(t *testing.T) {
	r := New(Config{}, nil)
	s := openProto(t, r, "c", "mqtt", SessionOptions{})
	subMQTT(t, r, s, "n/#", ExactlyOnce, 1, func(sub *Subscription) { sub.NoLocal = true })
	subMQTT(t, r, s, "n/+", AtLeastOnce, 2, func(sub *Subscription) { sub.RetainAsPublished = true })
	subMQTT(t, r, s, "$share/g/n/x", AtLeastOnce, 3, func(sub *Subscription) { sub.Key, sub.Group, sub.Filter = "$share/g/n/x", "g", "n/x" })

	if err := r.Publish(context.Background(), s, &Message{Topic: "n/x", Payload: []byte("own"), QoS: ExactlyOnce, Retain: true}); err != nil {
		t.Fatal(err)
	}
	ds := drained(s)
	if len(ds) != 2 {
		t.Fatalf("%d deliveries, want 2 (the client's own subscriptions, the share group)", len(ds))
	}
	for _, d := range ds {
		switch d.Sub.Group {
		case "":
			// n/# is no-local: only n/+ takes the client's own message.
			if d.QoS != AtLeastOnce || !slices.Equal(subIDs(d), []uint32{2}) || !d.RetainAsPublished() {
				t.Errorf("own message: QoS %d ids %v rap %v; want QoS 1, [2], true", d.QoS, subIDs(d), d.RetainAsPublished())
			}
		default:
			if !slices.Equal(subIDs(d), []uint32{3}) {
				t.Errorf("share delivery ids %v, want [3]", subIDs(d))
			}
		}
	}
	publishQoS(t, r, "n/y", "other", ExactlyOnce)
	ds = drained(s)
	if len(ds) != 1 || ds[0].QoS != ExactlyOnce || !slices.Equal(subIDs(ds[0]), []uint32{1, 2}) || !ds[0].RetainAsPublished() {
		t.Fatalf("another client's message: %+v; want one copy at QoS 2 with ids [1 2] keeping RETAIN", ds)
	}
}

// Many clients with overlapping subscriptions (past the linear scan) each
// get one copy; a client with one subscription is not affected.
func TestOverlapManyClients(t *testing.T) {
	r := New(Config{}, nil)
	var ss []*Session
	for i := range 3 * oneScan {
		s := openProto(t, r, SessionID(fmt.Sprint("c", i)), "mqtt", SessionOptions{})
		subMQTT(t, r, s, "t/#", AtMostOnce, 1, nil)
		if i%3 != 0 {
			subMQTT(t, r, s, "t/+", AtLeastOnce, 2, nil)
		}
		ss = append(ss, s)
	}
	publishQoS(t, r, "t/1", "m", AtLeastOnce)
	for i, s := range ss {
		ds := drained(s)
		want := []uint32{1, 2}
		if i%3 == 0 {
			want = []uint32{1}
		}
		if len(ds) != 1 || !slices.Equal(subIDs(ds[0]), want) {
			t.Fatalf("client %d: %d deliveries %+v, want one with ids %v", i, len(ds), ds, want)
		}
	}
}

// A persistent session keeps one stored copy for overlapping
// subscriptions while offline and gets it, with both identifiers, when it
// resumes; the overlap count moves with the subscriptions.
func TestOverlapStoredAndResumed(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	o := SessionOptions{Expiry: time.Hour}
	s := openProto(t, r, "p", "mqtt", o)
	subMQTT(t, r, s, "a/#", AtLeastOnce, 1, nil)
	subMQTT(t, r, s, "a/b", ExactlyOnce, 2, nil)
	r.Close(s, CloseClientClosed)
	publishQoS(t, r, "a/b", "m", ExactlyOnce)
	if n := countStored(t, st, "p"); n != 1 {
		t.Fatalf("%d stored copies, want 1", n)
	}
	s = openProto(t, r, "p", "mqtt", o)
	ds := collectStored(t, s, 1)
	if d := ds[0]; d.QoS != ExactlyOnce || !slices.Equal(subIDs(d), []uint32{1, 2}) {
		t.Fatalf("paged in: QoS %d ids %v, want 2, [1 2]", d.QoS, subIDs(d))
	}
	if n := s.overlaps.Load(); n != 2 {
		t.Fatalf("resumed session overlaps %d, want 2", n)
	}
	r.Ack(ds[0])
	publishQoS(t, r, "a/b", "live", ExactlyOnce)
	ds = collectStored(t, s, 1)
	if len(ds) != 1 || !slices.Equal(subIDs(ds[0]), []uint32{1, 2}) {
		t.Fatalf("live after resume: %+v, want one copy with ids [1 2]", ds)
	}
	r.Ack(ds[0])
	checkFor(t, "acknowledged copies to leave the store", func() bool { return countStored(t, st, "p") == 0 })
	// After a restart the restored subscriptions merge too.
	r.Close(s, CloseClientClosed)
	r, _ = restart(t, r, st, Config{})
	publishQoS(t, r, "a/b", "after", ExactlyOnce)
	if n := countStored(t, st, "p"); n != 1 {
		t.Fatalf("after restart: %d stored copies, want 1", n)
	}
	s = openProto(t, r, "p", "mqtt", o)
	if ds := collectStored(t, s, 1); len(ds) != 1 || string(ds[0].Msg.Payload) != "after" || !slices.Equal(subIDs(ds[0]), []uint32{1, 2}) {
		t.Fatalf("after restart: %+v, want one copy of after with ids [1 2]", ds)
	}
}

// BenchmarkPublishOverlap publishes to 100 MQTT clients, each with one
// subscription (nothing to merge) or two overlapping ones with
// identifiers (one merged copy each).
func BenchmarkPublishOverlap(b *testing.B) {
	for _, subs := range []int{1, 2} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			r := New(Config{}, nil)
			ss := make([]*Session, 100)
			for i := range ss {
				ss[i] = openProto(b, r, SessionID(fmt.Sprint("c", i)), "mqtt", SessionOptions{})
				subMQTT(b, r, ss[i], "bench/+/temp", AtLeastOnce, 1, nil)
				if subs == 2 {
					subMQTT(b, r, ss[i], "bench/#", AtMostOnce, 2, nil)
				}
			}
			ctrl := make([][][]byte, len(ss))
			msgs := make([][]Delivery, len(ss))
			m := &Message{Topic: "bench/k1/temp", Payload: make([]byte, 64), QoS: AtLeastOnce}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Publish(ctx, nil, m); err != nil {
					b.Fatal(err)
				}
				for i, s := range ss {
					ctrl[i], msgs[i], _ = s.Outbox.Drain(ctrl[i], msgs[i])
					if len(msgs[i]) != 1 {
						b.Fatalf("client %d drained %d deliveries, want 1", i, len(msgs[i]))
					}
					clear(msgs[i])
				}
			}
		})
	}
}
