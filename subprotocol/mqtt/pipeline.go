package mqtt

import (
	"sync"

	"github.com/duplexmq/duplex/broker"
)

// maxPipelined bounds the publishes of one connection waiting for their
// commit; past it the read loop waits, which slows only this client.
const maxPipelined = 256

// pubJob is one PUBLISH waiting in the pipeline.
type pubJob struct {
	qos byte
	id  uint16
	m   *broker.Message
}

// pubPipe is a connection's publish pipeline, used when the router has a
// store. The read loop hands it QoS 1/2 publishes (and anything behind
// them, to keep the order) and goes on reading; one goroutine, started on
// demand and gone when idle, publishes everything that queued up meanwhile
// with one Router.PublishBatch (one store commit, one fsync) and then
// acknowledges each, in order [MQTT-4.6.0-2]. So a client with many
// packets in flight pays one commit per batch, and its acknowledgement
// still comes only after its message is on disk.
type pubPipe struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled when jobs shrink or the runner stops
	jobs    []pubJob
	running bool
}

// busy reports queued or running publishes: a QoS 0 publish then queues
// behind them instead of overtaking them.
func (pp *pubPipe) busy() bool {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.running || len(pp.jobs) > 0
}

// submit queues j, waiting while the pipeline is full, and starts the
// runner if none runs. Read loop only.
func (c *conn) submit(j pubJob) {
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

// runPipe publishes and acknowledges batches until the pipeline is empty.
func (c *conn) runPipe() {
	pp := &c.pipe
	var reqs []broker.PublishReq
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
		reqs = reqs[:0]
		for _, j := range jobs {
			reqs = append(reqs, broker.PublishReq{Msg: j.m, QoS2: j.qos == 2, PacketID: j.id})
		}
		c.router.PublishBatch(c.sess, reqs)
		for i, j := range jobs {
			if err := c.acknowledge(j.qos, j.id, reqs[i].Err); err != nil {
				// 3.x cannot refuse a PUBLISH: close, as the read loop
				// would [MQTT-3.3.5-2]; it finishes the connection.
				c.closeOnError(err, wireError(err))
			}
		}
		clear(reqs)
	}
}

// drainPipe waits until every submitted publish has been routed and
// acknowledged.
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
