package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version written to the meta bucket. Open
// refuses files with a newer version and upgrades older ones in place.
//
// Version 2: session and retained records may be record version 2 (with
// an owner, encode.go). The buckets are those of version 1, and version 1
// records still decode, so a version 1 file is upgraded by writing the new
// number; a version 1 build then refuses the file (ErrSchema) rather than
// failing on a record it cannot read.
const SchemaVersion = 2

// minSchemaVersion is the oldest schema version Open upgrades.
const minSchemaVersion = 1

var (
	bucketMeta     = []byte("meta")
	bucketSessions = []byte("sessions")
	bucketSubs     = []byte("subs")
	bucketRetained = []byte("retained")
	bucketQueue    = []byte("queue")
	bucketQueues   = []byte("queues")

	keySchema = []byte("schema")
)

// Bolt is the bbolt-backed Store. See the package documentation for the
// bucket layout and the sync policy.
type Bolt struct {
	db   *bolt.DB
	path string
	opts Options

	stop      chan struct{} // closes the background sync loop
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	writers atomic.Int32 // writes in flight, see write

	// Commit statistics (stats.go). cur is the write transaction being
	// tracked; only write's wrapper touches it, under bbolt's writer lock.
	cur         *commitTrack
	commits     atomic.Uint64
	commitNanos atomic.Uint64
	lastCommit  atomic.Int64

	mu      sync.Mutex
	syncErr error // first background fsync error, returned by Close
}

var _ Store = (*Bolt)(nil)

// Open opens or creates the data file at path (creating its directory)
// and checks its schema version. If another process holds the file, Open
// returns ErrLocked after o.LockTimeout rather than waiting.
func Open(path string, o Options) (*Bolt, error) {
	o = o.withDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(path, o.FileMode, &bolt.Options{
		Timeout: o.LockTimeout,
		NoSync:  o.Sync > 0,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w (%s, lock not acquired within %v)", ErrLocked, path, o.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.MaxBatchSize = o.MaxBatchSize
	db.MaxBatchDelay = o.MaxBatchDelay
	b := &Bolt{db: db, path: path, opts: o}
	if err := b.init(); err != nil {
		db.Close()
		return nil, err
	}
	if o.Sync > 0 {
		if err := db.Sync(); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: sync %s: %w", path, err)
		}
		b.stop = make(chan struct{})
		b.done = make(chan struct{})
		go b.syncLoop()
	}
	return b, nil
}

// init creates the buckets and checks or writes the schema version.
func (b *Bolt) init() error {
	return b.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 4 {
				return fmt.Errorf("%w: %s: malformed schema version %x", ErrSchema, b.path, v)
			}
			n := binary.BigEndian.Uint32(v)
			if n > SchemaVersion || n < minSchemaVersion {
				return fmt.Errorf("%w: %s has schema version %d, this build reads versions %d to %d (a newer Duplex wrote it?)",
					ErrSchema, b.path, n, minSchemaVersion, SchemaVersion)
			}
			if n < SchemaVersion {
				if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
					return err
				}
			}
		} else if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketSessions, bucketSubs, bucketRetained, bucketQueue, bucketQueues, bucketMarks} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *Bolt) syncLoop() {
	defer close(b.done)
	t := time.NewTicker(b.opts.Sync.Interval())
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := b.db.Sync(); err != nil {
				b.mu.Lock()
				if b.syncErr == nil {
					b.syncErr = err
				}
				b.mu.Unlock()
			}
		case <-b.stop:
			return
		}
	}
}

// Path returns the data file's path.
func (b *Bolt) Path() string { return b.path }

// Options returns the options in effect, defaults filled in.
func (b *Bolt) Options() Options { return b.opts }

// write commits fn. Concurrent writers go through db.Batch, so they share
// one transaction and one fsync. A writer that finds no other write in
// flight has nobody to share with and runs db.Update directly instead of
// waiting MaxBatchDelay for company (a lone publisher would otherwise pay
// that delay on every message). Under an interval policy there is no
// per-commit fsync to share, so every write uses db.Update, which is
// faster than waiting for a batch. fn may run more than once (Batch retries
// each fn alone if the shared transaction fails) and must only set
// variables that the caller reads after write returns.
//
// Every transaction is timed from its first fn to the end of its commit
// (fsync included) and counted once, with the number of fns it carried
// (track, stats.go).
func (b *Bolt) write(fn func(tx *bolt.Tx) error) error {
	defer b.writers.Add(-1)
	tracked := func(tx *bolt.Tx) error {
		b.track(tx)
		return fn(tx)
	}
	if b.writers.Add(1) == 1 || b.opts.Sync > 0 {
		return mapErr(b.db.Update(tracked))
	}
	return mapErr(b.db.Batch(tracked))
}

func (b *Bolt) read(fn func(tx *bolt.Tx) error) error {
	return mapErr(b.db.View(fn))
}

func mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// prefix returns id 0x00, the key prefix of a session's (or a queue's)
// records in subs, queue and queues.
func prefix(id string) []byte {
	p := make([]byte, 0, len(id)+1+8)
	p = append(p, id...)
	return append(p, 0)
}

func seqKey(id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(prefix(id), seq)
}

// deletePrefix removes every key of bucket bk that starts with p.
func deletePrefix(bk *bolt.Bucket, p []byte) error {
	var keys [][]byte
	c := bk.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// PutSession implements Store.
func (b *Bolt) PutSession(s Session) error {
	if !validKey(s.ID) {
		return ErrInvalidKey
	}
	val := encodeSession(&s)
	return b.write(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Put([]byte(s.ID), val)
	})
}

