package broker

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/duplexmq/duplex/store"
)

// Dead-lettering: a queue message (STOMP /queue/, or a durable
// subscription's queue) that its consumer rejects (NACK requeue:false,
// RabbitMQ's extension) or that comes back unacknowledged more than
// Config.MaxRedeliveries times (a NACK, or a consumer that leaves holding
// it) is a poison message: instead of going round again it moves to the
// queue Config.DeadLetterPrefix + the queue's name ("DLQ.orders"), an
// ordinary shared queue (durable with a store, consumed as
// /queue/DLQ.orders), with headers saying why and from where (the
// Header* constants). A copy is published on the topic
// Config.DeadLetterTopic + the queue's name ("$DLQ/orders") for MQTT
// clients, which have no queues; '$' keeps it out of '#' subscriptions
// [MQTT-4.7.2-1].
//
// Nothing loops: a dead-letter queue's own messages, a temporary queue's
// and a topic delivery rejected or NACKed more than MaxRedeliveries times
// (Router.Nack) are dropped and counted (Stats.DeadLetterDropped), never
// dead-lettered again, and so is a message whose dead-letter queue is
// full.
//
// With a store the move is one transaction: the copy is pushed onto the
// dead-letter queue and the original removed from its queue in the same
// commit, so a crash leaves the message in exactly one of them. If the
// commit fails the message goes back to its queue.
//
// The return count lives in memory: after a restart every restored
// message starts again at 0 (and is sent as a redelivery).

// Dead-lettering defaults (Config).
const (
	// DefaultMaxRedeliveries is RabbitMQ 4's default delivery-limit for
	// quorum queues: generous enough for consumers that NACK to retry,
	// small enough that a poison message stops within seconds.
	DefaultMaxRedeliveries  = 20
	DefaultDeadLetterPrefix = "DLQ."
	DefaultDeadLetterTopic  = "$DLQ/"
)

// Headers (STOMP) and user properties (MQTT 5) of a dead-lettered
// message, before the original's own.
const (
	HeaderDeathReason = "x-death-reason" // DeathRejected or DeathDeliveryLimit
	// HeaderDeathQueue is the queue it left (a durable subscription's
	// "$durable/..." queue name included).
	HeaderDeathQueue = "x-death-queue"
	// HeaderOriginalDestination is the STOMP destination it was sent to:
	// /queue/<name>, or /topic/<topic> (canonical, '/'-separated) for a
	// durable subscription's message.
	HeaderOriginalDestination = "x-original-destination"
	// HeaderDeliveryCount is how many times it was delivered since it was
	// sent or restored.
	HeaderDeliveryCount = "x-delivery-count"
)

// Values of HeaderDeathReason (RabbitMQ's x-death reasons).
const (
	DeathRejected      = "rejected"       // NACK requeue:false
	DeathDeliveryLimit = "delivery_limit" // back more than MaxRedeliveries times
)

// deadLetters counts dead-lettering (Stats).
type deadLetters struct {
	moved, dropped atomic.Uint64
	log            rateLog
}

// overLimit reports a message that would come back for the returns-th
// time, past Config.MaxRedeliveries.
func (r *Router) overLimit(returns uint32) bool {
	return r.cfg.MaxRedeliveries >= 0 && int64(returns) > int64(r.cfg.MaxRedeliveries)
}

// Reject settles a delivery that its consumer refused without asking for
// it again (STOMP NACK with requeue:false): a queue delivery is
// dead-lettered, a topic delivery dropped (counted in DeadLetterDropped).
func (r *Router) Reject(d Delivery) {
	if d.Tag == 0 {
		r.Ack(d)
		r.dl.dropped.Add(1)
		return
	}
	if q := r.queueOf(d.Sub); q != nil {
		q.reject(r, d.Tag)
	}
}

// Nack hands back a delivery its consumer refused (STOMP NACK): a queue
// delivery goes back to its queue (Redeliver), a topic delivery to the same
// subscription, marked redelivered; each at most MaxRedeliveries times.
// Past that a queue message is dead-lettered and a topic delivery dropped
// (counted in DeadLetterDropped).
func (r *Router) Nack(d Delivery) {
	if d.Tag == 0 {
		if r.overLimit(d.Returns + 1) {
			r.Ack(d)
			r.dl.dropped.Add(1)
			return
		}
		d.Returns++
	}
	r.Redeliver(d)
}

// IsDeadLetterQueue reports whether name is a dead-letter queue.
func (r *Router) IsDeadLetterQueue(name string) bool {
	return !r.cfg.NoDeadLetter && strings.HasPrefix(name, r.cfg.DeadLetterPrefix)
}

