package stomp

import (
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
)

// track records an unacknowledged delivery under its message-id. The write
// loop calls it before the MESSAGE is written, so an ACK can never arrive
// first. It reports false when the connection already holds
// Config.MaxUnacked deliveries: the client does not acknowledge.
func (c *conn) track(id uint64, d broker.Delivery) bool {
	st := d.Sub.Data.(*subState)
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	if len(c.pending) >= c.cfg.MaxUnacked {
		return false
	}
	if c.pending == nil { // lazily: most connections never use client acks
		c.pending = make(map[uint64]broker.Delivery)
	}
	c.pending[id] = d
	st.unacked = append(st.unacked, id)
	c.sess.SetInflight(len(c.pending))
	return true
}

// handleAck settles deliveries (STOMP 1.2 §ACK, §NACK). STOMP 1.2 names the
// message by the MESSAGE's ack header (id); 1.0 and 1.1 by message-id (and
// subscription in 1.1). In client mode an ACK or NACK covers every earlier
// unacknowledged message of the subscription. NACKed messages are
// redelivered, up to the broker's redelivery limit; a NACK with
// requeue:false (RabbitMQ's extension) rejects them instead: a queue
// message goes to its dead-letter queue, a topic message is dropped. An id
// this connection never issued is an error; one already settled (say,
// covered by an earlier cumulative ACK) is ignored.
func (c *conn) handleAck(f *frame.Frame) error {
	idHeader := frame.Id
	if c.version != "1.2" {
		idHeader = frame.MessageId
	}
	v, ok := f.Header.Contains(idHeader)
	if !ok {
		return protocolErr("missing "+idHeader, "%s needs an %s header in STOMP %s", f.Command, idHeader, c.version)
	}
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil || id == 0 || id > c.nextMsgID.Load() {
		return protocolErr("unknown message", "%s %s=%q names no message sent on this connection", f.Command, idHeader, v)
	}
	settled := c.settle(id)
	reject := f.Command == frame.NACK && f.Header.Get("requeue") == "false"
	for _, d := range settled {
		switch {
		case reject:
			c.router.Reject(d)
		case f.Command == frame.NACK:
			c.router.Nack(d)
		default:
			c.router.Ack(d)
		}
	}
	return nil
}

// settle removes id, and in client mode every earlier id of the same
// subscription, from the pending table and returns their deliveries.
func (c *conn) settle(id uint64) []broker.Delivery {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	d, ok := c.pending[id]
	if !ok {
		return nil
	}
	st := d.Sub.Data.(*subState)
	var out []broker.Delivery
	if st.ack == broker.AckClient {
		n := 0
		for _, u := range st.unacked {
			if u > id {
				break
			}
			out = append(out, c.pending[u])
			delete(c.pending, u)
			n++
		}
		st.unacked = append(st.unacked[:0], st.unacked[n:]...)
		c.sess.SetInflight(len(c.pending))
		return out
	}
	delete(c.pending, id)
	c.sess.SetInflight(len(c.pending))
	for i, u := range st.unacked {
		if u == id {
			st.unacked = append(st.unacked[:i], st.unacked[i+1:]...)
			break
		}
	}
	return append(out, d)
}

// forget drops the pending deliveries of a removed subscription; the router
// has already requeued its queue messages.
func (c *conn) forget(sub *broker.Subscription) {
	if sub == nil {
		return
	}
	st := sub.Data.(*subState)
	c.ackMu.Lock()
	for _, u := range st.unacked {
		delete(c.pending, u)
	}
	st.unacked = nil
	c.sess.SetInflight(len(c.pending))
	c.ackMu.Unlock()
}
