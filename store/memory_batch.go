package store

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

func sortMarks(ms []Mark) {
	slices.SortFunc(ms, func(a, b Mark) int {
		if a.In != b.In {
			if a.In {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// Commit implements Store.
func (m *Memory) Commit(bt *Batch) ([]uint64, error) {
	seqs, err := m.CommitAll([]*Batch{bt})
	if err != nil {
		return nil, err
	}
	return seqs[0], nil
}

// CommitAll implements Store.
func (m *Memory) CommitAll(bts []*Batch) ([][]uint64, error) {
	vals := make([][]byte, len(bts))
	for i, bt := range bts {
		if !bt.valid() {
			return nil, ErrInvalidKey
		}
		if bt.Msg != nil {
			vals[i] = encodeMsg(bt.Msg)
		}
	}
	if err := m.wlock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([][]uint64, len(bts))
	for i, bt := range bts {
		if !bt.empty() {
			out[i] = m.commitLocked(bt, vals[i])
		}
	}
	return out, nil
}

// commitLocked applies one batch; m.mu must be held.
func (m *Memory) commitLocked(bt *Batch, val []byte) []uint64 {
	out := make([]uint64, 0, len(bt.Sessions)+len(bt.Queues))
	for _, id := range bt.Sessions {
		m.seq++
		m.queue[id] = append(m.queue[id], memEntry{m.seq, val})
		out = append(out, m.seq)
	}
	for _, name := range bt.Queues {
		m.qseq++
		m.queues[name] = append(m.queues[name], memEntry{m.qseq, val})
		out = append(out, m.qseq)
	}
	for _, r := range bt.Acks {
		m.ackLocked(m.queue, r.Name, r.Seq)
	}
	for _, r := range bt.QueueAcks {
		m.ackLocked(m.queues, r.Name, r.Seq)
	}
	for _, mk := range bt.DelMarks {
		delete(m.marks[mk.Session], mk)
	}
	for _, mk := range bt.PutMarks {
		if m.marks[mk.Session] == nil {
			m.marks[mk.Session] = map[Mark]struct{}{}
		}
		m.marks[mk.Session][mk] = struct{}{}
	}
	return out
}

// Marks implements Store.
func (m *Memory) Marks(sessionID string) ([]Mark, error) {
	if !validKey(sessionID) {
		return nil, ErrInvalidKey
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	var out []Mark
	for mk := range m.marks[sessionID] {
		out = append(out, mk)
	}
	m.mu.Unlock()
	sortMarks(out)
	return out, nil
}

// QueueNames implements Store.
func (m *Memory) QueueNames() ([]string, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []string
	for name, es := range m.queues {
		if len(es) > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Count implements Store.
func (m *Memory) Count(sessionID string) (int, int64, error) {
	if !validKey(sessionID) {
		return 0, 0, ErrInvalidKey
	}
	if err := m.lock(); err != nil {
		return 0, 0, err
	}
	defer m.mu.Unlock()
	var sz int64
	for _, e := range m.queue[sessionID] {
		sz += payloadLen(e.val)
	}
	return len(m.queue[sessionID]), sz, nil
}

// Sweep implements Store.
func (m *Memory) Sweep(now time.Time) (int, error) {
	if err := m.wlock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	n := 0
	expired := func(val []byte) bool {
		msg, err := decodeMsg(val)
		return err != nil || (!msg.Expires.IsZero() && msg.Expires.Before(now))
	}
	for id, es := range m.queue {
		if _, ok := m.sessions[id]; !ok {
			n += len(es)
			delete(m.queue, id)
			continue
		}
		kept := es[:0]
		for _, e := range es {
			if expired(e.val) {
				n++
			} else {
				kept = append(kept, e)
			}
		}
		m.queue[id] = kept
	}
	for name, es := range m.queues {
		kept := es[:0]
		for _, e := range es {
			if expired(e.val) {
				n++
			} else {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			delete(m.queues, name)
		} else {
			m.queues[name] = kept
		}
	}
	for id, ms := range m.marks {
		if _, ok := m.sessions[id]; !ok {
			n += len(ms)
			delete(m.marks, id)
		}
	}
	for id, subs := range m.subs {
		if _, ok := m.sessions[id]; !ok {
			n += len(subs)
			delete(m.subs, id)
		}
	}
	return n, nil
}

// QueueSeq implements Store.
func (m *Memory) QueueSeq() (uint64, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	return m.seq, nil
}
