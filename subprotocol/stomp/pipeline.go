package stomp

import (
	"log/slog"
	"strings"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// sendJob is one SEND waiting in the pipeline.
type sendJob struct {
	f *frame.Frame
	m *broker.Message
}

// With a store, SENDs to a queue (stored before their RECEIPT) and, while
// durable subscriptions exist, to topics go to the connection's pipeline
// (subprotocol.Pipeline): everything that queued up during the last commit
// is published with one Router.PublishBatch (one store transaction, one
// fsync), then each RECEIPT goes out in order. The read loop keeps reading
// SENDs meanwhile; any other frame waits for the pipeline to empty
// (drainPipe), so frames still take effect in the order the client sent
// them.

// pipelined reports whether SEND f goes through the pipeline: it may need
// the store, or SENDs before it are still there.
func (c *conn) pipelined(f *frame.Frame) bool {
	if !c.router.Durable() {
		return false
	}
	if _, tx := f.Header.Contains(frame.Transaction); tx {
		return false
	}
	if c.pipe.Busy() {
		return true
	}
	dest := f.Header.Get(frame.Destination)
	return strings.HasPrefix(dest, queuePrefix) || c.router.HasDurableSubscriptions()
}

// submit queues a SEND on the pipeline. Read loop only.
func (c *conn) submit(j sendJob) {
	c.sess.FlushDeferred() // Submit may wait for the pipeline
	if c.pipe == nil {
		c.pipe = new(subprotocol.Pipeline[sendJob]) // on first use: idle connections carry none
	}
	c.pipe.Submit(j, c.sendBatch)
}

// sendBatch publishes and answers one batch (the pipeline's run). After an
// error (ERROR frame sent, session closed) it routes nothing more.
func (c *conn) sendBatch(jobs []sendJob) {
	if c.sess.Closed() {
		return
	}
	reqs := make([]broker.PublishReq, len(jobs))
	for i, j := range jobs {
		reqs[i] = broker.PublishReq{Msg: j.m}
	}
	c.router.PublishBatch(c.sess, reqs)
	for i, j := range jobs {
		if err := c.sent(j.f, reqs[i].Err); err != nil {
			we := wireError(err)
			c.logf(slog.LevelWarn, "stomp: protocol error", "err", err)
			c.closeOnError(we, errorFrame(we.message, we.detail, j.f, we.headers...))
			return
		}
		if id, ok := j.f.Header.Contains(frame.Receipt); ok {
			c.receipt(id)
		}
	}
}

// drainPipe waits until every submitted SEND has been routed and answered.
func (c *conn) drainPipe() { c.pipe.Drain() }
