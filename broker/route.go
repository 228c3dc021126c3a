package broker

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/duplexmq/duplex/store"
)

// Every message takes one path, durable or not, single or batched:
//
//	prepare (publish.go): stamp, count, admit, match the index
//	plan:    the per-delivery rules, once: a share group's pick, no-local,
//	         the QoS downgrade, one copy per client for overlapping MQTT
//	         subscriptions, and the sorting of deliveries into live ones
//	         and those to store
//	commit:  the stored copies and the QoS 2 mark in one store
//	         transaction, only when the plan has any (runPlan, PublishBatch)
//	finish:  deliveries into outboxes, stored ones in order, queue messages
//	         into their queues
//
// Plans are pooled with their buffers, so a publish that needs no store
// allocates nothing. A single publish that cannot need the store (mayStore)
// streams: plan pushes each live delivery as soon as its rules are applied
// instead of listing it for finish (the list costs a second pass over the
// fan-out), except a client's whose overlapping subscriptions may still
// merge. What it delivers and the rules are the same either way.

// routePlan is one message's fan-out, sorted for the store: in-memory
// deliveries, deliveries to persistent sessions and durable subscriptions'
// queues (stored), and durable subscriptions that keep a QoS 0 message in
// memory only.
type routePlan struct {
	m       *Message
	matches []*Subscription // the index's answer (buffer kept with the plan)
	live    []Delivery
	kept    []Delivery
	queues  []*queue
	memq    []*queue
	quota   bool
	direct  bool // a queue message (not a topic's durable subscriptions)
	// peerWait: a cluster queue's message, stored in the cluster once it
	// returns nil (peers_queue.go); finish waits for it.
	peerWait func() error
	// retained: the message was not retained (ErrRetainedQuota); reported
	// with the plan's result, after delivery.
	retained error
	batch    store.Batch
	// one: where in live the delivery of each session whose overlapping
	// subscriptions share a copy is (merge): scanned while short, then
	// oneMap.
	one    []int
	oneMap map[*Session]int
	// flush: the outboxes this plan's deliveries made non-empty, signalled
	// (or written inline) once the plan is delivered (flushAll).
	flush []*Outbox
	// fanout counts the live deliveries through deliverQuiet, delivered
	// those pushed, added to Router.delivered once by flushAll (an atomic
	// add per delivery was a tenth of a 100-subscriber publish).
	fanout, delivered int
	// deferTo, when set, takes flush instead of flushAll flushing it: the
	// publisher's read loop flushes once per read (deferred.go).
	deferTo *deferredFlushes
}

// oneScan is how many sessions with overlapping subscriptions merge scans
// before it indexes them in a map.
const oneScan = 16

// plans holds spare routePlans with their buffers, one per concurrent
// publish in steady state.
var plans sync.Pool

// newPlan returns an empty plan for m from the pool.
func newPlan(m *Message) *routePlan {
	p, _ := plans.Get().(*routePlan)
	if p == nil {
		p = new(routePlan)
	}
	p.m = m
	return p
}

// release empties p, keeping its buffers, and returns it to the pool.
func (p *routePlan) release() {
	// Field by field, only what was used: the fast case resets a few
	// words, not the whole plan.
	clear(p.matches)
	p.matches = p.matches[:0]
	clear(p.live)
	p.live = p.live[:0]
	if len(p.kept)+len(p.queues)+len(p.memq) > 0 || p.stored() {
		clear(p.kept)
		clear(p.queues)
		clear(p.memq)
		p.kept, p.queues, p.memq = p.kept[:0], p.queues[:0], p.memq[:0]
		p.batch = store.Batch{}
	}
	if len(p.one) > 0 {
		clear(p.oneMap)
		p.one = p.one[:0]
	}
	if len(p.flush) > 0 {
		clear(p.flush)
		p.flush = p.flush[:0]
	}
	p.fanout, p.delivered, p.deferTo = 0, 0, nil
	p.m, p.retained, p.quota, p.direct, p.peerWait = nil, nil, false, false, nil
	plans.Put(p)
}

