package broker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/duplexmq/duplex/store"
)

// Publish routes m: to every matching topic subscription, or into its queue.
// It never waits on a subscriber: one whose outbox is full is handled by the
// slow-consumer policy. m must not be modified afterwards. When from defers
// its flushes (Session.DeferFlushes), the subscribers it filled are
// flushed at from's next FlushDeferred.
func (r *Router) Publish(ctx context.Context, from *Session, m *Message) error {
	return r.publish(from, m, nil)
}

// PublishExactlyOnce is Publish for a message the client sends exactly once
// under packetID (MQTT QoS 2 PUBLISH). When the publishing session is persistent and the router has a store, the packet
// id is recorded in the same transaction as the message, so that a PUBLISH
// the client resends after a broker restart is acknowledged, not routed a
// second time [MQTT-4.3.3-10]. Router.ForgetInboundID forgets it at PUBREL.
func (r *Router) PublishExactlyOnce(ctx context.Context, from *Session, m *Message, packetID uint16) error {
	return r.publish(from, m, r.inMark(from, packetID))
}

// inMark is the store record of an inbound QoS 2 packet id, for a
// persistent publisher when the router has a store; nil otherwise.
func (r *Router) inMark(from *Session, packetID uint16) *store.Mark {
	if r.dur == nil || from == nil || from.Expiry() == 0 {
		return nil
	}
	return &store.Mark{Session: string(from.ID), In: true, ID: packetID}
}

// publish is plan → (commit when something is stored) → finish for one
// message (route.go).
func (r *Router) publish(from *Session, m *Message, mark *store.Mark) error {
	p, err := r.prepare(from, m, mark, false, true)
	if p == nil {
		return err
	}
	if from != nil {
		p.deferTo = from.deferTo() // nil unless the protocol defers (deferred.go)
	}
	err = r.runPlan(p)
	p.release()
	return err
}

// MayCommit reports whether publishing m from a session may need a store
// commit: a router with a store, and m a QoS 1/2 message for a shared
// queue, for a durable subscription, for a persistent session or a share
// group (whose pick may be one), or (qos2) an MQTT QoS 2 PUBLISH from a
// persistent publisher, whose packet id is recorded. A protocol that hands
// publishes that wait on a commit to a pipeline (to share commits) can
// publish the others at once, on its read loop. It matches m's topic, as
// Publish will; the answer is a hint: a subscription that comes or goes
// in between changes nothing but where the commit waits.
func (r *Router) MayCommit(from *Session, m *Message, qos2 bool) bool {
	if r.dur == nil || m.QoS == AtMostOnce {
		return false
	}
	if m.Queue != "" || (qos2 && r.inMark(from, 0) != nil) || r.nbind.Load() > 0 {
		return true
	}
	if r.cfg.Peers != nil && r.durableOn() {
		return true // it waits for the cluster store (publishDurable)
	}
	p := newPlan(m)
	p.matches = r.idx.Match(m.Topic, p.matches)
	may := r.mayStore(m, p.matches, nil)
	p.release()
	return may
}

// PublishReq is one message of PublishBatch.
type PublishReq struct {
	Msg *Message
	// QoS2 and PacketID: an MQTT QoS 2 PUBLISH, whose packet id is
	// recorded for a persistent publisher as PublishExactlyOnce does.
	QoS2     bool
	PacketID uint16
	// Dup: the client resends it (MQTT DUP set [MQTT-3.3.1-1]); for a
	// cluster-durable session the cluster's record of the id decides
	// whether it is published again (InboundPeers).
	Dup bool
	Err error // set by PublishBatch: what Publish would have returned
}

