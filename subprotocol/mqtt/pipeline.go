package mqtt

import (
	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// pubJob is one PUBLISH, or one PUBREC of a stored delivery (rec),
// waiting for its store commit.
type pubJob struct {
	qos  byte
	id   uint16
	m    *broker.Message
	rec  bool            // a PUBREC: PUBREL follows the commit
	d    broker.Delivery // the PUBREC's delivery
	comp bool            // a PUBCOMP that came while its PUBREC was queued
	dup  bool            // the PUBLISH's DUP flag (a resend [MQTT-3.3.1-1])
}

// With a store, the read loop hands QoS 1/2 publishes (and anything behind
// them, to keep the order) to the connection's pipeline
// (subprotocol.Pipeline) and goes on reading; everything that queued up
// during a commit is published with one Router.PublishBatch (one store
// commit, one fsync) and then acknowledged, in order [MQTT-4.6.0-2]. So a
// client with many packets in flight pays one commit per batch, and its
// acknowledgement still comes only after its message is on disk.

// submit queues a publish on the pipeline. Read loop only.
func (c *conn) submit(j pubJob) {
	c.FlushDeferred() // Submit may wait for the pipeline
	if c.pipe == nil {
		c.pipe = new(subprotocol.Pipeline[pubJob]) // on first use: idle connections carry none
	}
	c.pipe.Submit(j, c.publishBatch)
}

// publishBatch publishes and acknowledges one batch (the pipeline's run).
func (c *conn) publishBatch(jobs []pubJob) {
	reqs := make([]broker.PublishReq, 0, len(jobs))
	var recs []broker.Taken
	for _, j := range jobs {
		switch {
		case j.comp:
		case !j.rec:
			reqs = append(reqs, broker.PublishReq{Msg: j.m, QoS2: j.qos == 2, PacketID: j.id, Dup: j.dup})
		case j.d.Seq != 0:
			recs = append(recs, broker.Taken{Delivery: j.d, PacketID: j.id})
		}
	}
	if len(reqs) > 0 {
		c.router.PublishBatch(c.sess, reqs)
	}
	if err := c.router.ConfirmTaken(recs); err != nil {
		// No PUBREL: the client keeps the ids, and the next connection
		// sends the messages not recorded (Kept false) again, with DUP,
		// under the same ids; so those are not saved at the PUBREL stage,
		// whose resend would release the ids first [MQTT-4.3.3-6].
		c.mu.Lock()
		for _, rc := range recs {
			if f := c.out.flights[rc.PacketID]; f != nil && f.d.Seq == rc.Delivery.Seq && !rc.Kept {
				f.rel = false
			}
		}
		c.mu.Unlock()
		c.closeOnError(err, wireError(err))
		return
	}
	next := 0
	for _, j := range jobs {
		if j.comp {
			c.router.ForgetOutboundID(c.sess, j.id)
			continue
		}
		if j.rec {
			c.reply(&Ack{Kind: PUBREL, PacketID: j.id})
			continue
		}
		err := reqs[next].Err
		next++
		if err := c.acknowledge(j.qos, j.id, err, c.reply); err != nil {
			// 3.x cannot refuse a PUBLISH: close, as the read loop would
			// [MQTT-3.3.5-2]; it finishes the connection.
			c.closeOnError(err, wireError(err))
		}
	}
}

// drainPipe waits until every submitted publish has been routed and
// acknowledged.
func (c *conn) drainPipe() { c.pipe.Drain() }
