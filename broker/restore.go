package broker

import (
	"errors"
	"strings"
	"time"

	"github.com/duplexmq/duplex/store"
)

// RestoreStats is what Router.Restore loaded from the store.
type RestoreStats struct {
	Sessions  int // persistent sessions
	Subs      int // their subscriptions and durable subscriptions
	Queued    int // messages queued for persistent sessions
	QueueMsgs int // messages in queues and durable subscriptions
	Retained  int
	Wills     int // wills of sessions that were connected at the crash, published now
	Removed   int // sessions that expired while the broker was down
	Took      time.Duration
}

// sweepEvery is how often the background sweep removes expired and
// orphaned records.
const sweepEvery = time.Hour

// Restore loads the store's state into a new router, before it serves any
// connection: persistent sessions (offline, their subscriptions in the
// index and their queued messages left on disk to be paged in when they
// resume), durable subscriptions, queues and retained messages. A session
// whose expiry passed while the broker was down is removed; one that was
// connected when the broker stopped starts its expiry now, and its will,
// if the store still holds one (a crash: no DISCONNECT, no will sent), is
// published once and removed from the record first, so it is never sent
// twice. Restore also starts the background sweep. Without a store it does
// nothing.
func (r *Router) Restore() (RestoreStats, error) {
	var st RestoreStats
	if r.dur == nil {
		return st, nil
	}
	start := time.Now()
	seq, err := r.dur.st.QueueSeq()
	if err != nil {
		return st, err
	}
	// Whatever was stored before this start may have been sent before the
	// crash; nothing stored after it was.
	v := &restorer{r: r, st: &st, now: start, sentUpTo: seq}
	if err := r.dur.st.Load(v); err != nil {
		return st, err
	}
	names, err := r.dur.st.QueueNames()
	if err != nil {
		return st, err
	}
	for _, name := range names {
		n, err := r.restoreQueue(name)
		if err != nil {
			return st, err
		}
		st.QueueMsgs += n
	}
	for _, w := range v.wills {
		r.PublishWill(w.id, w.msg, w.delay)
		st.Wills++
	}
	st.Took = time.Since(start)
	go r.sweepLoop()
	return st, nil
}

// restorer is the store.Visitor of Restore.
type restorer struct {
	r        *Router
	st       *RestoreStats
	now      time.Time
	sentUpTo uint64
	wills    []restoredWill
}

type restoredWill struct {
	id    SessionID
	msg   *Message
	delay time.Duration
}

func (v *restorer) Retained(m store.Msg) error {
	msg := fromStoreMsg(m)
	if msg.Expired() {
		return nil
	}
	// Counted against its owner, but only the total count limit applies
	// (as before owners): lowered quotas refuse new retained messages,
	// they do not drop stored ones.
	if why, _ := v.r.retained.putAt(msg, m.Owner, retainLimits{total: v.r.cfg.MaxRetained}, time.Time{}); why == "" {
		v.st.Retained++
	}
	return nil
}

