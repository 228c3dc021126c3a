package broker

import (
	"errors"
	"strings"
	"time"
)

// SessionPeers is what a Peers (Config.Peers) may add so that a client id
// is unique in the whole cluster (package broker/cluster implements it on
// NATS). A router whose Peers does not implement it keeps client ids
// unique per node only; a router without Peers pays nothing.
//
// Open claims a client-chosen id before it takes it locally (Claim): the
// nodes that hold it close their connection with CloseTakenOver and cancel
// its pending will (Router.ReleaseToPeer), as a local takeover does
// [MQTT-3.1.4-3] [MQTT-3.1.3-9]; a persistent session's state comes back
// with the answer and is installed here as a local resume would
// [MQTT-3.1.2-5].
//
// The names a session is claimed by are MQTT client ids (the session id)
// and STOMP client-id headers (SessionClaim). Generated session ids are
// never claimed: they carry the router's random prefix.
type SessionPeers interface {
	Peers
	// Hold reports that a session or a pending will (add) appeared on
	// this node under key (SessionClaim.Key), or that one left (!add);
	// counts balance per key. It must not block or call back into the
	// router: it is called under Router.mu and Router.wmu.
	Hold(key string, add bool)
	// Claim asks the other nodes to give up c.Key and waits, bounded, for
	// the one that held it. It returns the state of a persistent session
	// the answering node handed over when c.Resume (nil: none, or nobody
	// answered in time), or ErrClientIDOwned when the id belongs to
	// another owner there. Open calls it with no lock held.
	Claim(c SessionClaim) (*SessionState, error)
}

// ClaimEnder is what a SessionPeers adds when a claim marks its key on
// this node until Open is done with it: a claim from another node for
// that key waits for the mark to end, then takes the session over as
// usual, so that of two connections opening one id on two nodes at once
// only the later stays (broker/cluster claim.go).
type ClaimEnder interface {
	// ClaimEnded reports that Open is done with the key of a Claim that
	// returned no error: the session is in the router, or Open refused
	// it. Called once per such Claim, with no lock held.
	ClaimEnded(key string)
}

// SessionOffliner is what a SessionPeers adds so that the expiry of a
// persistent session that went offline keeps counting if its node dies
// [MQTT-3.1.2-23]: the cluster notes when it went offline.
type SessionOffliner interface {
	// Offline reports that the connection of the session held here as
	// key (SessionClaim.Key) closed and the session stays, its expiry
	// running. It must not block: Router.Close calls it.
	Offline(key string)
}

// offline tells Config.Peers that s, a cluster-durable persistent
// session, went offline (Router.Close).
func (r *Router) offline(s *Session) {
	if so, ok := r.cfg.Peers.(SessionOffliner); ok {
		if k := r.heldKey(s); k != "" {
			so.Offline(k)
		}
	}
}

// SessionRecordKey is the key of the cluster store's record
// (DurablePeers) of the MQTT session claimed as claimKey
// (SessionClaim.Key), "" for a key that names no MQTT session.
func SessionRecordKey(claimKey string) string {
	if len(claimKey) < 2 || claimKey[0] != 'm' {
		return ""
	}
	return clusterKey(SessionID(claimKey[1:]))
}

// SessionClaim is a connection claiming a client id in the cluster.
type SessionClaim struct {
	// Key names the id: "m" + the MQTT client id, or "s" + the STOMP
	// client-id header.
	Key string
	// Owner is the claiming session's owner key (owner.go): a node holds
	// on to a session of another owner (ErrClientIDOwned).
	Owner string
	// Resume asks for a persistent session's state (MQTT clean start 0);
	// without it the state is discarded where it is.
	Resume bool
	// Wait bounds how long the holder waits for its connection to finish
	// writing before it hands the state over (0: as a local takeover), so
	// that its answer comes before the claimant stops waiting.
	Wait time.Duration
}

