package store

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// The conformance suite: every test in it runs against both
// implementations (the nats TestSublistSimple / NoCache pattern).

func TestMemory(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewMemory() })
}

func TestBolt(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return openTemp(t, Options{}) })
}

func TestBoltIntervalSync(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return openTemp(t, Options{Sync: SyncPolicy(5 * time.Millisecond)}) })
}

func openTemp(t testing.TB, o Options) *Bolt {
	t.Helper()
	b, err := Open(t.TempDir()+"/data/duplex.db", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func testStore(t *testing.T, newFn func(t *testing.T) Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"Sessions", testSessions},
		{"Subs", testSubs},
		{"DeleteSessionCascades", testDeleteSessionCascades},
		{"EnqueueFanOut", testEnqueueFanOut},
		{"PendingPaging", testPendingPaging},
		{"Ack", testAck},
		{"Retained", testRetained},
		{"NamedQueues", testNamedQueues},
		{"Load", testLoad},
		{"ConcurrentEnqueue", testConcurrentEnqueue},
		{"InvalidKeys", testInvalidKeys},
		{"Closed", testClosed},
		{"Commit", testCommit},
		{"Sweep", testSweep},
		{"CommitAll", testCommitAll},
		{"Owners", testOwners},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newFn(t)) })
	}
}

var t0 = time.Date(2026, 11, 22, 8, 0, 0, 123456789, time.UTC)

func sampleMsg(i int) Msg {
	return Msg{
		ID:              uint64(i),
		Topic:           fmt.Sprintf("a/b/%d", i),
		Payload:         []byte(fmt.Sprintf("payload %d", i)),
		ContentType:     "text/plain",
		ResponseTopic:   "reply/to",
		CorrelationData: []byte{1, 2, byte(i)},
		PayloadFormat:   1,
		Props:           []Prop{{"k1", "v1"}, {"k2", ""}},
		QoS:             1,
		Expires:         t0.Add(time.Hour),
	}
}

func sampleSession(id string) Session {
	return Session{
		ID:         id,
		Protocol:   "mqtt5",
		Expiry:     -1,
		CleanStart: true,
		Will:       &Will{Msg: sampleMsg(7), Delay: 5 * time.Second},
		State:      []byte{0, 1, 2, 3},
	}
}

func sampleSub(key string) Sub {
	return Sub{Key: key, Filter: key, Group: "g", QoS: 2, NoLocal: true, RetainAsPublished: true,
		RetainHandling: 2, SubID: 42, Durable: true}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testSessions(t *testing.T, s Store) {
	if _, _, err := s.GetSession("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetSession(unknown) = %v, want ErrNotFound", err)
	}
	a := sampleSession("a")
	must(t, s.PutSession(a))
	got, subs, err := s.GetSession("a")
	must(t, err)
	equal(t, "session", got, a)
	equal(t, "subs", len(subs), 0)

	// Replace; the caller's slices are not retained.
	a.Will = nil
	a.ExpiresAt = t0
	a.Expiry = time.Minute
	must(t, s.PutSession(a))
	a.State[0] = 99
	got, _, err = s.GetSession("a")
	must(t, err)
	a.State[0] = 0
	equal(t, "replaced session", got, a)

	// Returned values are copies.
	got.State[1] = 77
	again, _, _ := s.GetSession("a")
	equal(t, "copy", again.State[1], byte(1))
}

func testSubs(t *testing.T, s Store) {
	must(t, s.PutSession(sampleSession("a")))
	must(t, s.PutSession(sampleSession("ab")))
	for _, k := range []string{"z/#", "a/+", "m"} {
		must(t, s.PutSub("a", sampleSub(k)))
	}
	must(t, s.PutSub("ab", sampleSub("other")))
	_, subs, err := s.GetSession("a")
	must(t, err)
	equal(t, "subs", subs, []Sub{sampleSub("a/+"), sampleSub("m"), sampleSub("z/#")})

	repl := sampleSub("m")
	repl.QoS, repl.Durable = 0, false
	must(t, s.PutSub("a", repl))
	must(t, s.DeleteSub("a", "z/#"))
	must(t, s.DeleteSub("a", "never-existed"))
	_, subs, err = s.GetSession("a")
	must(t, err)
	equal(t, "subs after replace/delete", subs, []Sub{sampleSub("a/+"), repl})
	_, subs, _ = s.GetSession("ab")
	equal(t, "other session's subs", subs, []Sub{sampleSub("other")})
}