func (v *restorer) Session(s store.Session, subs []store.Sub) error {
	r := v.r
	if s.Protocol == bindingProtocol {
		for _, sub := range subs {
			if err := r.bind(sub.Queue, sub.Filter, s.Owner, false); err != nil {
				return err
			}
			v.st.Subs++
		}
		return nil
	}
	id := SessionID(s.ID)
	if s.Expiry > 0 && !s.ExpiresAt.IsZero() && !s.ExpiresAt.After(v.now) {
		r.forgetSession(id)
		v.st.Removed++
		return nil
	}
	capped := false
	if c := r.cfg.MaxSessionExpiry; c > 0 && (s.Expiry < 0 || s.Expiry > c) {
		// Written before the cap (or under a larger one): it gets the
		// cap, counted from now at the latest.
		s.Expiry, capped = c, true
		if s.ExpiresAt.IsZero() || s.ExpiresAt.After(v.now.Add(c)) {
			s.ExpiresAt = time.Time{} // it was connected, or expires too late: from now
		}
	}
	proto, version, _ := strings.Cut(s.Protocol, "/")
	sess := &Session{
		ID: id, Protocol: proto, Version: version, router: r,
		owner: s.Owner, retOwner: retainedOwnerKey(s.Owner, id),
		Outbox: NewOutbox(r.cfg.MaxPendingMsgs, r.cfg.MaxPendingBytes, r.cfg.MaxControlMsgs, nil),
		p:      newPersistent(),
	}
	sess.expiry.Store(int64(s.Expiry))
	sess.p.dupUpTo = v.sentUpTo
	if seq, ok := sentUpTo(s); ok {
		sess.p.dupUpTo = seq // it was offline: its last connection's
	}
	sess.Close(CloseServerShutdown)
	closeOnce(sess.p.detached)
	n, nb, err := r.dur.st.Count(s.ID)
	if err != nil {
		return err
	}
	sess.account().restored(r, n, nb)
	v.st.Queued += n
	marks, err := r.dur.st.Marks(s.ID)
	if err != nil {
		return err
	}
	if len(marks) > 0 {
		// What the store keeps of the protocol state: inbound QoS 2 ids
		// awaiting PUBREL, and deliveries whose PUBREL is to be resent.
		rs := &SavedState{}
		for _, m := range marks {
			if m.In {
				rs.InboundIDs = append(rs.InboundIDs, m.ID)
			} else {
				rs.Flights = append(rs.Flights, SavedFlight{ID: m.ID, Delivery: Delivery{QoS: ExactlyOnce}, Released: true})
			}
		}
		sess.p.state = rs
	}
	for _, ss := range subs {
		sub := &Subscription{Session: sess, SubSpec: SubSpec{
			Key: ss.Key, Filter: ss.Filter, Queue: ss.Queue, Group: ss.Group, QoS: QoS(ss.QoS),
			Ack: AckClientIndividual, NoLocal: ss.NoLocal, RetainAsPublished: ss.RetainAsPublished,
			RetainHandling: ss.RetainHandling, SubID: ss.SubID, Durable: ss.Durable,
		}}
		if ValidFilter(sub.Filter) != nil {
			continue
		}
		sub.kind = sessionKind(&sub.SubSpec)
		sess.subs.put(sub)
		r.nsubs.Add(1) // restored past MaxSubscriptions too: a lowered limit refuses new ones only
		r.link(sub)
		v.st.Subs++
	}
	r.mu.Lock()
	r.sessions[id] = sess
	sess.counted = true // a lowered MaxSessionsPerUser refuses new sessions only
	r.owners[sess.owner]++
	r.mu.Unlock()
	v.st.Sessions++
	if s.Will != nil {
		// Connected when the broker stopped without a chance to publish
		// it: publish it now, once. The record loses it first.
		if err := r.saveSession(sess, time.Time{}, nil); err != nil {
			return err
		}
		will := fromStoreMsg(s.Will.Msg)
		will.owner = sess.retOwner
		v.wills = append(v.wills, restoredWill{id: id, msg: will, delay: s.Will.Delay})
	}
	if s.Expiry > 0 {
		at := s.ExpiresAt
		if at.IsZero() || capped {
			if at.IsZero() {
				at = v.now.Add(s.Expiry) // it was connected: the expiry starts now
			}
			if err := r.saveSession(sess, at, nil); err != nil {
				return err
			}
		}
		sess.p.armExpiry(sess, at.Sub(v.now), at)
	}
	return nil
}

// restoreQueue loads a named queue's stored messages.
func (r *Router) restoreQueue(name string) (int, error) {
	r.qmu.Lock()
	q := r.queues[name]
	if q == nil && isDurableQueue(name) {
		// Its durable subscription was deleted (Unbind) and the crash
		// came before all of its messages left the store: they go now,
		// and a new subscription with the same name starts empty.
		r.qmu.Unlock()
		r.log.Info("store: removing messages of a deleted durable subscription", "queue", name)
		return 0, r.dropStoredQueue(name)
	}
	if q == nil {
		q = newQueue(name, nil)
		r.queues[name] = q
	}
	r.qmu.Unlock()
	page, err := r.dur.st.QueuePending(name, 0, 0)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, e := range page {
		m := fromStoreMsg(e.Msg)
		if m.Expired() {
			q.settled(r, queued{msg: &Message{}, seq: e.Seq})
			continue
		}
		q.ready = append(q.ready, queued{msg: m, seq: e.Seq, redelivered: true})
		q.bytes += int64(len(m.Payload))
		n++
	}
	return n, nil
}

// sweepLoop removes expired and orphaned records now and every sweepEvery.
func (r *Router) sweepLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n, err := r.dur.st.Sweep(time.Now())
			switch {
			case errors.Is(err, store.ErrClosed):
				return
			case err != nil:
				r.log.Error("store: sweep failed", "err", err)
			case n > 0:
				r.log.Info("store: removed expired and orphaned records", "count", n)
			}
			t.Reset(sweepEvery)
		case <-r.dur.stop:
			return
		}
	}
}
