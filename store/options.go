package store

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// SyncPolicy says when acknowledged writes reach the disk.
//
// SyncAlways (the zero value and the default) fsyncs every write before the
// method returns: once a call returns nil, a crash, kill -9 or power cut
// cannot lose it.
//
// A positive SyncPolicy is an interval: bbolt runs with NoSync and a
// background goroutine calls fsync every interval. Writes are still atomic
// (a crash never leaves a half-written transaction) but THIS MAY LOSE THE
// LAST <interval> OF ACKNOWLEDGED MESSAGES on a crash or power cut. A kill -9
// of the process alone loses nothing, since the data is in the OS page cache.
type SyncPolicy time.Duration

// SyncAlways fsyncs every write before it is acknowledged.
const SyncAlways SyncPolicy = 0

// ParseSyncPolicy parses "always" (or "") and a positive Go duration such
// as "200ms".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "always") {
		return SyncAlways, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("store: sync policy %q: want \"always\" or a positive duration like \"200ms\"", s)
	}
	return SyncPolicy(d), nil
}

// Interval returns the background sync interval, 0 for SyncAlways.
func (p SyncPolicy) Interval() time.Duration { return time.Duration(p) }

// String returns "always" or the interval, e.g. "200ms".
func (p SyncPolicy) String() string {
	if p <= 0 {
		return "always"
	}
	return time.Duration(p).String()
}

// Options configure Open. The zero value is valid.
type Options struct {
	// Sync is the sync policy; the zero value is SyncAlways.
	Sync SyncPolicy

	// LockTimeout bounds how long Open waits for the file lock before it
	// returns ErrLocked. Default 500ms.
	LockTimeout time.Duration

	// MaxBatchSize and MaxBatchDelay tune group commit (bbolt's
	// DB.MaxBatchSize and DB.MaxBatchDelay). A write waits at most
	// MaxBatchDelay for others to share its transaction and fsync.
	// Defaults: 1000 and 1ms.
	MaxBatchSize  int
	MaxBatchDelay time.Duration

	// FileMode is the mode of a newly created data file. Default 0600.
	FileMode os.FileMode
	// OnCommit, if set, observes every write transaction (stats.go).
	OnCommit CommitObserver
}

// Defaults for Options.
const (
	DefaultLockTimeout   = 500 * time.Millisecond
	DefaultMaxBatchSize  = 1000
	DefaultMaxBatchDelay = time.Millisecond
	DefaultFileMode      = os.FileMode(0o600)
)

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxBatchSize <= 0 {
		o.MaxBatchSize = DefaultMaxBatchSize
	}
	if o.MaxBatchDelay <= 0 {
		o.MaxBatchDelay = DefaultMaxBatchDelay
	}
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	if o.Sync < 0 {
		o.Sync = SyncAlways
	}
	return o
}
