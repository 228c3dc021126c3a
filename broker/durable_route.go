package broker

import (
	"context"
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

// route is Publish's fan-out when something durable may be involved: it
// sorts the matches into in-memory deliveries, deliveries to persistent
// sessions and durable subscriptions' queues, commits the stored ones (and
// mark) in one transaction, then delivers. A durable subscriber at its
// limit does not get the message and route returns ErrQuotaExceeded after
// delivering to everyone else.
func (r *Router) route(m *Message, matches []*Subscription, mark *store.Mark) error {
	var (
		live   []Delivery
		kept   []Delivery // to persistent sessions: stored
		queues []*queue   // durable subscriptions: stored
		memq   []*queue   // durable subscriptions, QoS 0 or no store: memory only
		quota  bool
	)
	for _, sub := range matches {
		if sub.bind != nil {
			switch {
			case sub.bind.depth0() >= r.cfg.MaxQueueDepth:
				quota = true
			case r.dur != nil && m.QoS > AtMostOnce:
				queues = append(queues, sub.bind)
			default:
				memq = append(memq, sub.bind)
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
		if r.dur != nil && d.QoS > AtMostOnce && sub.Session.Expiry() != 0 {
			if sub.Session.stored.Load() >= int64(r.cfg.MaxOfflineMsgs) {
				quota = true
				r.offlineDropped.Add(1)
				continue
			}
			kept = append(kept, d)
			continue
		}
		live = append(live, d)
	}
	if len(kept) > 0 || len(queues) > 0 || mark != nil {
		var b store.Batch
		if len(kept)+len(queues) > 0 {
			sm := toStoreMsg(m)
			b.Msg = &sm
		}
		for _, d := range kept {
			b.Sessions = append(b.Sessions, string(d.Sub.Session.ID))
		}
		for _, q := range queues {
			b.Queues = append(b.Queues, q.name)
		}
		if mark != nil {
			b.PutMarks = []store.Mark{*mark}
		}
		seqs, err := r.dur.st.Commit(&b)
		if err != nil {
			r.log.Error("store: message not written; refused", "topic", m.Topic, "err", err)
			return fmt.Errorf("%w: %v", ErrStore, err)
		}
		for i := range kept {
			kept[i].Seq = seqs[i]
			kept[i].Sub.Session.stored.Add(1)
		}
		for i, q := range queues {
			q.enqueueSeq(r, m, seqs[len(kept)+i])
		}
	}
	for _, d := range live {
		r.deliver(d)
	}
	for _, d := range kept {
		r.deliverStored(d)
	}
	for _, q := range memq {
		_ = q.enqueue(r, m, r.cfg.MaxQueueDepth)
	}
	if quota {
		return ErrQuotaExceeded
	}
	return nil
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
func (r *Router) Refill(s *Session) {
	if r.dur == nil || !s.paging.Load() || !s.refilling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.refilling.Store(false)
		r.refill(s)
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
		// It may have reached the previous connection: DUP [MQTT-3.3.1-1].
		d := Delivery{Msg: m, Sub: sub, QoS: min(m.QoS, sub.QoS), Seq: q.Seq, Redelivered: true}
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
	r.dur.ack(ackOp{ref: store.Ref{Name: string(d.Sub.Session.ID), Seq: d.Seq}})
}

// Received records an MQTT PUBREC for a stored QoS 2 delivery sent with
// packetID: the message leaves the store and the id is recorded, in one
// durable transaction, before the caller sends PUBREL. After a restart the
// broker resends PUBREL for the id and never the message again (MQTT 5
// §4.3.3). Without a stored delivery it does nothing.
func (r *Router) Received(d Delivery, packetID uint16) error {
	if r.dur == nil || d.Seq == 0 {
		return nil
	}
	id := string(d.Sub.Session.ID)
	_, err := r.dur.st.Commit(&store.Batch{
		Acks:     []store.Ref{{Name: id, Seq: d.Seq}},
		PutMarks: []store.Mark{{Session: id, ID: packetID}},
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	d.Sub.Session.stored.Add(-1)
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
