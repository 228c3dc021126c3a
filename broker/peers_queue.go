package broker

import (
	"errors"
	"strings"
	"time"
)

// ErrQueueLocal is QueuePeers.QueueSend's answer when the cluster does not
// carry queues (no JetStream on this node): the message goes into this
// node's own queue, as on a single node.
var ErrQueueLocal = errors.New("broker: queue is local to this node")

// QueuePeers is a Peers that also carries STOMP /queue/ destinations
// across the cluster (package broker/cluster: a replicated JetStream
// work-queue stream). A shared queue is then one queue in the whole
// cluster: a SEND is stored there (QueueSend) before it is acknowledged
// (STOMP RECEIPT), and every node with local consumers of the queue takes
// messages from it, each message to one node (EnqueueFromPeer), so the
// consumers on all nodes compete. Each message taken keeps its PeerMsg
// next to the delivery until the consumer settles it (STOMP 1.2 ACK,
// NACK): a node that dies holding it loses nothing, the cluster hands it
// to another node, marked redelivered.
//
// Temporary (reply) queues and durable subscriptions' queues stay local:
// they belong to a connection or a session of this node. Dead-letter
// queues are cluster queues.
//
// None of the three methods may call back into the router. QueueSend
// and its wait are called with no broker lock held (on the publisher's
// goroutine, or on the one that dead-letters a message), like the
// store's commit; QueueConsume and QueueWake must not
// block: they are called with queue.mu held, so that add and remove for
// one queue stay in order.
type QueuePeers interface {
	Peers
	// QueueSend starts storing m (m.Queue set) in the cluster; wait
	// returns once it is stored, or why not (any error refuses the
	// SEND). Messages sent one after the other are stored in that order,
	// and a publisher's batch (Router.PublishBatch) waits for all of
	// them at once. err ErrQueueLocal: the cluster does not carry
	// queues, m stays on this node.
	QueueSend(m *Message) (wait func() error, err error)
	// QueueConsume reports that queue name has its first local consumer
	// (add) or lost its last one (!add): the peers take messages for it
	// from the cluster only in between.
	QueueConsume(name string, add bool)
	// QueueWake reports that name's local consumers may have room again
	// (an ACK, a NACK, a new consumer): the peers ask QueueRoom and fetch.
	QueueWake(name string)
}

// queuePeers returns the router's Peers when they carry queues; nil on a
// single node (one nil check).
func (r *Router) queuePeers() QueuePeers {
	if r.cfg.Peers == nil {
		return nil
	}
	qp, _ := r.cfg.Peers.(QueuePeers)
	return qp
}

// peersOf returns the QueuePeers that carry q, or nil for a queue that
// stays on this node: any queue on a single node, a temporary queue and a
// durable subscription's queue in a cluster.
func (r *Router) peersOf(q *queue) QueuePeers {
	if r.cfg.Peers == nil || q.owner != nil || isDurableQueue(q.name) || strings.HasPrefix(q.name, TempQueuePrefix) {
		return nil
	}
	return r.queuePeers()
}

// wakePeers tells the peers that q's consumers have room again, after a
// message from the cluster was settled. Caller holds q.mu.
func (r *Router) wakePeers(q *queue) {
	if qp := r.queuePeers(); qp != nil {
		qp.QueueWake(q.name)
	}
}

// sendToPeers hands a message for q to the cluster (planQueue): handled
// reports that the cluster took it (wait says once it is stored) or
// refused it (err); otherwise it stays on this node.
func (r *Router) sendToPeers(q *queue, m *Message) (handled bool, wait func() error, err error) {
	qp := r.peersOf(q)
	if qp == nil {
		return false, nil, nil
	}
	w, err := qp.QueueSend(m)
	switch {
	case errors.Is(err, ErrQueueLocal):
		return false, nil, nil
	case err != nil:
		r.log.Warn("cluster: queue message not stored; refused", "queue", q.name, "err", err)
		return true, nil, err
	}
	return true, func() error {
		err := w()
		if err != nil {
			r.log.Warn("cluster: queue message not stored; refused", "queue", q.name, "err", err)
		}
		return err
	}, nil
}

// peerRoomUnlimited is the room QueueRoom gives a consumer without a
// prefetch limit (prefetch-count 0, or ack:auto): how many messages a
// node takes from the cluster at a time for it.
const peerRoomUnlimited = 32

// QueueRoom reports how many messages of queue name this node's consumers
// can take now: the free prefetch of its open consumers (peerRoomUnlimited
// for one without a limit). The peers take at most that many from the
// cluster at a time, so one node does not hoard the queue while another
// one's consumers wait.
func (r *Router) QueueRoom(name string) int {
	r.qmu.Lock()
	q := r.queues[name]
	r.qmu.Unlock()
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	room := 0
	for _, c := range q.consumers {
		switch {
		case c.Session.Closed():
		case c.Prefetch == 0 || c.Ack == AckAuto:
			room += peerRoomUnlimited
		case c.at.inflight < c.Prefetch:
			room += c.Prefetch - c.at.inflight
		}
	}
	return room
}