// deadLetter moves e, already out of from (bytes and tag), to from's
// dead-letter queue for reason. The caller holds no lock.
func (r *Router) deadLetter(from *queue, e queued, reason string) {
	name := r.cfg.DeadLetterPrefix + from.name
	if from.owner != nil || r.IsDeadLetterQueue(from.name) || r.cfg.NoDeadLetter || ValidQueueName(name) != nil {
		r.dropDead(from, e, reason, "")
		return
	}
	m := deadCopy(e.msg, from.name, reason, e.returns+1)
	m.Queue = name
	m.ID = r.nextMsgID.Add(1)
	if e.peer != nil { // a cluster queue's message: to the cluster's dead-letter queue
		if handled, moved := r.deadLetterPeer(from, e, m, reason); handled {
			if moved {
				r.deadLetterTopic(from, m)
			}
			return
		}
	}
	dlq := r.deadLetterQueue(name)
	if r.dur != nil && m.QoS > AtMostOnce {
		if !dlq.reserve(r, m) {
			r.dropDead(from, e, reason, "dead-letter queue full")
			return
		}
		sm := toStoreMsg(m)
		b := store.Batch{Msg: &sm, Queues: []string{name}}
		if e.seq != 0 {
			b.QueueAcks = []store.Ref{{Name: from.name, Seq: e.seq}}
		}
		seqs, err := r.dur.st.Commit(&b)
		if err != nil {
			dlq.unreserve(m)
			r.log.Error("store: message not dead-lettered; back in its queue", "queue", from.name, "err", err)
			from.putBack(r, e)
			return
		}
		dlq.enqueueSeq(r, m, seqs[0])
	} else {
		if err := dlq.enqueue(r, m); err != nil {
			r.dropDead(from, e, reason, "dead-letter queue full")
			return
		}
		from.forget(r, e)
	}
	r.dl.moved.Add(1)
	r.log.Debug("message dead-lettered", "queue", from.name, "to", name, "reason", reason)
	r.deadLetterTopic(from, m)
}

// deadLetterTopic publishes a copy of m, dead-lettered from from, on the
// dead-letter topic for MQTT clients.
func (r *Router) deadLetterTopic(from *queue, m *Message) {
	if r.cfg.NoDeadLetterTopic {
		return
	}
	t := r.cfg.DeadLetterTopic + from.name
	if ValidTopicName(t) != nil {
		return // a queue name with + or # has no topic
	}
	tm := *m
	// Dead-lettered here, once: other nodes get the copy (a message
	// from a peer came in marked fromPeer).
	tm.Queue, tm.Topic, tm.Retain, tm.fromPeer = "", t, false, false
	_ = r.publish(nil, &tm, nil)
}

// dropDead drops a message that cannot be dead-lettered, counted.
func (r *Router) dropDead(from *queue, e queued, reason, why string) {
	from.forget(r, e)
	r.dl.dropped.Add(1)
	if why == "" {
		return // by design (a dead-letter or temporary queue's message): counted only
	}
	if ok, n := r.dl.log.allow(time.Now()); ok {
		r.log.Warn("rejected message dropped", "queue", from.name, "reason", reason, "why", why, "suppressed", n)
	}
}

// forget removes e's stored copy (asynchronously, as an ack does), or
// ends a cluster queue's message in the cluster.
func (q *queue) forget(r *Router, e queued) {
	if e.peer != nil {
		e.peer.Term()
	}
	if e.seq != 0 && r.dur != nil {
		r.dur.ack(ackOp{ref: store.Ref{Name: q.name, Seq: e.seq}, queue: true})
	}
}

// deadLetterQueue returns the shared queue name, creating it if needed.
func (r *Router) deadLetterQueue(name string) *queue {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	q := r.queues[name]
	if q == nil {
		q = newQueue(name, nil)
		r.queues[name] = q
	}
	return q
}

// deadCopy is m for a dead-letter queue: the death headers first, then
// m's own properties without earlier death headers (a message
// dead-lettered twice says only why the last time).
func deadCopy(m *Message, from, reason string, deliveries uint32) *Message {
	c := *m
	orig := "/queue/" + from
	if m.Topic != "" {
		orig = "/topic/" + m.Topic
	}
	c.Topic, c.Retain = "", false
	c.Props = make([]Property, 0, len(m.Props)+4)
	c.Props = append(c.Props,
		Property{Key: HeaderDeathReason, Value: reason},
		Property{Key: HeaderDeathQueue, Value: from},
		Property{Key: HeaderOriginalDestination, Value: orig},
		Property{Key: HeaderDeliveryCount, Value: strconv.FormatUint(uint64(deliveries), 10)})
	for _, p := range m.Props {
		switch p.Key {
		case HeaderDeathReason, HeaderDeathQueue, HeaderOriginalDestination, HeaderDeliveryCount:
			continue
		}
		c.Props = append(c.Props, p)
	}
	return &c
}

// CheckDeadLetter checks Config.DeadLetterPrefix and DeadLetterTopic
// (empty ones are the defaults): the prefix must not make dead-letter
// queues look like durable subscriptions' or temporary queues, and the
// topic prefix must make topic names (no wildcard, no NUL, UTF-8).
func CheckDeadLetter(prefix, topic string) error {
	switch {
	case strings.HasPrefix(prefix, DurableQueuePrefix) || strings.HasPrefix(prefix, TempQueuePrefix):
		return fmt.Errorf("%w: dead-letter prefix %q starts like a durable subscription's or a temporary queue", ErrInvalidQueue, prefix)
	case prefix != "" && ValidQueueName(prefix) != nil:
		return fmt.Errorf("dead-letter prefix %q: %w", prefix, ValidQueueName(prefix))
	case topic != "" && ValidTopicName(topic+"q") != nil:
		return fmt.Errorf("dead-letter topic %q: %w", topic, ValidTopicName(topic+"q"))
	}
	return nil
}
