package store

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Memory is an in-memory Store for tests. It has the semantics of the bbolt
// implementation except that nothing survives the process: records are
// stored encoded, so callers get copies and the codec is exercised.
type Memory struct {
	mu       sync.Mutex
	closed   bool
	sessions map[string][]byte
	subs     map[string]map[string][]byte // session -> key -> sub
	retained map[string][]byte
	queue    map[string][]memEntry // session -> entries in seq order
	queues   map[string][]memEntry // queue name -> entries in seq order
	seq      uint64                // session queues, like bucket queue's sequence
	qseq     uint64                // named queues, like bucket queues' sequence
	marks    map[string]map[Mark]struct{}
	commits  atomic.Uint64 // write calls (stats.go)
}

type memEntry struct {
	seq uint64
	val []byte
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{
		sessions: map[string][]byte{},
		subs:     map[string]map[string][]byte{},
		retained: map[string][]byte{},
		queue:    map[string][]memEntry{},
		queues:   map[string][]memEntry{},
		marks:    map[string]map[Mark]struct{}{},
	}
}

func (m *Memory) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// wlock is lock for a write: it counts the write in Stats.Commits.
func (m *Memory) wlock() error {
	if err := m.lock(); err != nil {
		return err
	}
	m.commits.Add(1)
	return nil
}

// PutSession implements Store.
func (m *Memory) PutSession(s Session) error {
	if !validKey(s.ID) {
		return ErrInvalidKey
	}
	b := encodeSession(&s)
	if err := m.wlock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.sessions[s.ID] = b
	return nil
}

// GetSession implements Store.
func (m *Memory) GetSession(id string) (Session, []Sub, error) {
	if !validKey(id) {
		return Session{}, nil, ErrInvalidKey
	}
	if err := m.lock(); err != nil {
		return Session{}, nil, err
	}
	b, ok := m.sessions[id]
	subs := m.subBytes(id)
	m.mu.Unlock()
	if !ok {
		return Session{}, nil, ErrNotFound
	}
	return decodeSessionSubs(b, subs)
}

// subBytes returns the encoded subscriptions of a session in key order;
// m.mu must be held.
func (m *Memory) subBytes(id string) [][]byte {
	keys := make([]string, 0, len(m.subs[id]))
	for k := range m.subs[id] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = m.subs[id][k]
	}
	return out
}

func decodeSessionSubs(b []byte, subBytes [][]byte) (Session, []Sub, error) {
	s, err := decodeSession(b)
	if err != nil {
		return Session{}, nil, err
	}
	var subs []Sub
	for _, sb := range subBytes {
		sub, err := decodeSub(sb)
		if err != nil {
			return Session{}, nil, err
		}
		subs = append(subs, sub)
	}
	return s, subs, nil
}

// DeleteSession implements Store.
func (m *Memory) DeleteSession(id string) error {
	if !validKey(id) {
		return ErrInvalidKey
	}
	if err := m.wlock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.sessions, id)
	delete(m.subs, id)
	delete(m.queue, id)
	delete(m.marks, id)
	return nil
}

// PutSub implements Store.
func (m *Memory) PutSub(sessionID string, sub Sub) error {
	if !validKey(sessionID) || sub.Key == "" {
		return ErrInvalidKey
	}
	b := encodeSub(&sub)
	if err := m.wlock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.subs[sessionID] == nil {
		m.subs[sessionID] = map[string][]byte{}
	}
	m.subs[sessionID][sub.Key] = b
	return nil
}

// DeleteSub implements Store.
func (m *Memory) DeleteSub(sessionID, key string) error {
	if !validKey(sessionID) || key == "" {
		return ErrInvalidKey
	}
	if err := m.wlock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.subs[sessionID], key)
	if len(m.subs[sessionID]) == 0 {
		delete(m.subs, sessionID)
	}
	return nil
}