// PublishBatch publishes messages in order, as that many Publish (or
// PublishExactlyOnce) calls would, but commits all their stored copies in one
// store transaction, so a publisher that pipelines (MQTT QoS 1/2 with many
// packets in flight) pays one commit and one fsync per batch, not per
// message. Every message is delivered after the commit, in order. When the
// commit fails, every message that needed it gets ErrStore and is not
// delivered.
func (r *Router) PublishBatch(from *Session, reqs []PublishReq) {
	plans := make([]*routePlan, len(reqs))
	var batches []*store.Batch
	for i := range reqs {
		var mark *store.Mark
		if reqs[i].QoS2 {
			mark = r.inMark(from, reqs[i].PacketID)
		}
		// No streaming: every message is delivered after the commit, in
		// order.
		p, err := r.prepare(from, reqs[i].Msg, mark, reqs[i].Dup, false)
		if p == nil {
			reqs[i].Err = err
			continue
		}
		plans[i] = p
		if p.stored() {
			batches = append(batches, &p.batch)
		}
	}
	var (
		seqs [][]uint64
		err  error
	)
	if len(batches) > 0 {
		if seqs, err = r.dur.st.CommitAll(batches); err != nil {
			for _, p := range plans {
				if p != nil && p.stored() {
					p.unplan()
				}
			}
			r.log.Error("store: messages not written; refused", "count", len(batches), "err", err)
			err = fmt.Errorf("%w: %v", ErrStore, err)
		}
	}
	next := 0
	for i, p := range plans {
		if p == nil {
			continue
		}
		var s []uint64
		if p.stored() {
			if err != nil {
				reqs[i].Err = err
				continue
			}
			s = seqs[next]
			next++
		}
		reqs[i].Err = r.finish(p, s)
	}
	// Each subscriber is signalled (or written to) once per batch, after
	// all its messages.
	for _, p := range plans {
		if p != nil {
			p.flushAll(r)
			p.release()
		}
	}
}

// prepare stamps m, counts it, checks it (admit, queueTarget) and plans
// its fan-out, streaming (plan) if stream and nothing may be stored. A nil
// plan means nothing to route: err says why (nil for a reply to a
// temporary queue that is gone, or for a resent (dup) QoS 2 PUBLISH the
// cluster already has: peers_qos2in.go).
func (r *Router) prepare(from *Session, m *Message, mark *store.Mark, dup, stream bool) (*routePlan, error) {
	if from != nil {
		m.From = from.ID
	}
	m.ID = r.nextMsgID.Add(1)
	own := isBrokerSys(from, m)
	if !own {
		r.published.Add(1)
	}
	if m.Queue != "" {
		p, err := r.planQueue(from, m)
		if p != nil {
			r.tapMessage(m)
		}
		return p, err
	}
	var hold *inboundHold
	if r.cfg.Peers != nil && mark != nil {
		// A QoS 2 PUBLISH of a persistent session: the cluster records
		// its packet id, and a resend of a held one is acknowledged,
		// not published again [MQTT-4.3.3-10] (peers_qos2in.go).
		h, err := r.holdInbound(from, mark.ID, dup)
		if err != nil || h != nil && h.Done {
			return nil, err
		}
		hold = h
	}
	retErr, err := r.admit(from, m)
	if err != nil {
		return nil, err
	}
	if r.cfg.Peers != nil && !m.fromPeer && !own {
		// Stored in the cluster before it is acknowledged, then
		// forwarded (peers_qos2in.go).
		if done, err := r.toPeers(m, hold); err != nil || done {
			return nil, err
		}
	}
	p := newPlan(m)
	p.matches = r.idx.Match(m.Topic, p.matches)
	if len(p.matches) == 0 && !own {
		r.noSubscriber.Add(1)
	}
	r.tapMessage(m)
	r.plan(p, mark, stream && !r.mayStore(m, p.matches, mark))
	p.retained = retErr
	return p, nil
}

// isBrokerSys reports the broker's own $SYS publications (no session, a
// $SYS/ topic: web.Server.RunSys). They are not client traffic: Published
// and NoSubscriber leave them out, and their retained copies stay in
// memory only.
func isBrokerSys(from *Session, m *Message) bool {
	return from == nil && strings.HasPrefix(m.Topic, "$SYS/")
}

