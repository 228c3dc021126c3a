package broker

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// boltStore opens a bbolt store in dir.
func boltStore(t *testing.T, dir string) *store.Bolt {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "duplex.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// reopen stops r, closes its store and restores a new router from the
// file, as a restart of the broker does.
func reopen(t *testing.T, r *Router, st *store.Bolt, dir string) (*Router, *store.Bolt, RestoreStats) {
	t.Helper()
	r.Stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = boltStore(t, dir)
	nr, stats := restart(t, nil, st, Config{})
	return nr, st, stats
}

func TestDisconnect(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	if err := r.Disconnect("s"); err != nil {
		t.Fatal(err)
	}
	if !s.Closed() || s.Reason() != CloseAdminAction {
		t.Fatalf("closed %v reason %v, want the admin action", s.Closed(), s.Reason())
	}
	if err := r.Disconnect("nobody"); !errors.Is(err, ErrNoSuchSession) {
		t.Fatalf("unknown id: %v", err)
	}
	if err := r.Disconnect("p"); err != nil {
		t.Fatal(err)
	}
	r.Close(p, p.Reason()) // the connection's read loop
	if ci, _, ok := r.Client("p"); !ok || ci.Online || !ci.Persistent {
		t.Fatalf("a disconnected persistent session is kept offline: %+v %v", ci, ok)
	}
	if err := r.Disconnect("p"); !errors.Is(err, ErrNoSuchSession) {
		t.Fatalf("offline session: %v, want ErrNoSuchSession", err)
	}
}

func TestDeleteSessionMemory(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	topicSub(t, r, s, "k", "a/#")
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "b/#")
	r.Close(p, CloseClientClosed)
	publishQoS(t, r, "b/1", "kept", AtLeastOnce)
	for _, id := range []SessionID{"s", "p"} {
		if err := r.DeleteSession(id); err != nil {
			t.Fatalf("DeleteSession(%s): %v", id, err)
		}
	}
	r.Close(s, s.Reason()) // the connection's read loop, after the fact
	if s.Reason() != CloseAdminAction {
		t.Fatalf("reason %v, want the admin action", s.Reason())
	}
	if st := r.Stats(); st.Sessions != 0 || st.Subscriptions != 0 || st.AllSubscriptions != 0 || st.PersistentSessions != 0 {
		t.Fatalf("after deleting both: %+v", st)
	}
	if err := r.DeleteSession("s"); !errors.Is(err, ErrNoSuchSession) {
		t.Fatalf("deleted again: %v", err)
	}
	// The id starts afresh.
	if n := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour}); n.Resumed() {
		t.Fatal("a deleted session was resumed")
	}
}

// A persistent session deleted offline or while connected leaves nothing
// in the store: after a restart it is gone with its messages.
func TestDeleteSessionStore(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{})
	off := openOpts(t, r, "off", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, off, "t/#")
	r.Close(off, CloseClientClosed)
	on := openOpts(t, r, "on", SessionOptions{Expiry: NeverExpire})
	mqttSub(t, r, on, "t/#")
	keep := openOpts(t, r, "keep", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, keep, "t/#")
	publishQoS(t, r, "t/1", "a", AtLeastOnce)
	publishQoS(t, r, "t/2", "b", ExactlyOnce)
	for _, id := range []string{"off", "on", "keep"} {
		if n := countStored(t, st, id); n != 2 {
			t.Fatalf("stored for %s: %d, want 2", id, n)
		}
	}
	if err := r.DeleteSession("off"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteSession("on"); err != nil {
		t.Fatal(err)
	}
	if on.Reason() != CloseAdminAction {
		t.Fatalf("connected session closed with %v", on.Reason())
	}
	r.Close(on, on.Reason()) // its read loop must not write it back
	publishQoS(t, r, "t/3", "c", AtLeastOnce)
	for id, want := range map[string]int{"off": 0, "on": 0, "keep": 3} {
		if n := countStored(t, st, id); n != want {
			t.Fatalf("stored for %s: %d, want %d", id, n, want)
		}
	}
	r.Close(keep, CloseClientClosed)

	r, st, stats := reopen(t, r, st, dir)
	if ids := sessionIDs(r); !slices.Equal(ids, []string{"keep"}) || stats.Queued != 3 {
		t.Fatalf("after the restart: sessions %v, queued %d; want [keep] and 3", ids, stats.Queued)
	}
	for _, id := range []string{"off", "on"} {
		if _, _, err := st.GetSession(id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("record of %s: %v, want ErrNotFound", id, err)
		}
	}
}

