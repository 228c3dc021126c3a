package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkEnqueueBatch measures durable Enqueue throughput (SyncAlways:
// every call fsynced before it returns) with 1 and 16 concurrent
// publishers, through db.Batch (group commit) and, for comparison, through
// one naive db.Update per call; interval200ms is the batch path with the
// 200ms sync policy, for scale. With an fsync per Update, the naive variant
// stays at the disk's fsync rate however many publishers there are; Batch
// shares each fsync across the publishers waiting for it.
func BenchmarkEnqueueBatch(b *testing.B) {
	m := sampleMsg(1)
	m.Payload = make([]byte, 256)
	for _, mode := range []string{"batch", "update", "interval200ms"} {
		for _, pubs := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/publishers=%d", mode, pubs), func(b *testing.B) {
				o := Options{}
				if mode == "interval200ms" {
					o.Sync = SyncPolicy(200 * time.Millisecond)
				}
				st := openTemp(b, o)
				enqueue := st.Enqueue
				if mode == "update" {
					enqueue = func(m Msg, ids []string) ([]uint64, error) { return naiveEnqueue(st, m, ids) }
				}
				// Exactly pubs publishers share b.N enqueues.
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for p := range pubs {
					wg.Go(func() {
						ids := []string{fmt.Sprintf("sess%d", p), "shared"}
						for next.Add(1) <= int64(b.N) {
							if _, err := enqueue(m, ids); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enqueues/s")
			})
		}
	}
}

// naiveEnqueue is Enqueue with one db.Update (one fsync) per call: what
// the store avoids.
func naiveEnqueue(st *Bolt, m Msg, ids []string) ([]uint64, error) {
	val := encodeMsg(&m)
	seqs := make([]uint64, len(ids))
	err := st.db.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		for i, id := range ids {
			seq, err := q.NextSequence()
			if err != nil {
				return err
			}
			if err := q.Put(seqKey(id, seq), val); err != nil {
				return err
			}
			seqs[i] = seq
		}
		return nil
	})
	return seqs, err
}