// admit checks a topic message before routing (name, authorization) and
// stores or clears its retained copy. err refuses the message; retained
// (wrapping ErrRetainedQuota) says it is routed but was not retained,
// which Publish reports once the message is delivered.
func (r *Router) admit(from *Session, m *Message) (retained, err error) {
	if err := ValidTopicName(m.Topic); err != nil {
		return nil, err
	}
	if !r.allowPublish(from, OpPublish, m.Topic) {
		r.publishDenied.Add(1)
		return nil, ErrNotAuthorized
	}
	if m.Retain {
		return r.retain(from, m), nil
	}
	return nil, nil
}

// queueTarget checks a queue message (name, authorization) and returns its
// queue, creating a shared one if needed; nil (and no error) for a reply to
// a temporary queue that is gone.
func (r *Router) queueTarget(from *Session, m *Message) (*queue, error) {
	if err := ValidQueueName(m.Queue); err != nil {
		return nil, err
	}
	if !r.allowPublish(from, OpQueueSend, m.Queue) {
		r.publishDenied.Add(1)
		return nil, ErrNotAuthorized
	}
	if isDurableQueue(m.Queue) {
		return nil, fmt.Errorf("%w: %s names a durable subscription's queue", ErrInvalidQueue, DurableQueuePrefix)
	}
	r.qmu.Lock()
	defer r.qmu.Unlock()
	q := r.queues[m.Queue]
	if q == nil {
		if strings.HasPrefix(m.Queue, TempQueuePrefix) {
			r.dropped.Add(1) // the requester is gone; a late reply has nowhere to go
			return nil, nil
		}
		q = newQueue(m.Queue, nil)
		r.queues[m.Queue] = q
	}
	return q, nil
}

// retainLimits are the router's retained quotas.
func (r *Router) retainLimits() retainLimits {
	return retainLimits{
		total: r.cfg.MaxRetained, bytes: r.cfg.MaxRetainedBytes,
		perOwner: r.cfg.MaxRetainedPerUser, bytesPerOwner: r.cfg.MaxRetainedBytesPerUser,
	}
}

// retain stores or clears m's retained copy, counted against the
// publisher's retained owner, and writes it to the store. Past a quota it
// returns an error wrapping ErrRetainedQuota: the message is not retained
// (and the topic's previous one goes, see Retained.put).
func (r *Router) retain(from *Session, m *Message) error {
	owner := m.owner
	if from != nil {
		owner = from.retOwner
	} else if isBrokerSys(from, m) {
		owner = sysRetainOwner
	}
	why, cleared := r.retained.put(m, owner, r.retainLimits())
	if why != "" {
		r.retainedRefused.Add(1)
		if ok, n := r.retainLog.allow(time.Now()); ok {
			r.log.Warn("retained message quota reached; not retained", "topic", m.Topic, "owner", owner,
				"limit", why, "suppressed", n)
		}
		if cleared && r.dur != nil {
			if err := r.dur.st.PutRetained(store.Msg{Topic: m.Topic}); err != nil {
				r.log.Error("store: retained message not removed", "topic", m.Topic, "err", err)
			}
		}
		return fmt.Errorf("%w (%s)", ErrRetainedQuota, why)
	}
	if r.dur != nil && !isBrokerSys(from, m) {
		// Durable before the publisher's acknowledgement; an empty
		// payload removes it [MQTT-3.3.1-10]. The broker's own $SYS
		// values are not kept: they are republished at start.
		sm := toStoreMsg(m)
		sm.Owner = owner
		if err := r.dur.st.PutRetained(sm); err != nil {
			r.log.Error("store: retained message not written", "topic", m.Topic, "err", err)
		}
	}
	return nil
}

// Retained returns the retained messages matching filter.
func (r *Router) Retained(filter string) []*Message { return r.retained.Match(filter, nil) }

// HasDurableSubscriptions reports whether any durable subscription exists,
// so a topic message may need the store.
func (r *Router) HasDurableSubscriptions() bool { return r.nbind.Load() > 0 }
