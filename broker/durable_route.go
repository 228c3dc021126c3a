package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/duplexmq/duplex/store"
)

// PublishQoS2 is Publish for an MQTT QoS 2 PUBLISH with packetID. When the
// publishing session is persistent and the router has a store, the packet
// id is recorded in the same transaction as the message, so that a PUBLISH
// the client resends after a broker restart is acknowledged, not routed a
// second time [MQTT-4.3.3-10]. Router.ReleasedIn forgets it at PUBREL.
func (r *Router) PublishQoS2(ctx context.Context, from *Session, m *Message, packetID uint16) error {
	var mark *store.Mark
	if r.dur != nil && from != nil && from.Expiry() != 0 {
		mark = &store.Mark{Session: string(from.ID), In: true, ID: packetID}
	}
	return r.publish(from, m, mark)
}

// anyPersistent reports a match that may need the store: a persistent
// session's subscription or a share group (whose pick may be one).
func anyPersistent(matches []*Subscription) bool {
	for _, sub := range matches {
		if sub.share != nil || (sub.Session != nil && sub.Session.Expiry() != 0) {
			return true
		}
	}
	return false
}

// route is a fan-out when something durable may be involved: it plans
// the deliveries, commits the stored ones (and mark) in one transaction,
// then delivers.
func (r *Router) route(m *Message, matches []*Subscription, mark *store.Mark) error {
	return r.runPlan(r.plan(m, matches, mark))
}