// EnqueueFromPeer delivers m, taken from the cluster's queue name with
// handle h, to one of this node's consumers of that queue, and keeps h
// with the delivery until the consumer settles it (STOMP ACK: h.Ack; NACK,
// or a consumer that leaves: h.Nak, so any node gets it again; ack:auto:
// h.Ack once handed over). It reports false when no local consumer has
// room (it left meanwhile): the caller gives h back. A message the
// cluster delivered more than Config.MaxRedeliveries+1 times (consumers
// that died holding it count, as a consumer that leaves does on one node)
// is dead-lettered here instead; an expired one is dropped (h.Term).
func (r *Router) EnqueueFromPeer(name string, m *Message, h PeerMsg) bool {
	if ValidQueueName(name) != nil || isDurableQueue(name) || strings.HasPrefix(name, TempQueuePrefix) {
		h.Term() // not a queue any node makes: a foreign publisher
		return true
	}
	m.Queue, m.Topic = name, ""
	m.fromPeer = true
	m.ID = r.nextMsgID.Add(1)
	r.qmu.Lock()
	q := r.queues[name]
	r.qmu.Unlock()
	if q == nil {
		return false
	}
	returns := uint32(min(h.Delivered()-1, 1<<31))
	e := queued{msg: m, peer: h, redelivered: h.Delivered() > 1, returns: returns}
	if m.Expired() {
		h.Term() // MQTT 5 Message Expiry passed while it waited
		return true
	}
	if returns > 0 && r.overLimit(returns) {
		// Back for the returns-th time: dead-lettered as giveBack would
		// have done on the node that had it.
		e.returns--
		r.deadLetter(q, e, DeathDeliveryLimit)
		return true
	}
	q.mu.Lock()
	ok := q.dispatchPeerLocked(r, e)
	q.mu.Unlock()
	return ok
}

// dispatchPeerLocked hands e, a message from the cluster, to the next
// consumer with room, as dispatchLocked does for a ready one; it is never
// kept in q.ready (the cluster keeps it until a consumer here has it).
// Caller holds q.mu.
func (q *queue) dispatchPeerLocked(r *Router, e queued) bool {
	for {
		sub := q.pickLocked()
		if sub == nil {
			return false
		}
		d, ok := q.handLocked(r, e, sub)
		if !ok {
			continue // the session is closed now; pickLocked skips it
		}
		if d.Tag == 0 {
			e.peer.Ack() // auto ack: consumed once handed over
			return true
		}
		sub.at.inflight++
		q.bytes += int64(len(e.msg.Payload))
		e.sub = sub
		q.unacked[d.Tag] = e
		return true
	}
}

// givePeerBack ends e, a message from the cluster that its consumer gave
// back (NACK; reject for NACK requeue:false) or left holding: back to the
// cluster for any node's consumer (h.Nak), or dead-lettered when rejected
// or back for the (MaxRedeliveries+1)-th time. e is out of q.unacked and
// q.bytes; the caller holds no lock.
func (r *Router) givePeerBack(q *queue, e queued, reject bool) {
	switch {
	case reject:
		r.deadLetter(q, e, DeathRejected)
	case r.overLimit(e.returns + 1):
		r.deadLetter(q, e, DeathDeliveryLimit)
	default:
		e.peer.Nak(0)
	}
}

// deadLetterPeer moves e, a message from the cluster, to the dead-letter
// queue m.Queue (a cluster queue too) as m: stored there first, then
// ended in its own queue (h.Term), so a node's loss in between leaves it
// in both (at least once) but never in neither. When the dead-letter
// queue refuses it, it goes back to its queue after a pause (it stays
// stored there, as on one node when the store fails): handled but not
// moved. Not handled: the cluster does not carry queues
// (ErrQueueLocal); deadLetter moves it to this node's queue.
func (r *Router) deadLetterPeer(from *queue, e queued, m *Message, reason string) (handled, moved bool) {
	qp := r.queuePeers()
	if qp == nil {
		return false, false
	}
	wait, err := qp.QueueSend(m)
	if err == nil {
		err = wait()
	}
	if err != nil {
		if errors.Is(err, ErrQueueLocal) {
			return false, false
		}
		r.log.Error("cluster: message not dead-lettered; back in its queue", "queue", from.name, "err", err)
		e.peer.Nak(time.Second)
		return true, false
	}
	e.peer.Term()
	r.dl.moved.Add(1)
	r.log.Debug("message dead-lettered", "queue", from.name, "to", m.Queue, "reason", reason)
	return true, true
}