// stored reports a plan with something to commit.
func (p *routePlan) stored() bool {
	return p.batch.Msg != nil || len(p.batch.PutMarks) > 0
}

// unplan gives back what plan reserved, when the commit failed.
func (p *routePlan) unplan() {
	for _, d := range p.kept {
		a := d.Sub.Session.account()
		a.release(d.Sub.Session.router, len(p.m.Payload))
		a.leave()
	}
	for _, q := range p.queues {
		q.unreserve(p.m)
	}
}

// target applies the per-delivery rules to one match and returns the
// subscription m goes to, or nil: a share group's index entry gives way to
// the member it picks (MQTT 5 §4.8.2), and a no-local subscription skips
// its own session's messages [MQTT-3.8.3-3].
func target(m *Message, sub *Subscription) *Subscription {
	if sub.isProxy() {
		if sub = sub.share.pick(); sub == nil {
			return nil
		}
	}
	if sub.NoLocal && sub.Session.ID == m.From {
		return nil
	}
	return sub
}

// delivery is m's delivery to sub, at the lower of the message's QoS and
// the granted one [MQTT-3.8.4-8].
func delivery(m *Message, sub *Subscription) Delivery {
	return Delivery{Msg: m, Sub: sub, QoS: min(m.QoS, sub.QoS)}
}

