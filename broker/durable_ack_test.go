package broker

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/duplexmq/duplex/store"
)

// slowStore is a store whose acknowledgement commits (batches with no
// message) wait, while blocked, until released: a disk that stalls.
type slowStore struct {
	store.Store
	mu       sync.Mutex
	gate     chan struct{} // non-nil while blocked; closed by release
	waiting  atomic.Int32  // commits waiting at the gate
	held     atomic.Int64  // removals in the commits waiting at the gate
	ackCount atomic.Int64  // removals committed
}

func (s *slowStore) block() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *slowStore) release() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

func (s *slowStore) Commit(b *store.Batch) ([]uint64, error) {
	if b.Msg == nil {
		s.mu.Lock()
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			k := int64(len(b.Acks) + len(b.QueueAcks))
			s.held.Add(k)
			s.waiting.Add(1)
			<-gate
			s.waiting.Add(-1)
			s.held.Add(-k)
		}
	}
	seqs, err := s.Store.Commit(b)
	if err == nil {
		s.ackCount.Add(int64(len(b.Acks) + len(b.QueueAcks)))
	}
	return seqs, err
}

// With the store stalled, acknowledgements beyond what ackLoop holds wait
// in the acknowledging goroutine (here under the queue's lock, as a STOMP
// ACK does) instead of each starting a goroutine, and none is lost once
// the store catches up.
func TestDurableAckBoundedWhenStoreStalls(t *testing.T) {
	const n = 3 * ackBatch // more than ackLoop's batch plus its channel
	st := &slowStore{Store: store.NewMemory()}
	r, _ := restart(t, nil, st, Config{MaxPendingMsgs: n + 1})
	t.Cleanup(st.release) // runs before r.Stop if the test fails early

	pub := openSession(t, r, "p")
	for range n {
		publishQueue(t, r, pub, "jobs", "x")
	}
	c := openSession(t, r, "c")
	queueConsumer(t, r, c, "k", "jobs", AckClientIndividual, 0)
	got := drained(c)
	if len(got) != n {
		t.Fatalf("consumer got %d deliveries, want %d", len(got), n)
	}

	st.block()
	before := runtime.NumGoroutine()
	var returned atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, d := range got {
			r.Ack(d)
			returned.Add(1)
		}
	}()
	// ackLoop waits on the store with one batch and its channel is full:
	// exactly those acknowledgements returned, the next one waits for room.
	checkFor(t, "ackLoop stalled with a full channel", func() bool {
		return st.waiting.Load() == 1 && len(r.dur.acks) == cap(r.dur.acks) &&
			returned.Load() == st.held.Load()+int64(cap(r.dur.acks))
	})
	select {
	case <-done:
		t.Fatal("all acknowledgements returned while the store was stalled")
	default:
	}
	// The acknowledging goroutine itself (with room for unrelated ones),
	// and nothing per ack (the old
	// path started one goroutine for each of the thousands waiting).
	if g := runtime.NumGoroutine(); g > before+16 {
		t.Fatalf("goroutines while the store stalls: %d, %d before acknowledging", g, before)
	}

	st.release()
	checkFor(t, "acknowledgements returned", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	r.Stop()
	if k := st.ackCount.Load(); k != n {
		t.Fatalf("removals committed: %d, want %d", k, n)
	}
	if p, _ := st.QueuePending("jobs", 0, 0); len(p) != 0 {
		t.Fatalf("acknowledged queue messages still stored: %d", len(p))
	}
}
