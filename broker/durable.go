package broker

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/duplexmq/duplex/store"
)

// Durability (Config.Store): what is written where, and when.
//
//   - A QoS 1/2 message routed to a persistent session (MQTT clean session
//     0, or v5 Session Expiry > 0), to a STOMP /queue/ or to a durable STOMP
//     topic subscription is committed to the store, for all of them in one
//     transaction (store.Batch), before Publish returns; the protocol
//     acknowledges the publisher (PUBACK, PUBREC, RECEIPT) only after that.
//     Concurrent publishers share transactions and fsyncs (group commit).
//   - For a persistent session the store is the queue and memory only a
//     window onto it: a delivery goes to the connection's Outbox while the
//     session is online and caught up, and is otherwise left in the store;
//     the session pages it in later (Router.Refill). So a takeover, a slow
//     consumer or a restart never loses a committed message.
//   - Acknowledgements remove messages asynchronously, in batches
//     (ackLoop; an acknowledgement waits once ackLoop is ackBatch behind):
//     a crash that loses one means a redelivery, which at least once
//     allows. The one acknowledgement that must be durable first is an
//     MQTT PUBREC from a subscriber: Router.ConfirmTaken removes the
//     message and records the packet id (store.Mark) in one transaction
//     before PUBREL goes out, so after a restart the broker resends
//     PUBREL, never the message [MQTT-4.3.3-1].
//   - An inbound QoS 2 packet id of a persistent session is recorded with
//     the message it carries (PublishExactlyOnce, PublishBatch) and removed before
//     PUBCOMP (Router.ForgetInboundID), so a PUBLISH resent after a restart is
//     not routed twice [MQTT-4.3.3-10].
//   - Deleting state waits for commits under way: a persistent session
//     that ends (clean start, expiry, Session Expiry 0) retires its
//     storeAccount before its records go, and deleting a durable subscription
//     removes everything the store holds for its queue, so nothing comes
//     back under a later session or subscription with the same name.

// durable is the router's link to its store.
type durable struct {
	st store.Store
	// stored counts the messages stored for persistent sessions: the
	// running total of their storeAccounts (Stats).
	stored atomic.Int64
	acks   chan ackOp
	stop   chan struct{}
	done   chan struct{}
}

// ackOp is one asynchronous removal for ackLoop.
type ackOp struct {
	ref   store.Ref
	queue bool        // ref names a named queue's message
	mark  *store.Mark // or: a QoS 2 mark to delete
}

// ackBatch bounds how many removals ackLoop commits in one transaction.
const ackBatch = 4096

// ackLoop commits asynchronous removals in batches: it takes what is
// waiting, commits it in one transaction and goes back for more.
func (d *durable) ackLoop(r *Router) {
	defer close(d.done)
	var b store.Batch
	flush := func() {
		if len(b.Acks)+len(b.QueueAcks)+len(b.DelMarks) == 0 {
			return
		}
		if _, err := d.st.Commit(&b); err != nil && !errors.Is(err, store.ErrClosed) {
			r.log.Error("store: acknowledgements not written (they will be redelivered)", "err", err)
		}
		b = store.Batch{}
	}
	add := func(op ackOp) {
		switch {
		case op.mark != nil:
			b.DelMarks = append(b.DelMarks, *op.mark)
		case op.queue:
			b.QueueAcks = append(b.QueueAcks, op.ref)
		default:
			b.Acks = append(b.Acks, op.ref)
		}
	}
	for {
		select {
		case op := <-d.acks:
			add(op)
		more:
			for len(b.Acks)+len(b.QueueAcks)+len(b.DelMarks) < ackBatch {
				select {
				case op := <-d.acks:
					add(op)
				default:
					break more
				}
			}
			flush()
		case <-d.stop:
			for {
				select {
				case op := <-d.acks:
					add(op)
				default:
					flush()
					return
				}
			}
		}
	}
}

// ack queues an asynchronous removal. While ackLoop is less than ackBatch
// removals behind it returns at once; beyond that it waits for ackLoop to
// take one, so a slow store slows acknowledging clients down instead of
// piling up goroutines or memory. Waiting is safe under a queue or session
// lock: ackLoop takes no broker lock, and its commits wait only for the
// store (no store call made under a broker lock waits for ackLoop).
func (d *durable) ack(op ackOp) {
	select {
	case d.acks <- op:
	case <-d.stop:
	}
}

// Stop stops the router's background work and flushes pending
// acknowledgements to the store. Call it after the last connection ended
// and before closing the store.
func (r *Router) Stop() {
	if r.dur == nil {
		return
	}
	r.stopOnce.Do(func() {
		close(r.dur.stop)
		<-r.dur.done
	})
}