// runPlan commits a plan's stored copies, if any, and delivers it.
func (r *Router) runPlan(p *routePlan) error {
	if !p.stored() {
		return r.finishPlan(p, nil)
	}
	seqs, err := r.dur.st.Commit(&p.batch)
	if err != nil {
		p.unplan()
		r.log.Error("store: message not written; refused", "topic", p.m.Topic, "queue", p.m.Queue, "err", err)
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return r.finishPlan(p, seqs)
}

// routePlan is one message's fan-out, sorted for the store: in-memory
// deliveries, deliveries to persistent sessions and durable subscriptions'
// queues (stored), and durable subscriptions that keep a QoS 0 message in
// memory only.
type routePlan struct {
	m      *Message
	live   []Delivery
	kept   []Delivery
	queues []*queue
	memq   []*queue
	quota  bool
	direct bool // a queue message (not a topic's durable subscriptions)
	// retained: the message was not retained (ErrRetainedQuota); reported
	// with the plan's result, after delivery.
	retained error
	batch    store.Batch
}

// unplan gives back what plan reserved, when the commit failed.
func (p *routePlan) unplan() {
	for _, d := range p.kept {
		d.Sub.Session.stored.Add(-1)
		d.Sub.Session.storedBytes.Add(-int64(len(p.m.Payload)))
		d.Sub.Session.gate.leave()
	}
	for _, q := range p.queues {
		q.unreserve(p.m)
	}
}

// stored reports a plan with something to commit.
func (p *routePlan) stored() bool {
	return p.batch.Msg != nil || len(p.batch.PutMarks) > 0
}

// plan sorts matches into a routePlan and fills its store batch. A durable
// subscriber at its limit gets nothing and sets quota.
func (r *Router) plan(m *Message, matches []*Subscription, mark *store.Mark) *routePlan {
	p := &routePlan{m: m}
	for _, sub := range matches {
		if sub.bind != nil {
			switch {
			case r.dur == nil || m.QoS == AtMostOnce:
				p.memq = append(p.memq, sub.bind) // enqueue checks the limits
			case sub.bind.reserve(r, m):
				p.queues = append(p.queues, sub.bind)
			default:
				p.quota = true
			}
			continue
		}
		if sub.isProxy() {
			if sub = sub.share.pick(); sub == nil {
				continue
			}
		}
		if sub.NoLocal && sub.Session.ID == m.From {
			continue
		}
		d := Delivery{Msg: m, Sub: sub, QoS: min(m.QoS, sub.QoS)}
		if r.dur != nil && d.QoS > AtMostOnce && sub.Session.Expiry() != 0 && sub.Session.gate != nil {
			if !sub.Session.gate.enter() {
				continue // being discarded (clean start, expiry): nothing to keep
			}
			if !sub.Session.reserve(r, m) {
				sub.Session.gate.leave()
				p.quota = true
				r.offlineDropped.Add(1)
				continue
			}
			p.kept = append(p.kept, d)
			continue
		}
		p.live = append(p.live, d)
	}
	if len(p.kept)+len(p.queues) > 0 {
		sm := toStoreMsg(m)
		p.batch.Msg = &sm
		for _, d := range p.kept {
			p.batch.Sessions = append(p.batch.Sessions, string(d.Sub.Session.ID))
		}
		for _, q := range p.queues {
			p.batch.Queues = append(p.batch.Queues, q.name)
		}
	}
	if mark != nil {
		p.batch.PutMarks = []store.Mark{*mark}
	}
	return p
}

// planQueue plans a queue message (Publish, PublishBatch): stored when the router
// has a store and the queue is shared, in memory otherwise. nil: a reply
// for a temporary queue that is gone (dropped, as Publish does).
func (r *Router) planQueue(from *Session, m *Message) (*routePlan, error) {
	q, err := r.queueTarget(from, m)
	if q == nil || err != nil {
		return nil, err
	}
	p := &routePlan{m: m, direct: true}
	if r.dur != nil && q.owner == nil && m.QoS > AtMostOnce {
		if !q.reserve(r, m) {
			return nil, ErrQueueFull
		}
		sm := toStoreMsg(m)
		p.batch.Msg, p.batch.Queues, p.queues = &sm, []string{q.name}, []*queue{q}
	} else {
		p.memq = []*queue{q}
	}
	return p, nil
}

// finishPlan delivers a planned message once its batch is committed with
// sequence numbers seqs.
func (r *Router) finishPlan(p *routePlan, seqs []uint64) error {
	for i := range p.kept {
		p.kept[i].Seq = seqs[i] // counted by reserve
		p.kept[i].Sub.Session.gate.leave()
	}
	for i, q := range p.queues {
		q.enqueueSeq(r, p.m, seqs[len(p.kept)+i])
	}
	for _, d := range p.live {
		r.deliver(d)
	}
	for _, d := range p.kept {
		r.deliverStored(d)
	}
	for _, q := range p.memq {
		if err := q.enqueue(r, p.m); err != nil && p.direct {
			return err // a SEND to a full queue is refused
		}
	}
	switch {
	case p.quota && p.retained != nil:
		return errors.Join(ErrQuotaExceeded, p.retained)
	case p.quota:
		return ErrQuotaExceeded
	}
	return p.retained
}

// deliverStored hands a stored delivery to its persistent session's
// outbox if the session is online and caught up; otherwise it stays in the
// store, from where the session pages it in (Refill). It follows
// takeovers to the newest session. A full outbox closes the session as a
// slow consumer and loses nothing.
func (r *Router) deliverStored(d Delivery) {
	s := d.Sub.Session
	for {
		s.offMu.Lock()
		if next := s.successor; next != nil {
			d.Sub = s.forward[d.Sub]
			s.offMu.Unlock()
			if d.Sub == nil {
				return
			}
			s = next
			continue
		}
		if s.Closed() || s.paging.Load() || d.Seq <= s.lastPaged {
			s.offMu.Unlock()
			return // in the store; paged in later (or already)
		}
		err := s.Outbox.PushDelivery(d)
		s.offMu.Unlock()
		switch err {
		case nil:
			r.delivered.Add(1)
		case ErrSlowConsumer:
			r.slowConsumer(s)
		}
		return
	}
}

// Refill pages a persistent session's stored messages into its outbox, in
// order, a page at a time (a quarter of the outbox), on a goroutine of its own.
// The protocol calls it when the session is Paging and its queue runs low;
// the router calls it when a session resumes. Once it has caught up, new
// deliveries go to the outbox directly again.
//
// A call while a refill runs is not lost: the running goroutine pages once
// more before it exits (refillWanted), so a client that drains a page
// before its refill has finished still gets the next one.
func (r *Router) Refill(s *Session) {
	if r.dur == nil || !s.paging.Load() {
		return
	}
	s.refillWanted.Store(true)
	if !s.refilling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			for s.refillWanted.Swap(false) {
				r.refill(s)
			}
			s.refilling.Store(false)
			// A Refill between the last Swap and the Store above saw
			// refilling still set and left its request in refillWanted.
			if !s.refillWanted.Load() || !s.refilling.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

func (r *Router) refill(s *Session) {
	s.offMu.Lock()
	defer s.offMu.Unlock()
	if !s.paging.Load() || s.Closed() || s.successor != nil {
		return
	}
	pending, _ := s.Outbox.Pending()
	room := max(1, r.cfg.MaxPendingMsgs/4) - pending
	if room <= 0 {
		return
	}
	// Reading under offMu orders the page against deliverStored: a message
	// committed before this read is in the page (or was acknowledged), one
	// committed after it has a higher Seq than lastPaged.
	page, err := r.dur.st.Pending(string(s.ID), s.lastPaged, room)
	if err != nil {
		r.log.Error("store: cannot page in queued messages", "session", s.ID, "err", err)
		return
	}
	for _, q := range page {
		s.lastPaged = q.Seq
		m := fromStoreMsg(q.Msg)
		sub := s.subFor(m.Topic)
		if sub == nil || m.Expired() {
			// No subscription wants it any more, or it expired while
			// queued [MQTT-3.3.2-5]: it goes.
			r.ackStored(Delivery{Msg: m, Sub: &Subscription{Session: s}, Seq: q.Seq})
			continue
		}
		// One that may have reached an earlier connection goes out as a
		// redelivery (DUP), a first delivery does not [MQTT-3.3.1-1].
		d := Delivery{Msg: m, Sub: sub, QoS: min(m.QoS, sub.QoS), Seq: q.Seq, Redelivered: q.Seq <= s.dupUpTo}
		if err := s.Outbox.PushDelivery(d); err != nil {
			// Closed meanwhile, or a client that stopped reading; it stays
			// in the store either way.
			s.lastPaged = q.Seq - 1
			return
		}
		r.delivered.Add(1)
	}
	if len(page) < room {
		s.paging.Store(false) // caught up: deliveries go to the outbox directly
	} else {
		s.Outbox.Signal() // the protocol asks for the next page when this one drains
	}
}

// subFor returns a subscription of s whose filter matches topic, for a
// stored message paged in (the store keeps the message, not which of the
// session's subscriptions matched it).
func (s *Session) subFor(topic string) *Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *Subscription
	for _, sub := range s.subs {
		if sub.Queue == "" && MatchTopic(sub.Filter, topic) && (best == nil || sub.QoS > best.QoS) {
			best = sub
		}
	}
	return best
}

// ackStored removes a stored delivery once it is settled (MQTT PUBACK or
// PUBCOMP, or no longer wanted); asynchronous, see ackLoop.
func (r *Router) ackStored(d Delivery) {
	if r.dur == nil || d.Seq == 0 {
		return
	}
	d.Sub.Session.stored.Add(-1)
	d.Sub.Session.storedBytes.Add(-int64(len(d.Msg.Payload)))
	r.dur.ack(ackOp{ref: store.Ref{Name: string(d.Sub.Session.ID), Seq: d.Seq}})
}

// Received is one PUBREC for ReceivedBatch.
type Received struct {
	Delivery Delivery
	PacketID uint16
}

// ReceivedBatch records MQTT PUBRECs for stored QoS 2 deliveries: the
// messages leave the store and their packet ids are recorded, in one
// durable transaction, before the caller sends the PUBRELs. After a
// restart the broker resends PUBREL for those ids and never the messages
// again (MQTT 5 §4.3.3). PUBRECs that arrive together share the commit.
// Deliveries that are not stored (Seq 0) are skipped.
func (r *Router) ReceivedBatch(recs []Received) error {
	if r.dur == nil || len(recs) == 0 {
		return nil
	}
	var b store.Batch
	for _, rc := range recs {
		if rc.Delivery.Seq == 0 {
			continue
		}
		id := string(rc.Delivery.Sub.Session.ID)
		b.Acks = append(b.Acks, store.Ref{Name: id, Seq: rc.Delivery.Seq})
		b.PutMarks = append(b.PutMarks, store.Mark{Session: id, ID: rc.PacketID})
	}
	if len(b.Acks) == 0 {
		return nil
	}
	if _, err := r.dur.st.Commit(&b); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	for _, rc := range recs {
		if d := rc.Delivery; d.Seq != 0 {
			d.Sub.Session.stored.Add(-1)
			d.Sub.Session.storedBytes.Add(-int64(len(d.Msg.Payload)))
		}
	}
	return nil
}

// Completed forgets the outbound QoS 2 packet id of s once PUBCOMP came
// (asynchronously: a lost removal only means one more PUBREL after a
// restart, which the client answers [MQTT-4.3.3-3]).
func (r *Router) Completed(s *Session, packetID uint16) {
	if r.dur == nil || s.detached == nil {
		return
	}
	r.dur.ack(ackOp{mark: &store.Mark{Session: string(s.ID), ID: packetID}})
}

// ReleasedIn forgets an inbound QoS 2 packet id at PUBREL, durably, before
// the caller sends PUBCOMP: after PUBCOMP the client may reuse the id for a
// new message, which must not be taken for a resend.
func (r *Router) ReleasedIn(s *Session, packetID uint16) error {
	if r.dur == nil || s.detached == nil {
		return nil
	}
	_, err := r.dur.st.Commit(&store.Batch{DelMarks: []store.Mark{{Session: string(s.ID), In: true, ID: packetID}}})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// PublishReq is one message of PublishBatch.
type PublishReq struct {
	Msg *Message
	// QoS2 and PacketID: an MQTT QoS 2 PUBLISH, whose packet id is
	// recorded for a persistent publisher as PublishQoS2 does.
	QoS2     bool
	PacketID uint16
	Err      error // set by PublishBatch: what Publish would have returned
}

// PublishBatch publishes topic messages in order, as that many Publish (or
// PublishQoS2) calls would, but commits all their stored copies in one
// store transaction, so a publisher that pipelines (MQTT QoS 1/2 with many
// packets in flight) pays one commit and one fsync per batch, not per
// message. Every message is delivered after the commit, in order. When the
// commit fails, every message that needed it gets ErrStore and is not
// delivered.
func (r *Router) PublishBatch(from *Session, reqs []PublishReq) {
	plans := make([]*routePlan, len(reqs))
	var batches []*store.Batch
	for i := range reqs {
		m := reqs[i].Msg
		if from != nil {
			m.From = from.ID
		}
		m.ID = r.nextMsgID.Add(1)
		r.published.Add(1)
		if m.Queue != "" {
			p, err := r.planQueue(from, m)
			if err != nil || p == nil {
				reqs[i].Err = err
				continue
			}
			plans[i] = p
			r.tapMessage(m)
			if p.stored() {
				batches = append(batches, &p.batch)
			}
			continue
		}
		retErr, err := r.admit(from, m)
		if err != nil {
			reqs[i].Err = err
			continue
		}
		var mark *store.Mark
		if reqs[i].QoS2 && r.dur != nil && from != nil && from.Expiry() != 0 {
			mark = &store.Mark{Session: string(from.ID), In: true, ID: reqs[i].PacketID}
		}
		bp, _ := r.matchBufs.Get().(*[]*Subscription)
		if bp == nil {
			bp = new([]*Subscription)
		}
		matches := r.idx.Match(m.Topic, (*bp)[:0])
		if len(matches) == 0 {
			r.noSubscriber.Add(1)
		}
		r.tapMessage(m)
		plans[i] = r.plan(m, matches, mark)
		plans[i].retained = retErr
		clear(matches)
		*bp = matches[:0]
		r.matchBufs.Put(bp)
		if plans[i].stored() {
			batches = append(batches, &plans[i].batch)
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
		reqs[i].Err = r.finishPlan(p, s)
	}
}

// HasDurableSubscriptions reports whether any durable subscription exists,
// so a topic message may need the store.
func (r *Router) HasDurableSubscriptions() bool { return r.nbind.Load() > 0 }
