package broker

import (
	"fmt"

	"github.com/duplexmq/duplex/store"
)

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
	p := s.p
	if r.dur == nil || p == nil || !p.paging.Load() {
		return
	}
	p.refillWanted.Store(true)
	if !p.refilling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			for p.refillWanted.Swap(false) {
				s.refill()
			}
			p.refilling.Store(false)
			// A Refill between the last Swap and the Store above saw
			// refilling still set and left its request in refillWanted.
			if !p.refillWanted.Load() || !p.refilling.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// refill pages in one page of s's stored messages (Refill).
func (s *Session) refill() {
	r, p := s.router, s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paging.Load() || s.Closed() || p.successor != nil {
		return
	}
	pending, _ := s.Outbox.Pending()
	room := max(1, r.cfg.MaxPendingMsgs/4) - pending
	if room <= 0 {
		return
	}
	// Reading under p.mu orders the page against deliverStored: a message
	// committed before this read is in the page (or was acknowledged), one
	// committed after it has a higher Seq than lastPaged.
	page, err := r.dur.st.Pending(string(s.ID), p.lastPaged, room)
	if err != nil {
		r.log.Error("store: cannot page in queued messages", "session", s.ID, "err", err)
		return
	}
	for _, q := range page {
		p.lastPaged = q.Seq
		m := fromStoreMsg(q.Msg)
		d, ok := s.paged(m)
		if !ok || m.Expired() {
			// No subscription wants it any more, or it expired while
			// queued [MQTT-3.3.2-5]: it goes.
			r.ackStored(Delivery{Msg: m, Sub: &Subscription{Session: s}, Seq: q.Seq})
			continue
		}
		// One that may have reached an earlier connection goes out as a
		// redelivery (DUP), a first delivery does not [MQTT-3.3.1-1].
		d.Seq, d.Redelivered = q.Seq, q.Seq <= p.dupUpTo
		if err := s.Outbox.PushDelivery(d); err != nil {
			// Closed meanwhile, or a client that stopped reading; it stays
			// in the store either way.
			p.lastPaged = q.Seq - 1
			return
		}
		r.delivered.Add(1)
	}
	if len(page) < room {
		p.paging.Store(false) // caught up: deliveries go to the outbox directly
	} else {
		s.Outbox.Signal() // the protocol asks for the next page when this one drains
	}
}

// paged is the delivery of m, a stored message paged in for s (the store
// keeps the message, not which of the session's subscriptions matched
// it): through the matching subscription with the highest QoS, standing
// for all the matching ones that share a copy (Router.oneCopy, route.go
// combine). false: no subscription matches any more.
func (s *Session) paged(m *Message) (Delivery, bool) {
	one := s.router.oneCopy(s)
	s.mu.Lock()
	defer s.mu.Unlock()
	var d Delivery
	for _, sub := range s.subs.all() {
		if sub.kind == kindQueue || !MatchTopic(sub.Filter, m.Topic) {
			continue
		}
		nd := delivery(m, sub)
		switch {
		case d.Sub == nil || (one && sub.kind == kindTopic && d.Sub.kind == kindShared):
			d = nd
		case one && sub.kind == kindTopic:
			d = combine(d, nd)
		case (!one || d.Sub.kind == kindShared) && sub.QoS > d.Sub.QoS:
			d = nd
		}
	}
	return d, d.Sub != nil
}

// ackStored removes a stored delivery once it is settled (MQTT PUBACK or
// PUBCOMP, or no longer wanted); asynchronous, see ackLoop.
func (r *Router) ackStored(d Delivery) {
	if r.dur == nil || d.Seq == 0 {
		return
	}
	d.Sub.Session.account().release(r, len(d.Msg.Payload))
	r.dur.ack(ackOp{ref: store.Ref{Name: string(d.Sub.Session.ID), Seq: d.Seq}})
}

// Taken is one delivery the client confirmed it holds (MQTT PUBREC), for
// ConfirmTaken.
type Taken struct {
	Delivery Delivery
	PacketID uint16
	// Kept is set by a ConfirmTaken that fails on those it recorded all
	// the same (a cluster-durable session's, peers_durable.go): their
	// PUBRELs are owed, the others' messages come again.
	Kept bool
}

