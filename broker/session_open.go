package broker

import (
	"fmt"
	"time"
)

// takeoverWait bounds how long Open waits for a taken-over connection to
// finish writing before it moves that session's state.
const takeoverWait = 10 * time.Second

// Open creates a session. An empty id gets a generated one. An existing
// session with the same id is closed with CloseTakenOver [MQTT-3.1.4-3];
// unless o.CleanStart, its subscriptions, unsent messages and saved state
// move to the new session (Resumed reports it) [MQTT-3.1.2-5]. A will
// waiting to be published for the id is cancelled (MQTT 5 §3.1.3.2.2).
//
// Refusals, before anything changes:
//   - ErrClientIDOwned: a session with the id (connected, or persistent
//     and offline) has another owner (owner.go); it is neither handed
//     over nor closed, and its pending will stays.
//   - ErrSessionQuota: o.Expiry makes a new persistent session for an
//     owner that has MaxSessionsPerUser already (resuming one of its
//     own is always allowed).
//   - ErrNotAuthorized: the Authorizer does not let the client publish
//     its will (o.Will) (MQTT 5 CONNACK 0x87).
func (r *Router) Open(id SessionID, o SessionOptions) (*Session, error) {
	if id == "" {
		id = SessionID(fmt.Sprintf("%s-%d", r.idPrefix, r.nextSessID.Add(1)))
	}
	owner := r.OwnerKey(o.Identity, o.RemoteAddr)
	s := &Session{
		ID: id, Protocol: o.Protocol, Version: o.Version, RemoteAddr: o.RemoteAddr, Identity: o.Identity, ClientID: o.ClientID,
		Transport: o.Transport, KeepAlive: o.KeepAlive,
		owner: owner, retOwner: retainedOwnerKey(owner, id),
		ConnectedAt: time.Now(), router: r, onClose: o.OnClose,
		Outbox: NewOutbox(r.cfg.MaxPendingMsgs, r.cfg.MaxPendingBytes, r.cfg.MaxControlMsgs, o.Wake),
	}
	s.expiry.Store(int64(o.Expiry))
	if o.Will != nil {
		if !r.allowPublish(s, OpPublish, o.Will.Topic) {
			r.publishDenied.Add(1)
			return nil, fmt.Errorf("%w: will topic %q", ErrNotAuthorized, o.Will.Topic)
		}
		o.Will.owner = s.retOwner // a will is published without its session
	}
	var imported *SessionState
	sp := r.sessionPeers()
	if sp != nil {
		// Unique in the cluster: the node holding the id gives it up, and
		// its persistent state comes here (peers_session.go).
		imp, end, err := r.claim(sp, id, &o, owner)
		if err != nil {
			r.clientIDRefused.Add(1)
			return nil, err
		}
		if end != nil {
			// A claim from another node waits until the session is in
			// the router (or refused), then takes it over.
			defer end()
		}
		imported = imp
	}
	var cj *clusterSess
	if sp != nil && r.dur != nil {
		// A persistent MQTT session lives in the cluster store when
		// there is one (peers_durable.go); one whose node died without
		// handing it over resumes from its record there.
		var err error
		if cj, imported, err = r.openDurable(id, &o, owner, imported); err != nil {
			r.clientIDRefused.Add(1)
			return nil, err
		}
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrShuttingDown
	}
	old := r.sessions[id]
	if old != nil && old.owner != "" && old.owner != owner {
		r.mu.Unlock()
		r.clientIDRefused.Add(1)
		if ok, n := r.clientIDLog.allow(time.Now()); ok {
			r.log.Warn("client id belongs to another user; refused", "session", id, "remote", o.RemoteAddr,
				"user", o.Identity.Name, "suppressed", n)
		}
		return nil, ErrClientIDOwned
	}
	if o.Expiry != 0 {
		fresh := old == nil || !old.counted || old.owner != owner
		if fresh && owner != "" && r.cfg.MaxSessionsPerUser > 0 && r.owners[owner] >= r.cfg.MaxSessionsPerUser {
			r.mu.Unlock()
			r.sessionQuotaRefused.Add(1)
			if ok, n := r.sessionLog.allow(time.Now()); ok {
				r.log.Warn("persistent session quota reached; refused", "session", id, "remote", o.RemoteAddr,
					"owner", owner, "limit", r.cfg.MaxSessionsPerUser, "suppressed", n)
			}
			return nil, ErrSessionQuota
		}
	}
	if o.Expiry != 0 || (old != nil && old.p != nil && !o.CleanStart) || imported != nil {
		// Persistent, or resuming a persistent session's state (which a
		// Session Expiry of 0 ends with this connection). The expiry can
		// later drop to 0 but never rise from it [MQTT-3.14.2-2].
		s.p = newPersistent()
		s.p.cj = cj
	}
	if old != nil {
		r.uncountLocked(old)
	}
	if o.Expiry != 0 {
		s.counted = true
		r.owners[owner]++
	}
	s.opening()
	r.sessions[id] = s
	if sp != nil && (old == nil || o.Protocol == "stomp") {
		r.hold(sp, s, true)
	}
	r.countConn(s) // before anyone can close s: it is in the map from here
	r.mu.Unlock()
	defer s.markOpened()
	r.cancelWill(id)
	if old != nil {
		// Two connections racing for one id: old's own Open may still be
		// taking over its predecessor. Take old over only once it has, or
		// its predecessor's subscriptions would land in old after we moved
		// old's (lost to us, leaked in the index).
		old.waitOpened()
		keep := old.Expiry() != 0 && !o.CleanStart && old.p != nil
		old.taken.Store(true)
		old.Close(CloseTakenOver)
		if keep {
			// Let the old connection finish writing, so its unsent messages
			// stay in its outbox for us to move, in order.
			select {
			case <-old.p.detached:
			case <-time.After(takeoverWait):
				r.log.Warn("takeover: previous connection did not finish in time", "session", id)
			}
		}
		// A peer's state is newer than a session only restored here
		// (Router.claim asks for it only then).
		s.takeOver(old, o.CleanStart || imported != nil)
	}
	if imported != nil {
		s.importState(imported)
	}
	if r.dur != nil {
		if o.Expiry != 0 {
			if err := r.saveSession(s, time.Time{}, storeWill(o.Will, o.WillDelay)); err != nil {
				r.log.Error("store: session not saved", "session", id, "err", err)
				r.Close(s, CloseServerShutdown)
				return nil, fmt.Errorf("%w: %v", ErrStore, err)
			}
		}
		if s.Paging() {
			r.Refill(s)
		}
	}
	if s.p != nil && s.p.cj != nil {
		if s.p.cj.unsaved {
			// Best effort: the first SUBSCRIBE writes it again (logged
			// by saveDurable).
			_ = r.saveDurable(s)
		}
		r.attachDurable(s)
	}
	return s, nil
}