// Durable reports whether the router has a store.
func (r *Router) Durable() bool { return r.dur != nil }

// toStoreMsg converts a message for the store. A STOMP reply-to that is not
// a topic travels as a property with a key no client can send (MQTT and
// STOMP strings never contain U+0000).
func toStoreMsg(m *Message) store.Msg {
	sm := store.Msg{
		ID: m.ID, Topic: m.Topic, Queue: m.Queue, Payload: m.Payload, ContentType: m.ContentType,
		ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData, PayloadFormat: m.PayloadFormat,
		QoS: uint8(m.QoS), Retain: m.Retain, Expires: m.Expires,
	}
	if len(m.Props) > 0 || m.ReplyTo != "" {
		sm.Props = make([]store.Prop, 0, len(m.Props)+1)
		for _, p := range m.Props {
			sm.Props = append(sm.Props, store.Prop{Key: p.Key, Value: p.Value})
		}
		if m.ReplyTo != "" {
			sm.Props = append(sm.Props, store.Prop{Key: replyToProp, Value: m.ReplyTo})
		}
	}
	return sm
}

const replyToProp = "\x00reply-to"

// fromStoreMsg is the inverse of toStoreMsg.
func fromStoreMsg(sm store.Msg) *Message {
	m := &Message{
		ID: sm.ID, Topic: sm.Topic, Queue: sm.Queue, Payload: sm.Payload, ContentType: sm.ContentType,
		ResponseTopic: sm.ResponseTopic, CorrelationData: sm.CorrelationData, PayloadFormat: sm.PayloadFormat,
		QoS: QoS(sm.QoS), Retain: sm.Retain, Expires: sm.Expires,
	}
	for _, p := range sm.Props {
		if p.Key == replyToProp {
			m.ReplyTo = p.Value
			continue
		}
		m.Props = append(m.Props, Property{Key: p.Key, Value: p.Value})
	}
	return m
}

// storedSession is a persistent session's record. Once its connection has
// ended, the record's State holds the highest stored sequence a connection
// wrote (8 bytes, big-endian): after a restart, only messages up to it go
// out as redeliveries (MQTT DUP). A record written while the session is
// connected has no State: a crash then leaves every stored message
// possibly sent.
func storedSession(s *Session, expiresAt time.Time, will *store.Will) store.Session {
	rec := store.Session{
		ID: string(s.ID), Protocol: s.Protocol + "/" + s.Version, Expiry: s.Expiry(),
		ExpiresAt: expiresAt.UTC(), Will: will, Owner: s.owner,
	}
	if s.Closed() {
		rec.State = binary.BigEndian.AppendUint64(nil, s.sentMark())
	}
	return rec
}

// sentUpTo reads a record's State (storedSession).
func sentUpTo(rec store.Session) (uint64, bool) {
	if len(rec.State) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(rec.State), true
}

// storedSub is a subscription's record.
func storedSub(sub *Subscription) store.Sub {
	return store.Sub{
		Key: sub.Key, Filter: sub.Filter, Queue: sub.Queue, Group: sub.Group, QoS: uint8(sub.QoS),
		NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling,
		SubID: sub.SubID, Durable: true,
	}
}

// saveSub records a persistent session's subscription.
func (r *Router) saveSub(s *Session, sub *Subscription) error {
	if r.dur == nil || s.Expiry() == 0 {
		return nil
	}
	return r.dur.st.PutSub(string(s.ID), storedSub(sub))
}

// forgetSub removes a persistent session's subscription record.
func (r *Router) forgetSub(s *Session, key string) {
	if r.dur == nil || s.Expiry() == 0 {
		return
	}
	if err := r.dur.st.DeleteSub(string(s.ID), key); err != nil {
		r.log.Error("store: subscription not removed", "session", s.ID, "key", key, "err", err)
	}
}

// forgetSession removes a session's record, subscriptions, queued messages
// and marks.
func (r *Router) forgetSession(id SessionID) {
	if r.dur == nil {
		return
	}
	if err := r.dur.st.DeleteSession(string(id)); err != nil {
		r.log.Error("store: session not removed", "session", id, "err", err)
	}
}

// saveSession writes a persistent session's record.
func (r *Router) saveSession(s *Session, expiresAt time.Time, will *store.Will) error {
	if r.dur == nil {
		return nil
	}
	return r.dur.st.PutSession(storedSession(s, expiresAt, will))
}

// storeWill converts a will for the session record.
func storeWill(m *Message, delay time.Duration) *store.Will {
	if m == nil {
		return nil
	}
	return &store.Will{Msg: toStoreMsg(m), Delay: delay}
}
