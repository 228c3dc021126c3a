package broker

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/duplexmq/duplex/store"
)

// MaxQueueNameLength bounds a queue name in bytes.
const MaxQueueNameLength = 1024

// ValidQueueName checks a point-to-point queue name: non-empty, valid UTF-8,
// no NUL, at most MaxQueueNameLength bytes.
func ValidQueueName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidQueue)
	case len(name) > MaxQueueNameLength:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidQueue, MaxQueueNameLength)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidQueue)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrInvalidQueue)
	}
	return nil
}

// queued is a message waiting in a queue or held unacknowledged by a
// consumer.
type queued struct {
	msg         *Message
	redelivered bool
	// returns counts how often it came back unacknowledged (NACK, or its
	// consumer left) since it was sent or restored; past
	// Config.MaxRedeliveries it is dead-lettered (deadletter.go).
	returns uint32
	sub     *Subscription // consumer holding it; nil while ready
	seq     uint64        // sequence number in the store; 0 if not stored
	// peer: the cluster's handle of a message taken from a cluster queue
	// (peers_queue.go), settled with it; nil on a single node. Such a
	// message is only ever held by a consumer, never ready here.
	peer PeerMsg
}

// queue is a point-to-point destination (STOMP /queue/<name>): each message
// goes to one consumer, round robin over consumers with room under their
// prefetch, and is held until acknowledged. NACK and consumer loss put
// unacknowledged messages back at the head, marked redelivered; one that
// came back more than Config.MaxRedeliveries times, or that a consumer
// rejects (NACK requeue:false), goes to its dead-letter queue instead.
//
// Lock order: queue.mu → Outbox.mu. Session.Close may be called with mu
// held (it only takes the Outbox lock).
type queue struct {
	name  string
	owner *Session // exclusive owner of a temporary queue; nil for a shared queue

	mu        sync.Mutex
	ready     []queued // FIFO; head at ready[0]
	consumers []*Subscription
	next      int // round-robin cursor into consumers
	unacked   map[uint64]queued
	nextTag   uint64
	bytes     int64 // payload bytes of ready and unacknowledged messages
	// Reserved by a plan whose commit is under way (reserve): counted
	// against the limits until enqueueSeq or unreserve.
	reserved, reservedBytes int64
}

func newQueue(name string, owner *Session) *queue {
	return &queue{name: name, owner: owner, unacked: make(map[uint64]queued)}
}

// enqueue appends m and dispatches. It fails with ErrQueueFull past the
// router's limits.
func (q *queue) enqueue(r *Router, m *Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.roomLocked(r, m) {
		return ErrQueueFull
	}
	q.ready = append(q.ready, queued{msg: m})
	q.bytes += int64(len(m.Payload))
	q.dispatchLocked(r)
	return nil
}

// enqueueSeq appends m, stored under seq after reserve, and dispatches.
func (q *queue) enqueueSeq(r *Router, m *Message, seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reserved--
	q.reservedBytes -= int64(len(m.Payload))
	q.ready = append(q.ready, queued{msg: m, seq: seq})
	q.bytes += int64(len(m.Payload))
	q.dispatchLocked(r)
}

// reserve takes room for m ahead of its commit, if it fits: fewer than
// MaxQueueDepth ready (and reserved) messages and at most MaxQueueBytes
// held (and reserved) payload bytes. enqueueSeq or unreserve gives it back.
func (q *queue) reserve(r *Router, m *Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.roomLocked(r, m) {
		return false
	}
	q.reserved++
	q.reservedBytes += int64(len(m.Payload))
	return true
}

// unreserve gives back a reservation whose commit failed.
func (q *queue) unreserve(m *Message) {
	q.mu.Lock()
	q.reserved--
	q.reservedBytes -= int64(len(m.Payload))
	q.mu.Unlock()
}