// takeOver moves a previous session's state to s, or discards it: on a
// clean start [MQTT-3.1.2-4], or when old's state ended with its
// connection (Session Expiry 0), it goes, on disk too, after the commits
// under way for it (storeAccount.retire).
func (s *Session) takeOver(old *Session, clean bool) {
	r := s.router
	old.mu.Lock()
	subs := old.subs.take()
	temps := old.tempQueues
	old.tempQueues = nil
	old.mu.Unlock()
	r.dropTempQueues(temps)
	if clean || old.Expiry() == 0 || old.p == nil || s.p == nil {
		r.nsubs.Add(-int64(len(subs)))
		if old.p != nil {
			old.p.clear()
		}
		for _, sub := range subs {
			r.unlink(sub)
		}
		if old.p != nil && r.dur != nil {
			old.p.end(r, old.ID)
			old.endDurable()
		}
		return
	}
	s.reauthorize(subs)
	moved := make(map[*Subscription]*Subscription, len(subs))
	s.mu.Lock()
	for _, sub := range subs {
		ns := sub.moveTo(s)
		s.subs.put(ns)
		moved[sub] = ns
	}
	s.mu.Unlock()
	old.p.handOver(r, old, s, moved)

	// Each copy takes its original's place in one step: a message matches
	// exactly one of them (a gap would lose it, an overlap duplicate it).
	for sub, ns := range moved {
		switch sub.kind {
		case kindShared:
			sub.share.replace(sub, ns)
		case kindQueue:
			r.unlink(sub)
			if q, err := r.queueFor(ns.Queue, s); err == nil {
				q.addConsumer(r, ns)
			}
		default:
			r.countOverlap(ns, 1)
			if r.idx.Replace(sub, ns) {
				r.countOverlap(sub, -1)
			} else {
				r.indexInsert(ns)
			}
		}
	}
	s.resumed = true
}

// reauthorize drops from subs, a resumed session's subscriptions, those
// the Authorizer no longer allows s (its rules were reloaded, or an
// unowned session was claimed by another identity): they leave the index
// and the store, and the session's stored messages for them are dropped
// as they are paged in.
func (s *Session) reauthorize(subs map[string]*Subscription) {
	r := s.router
	if r.allowAll {
		return
	}
	for key, sub := range subs {
		op, dest := OpSubscribe, sub.Filter
		if sub.kind == kindQueue {
			if isDurableQueue(sub.Queue) {
				continue // checked on its filter when it was bound
			}
			op, dest = OpQueueReceive, sub.Queue
		}
		if r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), op, dest) {
			continue
		}
		delete(subs, key)
		r.subscribeDenied.Add(1)
		r.nsubs.Add(-1)
		r.unlink(sub)
		r.forgetSub(s, key)
	}
}
