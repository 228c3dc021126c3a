package stomp

import (
	"log/slog"
	"strings"
	"sync"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
)

// maxPipelined bounds the SENDs of one connection waiting for their commit;
// past it the read loop waits, which slows only this client.
const maxPipelined = 256

// sendJob is one SEND waiting in the pipeline.
type sendJob struct {
	f *frame.Frame
	m *broker.Message
}

// sendPipe is a connection's SEND pipeline, used when the router has a
// store: SENDs to a queue (stored before their RECEIPT) and, while durable
// subscriptions exist, to topics, go to one goroutine, started on demand,
// that publishes everything that queued up during the last commit with one
// Router.PublishBatch (one store transaction, one fsync), then sends each
// RECEIPT in order. The read loop keeps reading SENDs meanwhile; any other
// frame waits for the pipeline to empty (drainPipe), so frames still take
// effect in the order the client sent them.
type sendPipe struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled when jobs shrink or the runner stops
	jobs    []sendJob
	running bool
}

// pipelined reports whether SEND f goes through the pipeline: it may need
// the store, or SENDs before it are still there.
func (c *conn) pipelined(f *frame.Frame) bool {
	if !c.router.Durable() {
		return false
	}
	if _, tx := f.Header.Contains(frame.Transaction); tx {
		return false
	}
	pp := &c.pipe
	pp.mu.Lock()
	busy := pp.running || len(pp.jobs) > 0
	pp.mu.Unlock()
	if busy {
		return true
	}
	dest := f.Header.Get(frame.Destination)
	return strings.HasPrefix(dest, queuePrefix) || c.router.HasDurableSubscriptions()
}

// submit queues j, waiting while the pipeline is full, and starts the
// runner if none runs. Read loop only.
func (c *conn) submit(j sendJob) {
	pp := &c.pipe
	pp.mu.Lock()
	if pp.cond.L == nil {
		pp.cond.L = &pp.mu
	}
	for len(pp.jobs) >= maxPipelined {
		pp.cond.Wait()
	}
	pp.jobs = append(pp.jobs, j)
	if !pp.running {
		pp.running = true
		go c.runPipe()
	}
	pp.mu.Unlock()
}

// runPipe publishes and answers batches until the pipeline is empty. After
// an error (ERROR frame sent, session closed) it routes nothing more.
func (c *conn) runPipe() {
	pp := &c.pipe
	var reqs []broker.PublishReq
	failed := false
	for {
		pp.mu.Lock()
		jobs := pp.jobs
		pp.jobs = nil
		if len(jobs) == 0 {
			pp.running = false
		}
		pp.cond.Broadcast()
		pp.mu.Unlock()
		if len(jobs) == 0 {
			return
		}
		if failed || c.sess.Closed() {
			continue
		}
		reqs = reqs[:0]
		for _, j := range jobs {
			reqs = append(reqs, broker.PublishReq{Msg: j.m})
		}
		c.router.PublishBatch(c.sess, reqs)
		for i, j := range jobs {
			if err := c.sent(j.f, reqs[i].Err); err != nil {
				we := wireError(err)
				c.logf(slog.LevelWarn, "stomp: protocol error", "err", err)
				c.closeOnError(we, errorFrame(we.message, we.detail, j.f, we.headers...))
				failed = true
				break
			}
			if id, ok := j.f.Header.Contains(frame.Receipt); ok {
				c.receipt(id)
			}
		}
		clear(reqs)
	}
}

// drainPipe waits until every submitted SEND has been routed and answered.
func (c *conn) drainPipe() {
	pp := &c.pipe
	pp.mu.Lock()
	if pp.cond.L == nil {
		pp.cond.L = &pp.mu
	}
	for pp.running || len(pp.jobs) > 0 {
		pp.cond.Wait()
	}
	pp.mu.Unlock()
}