// SessionState is a persistent session's state as it moves between nodes:
// its subscriptions and, in order, what its connections left undelivered.
// Messages are the router's (Expires absolute: the carrier converts it).
type SessionState struct {
	Subs []SubSpec // Data is not carried
	// Flights, Queue, InboundIDs and NextID are the saved protocol state
	// (SavedState), deliveries naming their subscription by key.
	Flights    []MovedFlight
	Queue      []MovedDelivery
	InboundIDs []uint16
	NextID     uint16
	// Pending are the deliveries not yet taken by a connection, oldest
	// first: unsent, kept offline, then those the store held.
	Pending []MovedDelivery
}

// MovedDelivery is one delivery of a SessionState.
type MovedDelivery struct {
	Msg         *Message
	SubKey      string // "": found again by matching the subscriptions
	QoS         QoS
	Redelivered bool
	Retained    bool
}

// MovedFlight is one unacknowledged delivery of a SessionState.
type MovedFlight struct {
	ID       uint16
	D        MovedDelivery // Msg nil for a released one restored from the store
	Released bool
}

// sessionPeers is Config.Peers as a SessionPeers, nil when there is none.
func (r *Router) sessionPeers() SessionPeers {
	if r.cfg.Peers == nil {
		return nil
	}
	sp, _ := r.cfg.Peers.(SessionPeers)
	return sp
}

// claimKey is the cluster name of a session opened with id (the id given
// to Open: "" for a generated one), or "" when it has none.
func claimKey(protocol string, id SessionID, clientID string) string {
	if protocol == "stomp" {
		if clientID == "" {
			return ""
		}
		return "s" + clientID
	}
	if id == "" {
		return ""
	}
	return "m" + string(id)
}

// heldKey is claimKey for a session in the router (its id may be one
// Open generated).
func (r *Router) heldKey(s *Session) string {
	if s.Protocol != "stomp" && strings.HasPrefix(string(s.ID), r.idPrefix+"-") {
		return ""
	}
	return claimKey(s.Protocol, s.ID, s.ClientID)
}

// hold tells sp that s appeared (add) or left on this node. Caller holds
// r.mu.
func (r *Router) hold(sp SessionPeers, s *Session, add bool) {
	if k := r.heldKey(s); k != "" {
		sp.Hold(k, add)
	}
}

// HeldKeys returns the claim keys of the sessions in the router and of the
// pending wills, for a SessionPeers that starts after Restore.
func (r *Router) HeldKeys() []string {
	var out []string
	r.mu.Lock()
	for _, s := range r.sessions {
		if k := r.heldKey(s); k != "" {
			out = append(out, k)
		}
	}
	r.mu.Unlock()
	r.wmu.Lock()
	for id := range r.wills {
		out = append(out, claimKey("mqtt", id, ""))
	}
	r.wmu.Unlock()
	return out
}

// claim asks the cluster for id before Open takes it (SessionPeers.Claim).
// end, when not nil, is for Open to call once it is done with the id
// (ClaimEnder).
func (r *Router) claim(sp SessionPeers, id SessionID, o *SessionOptions, owner string) (st *SessionState, end func(), err error) {
	key := claimKey(o.Protocol, id, o.ClientID)
	if key == "" {
		return nil, nil, nil
	}
	// Refusals Open would make anyway come first: the node holding the id
	// must not give up a session that this node then refuses.
	r.mu.Lock()
	old := r.sessions[id]
	owned := old != nil && old.owner != "" && old.owner != owner
	quota := o.Expiry != 0 && (old == nil || !old.counted) && owner != "" &&
		r.cfg.MaxSessionsPerUser > 0 && r.owners[owner] >= r.cfg.MaxSessionsPerUser
	// A session here that a connection opened since this node started is
	// newer than any copy elsewhere (a node gives up what another claims):
	// such a copy is discarded. One only restored from the store is older
	// than the one another node holds since.
	local := old != nil && !old.ConnectedAt.IsZero()
	r.mu.Unlock()
	if owned || quota {
		return nil, nil, nil // Open refuses it under r.mu, with its log line
	}
	if st, err = sp.Claim(SessionClaim{Key: key, Owner: owner, Resume: !o.CleanStart && !local}); err != nil {
		return nil, nil, err
	}
	if ce, ok := sp.(ClaimEnder); ok {
		end = func() { ce.ClaimEnded(key) }
	}
	return st, end, nil
}

// errNoSession: a claim key of no known kind.
var errNoSession = errors.New("no such session")