func (q *queue) roomLocked(r *Router, m *Message) bool {
	if int64(len(q.ready))+q.reserved >= int64(r.cfg.MaxQueueDepth) {
		return false
	}
	return r.cfg.MaxQueueBytes <= 0 || q.bytes+q.reservedBytes+int64(len(m.Payload)) <= int64(r.cfg.MaxQueueBytes)
}

// settled forgets a message once consumed: its bytes, and its stored copy.
func (q *queue) settled(r *Router, e queued) {
	q.bytes -= int64(len(e.msg.Payload))
	if e.peer != nil {
		e.peer.Ack()
	}
	if e.seq != 0 && r.dur != nil {
		r.dur.ack(ackOp{ref: store.Ref{Name: q.name, Seq: e.seq}, queue: true})
	}
}

// addConsumer adds sub and dispatches waiting messages to it.
func (q *queue) addConsumer(r *Router, sub *Subscription) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.consumers = append(q.consumers, sub)
	if qp := r.peersOf(q); qp != nil {
		if len(q.consumers) == 1 {
			qp.QueueConsume(q.name, true)
		}
		qp.QueueWake(q.name)
	}
	q.dispatchLocked(r)
}

// removeConsumer removes sub and requeues what it held unacknowledged, in
// delivery order, at the head of the queue. A message back for the
// (MaxRedeliveries+1)-th time is dead-lettered instead.
func (q *queue) removeConsumer(r *Router, sub *Subscription) {
	q.mu.Lock()
	for i, c := range q.consumers {
		if c == sub {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			if q.next > i {
				q.next--
			}
			break
		}
	}
	var back []uint64
	for tag, e := range q.unacked {
		if e.sub == sub {
			back = append(back, tag)
		}
	}
	slices.Sort(back)
	requeue := make([]queued, 0, len(back)+len(q.ready))
	var dead, peer []queued
	for _, tag := range back {
		e := q.unacked[tag]
		delete(q.unacked, tag)
		if e.peer != nil { // back to the cluster (peers_queue.go)
			q.bytes -= int64(len(e.msg.Payload))
			peer = append(peer, e)
			continue
		}
		if r.overLimit(e.returns + 1) {
			q.bytes -= int64(len(e.msg.Payload))
			dead = append(dead, e)
			continue
		}
		requeue = append(requeue, queued{msg: e.msg, redelivered: true, returns: e.returns + 1, seq: e.seq})
	}
	if len(requeue) > 0 {
		q.ready = append(requeue, q.ready...)
	}
	sub.at.inflight = 0
	if qp := r.peersOf(q); qp != nil && len(q.consumers) == 0 {
		qp.QueueConsume(q.name, false)
	}
	q.dispatchLocked(r)
	q.mu.Unlock()
	for _, e := range dead {
		r.deadLetter(q, e, DeathDeliveryLimit)
	}
	for _, e := range peer {
		r.givePeerBack(q, e, false)
	}
}

// ack settles tag. Unknown tags are ignored (already settled).
func (q *queue) ack(r *Router, tag uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e, ok := q.unacked[tag]; ok {
		delete(q.unacked, tag)
		e.sub.at.inflight--
		q.settled(r, e)
		if e.peer != nil {
			r.wakePeers(q)
		}
		q.dispatchLocked(r)
	}
}

// nack puts tag back at the head of the queue, marked redelivered, or
// dead-letters it when that would be its (MaxRedeliveries+1)-th return.
func (q *queue) nack(r *Router, tag uint64) { q.giveBack(r, tag, false) }

// reject takes tag out of the queue and dead-letters it (NACK
// requeue:false).
func (q *queue) reject(r *Router, tag uint64) { q.giveBack(r, tag, true) }

