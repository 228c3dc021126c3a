package store

import (
	"testing"
	"time"
)

func testCommit(t *testing.T, s Store) {
	must(t, s.PutSession(Session{ID: "a", Protocol: "mqtt5", Expiry: time.Hour}))
	must(t, s.PutSession(Session{ID: "b", Protocol: "mqtt5", Expiry: time.Hour}))
	m := sampleMsg(1)
	seqs, err := s.Commit(&Batch{Msg: &m, Sessions: []string{"a", "b"}, Queues: []string{"q"},
		PutMarks: []Mark{{Session: "a", In: true, ID: 7}}})
	must(t, err)
	equal(t, "seq count", len(seqs), 3)
	for _, id := range []string{"a", "b"} {
		n, _, err := s.Count(id)
		must(t, err)
		equal(t, "count "+id, n, 1)
	}
	qp, err := s.QueuePending("q", 0, 0)
	must(t, err)
	equal(t, "queue", qp, []Queued{{Seq: seqs[2], Msg: m}})
	names, err := s.QueueNames()
	must(t, err)
	equal(t, "queue names", names, []string{"q"})

	// Ack a's copy and the queue's, move a's inbound mark to an outbound one.
	_, err = s.Commit(&Batch{Acks: []Ref{{"a", seqs[0]}}, QueueAcks: []Ref{{"q", seqs[2]}},
		DelMarks: []Mark{{Session: "a", In: true, ID: 7}}, PutMarks: []Mark{{Session: "a", ID: 7}, {Session: "a", In: true, ID: 300}}})
	must(t, err)
	n, _, err := s.Count("a")
	must(t, err)
	equal(t, "count a after ack", n, 0)
	n, _, err = s.Count("b")
	must(t, err)
	equal(t, "count b untouched", n, 1)
	names, err = s.QueueNames()
	must(t, err)
	equal(t, "queue names after ack", len(names), 0)
	marks, err := s.Marks("a")
	must(t, err)
	equal(t, "marks", marks, []Mark{{Session: "a", In: true, ID: 300}, {Session: "a", ID: 7}})

	must(t, s.DeleteSession("a"))
	marks, err = s.Marks("a")
	must(t, err)
	equal(t, "marks after delete", len(marks), 0)

	if _, err := s.Commit(&Batch{Sessions: []string{"a"}}); err != ErrInvalidKey {
		t.Fatalf("batch with sessions and no message: %v, want ErrInvalidKey", err)
	}
}

func testSweep(t *testing.T, s Store) {
	must(t, s.PutSession(Session{ID: "live", Protocol: "mqtt5", Expiry: time.Hour}))
	old, fresh := sampleMsg(1), sampleMsg(2)
	old.Expires, fresh.Expires = t0.Add(-time.Minute), time.Time{}
	_, err := s.Commit(&Batch{Msg: &old, Sessions: []string{"live", "gone"}, Queues: []string{"q"}})
	must(t, err)
	_, err = s.Commit(&Batch{Msg: &fresh, Sessions: []string{"live", "gone"}, Queues: []string{"q"},
		PutMarks: []Mark{{Session: "gone", ID: 1}, {Session: "live", ID: 2}}})
	must(t, err)
	must(t, s.PutSub("gone", Sub{Key: "k", Filter: "f"}))

	removed, err := s.Sweep(t0)
	must(t, err)
	// live: 1 expired; gone: 2 orphaned + 1 mark + 1 sub; q: 1 expired.
	equal(t, "removed", removed, 6)
	p, err := s.Pending("live", 0, 0)
	must(t, err)
	equal(t, "live keeps the fresh one", len(p), 1)
	q, err := s.QueuePending("q", 0, 0)
	must(t, err)
	equal(t, "queue keeps the fresh one", len(q), 1)
	marks, err := s.Marks("live")
	must(t, err)
	equal(t, "live mark kept", len(marks), 1)
	again, err := s.Sweep(t0)
	must(t, err)
	equal(t, "second sweep", again, 0)
}

func testCommitAll(t *testing.T, s Store) {
	m1, m2 := sampleMsg(1), sampleMsg(2)
	out, err := s.CommitAll([]*Batch{
		{Msg: &m1, Sessions: []string{"a"}},
		{},
		{Msg: &m2, Sessions: []string{"a", "b"}, Queues: []string{"q"}},
	})
	must(t, err)
	equal(t, "results", len(out), 3)
	equal(t, "empty batch", len(out[1]), 0)
	if len(out[0]) != 1 || len(out[2]) != 3 || out[2][0] <= out[0][0] {
		t.Fatalf("seqs %v: want 1 then 3, in order", out)
	}
	p, err := s.Pending("a", 0, 0)
	must(t, err)
	equal(t, "a's queue in order", p, []Queued{{Seq: out[0][0], Msg: m1}, {Seq: out[2][0], Msg: m2}})
	if _, err := s.CommitAll([]*Batch{{Msg: &m1, Sessions: []string{"ok"}}, {Sessions: []string{"bad\x00"}, Msg: &m1}}); err != ErrInvalidKey {
		t.Fatalf("invalid key in the second batch: %v", err)
	}
	n, _, err := s.Count("ok")
	must(t, err)
	equal(t, "nothing written when one batch is invalid", n, 0)
}