func TestPurgeQueueStore(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{})
	for _, b := range []string{"1", "2", "3"} {
		publishQueue(t, r, nil, "jobs", b)
	}
	c := openSession(t, r, "c")
	if err := r.Subscribe(c, &Subscription{SubSpec: SubSpec{Key: "q", Queue: "jobs", QoS: AtLeastOnce, Ack: AckClientIndividual, Prefetch: 1}}); err != nil {
		t.Fatal(err)
	}
	// A durable subscription without a consumer collects messages too.
	d := openSession(t, r, "d")
	durableSub(t, r, d, "news/#", "n")
	if err := r.Unsubscribe(d, "s"); err != nil {
		t.Fatal(err)
	}
	publishQoS(t, r, "news/1", "x", AtLeastOnce)
	publishQoS(t, r, "news/2", "y", AtLeastOnce)

	if n, err := r.PurgeQueue("jobs"); err != nil || n != 2 {
		t.Fatalf("PurgeQueue(jobs) = %d, %v; want 2 (one is unacknowledged)", n, err)
	}
	if qi, _ := r.Queue("jobs"); qi.Ready != 0 || qi.Unacked != 1 {
		t.Fatalf("jobs after the purge: %+v", qi)
	}
	if n, err := r.PurgeQueue("$durable/n"); err != nil || n != 2 {
		t.Fatalf("PurgeQueue($durable/n) = %d, %v; want 2", n, err)
	}
	if n, err := r.PurgeQueue("jobs"); err != nil || n != 0 {
		t.Fatalf("purged again: %d, %v", n, err)
	}
	if _, err := r.PurgeQueue("nope"); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("unknown queue: %v", err)
	}
	r.Close(c, CloseClientClosed)
	r.Close(d, CloseClientClosed)

	r, _, stats := reopen(t, r, st, dir)
	if stats.QueueMsgs != 1 {
		t.Fatalf("restored queue messages: %d, want 1 (the unacknowledged one)", stats.QueueMsgs)
	}
	if qi, ok := r.Queue("$durable/n"); !ok || qi.Ready != 0 {
		t.Fatalf("durable subscription after the restart: %+v %v", qi, ok)
	}
}

func TestDeleteDurableStore(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{})
	a := openOpts(t, r, "a", SessionOptions{Identity: Identity{Name: "alice"}})
	durableSub(t, r, a, "news/#", "mine")
	publishQoS(t, r, "news/1", "x", AtLeastOnce)
	publishQueue(t, r, nil, "jobs", "1")
	qname := durableQueueName("alice", "mine")

	if err := r.DeleteDurable("jobs"); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("plain queue: %v, want ErrNotDurable", err)
	}
	if err := r.DeleteDurable("$durable/nope"); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("unknown: %v, want ErrNoSuchQueue", err)
	}
	if err := r.DeleteDurable(qname); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Queue(qname); ok || r.HasDurableSubscriptions() {
		t.Fatal("the durable subscription is still there")
	}
	publishQoS(t, r, "news/2", "y", AtLeastOnce) // goes nowhere
	if err := r.DeleteDurable(qname); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("deleted again: %v", err)
	}
	r.Close(a, CloseClientClosed)

	r, _, stats := reopen(t, r, st, dir)
	if _, ok := r.Queue(qname); ok || stats.Subs != 0 || stats.QueueMsgs != 1 {
		t.Fatalf("after the restart: durable present %v, subs %d, queue messages %d", ok, stats.Subs, stats.QueueMsgs)
	}
}

func TestDeleteRetainedStore(t *testing.T) {
	dir := t.TempDir()
	st := boltStore(t, dir)
	r, _ := restart(t, nil, st, Config{})
	for _, topic := range []string{"a/b", "keep"} {
		if err := r.Publish(context.Background(), nil, &Message{Topic: topic, Payload: []byte("v"), Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.DeleteRetained("a/b"); err != nil {
		t.Fatal(err)
	}
	if got := r.Retained("a/b"); len(got) != 0 {
		t.Fatalf("still retained: %v", got)
	}
	for _, topic := range []string{"a/b", "a", "nope", "a/#"} {
		if err := r.DeleteRetained(topic); !errors.Is(err, ErrNoSuchRetained) {
			t.Fatalf("DeleteRetained(%q) = %v, want ErrNoSuchRetained", topic, err)
		}
	}
	r, _, stats := reopen(t, r, st, dir)
	if stats.Retained != 1 || len(r.Retained("a/b")) != 0 || len(r.Retained("keep")) != 1 {
		t.Fatalf("after the restart: %d retained", stats.Retained)
	}
}

// Deleting a persistent session while publishers keep storing messages
// for it leaves nothing in the store: commits under way land before its
// records go, later ones are not made (storeAccount.retire).
func TestDeleteSessionWhilePublishing(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{MaxOfflineMsgs: 1 << 20})
	for round := range 5 {
		p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour, CleanStart: true})
		mqttSub(t, r, p, "t/#")
		if round%2 == 0 {
			r.Close(p, CloseClientClosed) // deleted offline, or connected
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		for range 3 {
			go func() {
				defer func() { done <- struct{}{} }()
				for {
					select {
					case <-stop:
						return
					default:
						_ = r.Publish(context.Background(), nil, &Message{Topic: "t/x", Payload: []byte("m"), QoS: AtLeastOnce})
					}
				}
			}()
		}
		checkFor(t, "stored messages", func() bool { return countStored(t, st, "p") > 10 })
		if err := r.DeleteSession("p"); err != nil {
			t.Fatal(err)
		}
		close(stop)
		for range 3 {
			<-done
		}
		r.Close(p, p.Reason())
		if n := countStored(t, st, "p"); n != 0 {
			t.Fatalf("round %d: %d messages stored for the deleted session", round, n)
		}
		if _, _, err := st.GetSession("p"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("round %d: record: %v", round, err)
		}
	}
}