// ReleaseToPeer gives up what this node holds under c.Key for a connection
// on another node: a pending will is cancelled (MQTT 5 §3.1.3.2.2), STOMP
// connections with that client-id and an MQTT session with that id are
// closed with CloseTakenOver, as a local takeover does [MQTT-3.1.4-3], and
// the MQTT session leaves this node. When c.Resume and the session is
// persistent its state is returned, its records here deleted; otherwise
// the state is discarded [MQTT-3.1.2-4]. ErrClientIDOwned: the session
// belongs to another owner and stays untouched. Blocks up to takeoverWait
// for the old connection to finish writing; no lock may be held.
func (r *Router) ReleaseToPeer(c SessionClaim) (*SessionState, error) {
	kind, name := c.Key[:min(1, len(c.Key))], c.Key[min(1, len(c.Key)):]
	switch kind {
	case "s":
		var olds []*Session
		r.mu.Lock()
		for _, s := range r.sessions {
			if s.Protocol == "stomp" && s.ClientID == name {
				olds = append(olds, s)
			}
		}
		r.mu.Unlock()
		for _, s := range olds {
			s.Close(CloseTakenOver) // its read loop calls Router.Close
		}
		return nil, nil
	case "m":
	default:
		return nil, errNoSession
	}
	id := SessionID(name)
	r.mu.Lock()
	old := r.sessions[id]
	if old != nil && old.owner != "" && old.owner != c.Owner {
		r.mu.Unlock()
		return nil, ErrClientIDOwned
	}
	if old != nil {
		r.removeLocked(old)
	}
	r.mu.Unlock()
	r.cancelWill(id)
	if old == nil {
		return nil, nil
	}
	old.waitOpened()
	keep := c.Resume && old.Expiry() != 0 && old.p != nil
	if keep && old.p.cj == nil && old.Protocol != "stomp" && r.durableOn() {
		// Restored from this node's store before the cluster's was up:
		// the cluster's record and consumers are the session (the
		// claimant reads them); this copy would duplicate them.
		keep = false
	}
	old.taken.Store(true)
	old.Close(CloseTakenOver)
	if old.p != nil {
		wait := takeoverWait
		if c.Wait > 0 {
			wait = c.Wait
		}
		select {
		case <-old.p.detached:
		case <-time.After(wait):
			r.log.Warn("takeover by a peer: previous connection did not finish in time", "session", id)
		}
	}
	old.mu.Lock()
	subs := old.subs.take()
	temps := old.tempQueues
	old.tempQueues = nil
	old.mu.Unlock()
	r.dropTempQueues(temps)
	r.nsubs.Add(-int64(len(subs)))
	for _, sub := range subs {
		r.unlink(sub) // no new match from here on
	}
	if !keep {
		if old.p != nil {
			old.p.clear()
			if r.dur != nil {
				old.p.end(r, id)
				// The cluster's copy stays: the claimant deletes it on a
				// clean start, or resumes it (peers_durable.go).
				old.detachDurable()
			}
		}
		return nil, nil
	}
	return old.export(subs), nil
}

