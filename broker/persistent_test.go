package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// storedWalk sums the sessions' stored messages, as Stats did before it
// kept a running total.
func storedWalk(r *Router) int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var n int64
	for _, s := range r.sessions {
		n += s.storedMsgs()
	}
	return n
}

// checkStoredTotal asserts that Stats' running total of stored messages
// is want, the sessions' own counts, and what the store holds for ids.
func checkStoredTotal(t *testing.T, r *Router, st store.Store, want int64, ids ...string) {
	t.Helper()
	if got := r.Stats().StoredMsgs; got != want {
		t.Fatalf("Stats().StoredMsgs = %d, want %d", got, want)
	}
	if got := storedWalk(r); got != want {
		t.Fatalf("sessions' stored messages add up to %d, want %d", got, want)
	}
	var disk int
	for _, id := range ids {
		disk += countStored(t, st, id)
	}
	if int64(disk) != want {
		t.Fatalf("store holds %d for %v, want %d", disk, ids, want)
	}
}

// TestStoredRunningTotal: Stats.StoredMsgs is a running total kept where
// the sessions' counts change (commit, acknowledgement, takeover, clean
// start, expiry, DeleteSession, restart), equal to the sum of the
// sessions' counts and to what the store holds.
func TestStoredRunningTotal(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		s := openOpts(t, r, SessionID(id), SessionOptions{Expiry: time.Hour})
		mqttSub(t, r, s, "t")
		r.Close(s, CloseClientClosed)
	}
	for _, b := range []string{"1", "2", "3"} {
		publishQoS(t, r, "t", b, AtLeastOnce)
	}
	publishQoS(t, r, "t", "qos0", AtMostOnce)
	checkStoredTotal(t, r, st, 12, ids...)

	// A takeover shares the account: nothing changes until acknowledged.
	a := openOpts(t, r, "a", SessionOptions{Expiry: time.Hour})
	checkStoredTotal(t, r, st, 12, ids...)
	got := collectStored(t, a, 3)
	r.Ack(got[0])
	r.Ack(got[1])
	if n := r.Stats().StoredMsgs; n != 10 {
		t.Fatalf("after two acks Stats().StoredMsgs = %d, want 10", n)
	}

	// A clean start discards b's messages, DeleteSession c's.
	openOpts(t, r, "b", SessionOptions{Expiry: time.Hour, CleanStart: true})
	if err := r.DeleteSession("c"); err != nil {
		t.Fatal(err)
	}
	if n, w := r.Stats().StoredMsgs, storedWalk(r); n != 4 || w != 4 {
		t.Fatalf("after clean start and delete: Stats().StoredMsgs = %d, walk %d, want 4", n, w)
	}
	r.Stop() // flush the acknowledgements to the store
	r, _ = restart(t, nil, st, Config{})
	checkStoredTotal(t, r, st, 4, ids...) // a's unacknowledged one, d's three

	// d expires offline.
	d := openOpts(t, r, "d", SessionOptions{Expiry: time.Millisecond})
	r.Close(d, CloseClientClosed)
	checkFor(t, "d expired", func() bool { return r.Stats().StoredMsgs == 1 })
	checkStoredTotal(t, r, st, 1, ids...)

	// Session Expiry 0 at the end of a resumed session ends its state.
	a = openOpts(t, r, "a", SessionOptions{})
	a.SetExpiry(0)
	r.Close(a, CloseClientClosed)
	checkStoredTotal(t, r, st, 0, ids...)
}

// BenchmarkStatsSessions: Stats with 110,000 persistent sessions (the
// bench/README management-API scale). The stored-message total is a
// running total, so Stats does not walk the sessions for it.
func BenchmarkStatsSessions(b *testing.B) {
	r := New(Config{Store: store.NewMemory()}, nil)
	b.Cleanup(r.Stop)
	for i := range 110_000 {
		if _, err := r.Open(SessionID(fmt.Sprintf("s%d", i)), SessionOptions{Protocol: "mqtt", Expiry: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		_ = r.Stats()
	}
}

// BenchmarkPublishPersistent publishes QoS 1 messages to 1 and 100
// connected persistent sessions with a store, each drained and
// acknowledged in the loop: the stored path (store account enter, reserve,
// leave, deliverStored, release on acknowledgement).
func BenchmarkPublishPersistent(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			r := New(Config{Store: store.NewMemory()}, nil)
			b.Cleanup(r.Stop)
			sessions := make([]*Session, n)
			for i := range sessions {
				sessions[i] = openOpts(b, r, SessionID(fmt.Sprintf("p%d", i)), SessionOptions{Protocol: "mqtt", Expiry: time.Hour})
				mqttSub(b, r, sessions[i], "bench/+/temp")
			}
			ctrl := make([][][]byte, n)
			msgs := make([][]Delivery, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				m := &Message{Topic: "bench/k1/temp", Payload: make([]byte, 64), QoS: AtLeastOnce}
				if err := r.Publish(ctx, nil, m); err != nil {
					b.Fatal(err)
				}
				for i, s := range sessions {
					ctrl[i], msgs[i], _ = s.Outbox.Drain(ctrl[i], msgs[i])
					for _, d := range msgs[i] {
						r.Ack(d)
					}
					clear(msgs[i])
				}
			}
		})
	}
}

// TestTakeoverDiscardsOnDisk: a session that resumed persistent state with
// a Session Expiry of 0 ends that state with its connection, so a takeover
// (without clean start) starts afresh, and what the store held for the id
// goes too: after a restart the new session has neither the old
// subscription nor its stored messages, and the stored total is 0.
func TestTakeoverDiscardsOnDisk(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	a := openOpts(t, r, "x", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, a, "t")
	r.Close(a, CloseClientClosed)
	publishQoS(t, r, "t", "1", AtLeastOnce)
	publishQoS(t, r, "t", "2", AtLeastOnce)
	b := openOpts(t, r, "x", SessionOptions{}) // resumes, ends with its connection
	if !b.Resumed() || b.storedMsgs() != 2 {
		t.Fatalf("b resumed %v with %d stored, want true, 2", b.Resumed(), b.storedMsgs())
	}
	c := openOpts(t, r, "x", SessionOptions{Expiry: time.Hour})
	if c.Resumed() || c.Subscription("t") != nil {
		t.Fatal("c took over state that ended with b's connection")
	}
	checkStoredTotal(t, r, st, 0, "x")
	r, stats := restart(t, r, st, Config{})
	if stats.Sessions != 1 || stats.Subs != 0 || stats.Queued != 0 {
		t.Fatalf("restored %+v, want c's session alone", stats)
	}
}