// plan sorts p.matches into p's lists and fills its store batch (with
// mark, an MQTT QoS 2 packet id to record). A durable subscriber at its
// limit gets nothing and sets quota. With stream, live deliveries that
// cannot merge go out at once (stream only when nothing may be stored).
func (r *Router) plan(p *routePlan, mark *store.Mark, stream bool) {
	m := p.m
	overlaps := r.overlapping.Load() > 0
	for _, sub := range p.matches {
		if sub.bind != nil {
			switch {
			case r.dur == nil || m.QoS == AtMostOnce:
				p.memq = append(p.memq, sub.bind) // enqueue checks the limits
			case sub.Durable && !m.notInCluster:
				// the cluster store has it (peers_durable.go BindingPeers);
				// one it did not keep is queued here (peers_interest.go)
			case sub.bind.reserve(r, m):
				p.queues = append(p.queues, sub.bind)
			default:
				p.quota = true
			}
			continue
		}
		to := sub
		if sub.Session == nil || sub.NoLocal { // target has something to do
			if to = target(m, sub); to == nil {
				continue
			}
		}
		if overlaps && sub.share == nil && sub.Session.overlaps.Load() > 1 {
			if d := delivery(m, to); !p.merge(d) {
				p.live = append(p.live, d)
			}
			continue
		}
		if stream {
			r.deliverQuiet(p, delivery(m, to))
			continue
		}
		p.live = append(p.live, delivery(m, to))
	}
	if r.dur != nil {
		p.sortStored(r)
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
}

// merge folds d into the delivery already planned for its session, if
// any, and reports whether it did; otherwise it notes that d, appended
// next, is that session's. d is a topic delivery (not a share group's) to
// a session whose overlapping subscriptions share one copy.
func (p *routePlan) merge(d Delivery) bool {
	s := d.Sub.Session
	if p.oneMap != nil && len(p.one) > oneScan {
		if i, ok := p.oneMap[s]; ok {
			p.live[i] = combine(p.live[i], d)
			return true
		}
		p.oneMap[s] = len(p.live)
		p.one = append(p.one, len(p.live))
		return false
	}
	for _, i := range p.one {
		if p.live[i].Sub.Session == s {
			p.live[i] = combine(p.live[i], d)
			return true
		}
	}
	if len(p.one) == oneScan {
		if p.oneMap == nil {
			p.oneMap = make(map[*Session]int)
		}
		for _, i := range p.one {
			p.oneMap[p.live[i].Sub.Session] = i
		}
		p.oneMap[s] = len(p.live)
	}
	p.one = append(p.one, len(p.live))
	return false
}

// combine makes a, a delivery for one of a client's overlapping
// subscriptions, stand for b's subscription too: the copy goes at the
// higher QoS [MQTT-3.3.4-2], through the subscription that granted it,
// with every subscription identifier [MQTT-3.3.4-4], keeping RETAIN if
// either subscription asked for it (Retain As Published).
func combine(a, b Delivery) Delivery {
	if a.also == nil {
		a.also = &overlap{rap: a.Sub.RetainAsPublished}
		a.also.ids = a.also.buf[:0]
		if a.Sub.SubID != 0 {
			a.also.ids = append(a.also.ids, a.Sub.SubID)
		}
	}
	if b.Sub.SubID != 0 && !slices.Contains(a.also.ids, b.Sub.SubID) {
		a.also.ids = append(a.also.ids, b.Sub.SubID)
	}
	a.also.rap = a.also.rap || b.Sub.RetainAsPublished
	if b.QoS > a.QoS {
		a.Sub, a.QoS = b.Sub, b.QoS
	}
	return a
}

// planQueue plans a queue message: stored when the router has a store and
// the queue is shared, in memory otherwise, or in the cluster's queue
// (peers_queue.go: the plan's peerWait, so that the SEND is acknowledged
// only once the cluster has stored it). nil: a reply for a temporary
// queue that is gone (dropped), or a SEND the cluster refused (err).
func (r *Router) planQueue(from *Session, m *Message) (*routePlan, error) {
	q, err := r.queueTarget(from, m)
	if q == nil || err != nil {
		return nil, err
	}
	if r.cfg.Peers != nil {
		if handled, wait, err := r.sendToPeers(q, m); handled {
			if err != nil {
				return nil, err
			}
			p := newPlan(m)
			p.direct, p.peerWait = true, wait
			return p, nil
		}
	}
	stored := r.dur != nil && q.owner == nil && m.QoS > AtMostOnce
	if stored && !q.reserve(r, m) {
		return nil, ErrQueueFull
	}
	p := newPlan(m)
	p.direct = true
	if stored {
		sm := toStoreMsg(m)
		p.batch.Msg, p.batch.Queues = &sm, []string{q.name}
		p.queues = append(p.queues, q)
	} else {
		p.memq = append(p.memq, q)
	}
	return p, nil
}

// runPlan commits a plan's stored copies, if any, finishes it and flushes
// the outboxes it pushed to.
func (r *Router) runPlan(p *routePlan) error {
	if !p.stored() {
		err := r.finish(p, nil)
		p.flushAll(r)
		return err
	}
	seqs, err := r.dur.st.Commit(&p.batch)
	if err != nil {
		p.unplan()
		p.flushAll(r)
		r.log.Error("store: message not written; refused", "topic", p.m.Topic, "queue", p.m.Queue, "err", err)
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	err = r.finish(p, seqs)
	p.flushAll(r)
	return err
}

// InlineFanout is the largest fan-out whose subscribers may be written to
// inline, on the publisher's goroutine (Outbox.Flush): one-to-one and
// one-to-two. A larger publish signals its subscribers' write goroutines,
// which write in parallel with the publisher (the process is busy waking
// them anyway, and a wake-up costs little then); past InlineFanout
// deliveries it signals each at once.
const InlineFanout = 2

// flushAll counts the plan's deliveries and flushes the outboxes it made
// non-empty, in delivery order, inline when the fan-out is at most
// InlineFanout, or leaves them to the publisher's FlushDeferred
// (deferTo). The caller holds no broker lock.
func (p *routePlan) flushAll(r *Router) {
	if p.delivered > 0 {
		r.delivered.Add(uint64(p.delivered))
		p.delivered = 0
	}
	if p.deferTo != nil && len(p.flush) > 0 {
		p.deferTo.add(p.flush, p.fanout <= InlineFanout)
		clear(p.flush)
		p.flush = p.flush[:0]
		return
	}
	for _, o := range p.flush {
		o.Flush(p.fanout <= InlineFanout)
	}
	clear(p.flush)
	p.flush = p.flush[:0]
}

// finish delivers a planned message once its batch is committed with
// sequence numbers seqs (nil when nothing was stored).
func (r *Router) finish(p *routePlan, seqs []uint64) error {
	if p.peerWait != nil {
		return p.peerWait() // the RECEIPT waits for the cluster's store
	}
	for i := range p.kept {
		p.kept[i].Seq = seqs[i] // counted by reserve
		p.kept[i].Sub.Session.account().leave()
	}
	for i, q := range p.queues {
		q.enqueueSeq(r, p.m, seqs[len(p.kept)+i])
	}
	for _, d := range p.live {
		r.deliverQuiet(p, d)
	}
	for _, d := range p.kept {
		d.Sub.Session.deliverStored(d)
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

// route delivers m to subs, already matched (Redistribute), through a plan.
func (r *Router) route(m *Message, subs ...*Subscription) error {
	p := newPlan(m)
	p.matches = append(p.matches, subs...)
	r.plan(p, nil, false)
	err := r.runPlan(p)
	p.release()
	return err
}

// deliver pushes d into its subscriber's outbox, applying the slow-consumer
// policy when the outbox is full.
func (r *Router) deliver(d Delivery) {
	r.pushed(d, d.Sub.Session.Outbox.PushDelivery(d))
}

// deliverQuiet is deliver for a plan's live delivery: the outbox is not
// signalled at once but listed in p.flush when the push made it
// non-empty, so a publish signals (or writes to) each of its first
// InlineFanout subscribers once, after all its deliveries (flushAll);
// past those it signals each at once. It counts what it pushed in p.
func (r *Router) deliverQuiet(p *routePlan, d Delivery) {
	o := d.Sub.Session.Outbox
	var err error
	if p.fanout++; p.fanout > InlineFanout {
		err = o.PushDelivery(d)
	} else {
		var first bool
		if first, err = o.pushQuiet(d); first {
			p.flush = append(p.flush, o)
		}
	}
	if err == nil {
		p.delivered++
		return
	}
	r.pushed(d, err)
}

// pushed applies the outcome err of pushing d: counted, or the
// slow-consumer policy, or kept for a persistent session that is offline.
func (r *Router) pushed(d Delivery, err error) {
	s := d.Sub.Session
	switch err {
	case nil:
		r.delivered.Add(1)
	case ErrSlowConsumer:
		if r.cfg.SlowConsumer == SlowConsumerDropNewest && d.QoS == AtMostOnce {
			r.dropped.Add(1)
			return
		}
		r.slowConsumer(s)
		r.keepOffline(s, d)
	case ErrSessionClosed:
		r.keepOffline(s, d)
	}
}

// keepOffline queues d for a persistent session that cannot take it now,
// or forwards it to the session that took this one over.
//
// A chain of takeovers is followed: a delivery that matched a subscription
// several generations old reaches the newest session.
func (r *Router) keepOffline(s *Session, d Delivery) {
	if s.Expiry() == 0 {
		return // not persistent: a closed session simply misses it
	}
	for s.Expiry() != 0 { // persistent (a takeover in progress still counts)
		kept, next, nd := s.queueOffline(d, r.cfg.MaxOfflineMsgs)
		if kept {
			return
		}
		if next == nil {
			break
		}
		switch err := next.Outbox.PushDelivery(nd); err {
		case nil:
			r.delivered.Add(1)
			return
		case ErrSlowConsumer:
			r.slowConsumer(next)
		}
		s, d = next, nd // closed meanwhile: keep it there, or follow on
	}
	if d.QoS > AtMostOnce {
		r.offlineDropped.Add(1)
	}
}

// slowConsumer closes s as a slow consumer, once.
func (r *Router) slowConsumer(s *Session) {
	if s.Closed() {
		return
	}
	r.slowConsumers.Add(1)
	r.log.Warn("slow consumer: closing session", "session", s.ID, "remote", s.RemoteAddr, "protocol", s.Protocol)
	s.Close(CloseSlowConsumer)
}