func testDeleteSessionCascades(t *testing.T, s Store) {
	for _, id := range []string{"a", "ab"} {
		must(t, s.PutSession(sampleSession(id)))
		must(t, s.PutSub(id, sampleSub("x")))
	}
	_, err := s.Enqueue(sampleMsg(1), []string{"a", "ab"})
	must(t, err)
	must(t, s.DeleteSession("a"))
	must(t, s.DeleteSession("a")) // idempotent
	if _, _, err := s.GetSession("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	q, err := s.Pending("a", 0, 0)
	must(t, err)
	equal(t, "queue of deleted session", len(q), 0)
	// A new session with the same id starts empty.
	must(t, s.PutSession(sampleSession("a")))
	_, subs, _ := s.GetSession("a")
	equal(t, "subs of recreated session", len(subs), 0)
	// The neighbour with a longer id is untouched.
	_, subs, _ = s.GetSession("ab")
	equal(t, "neighbour subs", len(subs), 1)
	q, _ = s.Pending("ab", 0, 0)
	equal(t, "neighbour queue", len(q), 1)
}

func testEnqueueFanOut(t *testing.T, s Store) {
	seqs, err := s.Enqueue(sampleMsg(1), nil)
	must(t, err)
	equal(t, "empty fan-out", len(seqs), 0)

	ids := []string{"c", "a", "b"}
	seqs, err = s.Enqueue(sampleMsg(1), ids)
	must(t, err)
	equal(t, "seq count", len(seqs), 3)
	seen := map[uint64]bool{}
	for i, id := range ids {
		if seqs[i] == 0 || seen[seqs[i]] {
			t.Fatalf("seqs not distinct and non-zero: %v", seqs)
		}
		seen[seqs[i]] = true
		q, err := s.Pending(id, 0, 0)
		must(t, err)
		equal(t, "pending "+id, q, []Queued{{Seq: seqs[i], Msg: sampleMsg(1)}})
	}
	more, err := s.Enqueue(sampleMsg(2), []string{"a"})
	must(t, err)
	for _, q := range seqs {
		if more[0] <= q {
			t.Fatalf("seq %d not greater than earlier %v", more[0], seqs)
		}
	}
}

func testPendingPaging(t *testing.T, s Store) {
	var want []Queued
	for i := range 10 {
		seqs, err := s.Enqueue(sampleMsg(i), []string{"a", "b"})
		must(t, err)
		want = append(want, Queued{Seq: seqs[0], Msg: sampleMsg(i)})
	}
	all, err := s.Pending("a", 0, 0)
	must(t, err)
	equal(t, "all", all, want)

	var paged []Queued
	after := uint64(0)
	for {
		page, err := s.Pending("a", after, 3)
		must(t, err)
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("page of %d > max 3", len(page))
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Seq
	}
	equal(t, "paged", paged, want)

	page, err := s.Pending("a", want[4].Seq, 2)
	must(t, err)
	equal(t, "after a middle seq", page, want[5:7])
	page, err = s.Pending("a", ^uint64(0), 0)
	must(t, err)
	equal(t, "after max", len(page), 0)
	page, err = s.Pending("nobody", 0, 0)
	must(t, err)
	equal(t, "unknown session", len(page), 0)
}

func testAck(t *testing.T, s Store) {
	var seqs []uint64
	for i := range 5 {
		q, err := s.Enqueue(sampleMsg(i), []string{"a", "b"})
		must(t, err)
		seqs = append(seqs, q[0])
	}
	must(t, s.Ack("a", seqs[0]))
	must(t, s.Ack("a", seqs[2]))
	must(t, s.Ack("a", seqs[2])) // twice is fine
	must(t, s.Ack("a", 1<<60))   // unknown is fine
	must(t, s.Ack("b", seqs[1])) // a's seq is not b's: no effect on a
	q, err := s.Pending("a", 0, 0)
	must(t, err)
	equal(t, "after acks", q, []Queued{
		{seqs[1], sampleMsg(1)}, {seqs[3], sampleMsg(3)}, {seqs[4], sampleMsg(4)},
	})
	q, _ = s.Pending("b", 0, 0)
	equal(t, "b untouched", len(q), 5)
}

func testRetained(t *testing.T, s Store) {
	m1, m2 := sampleMsg(1), sampleMsg(2)
	m1.Retain, m2.Retain = true, true
	must(t, s.PutRetained(m1))
	must(t, s.PutRetained(m2))
	repl := m1
	repl.Payload = []byte("new")
	must(t, s.PutRetained(repl))
	got := load(t, s)
	equal(t, "retained", got.retained, []Msg{repl, m2})

	del := m2
	del.Payload = nil
	must(t, s.PutRetained(del))
	del.Topic = "never/set"
	must(t, s.PutRetained(del))
	got = load(t, s)
	equal(t, "retained after delete", got.retained, []Msg{repl})
}

func testNamedQueues(t *testing.T, s Store) {
	var want []Queued
	for i := range 6 {
		seq, err := s.QueuePush("orders", sampleMsg(i))
		must(t, err)
		if len(want) > 0 && seq <= want[len(want)-1].Seq {
			t.Fatalf("queue seq %d not increasing", seq)
		}
		want = append(want, Queued{seq, sampleMsg(i)})
	}
	_, err := s.QueuePush("orders2", sampleMsg(99))
	must(t, err)
	// Session queues are separate from named queues of the same name.
	_, err = s.Enqueue(sampleMsg(100), []string{"orders"})
	must(t, err)

	q, err := s.QueuePending("orders", 0, 0)
	must(t, err)
	equal(t, "queue", q, want)
	q, err = s.QueuePending("orders", want[1].Seq, 2)
	must(t, err)
	equal(t, "queue page", q, want[2:4])
	must(t, s.QueueAck("orders", want[0].Seq))
	must(t, s.QueueAck("orders", want[0].Seq))
	q, err = s.QueuePending("orders", 0, 1)
	must(t, err)
	equal(t, "after ack", q, want[1:2])
	q, _ = s.QueuePending("orders2", 0, 0)
	equal(t, "other queue", len(q), 1)
}

type loaded struct {
	sessions []Session
	subs     map[string][]Sub
	retained []Msg
}

type collector struct{ l *loaded }

func (c collector) Session(s Session, subs []Sub) error {
	c.l.sessions = append(c.l.sessions, s)
	c.l.subs[s.ID] = subs
	return nil
}

func (c collector) Retained(m Msg) error {
	c.l.retained = append(c.l.retained, m)
	return nil
}

func load(t testing.TB, s Store) *loaded {
	t.Helper()
	l := &loaded{subs: map[string][]Sub{}}
	if err := s.Load(collector{l}); err != nil {
		t.Fatal(err)
	}
	return l
}

type failVisitor struct{ err error }

func (f failVisitor) Session(Session, []Sub) error { return f.err }
func (f failVisitor) Retained(Msg) error           { return f.err }

// fill writes one of everything and returns what Load must give back.
func fill(t *testing.T, s Store) *loaded {
	want := &loaded{subs: map[string][]Sub{}}
	for _, id := range []string{"b", "a", "c"} {
		ss := sampleSession(id)
		must(t, s.PutSession(ss))
		want.subs[id] = nil
		if id != "c" {
			must(t, s.PutSub(id, sampleSub("t/1")))
			must(t, s.PutSub(id, sampleSub("t/0")))
			want.subs[id] = []Sub{sampleSub("t/0"), sampleSub("t/1")}
		}
	}
	want.sessions = []Session{sampleSession("a"), sampleSession("b"), sampleSession("c")}
	for i := 3; i > 0; i-- {
		m := sampleMsg(i)
		m.Retain = true
		must(t, s.PutRetained(m))
		want.retained = append([]Msg{m}, want.retained...)
	}
	return want
}

func testLoad(t *testing.T, s Store) {
	empty := load(t, s)
	equal(t, "empty", len(empty.sessions)+len(empty.retained), 0)
	want := fill(t, s)
	_, err := s.Enqueue(sampleMsg(9), []string{"a", "b"})
	must(t, err)
	equal(t, "load", load(t, s), want)
	boom := errors.New("boom")
	if err := s.Load(failVisitor{boom}); !errors.Is(err, boom) {
		t.Fatalf("Load with failing visitor = %v, want boom", err)
	}
}

func testConcurrentEnqueue(t *testing.T, s Store) {
	const workers, each = 16, 20
	var (
		mu   sync.Mutex
		seqs = map[uint64]bool{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m := sampleMsg(w*1000 + i)
				got, err := s.Enqueue(m, []string{"x", fmt.Sprintf("w%d", w)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, q := range got {
					if seqs[q] {
						t.Errorf("duplicate seq %d", q)
					}
					seqs[q] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	equal(t, "distinct seqs", len(seqs), workers*each*2)
	q, err := s.Pending("x", 0, 0)
	must(t, err)
	equal(t, "shared queue length", len(q), workers*each)
	for i := 1; i < len(q); i++ {
		if q[i].Seq <= q[i-1].Seq {
			t.Fatalf("pending out of order at %d", i)
		}
	}
	for w := range workers {
		q, err := s.Pending(fmt.Sprintf("w%d", w), 0, 0)
		must(t, err)
		equal(t, "own queue length", len(q), each)
		for i, e := range q {
			equal(t, "own queue order", e.Msg.ID, uint64(w*1000+i))
		}
	}
}

func testInvalidKeys(t *testing.T, s Store) {
	bad := []string{"", "a\x00b"}
	for _, id := range bad {
		for name, err := range map[string]error{
			"PutSession":    s.PutSession(Session{ID: id}),
			"DeleteSession": s.DeleteSession(id),
			"PutSub":        s.PutSub(id, sampleSub("k")),
			"DeleteSub":     s.DeleteSub(id, "k"),
			"Ack":           s.Ack(id, 1),
			"QueueAck":      s.QueueAck(id, 1),
			"PutRetained":   s.PutRetained(Msg{Payload: []byte("x")}),
		} {
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", name, id, err)
			}
		}
		if _, err := s.Enqueue(sampleMsg(1), []string{"ok", id}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Enqueue(%q) = %v", id, err)
		}
		if _, err := s.QueuePush(id, sampleMsg(1)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("QueuePush(%q) = %v", id, err)
		}
	}
	if q, _ := s.Pending("ok", 0, 0); len(q) != 0 {
		t.Fatal("Enqueue with one invalid id queued for the valid one")
	}
}

func testClosed(t *testing.T, s Store) {
	must(t, s.Close())
	must(t, s.Close())
	if err := s.PutSession(sampleSession("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("PutSession after Close = %v", err)
	}
	if _, err := s.Enqueue(sampleMsg(1), []string{"a"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v", err)
	}
	if _, err := s.Pending("a", 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Pending after Close = %v", err)
	}
	if err := s.Load(collector{&loaded{subs: map[string][]Sub{}}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close = %v", err)
	}
}

// testOwners: Session.Owner and a retained Msg.Owner round-trip; a queued
// message has none.
func testOwners(t *testing.T, s Store) {
	sess := sampleSession("owned")
	sess.Owner = "alice"
	must(t, s.PutSession(sess))
	got, _, err := s.GetSession("owned")
	must(t, err)
	if got.Owner != "alice" {
		t.Fatalf("session owner = %q, want alice", got.Owner)
	}
	m := sampleMsg(1)
	m.Owner = "@client:x"
	must(t, s.PutRetained(m))
	_, err = s.Enqueue(sampleMsg(2), []string{"owned"})
	must(t, err)
	var v ownerVisitor
	must(t, s.Load(&v))
	if v.retained[m.Topic] != "@client:x" {
		t.Fatalf("retained owner after Load = %q", v.retained[m.Topic])
	}
	q, err := s.Pending("owned", 0, 0)
	must(t, err)
	if len(q) != 1 || q[0].Msg.Owner != "" {
		t.Fatalf("queued: %+v", q)
	}
}