// export takes a persistent session's state out of old, whose
// subscriptions are unlinked already, and deletes what the store holds
// of it.
func (old *Session) export(subs map[string]*Subscription) *SessionState {
	r, p := old.router, old.p
	if r.dur != nil {
		p.acct.Load().retire() // the commits under way for it land first
	}
	st := &SessionState{Subs: make([]SubSpec, 0, len(subs))}
	for _, sub := range subs {
		sp := sub.SubSpec
		sp.Data = nil
		st.Subs = append(st.Subs, sp)
	}
	moved := func(d Delivery, retained bool) MovedDelivery {
		md := MovedDelivery{Msg: d.Msg, QoS: d.QoS, Redelivered: d.Redelivered, Retained: retained}
		if d.Sub != nil {
			md.SubKey = d.Sub.Key
		}
		return md
	}
	p.mu.Lock()
	if p.expireAt != nil {
		p.expireAt.Stop()
	}
	_, unsent, _ := old.Outbox.Drain(nil, nil)
	inState := map[uint64]bool{}
	if s := p.state; s != nil {
		st.InboundIDs, st.NextID = s.InboundIDs, s.NextID
		for _, f := range s.Flights {
			mf := MovedFlight{ID: f.ID, Released: f.Released}
			if f.Delivery.Msg != nil {
				mf.D = moved(f.Delivery, f.Retained)
			}
			st.Flights = append(st.Flights, mf)
			inState[f.Delivery.Seq] = true
		}
		for _, q := range s.Queue {
			st.Queue = append(st.Queue, moved(q.Delivery, q.Retained))
			inState[q.Delivery.Seq] = true
		}
	}
	for _, d := range append(unsent, p.offline...) {
		if d.Seq != 0 || d.Msg == nil || d.Msg.Expired() {
			continue // stored ones come from the store below, in order
		}
		st.Pending = append(st.Pending, moved(d, false))
	}
	dup := max(p.dupUpTo, p.sentSeq.Load())
	p.offline, p.state = nil, nil
	p.mu.Unlock()
	if r.dur != nil {
		page, err := r.dur.st.Pending(string(old.ID), 0, 0)
		if err != nil {
			r.log.Error("store: cannot read a session's queued messages for its new node", "session", old.ID, "err", err)
		}
		for _, q := range page {
			if inState[q.Seq] {
				continue
			}
			m := fromStoreMsg(q.Msg)
			if m.Expired() {
				continue
			}
			st.Pending = append(st.Pending, MovedDelivery{Msg: m, QoS: m.QoS, Redelivered: q.Seq <= dup})
		}
		p.end(r, old.ID)
	}
	return st
}

// importState installs a persistent session's state from another node in
// s, a new session that Open has not returned yet, as a local takeover
// would (takeOver): its saved protocol state, then its pending deliveries
// in order, then its subscriptions in the index. The deliveries are held
// in memory here, not in this node's store.
func (s *Session) importState(st *SessionState) {
	r := s.router
	subs := make(map[string]*Subscription, len(st.Subs))
	for _, spec := range st.Subs {
		if spec.Queue != "" || ValidFilter(spec.Filter) != nil {
			continue // queue consumers are a STOMP connection's, never moved
		}
		if !r.allowAll && !r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), OpSubscribe, spec.Filter) {
			r.subscribeDenied.Add(1)
			continue
		}
		sub := &Subscription{Session: s, SubSpec: spec}
		sub.kind = sessionKind(&sub.SubSpec)
		subs[spec.Key] = sub
	}
	s.mu.Lock()
	for _, sub := range subs {
		s.subs.put(sub)
	}
	s.mu.Unlock()
	r.nsubs.Add(int64(len(subs)))

	delivery := func(md MovedDelivery) (Delivery, bool) {
		if md.Msg == nil {
			return Delivery{}, false
		}
		if sub := subs[md.SubKey]; sub != nil {
			return Delivery{Msg: md.Msg, Sub: sub, QoS: min(md.QoS, sub.QoS), Redelivered: md.Redelivered}, true
		}
		d, ok := s.paged(md.Msg)
		d.Redelivered = md.Redelivered
		return d, ok
	}
	saved := &SavedState{InboundIDs: st.InboundIDs, NextID: st.NextID}
	for _, f := range st.Flights {
		sf := SavedFlight{ID: f.ID, Released: f.Released, Retained: f.D.Retained}
		if d, ok := delivery(f.D); ok {
			sf.Delivery = d
		} else if !f.Released {
			continue // no subscription wants it here
		} else {
			sf.Delivery = Delivery{QoS: ExactlyOnce}
		}
		saved.Flights = append(saved.Flights, sf)
	}
	for _, q := range st.Queue {
		if d, ok := delivery(q); ok {
			saved.Queue = append(saved.Queue, SavedDelivery{Delivery: d, Retained: q.Retained})
		}
	}
	s.p.mu.Lock()
	s.p.state = saved
	for _, md := range st.Pending {
		if d, ok := delivery(md); ok && !d.Msg.Expired() {
			if s.Outbox.PushDelivery(d) != nil {
				r.offlineDropped.Add(1)
			}
		}
	}
	s.p.mu.Unlock()
	for _, sub := range subs {
		r.link(sub)
	}
	s.resumed = true
}
