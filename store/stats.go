package store

import (
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stats is a snapshot of a store for the admin API and /metrics.
type Stats struct {
	FileSize int64 // bytes of the database file (0 for Memory)
	// Commits counts write transactions (group commits count once);
	// CommitSeconds adds up their durations, fsync included.
	Commits       uint64
	CommitSeconds float64
	// LastCommit is the duration of the latest commit.
	LastCommit time.Duration
}

// CommitObserver, set in Options.OnCommit, is called after every write
// transaction with its duration (fsync included) and how many batches it
// carried. It runs on the committing goroutine: it must be quick and must
// not call the store (a Prometheus histogram's Observe is fine).
type CommitObserver func(took time.Duration, batches int)

// StatsOf returns s's Stats when it keeps them (Bolt and Memory do), and
// false otherwise.
func StatsOf(s Store) (Stats, bool) {
	if sp, ok := s.(interface{ Stats() Stats }); ok {
		return sp.Stats(), true
	}
	return Stats{}, false
}

// commitTrack times one bbolt write transaction: when its first fn ran
// and how many fns (batches) it carried.
type commitTrack struct {
	tx    *bolt.Tx
	start time.Time
	n     int
}

// track runs first in every fn write hands bbolt, inside the write
// transaction (so under bbolt's writer lock, which orders every access to
// b.cur). The first fn of a transaction starts its track and registers
// the commit handler; the others count themselves in. A transaction that
// rolls back never calls its handler and its track is replaced by the
// next one's (b.cur keeps the old *Tx alive, so a new one cannot reuse
// its address). Cost: one small allocation and two clock reads per
// transaction, none per extra batch.
func (b *Bolt) track(tx *bolt.Tx) {
	t := b.cur
	if t == nil || t.tx != tx {
		t = &commitTrack{tx: tx, start: time.Now()}
		b.cur = t
		tx.OnCommit(func() { b.committed(t) })
	}
	t.n++
}

// committed runs after a tracked transaction committed (bbolt calls it
// on the committing goroutine, after the writer lock is released; t is
// no longer written by then).
func (b *Bolt) committed(t *commitTrack) {
	took := time.Since(t.start)
	b.commits.Add(1)
	b.commitNanos.Add(uint64(took))
	b.lastCommit.Store(int64(took))
	if b.opts.OnCommit != nil {
		b.opts.OnCommit(took, t.n)
	}
}

// Stats returns the data file's size and the commit statistics. It costs
// one stat(2) and three atomic loads.
func (b *Bolt) Stats() Stats {
	st := Stats{
		Commits:       b.commits.Load(),
		CommitSeconds: float64(b.commitNanos.Load()) / 1e9,
		LastCommit:    time.Duration(b.lastCommit.Load()),
	}
	if fi, err := os.Stat(b.path); err == nil {
		st.FileSize = fi.Size()
	}
	return st
}

// Stats returns the number of write calls (Commits); Memory has no file
// and does not time its writes.
func (m *Memory) Stats() Stats { return Stats{Commits: m.commits.Load()} }
