package store

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// commitLog records what Options.OnCommit saw.
type commitLog struct {
	calls, batches atomic.Int64
	maxBatches     atomic.Int64
	total          atomic.Int64 // nanoseconds
}

func (l *commitLog) observe(took time.Duration, batches int) {
	l.calls.Add(1)
	l.batches.Add(int64(batches))
	l.total.Add(int64(took))
	for {
		m := l.maxBatches.Load()
		if int64(batches) <= m || l.maxBatches.CompareAndSwap(m, int64(batches)) {
			return
		}
	}
}

func TestBoltStatsAndOnCommit(t *testing.T) {
	var log commitLog
	path := filepath.Join(t.TempDir(), "duplex.db")
	b, err := Open(path, Options{OnCommit: log.observe, MaxBatchDelay: 5 * time.Millisecond})
	must(t, err)
	defer b.Close()

	// Open's own schema transaction is not counted.
	if st := b.Stats(); st.Commits != 0 || st.FileSize <= 0 {
		t.Fatalf("fresh store: %+v, want 0 commits and a file size", st)
	}
	// A lone writer: one transaction per write, one batch each.
	must(t, b.PutSession(Session{ID: "s1"}))
	_, err = b.Enqueue(sampleMsg(1), []string{"s1"})
	must(t, err)
	st, ok := StatsOf(b)
	if !ok || st.Commits != 2 || log.calls.Load() != 2 || log.batches.Load() != 2 {
		t.Fatalf("after 2 writes: stats %+v (ok %v), observer calls %d batches %d", st, ok, log.calls.Load(), log.batches.Load())
	}
	if st.LastCommit <= 0 || st.CommitSeconds <= 0 || st.CommitSeconds < st.LastCommit.Seconds() {
		t.Fatalf("durations: %+v", st)
	}
	// Reads are not commits.
	if _, err := b.Pending("s1", 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := b.Stats().Commits; got != 2 {
		t.Fatalf("after a read: %d commits", got)
	}

	// Concurrent writers share group commits: every write is carried by
	// exactly one observed transaction, and each transaction counts once.
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := b.Enqueue(sampleMsg(i), []string{"s1"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n := int64(2 + writers*each)
	st = b.Stats()
	if log.batches.Load() != n {
		t.Fatalf("observed batches %d, want %d (one per write)", log.batches.Load(), n)
	}
	if int64(st.Commits) != log.calls.Load() || st.Commits > uint64(n) {
		t.Fatalf("commits %d, observer calls %d, writes %d", st.Commits, log.calls.Load(), n)
	}
	if log.maxBatches.Load() < 2 {
		t.Logf("no group commit happened (max batches %d): timing-dependent, not an error", log.maxBatches.Load())
	}
	if got := time.Duration(log.total.Load()).Seconds(); got-st.CommitSeconds > 1e-6 || st.CommitSeconds-got > 1e-6 {
		t.Fatalf("CommitSeconds %v, observed total %v", st.CommitSeconds, got)
	}
	if st.FileSize <= 0 {
		t.Fatalf("file size %d", st.FileSize)
	}
}

func TestBoltOnCommitIntervalSync(t *testing.T) {
	var log commitLog
	b, err := Open(filepath.Join(t.TempDir(), "duplex.db"), Options{Sync: SyncPolicy(time.Hour), OnCommit: log.observe})
	must(t, err)
	defer b.Close()
	must(t, b.PutRetained(sampleMsg(1)))
	if log.calls.Load() != 1 || b.Stats().Commits != 1 {
		t.Fatalf("calls %d commits %d", log.calls.Load(), b.Stats().Commits)
	}
}

// A failed write transaction (here: the file is closed) is not counted.
func TestBoltStatsFailedWrite(t *testing.T) {
	var log commitLog
	b, err := Open(filepath.Join(t.TempDir(), "duplex.db"), Options{OnCommit: log.observe})
	must(t, err)
	must(t, b.PutSession(Session{ID: "s1"}))
	must(t, b.Close())
	if err := b.PutSession(Session{ID: "s2"}); err == nil {
		t.Fatal("write after close succeeded")
	}
	if log.calls.Load() != 1 || b.Stats().Commits != 1 {
		t.Fatalf("calls %d commits %d", log.calls.Load(), b.Stats().Commits)
	}
}

func TestMemoryStats(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	must(t, m.PutSession(Session{ID: "s1"}))
	_, err := m.Enqueue(sampleMsg(1), []string{"s1"})
	must(t, err)
	if _, _, err := m.GetSession("s1"); err != nil {
		t.Fatal(err)
	}
	st, ok := StatsOf(m)
	if !ok || st.Commits != 2 || st.FileSize != 0 {
		t.Fatalf("memory stats %+v ok %v", st, ok)
	}
}

func TestStatsOfOther(t *testing.T) {
	if _, ok := StatsOf(struct{ Store }{}); ok {
		t.Fatal("StatsOf of a store without Stats reported ok")
	}
}
