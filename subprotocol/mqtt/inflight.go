package mqtt

import (
	"cmp"
	"slices"

	"github.com/duplexmq/duplex/broker"
)

// flight is one outbound QoS 1 or 2 PUBLISH awaiting its acknowledgement.
type flight struct {
	id       uint16
	d        broker.Delivery
	retained bool   // the RETAIN flag it was sent with
	rel      bool   // QoS 2: PUBREC came and PUBREL went; awaiting PUBCOMP
	seq      uint64 // send order, for resending in order [MQTT-4.6.0-1]
}

// pending is a delivery waiting for its turn: the write loop sends the
// queue in order, QoS 1/2 ones only while the client's Receive Maximum
// allows [MQTT-3.3.4-9].
type pending struct {
	d        broker.Delivery
	retained bool // a retained message sent on SUBSCRIBE [MQTT-3.3.1-8]
}

// outState is the outbound side of a connection: the packet ids in use,
// and deliveries drained from the Outbox but not sent yet. It is guarded
// by conn.mu, shared by the write loop (sending) and the read loop
// (PUBACK, PUBREC, PUBCOMP; retained messages after SUBACK).
type outState struct {
	flights map[uint16]*flight
	nextID  uint16
	seq     uint64
	queue   []pending
	live    int // entries in queue from the Outbox (not retained ones): bounded like the Outbox
}

// allocID returns a free packet id [MQTT-2.2.1-3]. Caller holds c.mu and
// has checked the window, which keeps ids below 65,535 in use.
func (o *outState) allocID() uint16 {
	for {
		o.nextID++
		if o.nextID == 0 {
			o.nextID = 1
		}
		if _, used := o.flights[o.nextID]; !used {
			return o.nextID
		}
	}
}

// settle frees the packet id of a PUBACK (QoS 1) or PUBCOMP (QoS 2) and
// reports whether it was in flight (MQTT 5 §4.3.2, §4.3.3). A PUBACK for a QoS 2
// flight, or PUBCOMP before PUBREC, is ignored.
func (c *conn) settle(id uint16, kind PacketType) (*flight, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.out.flights[id]
	if f == nil || (kind == PUBACK) != (f.d.QoS == broker.AtLeastOnce) || (kind == PUBCOMP && !f.rel) {
		return nil, false
	}
	delete(c.out.flights, id)
	c.sess.SetInflight(c.out.inflight())
	return f, true
}

// received handles PUBREC for id: known reports a QoS 2 flight, now at the
// PUBREL stage; freed reports a flight ended by a failure code. d is the
// flight's delivery, for the router. A repeated PUBREC (a flight already
// at the PUBREL stage) returns a zero d: the store has settled it.
func (c *conn) received(id uint16, failed bool) (known, freed bool, d broker.Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.out.flights[id]
	if f == nil || f.d.QoS != broker.ExactlyOnce {
		return false, false, d
	}
	if f.rel {
		return true, false, d
	}
	if failed {
		delete(c.out.flights, id)
		c.sess.SetInflight(c.out.inflight())
		return true, true, f.d
	}
	f.rel = true
	return true, false, f.d
}

// storedID is the packet id of a stored delivery: derived from its store
// sequence, so that after a restart the same message goes out with the same
// id and a client that already has it (QoS 2, PUBREC sent) recognises the
// resend [MQTT-4.3.3-10]. Consecutive sequences give consecutive ids.
func storedID(seq uint64) uint16 { return uint16(seq%65535) + 1 }

// idFor returns the packet id for d, or false while a flight still holds
// the id a stored delivery needs (the queue then waits, in order). Caller
// holds c.mu.
func (o *outState) idFor(d broker.Delivery) (uint16, bool) {
	if d.Seq == 0 {
		return o.allocID(), true
	}
	id := storedID(d.Seq)
	_, used := o.flights[id]
	return id, !used
}

// inflight counts QoS 1/2 PUBLISH packets awaiting acknowledgement. Caller
// holds c.mu.
func (o *outState) inflight() int { return len(o.flights) }