// PutRetained implements Store.
func (m *Memory) PutRetained(msg Msg) error {
	if msg.Topic == "" {
		return ErrInvalidKey
	}
	b := encodeMsg(&msg)
	if err := m.wlock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if len(msg.Payload) == 0 {
		delete(m.retained, msg.Topic)
	} else {
		m.retained[msg.Topic] = b
	}
	return nil
}

// Enqueue implements Store.
func (m *Memory) Enqueue(msg Msg, sessionIDs []string) ([]uint64, error) {
	return enqueue(m, msg, sessionIDs)
}

// Pending implements Store.
func (m *Memory) Pending(sessionID string, afterSeq uint64, max int) ([]Queued, error) {
	return m.pending(m.queue, sessionID, afterSeq, max)
}

// Ack implements Store.
func (m *Memory) Ack(sessionID string, seq uint64) error { return ack(m, sessionID, seq) }

// QueuePush implements Store.
func (m *Memory) QueuePush(queue string, msg Msg) (uint64, error) { return queuePush(m, queue, msg) }

// QueuePending implements Store.
func (m *Memory) QueuePending(queue string, afterSeq uint64, max int) ([]Queued, error) {
	return m.pending(m.queues, queue, afterSeq, max)
}

// QueueAck implements Store.
func (m *Memory) QueueAck(queue string, seq uint64) error { return queueAck(m, queue, seq) }

func findSeq(es []memEntry, seq uint64) (int, bool) {
	return slices.BinarySearchFunc(es, seq, func(e memEntry, s uint64) int {
		switch {
		case e.seq < s:
			return -1
		case e.seq > s:
			return 1
		}
		return 0
	})
}

func (m *Memory) pending(q map[string][]memEntry, name string, afterSeq uint64, max int) ([]Queued, error) {
	if !validKey(name) {
		return nil, ErrInvalidKey
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	es := q[name]
	i, found := findSeq(es, afterSeq)
	if found {
		i++
	}
	es = es[i:]
	if max > 0 && len(es) > max {
		es = es[:max]
	}
	es = slices.Clone(es)
	m.mu.Unlock()
	var out []Queued
	for _, e := range es {
		msg, err := decodeMsg(e.val)
		if err != nil {
			return nil, err
		}
		out = append(out, Queued{Seq: e.seq, Msg: msg})
	}
	return out, nil
}

// ackLocked removes one entry; m.mu must be held.
func (m *Memory) ackLocked(q map[string][]memEntry, name string, seq uint64) {
	es := q[name]
	if i, ok := findSeq(es, seq); ok {
		es = slices.Delete(es, i, i+1)
		if len(es) == 0 {
			delete(q, name)
		} else {
			q[name] = es
		}
	}
}

// Load implements Store.
func (m *Memory) Load(v Visitor) error {
	if err := m.lock(); err != nil {
		return err
	}
	ids := make([]string, 0, len(m.sessions))
	for id := range m.sessions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	sess := make([]sessionRec, len(ids))
	for i, id := range ids {
		sess[i] = sessionRec{m.sessions[id], m.subBytes(id)}
	}
	topics := make([]string, 0, len(m.retained))
	for t := range m.retained {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	ret := make([][]byte, len(topics))
	for i, t := range topics {
		ret[i] = m.retained[t]
	}
	m.mu.Unlock()
	return visit(v, sess, ret)
}

// sessionRec is an encoded session with its encoded subscriptions.
type sessionRec struct {
	b    []byte
	subs [][]byte
}

// visit decodes records collected by Load and hands them to v, outside any
// lock or transaction; shared by both implementations.
func visit(v Visitor, sessions []sessionRec, retained [][]byte) error {
	for _, r := range sessions {
		s, subs, err := decodeSessionSubs(r.b, r.subs)
		if err != nil {
			return err
		}
		if err := v.Session(s, subs); err != nil {
			return err
		}
	}
	for _, b := range retained {
		msg, err := decodeMsg(b)
		if err != nil {
			return err
		}
		if err := v.Retained(msg); err != nil {
			return err
		}
	}
	return nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