// ConfirmTaken records MQTT PUBRECs for stored QoS 2 deliveries: the
// messages leave the store and their packet ids are recorded, in one
// durable transaction, before the caller sends the PUBRELs. After a
// restart the broker resends PUBREL for those ids and never the messages
// again (MQTT 5 §4.3.3). PUBRECs that arrive together share the commit.
// Deliveries that are not stored (Seq 0) are skipped. A cluster-durable
// session's are recorded in the cluster store instead, confirmed before
// it returns [MQTT-4.3.3-6] (clusterSess.release); after an error, Kept
// marks those recorded all the same.
func (r *Router) ConfirmTaken(recs []Taken) error {
	if r.dur == nil || len(recs) == 0 {
		return nil
	}
	var b store.Batch
	var cjs []int // indexes of the cluster store's (peers_durable.go)
	for i, rc := range recs {
		if rc.Delivery.Seq == 0 {
			continue
		}
		if rc.Delivery.Sub.Session.clusterDurable() != nil {
			cjs = append(cjs, i)
			continue
		}
		id := string(rc.Delivery.Sub.Session.ID)
		b.Acks = append(b.Acks, store.Ref{Name: id, Seq: rc.Delivery.Seq})
		b.PutMarks = append(b.PutMarks, store.Mark{Session: id, ID: rc.PacketID})
	}
	for len(cjs) > 0 { // one connection's PUBRECs: one session, one round
		cj := recs[cjs[0]].Delivery.Sub.Session.clusterDurable()
		var same, rest []int
		for _, i := range cjs {
			if recs[i].Delivery.Sub.Session.clusterDurable() == cj {
				same = append(same, i)
			} else {
				rest = append(rest, i)
			}
		}
		if err := cj.release(recs, same); err != nil {
			return fmt.Errorf("%w: %v", ErrStore, err)
		}
		cjs = rest
	}
	if len(b.Acks) == 0 {
		return nil
	}
	if _, err := r.dur.st.Commit(&b); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	for _, rc := range recs {
		if d := rc.Delivery; d.Seq != 0 && d.Sub.Session.clusterDurable() == nil {
			d.Sub.Session.account().release(r, len(d.Msg.Payload))
		}
	}
	return nil
}

// ForgetOutboundID forgets the outbound exactly-once id of s once the
// client completed it (MQTT PUBCOMP), asynchronously: a lost removal only means one more PUBREL after a
// restart, which the client answers [MQTT-4.3.3-3].
func (r *Router) ForgetOutboundID(s *Session, packetID uint16) {
	if cj := s.clusterDurable(); cj != nil {
		cj.completed(packetID) // peers_durable.go
	}
	if r.dur == nil || s.p == nil {
		return
	}
	r.dur.ack(ackOp{mark: &store.Mark{Session: string(s.ID), ID: packetID}})
}

// ForgetInboundID forgets an inbound exactly-once id (MQTT PUBREL),
// durably, before the caller sends PUBCOMP: after PUBCOMP the client may reuse the id for a
// new message, which must not be taken for a resend.
func (r *Router) ForgetInboundID(s *Session, packetID uint16) error {
	if r.dur == nil || s.p == nil {
		return nil
	}
	_, err := r.dur.st.Commit(&store.Batch{DelMarks: []store.Mark{{Session: string(s.ID), In: true, ID: packetID}}})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// mayStore reports a topic message whose plan may have something to
// commit: a QoS 2 packet id to record, durable subscriptions, or a QoS 1/2
// message matching a persistent session or a share group (whose pick may
// be one).
func (r *Router) mayStore(m *Message, matches []*Subscription, mark *store.Mark) bool {
	if mark != nil || r.nbind.Load() > 0 {
		return true
	}
	if r.dur == nil || m.QoS == AtMostOnce {
		return false
	}
	for _, sub := range matches {
		if sub.kind == kindShareProxy || sub.Session.Expiry() != 0 {
			return true
		}
	}
	return false
}

// sortStored moves from live to kept the QoS 1/2 deliveries of persistent
// sessions, which are stored before they are delivered, counting them
// against the session's limits (r has a store).
func (p *routePlan) sortStored(r *Router) {
	n := 0
	for _, d := range p.live {
		s := d.Sub.Session
		if d.QoS == AtMostOnce || s.Expiry() == 0 || s.p == nil {
			p.live[n] = d
			n++
			continue
		}
		if s.p.cj != nil && d.Sub.Group == "" {
			if p.m.notInCluster {
				// The cluster store did not keep it: this delivery
				// is the session's copy (peers_interest.go).
				p.live[n] = d
				n++
			}
			continue // the cluster store delivers it (peers_durable.go)
		}
		a := s.account()
		if !a.enter() {
			continue // being discarded (clean start, expiry): nothing to keep
		}
		if !a.reserve(r, p.m) {
			a.leave()
			p.quota = true
			r.offlineDropped.Add(1)
			continue
		}
		p.kept = append(p.kept, d)
	}
	clear(p.live[n:])
	p.live = p.live[:n]
}