// saveState collects what a persistent session keeps once the connection
// has ended (the write loop is done): unacknowledged outbound messages in
// the order they were sent, unsent ones, and inbound QoS 2 ids awaiting
// PUBREL [MQTT-4.1.0-1]. QoS 0 deliveries are not kept (MQTT 5 §4.1: QoS 0
// messages "may" be stored; we don't).
func (c *conn) saveState() *broker.SavedState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &broker.SavedState{NextID: c.out.nextID}
	for id := range c.qos2In {
		s.InboundIDs = append(s.InboundIDs, id)
	}
	flights := make([]*flight, 0, len(c.out.flights))
	for _, f := range c.out.flights {
		if f.d.Seq != 0 && !f.rel {
			continue // in the store: the next connection pages it in again
		}
		flights = append(flights, f)
	}
	slices.SortFunc(flights, func(a, b *flight) int { return cmp.Compare(a.seq, b.seq) })
	for _, f := range flights {
		s.Flights = append(s.Flights, broker.SavedFlight{ID: f.id, Delivery: f.d, Retained: f.retained, Released: f.rel})
	}
	for _, p := range c.out.queue {
		if p.d.QoS > broker.AtMostOnce && p.d.Seq == 0 {
			s.Queue = append(s.Queue, broker.SavedDelivery{Delivery: p.d, Retained: p.retained})
		}
	}
	return s
}

// resume restores the state a previous connection saved (or, after a
// restart, what the store kept of it: inbound ids and PUBRELs to resend)
// and appends to buf the packets to resend, before any new message: every
// unacknowledged PUBLISH with DUP set and every PUBREL, with their
// original packet ids [MQTT-4.4.0-1] [MQTT-3.3.1-1]. Called by the read
// loop before any write goroutine can run.
func (c *conn) resume(sess *broker.Session, buf []byte) []byte {
	s := sess.TakeState()
	if s == nil {
		return buf
	}
	if len(s.InboundIDs) > 0 {
		c.qos2In = make(map[uint16]struct{}, len(s.InboundIDs))
		for _, id := range s.InboundIDs {
			c.qos2In[id] = struct{}{}
		}
	}
	// The router moved the subscriptions to sess as copies: point the kept
	// deliveries at them (same key), so re-subscribing changes their
	// options as it does for new messages.
	remap := func(d *broker.Delivery) {
		if d.Sub != nil {
			if ns := sess.Subscription(d.Sub.Key); ns != nil {
				d.Sub = ns
			}
		}
	}
	flights := make([]flight, len(s.Flights))
	for i, sf := range s.Flights {
		flights[i] = flight{id: sf.ID, d: sf.Delivery, retained: sf.Retained, rel: sf.Released}
		remap(&flights[i].d)
	}
	queue := make([]pending, len(s.Queue))
	for i, sd := range s.Queue {
		queue[i] = pending{d: sd.Delivery, retained: sd.Retained}
		remap(&queue[i].d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.nextID = s.NextID
	c.out.flights = make(map[uint16]*flight, len(flights))
	for i := range flights {
		f := flights[i]
		if f.rel {
			buf = AppendPacket(buf, &Ack{Kind: PUBREL, PacketID: f.id}, c.version)
		} else {
			var ok bool
			if buf, ok = c.appendPublish(buf, f.d, f.retained, f.id, true); !ok {
				continue // too large for this connection's client: dropped
			}
		}
		c.out.seq++
		f.seq = c.out.seq
		c.out.flights[f.id] = &f
	}
	sess.SetInflight(c.out.inflight())
	c.out.queue = append(queue, c.out.queue...)
	c.out.live = 0
	for _, p := range c.out.queue {
		if !p.retained {
			c.out.live++
		}
	}
	return buf
}

// unfinishedShared collects the QoS 1/2 deliveries of shared subscriptions
// that this connection did not complete (unsent, or sent and not
// acknowledged; a QoS 2 one past PUBREC is the client's), for a session
// that ends with the connection (Router.Redistribute). The write loop is
// done.
func (c *conn) unfinishedShared() []broker.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []broker.Delivery
	keep := func(d broker.Delivery) {
		if d.Sub != nil && d.Sub.Group != "" && d.QoS > broker.AtMostOnce {
			out = append(out, d)
		}
	}
	for _, f := range c.out.flights {
		if !f.rel {
			keep(f.d)
		}
	}
	for _, p := range c.out.queue {
		if !p.retained {
			keep(p.d)
		}
	}
	_, left, _ := c.sess.Outbox.Drain(nil, nil)
	for _, d := range left {
		keep(d)
	}
	return out
}
