package store

import "time"

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