// giveBack ends the unacknowledged delivery tag: back to the head of the
// queue, unless rejected or over the redelivery limit, when it is
// dead-lettered (after q.mu is released: queue.mu is never held twice).
func (q *queue) giveBack(r *Router, tag uint64, reject bool) {
	q.mu.Lock()
	e, ok := q.unacked[tag]
	if !ok {
		q.mu.Unlock()
		return
	}
	delete(q.unacked, tag)
	e.sub.at.inflight--
	if e.peer != nil { // back to the cluster, or dead-lettered (peers_queue.go)
		q.bytes -= int64(len(e.msg.Payload))
		r.wakePeers(q)
		q.mu.Unlock()
		r.givePeerBack(q, e, reject)
		return
	}
	why := DeathRejected
	if !reject {
		if !r.overLimit(e.returns + 1) {
			q.ready = append([]queued{{msg: e.msg, redelivered: true, returns: e.returns + 1, seq: e.seq}}, q.ready...)
			q.dispatchLocked(r)
			q.mu.Unlock()
			return
		}
		why = DeathDeliveryLimit
	}
	q.bytes -= int64(len(e.msg.Payload))
	q.dispatchLocked(r)
	q.mu.Unlock()
	r.deadLetter(q, e, why)
}

// putBack returns a message whose dead-lettering failed (a store error) to
// the head of the queue: it stays in the store under its own queue, so it
// must stay in memory too.
func (q *queue) putBack(r *Router, e queued) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes += int64(len(e.msg.Payload))
	q.ready = append([]queued{{msg: e.msg, redelivered: true, returns: e.returns, seq: e.seq}}, q.ready...)
	q.dispatchLocked(r)
}

// handLocked pushes e to consumer sub, with a delivery tag unless sub
// acknowledges automatically, and counts it. A session whose outbox
// refuses is closed as a slow consumer (false). Caller holds q.mu.
func (q *queue) handLocked(r *Router, e queued, sub *Subscription) (Delivery, bool) {
	d := Delivery{Msg: e.msg, Sub: sub, QoS: min(e.msg.QoS, sub.QoS), Redelivered: e.redelivered}
	if sub.Ack != AckAuto {
		q.nextTag++
		d.Tag = q.nextTag
	}
	if err := sub.Session.Outbox.PushDelivery(d); err != nil {
		if err == ErrSlowConsumer {
			r.slowConsumer(sub.Session)
		}
		return d, false
	}
	r.delivered.Add(1)
	return d, true
}

// dispatchLocked hands ready messages to consumers with room, round robin.
// A consumer whose outbox refuses is closed as a slow consumer and skipped;
// the message stays at the head for the next consumer. Caller holds q.mu.
func (q *queue) dispatchLocked(r *Router) {
	for len(q.ready) > 0 {
		sub := q.pickLocked()
		if sub == nil {
			return
		}
		e := q.ready[0]
		if e.msg.Expired() {
			// Expired while it waited (MQTT 5 Message Expiry): never
			// delivered, and gone from the store.
			q.settled(r, e)
			q.ready[0] = queued{}
			q.ready = q.ready[1:]
			continue
		}
		d, ok := q.handLocked(r, e, sub)
		if !ok {
			continue // the session is closed now; pickLocked skips it
		}
		q.ready[0] = queued{}
		q.ready = q.ready[1:]
		if d.Tag != 0 {
			sub.at.inflight++
			q.unacked[d.Tag] = queued{msg: e.msg, sub: sub, seq: e.seq, returns: e.returns}
		} else {
			q.settled(r, e) // auto ack: consumed once handed over
		}
	}
	if len(q.ready) == 0 {
		q.ready = nil // let the backing array go
	}
}

// pickLocked returns the next open consumer with room under its prefetch, or
// nil. Caller holds q.mu.
func (q *queue) pickLocked() *Subscription {
	n := len(q.consumers)
	for i := 0; i < n; i++ {
		c := q.consumers[(q.next+i)%n]
		if c.Session.Closed() {
			continue
		}
		if c.Prefetch > 0 && c.at.inflight >= c.Prefetch {
			continue
		}
		q.next = (q.next + i + 1) % n
		return c
	}
	return nil
}

// depth reports ready and unacknowledged message counts and consumers.
func (q *queue) depth() (ready, unacked, consumers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ready), len(q.unacked), len(q.consumers)
}