// GetSession implements Store.
func (b *Bolt) GetSession(id string) (Session, []Sub, error) {
	if !validKey(id) {
		return Session{}, nil, ErrInvalidKey
	}
	var (
		s    Session
		subs []Sub
	)
	err := b.read(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		if s, err = decodeSession(v); err != nil { // decode copies
			return err
		}
		p := prefix(id)
		c := tx.Bucket(bucketSubs).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			sub, err := decodeSub(v)
			if err != nil {
				return err
			}
			subs = append(subs, sub)
		}
		return nil
	})
	if err != nil {
		return Session{}, nil, err
	}
	return s, subs, nil
}

// DeleteSession implements Store.
func (b *Bolt) DeleteSession(id string) error {
	if !validKey(id) {
		return ErrInvalidKey
	}
	p := prefix(id)
	return b.write(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSessions).Delete([]byte(id)); err != nil {
			return err
		}
		if err := deletePrefix(tx.Bucket(bucketSubs), p); err != nil {
			return err
		}
		if err := deletePrefix(tx.Bucket(bucketMarks), p); err != nil {
			return err
		}
		return deletePrefix(tx.Bucket(bucketQueue), p)
	})
}

// PutSub implements Store.
func (b *Bolt) PutSub(sessionID string, sub Sub) error {
	if !validKey(sessionID) || sub.Key == "" {
		return ErrInvalidKey
	}
	key := append(prefix(sessionID), sub.Key...)
	val := encodeSub(&sub)
	return b.write(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubs).Put(key, val)
	})
}

// DeleteSub implements Store.
func (b *Bolt) DeleteSub(sessionID, key string) error {
	if !validKey(sessionID) || key == "" {
		return ErrInvalidKey
	}
	k := append(prefix(sessionID), key...)
	return b.write(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubs).Delete(k)
	})
}

// PutRetained implements Store.
func (b *Bolt) PutRetained(m Msg) error {
	if m.Topic == "" {
		return ErrInvalidKey
	}
	key := []byte(m.Topic)
	if len(m.Payload) == 0 {
		return b.write(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketRetained).Delete(key)
		})
	}
	val := encodeMsg(&m)
	return b.write(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).Put(key, val)
	})
}

// Enqueue implements Store.
func (b *Bolt) Enqueue(m Msg, sessionIDs []string) ([]uint64, error) {
	return enqueue(b, m, sessionIDs)
}

// Pending implements Store.
func (b *Bolt) Pending(sessionID string, afterSeq uint64, max int) ([]Queued, error) {
	return b.pending(bucketQueue, sessionID, afterSeq, max)
}

// Ack implements Store.
func (b *Bolt) Ack(sessionID string, seq uint64) error { return ack(b, sessionID, seq) }

// QueuePush implements Store.
func (b *Bolt) QueuePush(queue string, m Msg) (uint64, error) { return queuePush(b, queue, m) }

// QueuePending implements Store.
func (b *Bolt) QueuePending(queue string, afterSeq uint64, max int) ([]Queued, error) {
	return b.pending(bucketQueues, queue, afterSeq, max)
}

// QueueAck implements Store.
func (b *Bolt) QueueAck(queue string, seq uint64) error { return queueAck(b, queue, seq) }

func (b *Bolt) pending(bucket []byte, name string, afterSeq uint64, max int) ([]Queued, error) {
	if !validKey(name) {
		return nil, ErrInvalidKey
	}
	if afterSeq == math.MaxUint64 {
		return nil, nil
	}
	p := prefix(name)
	start := seqKey(name, afterSeq+1)
	var out []Queued
	err := b.read(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if max > 0 && len(out) >= max {
				break
			}
			if len(k) != len(p)+8 {
				return fmt.Errorf("%w: queue key %q", ErrCorrupt, k)
			}
			m, err := decodeMsg(v) // decode copies out of the mmap
			if err != nil {
				return err
			}
			out = append(out, Queued{Seq: binary.BigEndian.Uint64(k[len(p):]), Msg: m})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Load implements Store. It copies the records out in one read
// transaction and decodes and visits them after it ends.
func (b *Bolt) Load(v Visitor) error {
	var (
		sessions []sessionRec
		retained [][]byte
	)
	err := b.read(func(tx *bolt.Tx) error {
		subs := tx.Bucket(bucketSubs).Cursor()
		err := tx.Bucket(bucketSessions).ForEach(func(k, val []byte) error {
			r := sessionRec{b: bytes.Clone(val)}
			p := append(bytes.Clone(k), 0)
			for sk, sv := subs.Seek(p); sk != nil && bytes.HasPrefix(sk, p); sk, sv = subs.Next() {
				r.subs = append(r.subs, bytes.Clone(sv))
			}
			sessions = append(sessions, r)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRetained).ForEach(func(_, val []byte) error {
			retained = append(retained, bytes.Clone(val))
			return nil
		})
	})
	if err != nil {
		return err
	}
	return visit(v, sessions, retained)
}

// Close implements Store. With an interval policy it stops the background
// sync and fsyncs once more; it returns the first background fsync error,
// if any.
func (b *Bolt) Close() error {
	b.closeOnce.Do(func() {
		var err error
		if b.stop != nil {
			close(b.stop)
			<-b.done
			err = b.db.Sync()
			b.mu.Lock()
			if b.syncErr != nil {
				err = b.syncErr
			}
			b.mu.Unlock()
		}
		if cerr := b.db.Close(); err == nil {
			err = cerr
		}
		b.closeErr = err
	})
	return b.closeErr
}
