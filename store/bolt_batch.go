package store

import (
	"bytes"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketMarks = []byte("marks")

// queueFillPercent is how full bbolt fills the pages of the two queue
// buckets when it splits them.
const queueFillPercent = 0.9

// Commit implements Store.
func (b *Bolt) Commit(bt *Batch) ([]uint64, error) {
	seqs, err := b.CommitAll([]*Batch{bt})
	if err != nil {
		return nil, err
	}
	return seqs[0], nil
}

// CommitAll implements Store.
func (b *Bolt) CommitAll(bts []*Batch) ([][]uint64, error) {
	vals := make([][]byte, len(bts))
	work := false
	for i, bt := range bts {
		if !bt.valid() {
			return nil, ErrInvalidKey
		}
		if bt.Msg != nil {
			vals[i] = encodeMsg(bt.Msg)
		}
		work = work || !bt.empty()
	}
	out := make([][]uint64, len(bts))
	if !work {
		return out, nil
	}
	err := b.write(func(tx *bolt.Tx) error {
		for i, bt := range bts {
			seqs, err := commitTx(tx, bt, vals[i])
			if err != nil {
				return err
			}
			out[i] = seqs
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// commitTx applies one batch inside tx; val is the encoded bt.Msg.
func commitTx(tx *bolt.Tx, bt *Batch, val []byte) ([]uint64, error) {
	var seqs []uint64
	err := func() error {
		out := make([]uint64, 0, len(bt.Sessions)+len(bt.Queues))
		q := tx.Bucket(bucketQueue)
		// Queue keys grow per session (sequence numbers): fuller pages
		// keep the file small; bbolt's default 50% suits random inserts.
		q.FillPercent = queueFillPercent
		for _, id := range bt.Sessions {
			seq, err := q.NextSequence()
			if err != nil {
				return err
			}
			if err := q.Put(seqKey(id, seq), val); err != nil {
				return err
			}
			out = append(out, seq)
		}
		nq := tx.Bucket(bucketQueues)
		nq.FillPercent = queueFillPercent
		for _, name := range bt.Queues {
			seq, err := nq.NextSequence()
			if err != nil {
				return err
			}
			if err := nq.Put(seqKey(name, seq), val); err != nil {
				return err
			}
			out = append(out, seq)
		}
		for _, r := range bt.Acks {
			if err := q.Delete(seqKey(r.Name, r.Seq)); err != nil {
				return err
			}
		}
		for _, r := range bt.QueueAcks {
			if err := nq.Delete(seqKey(r.Name, r.Seq)); err != nil {
				return err
			}
		}
		mk := tx.Bucket(bucketMarks)
		for _, m := range bt.DelMarks {
			if err := mk.Delete(markKey(m)); err != nil {
				return err
			}
		}
		for _, m := range bt.PutMarks {
			if err := mk.Put(markKey(m), nil); err != nil {
				return err
			}
		}
		seqs = out
		return nil
	}()
	return seqs, err
}

// Marks implements Store.
func (b *Bolt) Marks(sessionID string) ([]Mark, error) {
	if !validKey(sessionID) {
		return nil, ErrInvalidKey
	}
	p := prefix(sessionID)
	var out []Mark
	err := b.read(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMarks).Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			if len(k) != len(p)+3 {
				continue
			}
			rest := k[len(p):]
			out = append(out, Mark{Session: sessionID, In: rest[0] == 'i', ID: binary.BigEndian.Uint16(rest[1:])})
		}
		return nil
	})
	sortMarks(out)
	return out, err
}

// QueueNames implements Store.
func (b *Bolt) QueueNames() ([]string, error) {
	var out []string
	err := b.read(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketQueues).Cursor()
		for k, _ := c.First(); k != nil; {
			if len(k) < 9 {
				k, _ = c.Next()
				continue
			}
			name := k[:len(k)-9]
			out = append(out, string(name))
			// Skip to the first key after this queue's prefix (0x00 + 1).
			next := append(bytes.Clone(name), 1)
			k, _ = c.Seek(next)
		}
		return nil
	})
	return out, err
}

// Count implements Store.
func (b *Bolt) Count(sessionID string) (int, int64, error) {
	if !validKey(sessionID) {
		return 0, 0, ErrInvalidKey
	}
	p := prefix(sessionID)
	var (
		n  int
		sz int64
	)
	err := b.read(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketQueue).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			n++
			sz += payloadLen(v)
		}
		return nil
	})
	return n, sz, err
}

// Sweep implements Store. It reads in one transaction and deletes in
// another, so it never holds the writer lock while it scans.
func (b *Bolt) Sweep(now time.Time) (int, error) {
	type doomed struct {
		bucket []byte
		key    []byte
	}
	var dead []doomed
	err := b.read(func(tx *bolt.Tx) error {
		sessions := tx.Bucket(bucketSessions)
		owned := func(k []byte, tail int) bool {
			if len(k) < tail+1 {
				return false
			}
			return sessions.Get(k[:len(k)-tail-1]) != nil
		}
		c := tx.Bucket(bucketQueue).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !owned(k, 8) {
				dead = append(dead, doomed{bucketQueue, bytes.Clone(k)})
				continue
			}
			if m, err := decodeMsg(v); err != nil || (!m.Expires.IsZero() && m.Expires.Before(now)) {
				dead = append(dead, doomed{bucketQueue, bytes.Clone(k)})
			}
		}
		c = tx.Bucket(bucketQueues).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if m, err := decodeMsg(v); err != nil || (!m.Expires.IsZero() && m.Expires.Before(now)) {
				dead = append(dead, doomed{bucketQueues, bytes.Clone(k)})
			}
		}
		c = tx.Bucket(bucketMarks).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if !owned(k, 3) {
				dead = append(dead, doomed{bucketMarks, bytes.Clone(k)})
			}
		}
		c = tx.Bucket(bucketSubs).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 || sessions.Get(k[:i]) == nil {
				dead = append(dead, doomed{bucketSubs, bytes.Clone(k)})
			}
		}
		return nil
	})
	if err != nil || len(dead) == 0 {
		return 0, err
	}
	removed := len(dead)
	for len(dead) > 0 {
		chunk := dead[:min(len(dead), 10000)]
		dead = dead[len(chunk):]
		err := b.write(func(tx *bolt.Tx) error {
			for _, d := range chunk {
				if err := tx.Bucket(d.bucket).Delete(d.key); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return removed, nil
}

// QueueSeq implements Store.
func (b *Bolt) QueueSeq() (uint64, error) {
	var seq uint64
	err := b.read(func(tx *bolt.Tx) error {
		seq = tx.Bucket(bucketQueue).Sequence()
		return nil
	})
	return seq, err
}
