package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"
)

// DurablePeers is what a Peers (Config.Peers) adds so that an MQTT
// persistent session's QoS 1/2 messages outlive the node that holds it
// (package broker/cluster implements it on JetStream). A router whose
// Peers does not implement it, or says it is not on (DurableOn: no
// JetStream), keeps those messages in its own store as a single node
// does; a router without Peers pays nothing.
//
// When it is on, a persistent MQTT session opened under a client-chosen
// id is cluster-durable (clusterSess): each of its QoS 1/2 subscriptions
// that is not a share group's is a consumer in the cluster's replicated
// store, its subscriptions are a record there, and every QoS 1/2 topic
// message published on any node is stored in the cluster before the
// publisher's acknowledgement (PUBACK, PUBREC), as the local store
// commit is. Local routing skips those subscriptions (sortStored): their
// messages come from the cluster (DeliverFromPeer), settled when the
// client acknowledges them, so the node that holds the session can die
// without losing them, and the session resumes on any node from its
// record (LoadSession) with the messages the client never acknowledged.
type DurablePeers interface {
	Peers
	// DurableOn reports whether the cluster store is ready to keep
	// sessions; Open asks it once per persistent session.
	DurableOn() bool
	// DurablePublish stores a QoS 1/2 topic message published on this
	// node and returns once it is stored, or the error that refuses the
	// publish. A cluster store that is still starting refuses; one that
	// will never be on accepts without storing. dedup, when not empty,
	// names the message so that a second publish under the same name
	// within the store's duplicate window is stored once (an MQTT QoS 2
	// PUBLISH resent to another node [MQTT-4.3.3-10]); unused so far.
	DurablePublish(m *Message, dedup string) error
	// SaveSession writes the record of the session key and brings its
	// consumers in line with the record's QoS 1/2 subscriptions (new ones
	// start with the messages published from now on; gone ones are
	// deleted). It returns once both are done: SUBACK waits for it.
	SaveSession(key string, rec *SessionRecord) error
	// LoadSession reads the record of the session key, nil if there is
	// none or it expired while no node held it.
	LoadSession(key string) (*SessionRecord, error)
	// DeleteSession deletes the record and consumers of the session key
	// (it ended: clean start, expiry).
	DeleteSession(key string)
	// AttachSession starts handing the session key's messages to deliver,
	// the ones it was handed before and never acknowledged first (they
	// go to the connection that resumes the session, wherever it is),
	// until detach. A newer attach for the key replaces the older. deliver
	// reports false when it did not take the message (it comes again at
	// the next attach).
	AttachSession(key string, deliver func(PeerDelivery) bool) (detach func())
}

// SessionRecord is what the cluster keeps of a persistent session so
// that it can resume on any node: its subscriptions and options.
type SessionRecord struct {
	Owner  string        `json:"owner,omitempty"`
	Expiry time.Duration `json:"expiry"`
	Subs   []SubSpec     `json:"subs"` // Data is not kept
}

// PeerDelivery is one message a DurablePeers hands to a session
// (AttachSession).
type PeerDelivery struct {
	Msg    *Message
	SubKey string // the subscription it is for (SubSpec.Key)
	// Seq is the message's number in the cluster store, the same on
	// every node: MQTT derives the packet id from it, so a resend after
	// the session moved goes with the id the client saw.
	Seq         uint64
	Redelivered bool // handed to a connection before
	H           PeerMsg
}

// durablePeers is Config.Peers as a DurablePeers, nil when there is none.
func (r *Router) durablePeers() DurablePeers {
	if r.cfg.Peers == nil {
		return nil
	}
	dp, _ := r.cfg.Peers.(DurablePeers)
	return dp
}

// clusterSess is a cluster-durable persistent session's link to the
// cluster store (persistent.cj): its key there and the messages handed
// to its connections and not yet settled, by subscription and number.
type clusterSess struct {
	dp  DurablePeers
	key string
	// unsaved: the cluster has no record of the session (a clean start
	// deleted it, or the read found none): Open writes one, so that it
	// resumes, Session Present, on any node once its own died, even
	// before its first SUBSCRIBE [MQTT-3.2.2-2]. Not when the read failed
	// (an election): a record it could not see may hold subscriptions,
	// whose consumers an empty one would delete.
	unsaved bool

	mu     sync.Mutex
	held   map[heldRef]PeerMsg
	detach func()
}

type heldRef struct {
	seq uint64
	sub string
}

// clusterDurable is s's link to the cluster store, nil for a session
// that is not cluster-durable.
func (s *Session) clusterDurable() *clusterSess {
	if s.p == nil {
		return nil
	}
	return s.p.cj
}

// clusterKey is the cluster name of a session's record: the MQTT client
// id, hashed (record keys and consumer names are restricted).
func clusterKey(id SessionID) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:16])
}

// clusterSub reports a subscription whose QoS 1/2 messages the cluster
// store delivers for a cluster-durable session.
func clusterSub(sp *SubSpec) bool {
	return sp.QoS > AtMostOnce && sp.Group == "" && sp.Queue == ""
}

// record is s's SessionRecord.
func (s *Session) record() *SessionRecord {
	rec := &SessionRecord{Owner: s.owner, Expiry: s.Expiry()}
	s.mu.Lock()
	for _, sub := range s.subs.all() {
		sp := sub.SubSpec
		sp.Data = nil
		rec.Subs = append(rec.Subs, sp)
	}
	s.mu.Unlock()
	return rec
}

// saveDurable writes s's record after its subscriptions changed; a no-op
// for a session that is not cluster-durable.
func (r *Router) saveDurable(s *Session) error {
	cj := s.clusterDurable()
	if cj == nil {
		return nil
	}
	if err := cj.dp.SaveSession(cj.key, s.record()); err != nil {
		r.log.Error("cluster: session record not saved", "session", s.ID, "err", err)
		return err
	}
	return nil
}

// attachDurable starts the cluster store's deliveries to s, once Open
// has installed its state.
func (r *Router) attachDurable(s *Session) {
	cj := s.clusterDurable()
	if cj == nil {
		return
	}
	d := cj.dp.AttachSession(cj.key, func(pd PeerDelivery) bool { return r.DeliverFromPeer(s, pd) })
	cj.mu.Lock()
	cj.detach = d
	cj.mu.Unlock()
}

// detachDurable stops the cluster store's deliveries to s (its
// connection ended): what it held unsettled comes again to the next
// connection. A no-op for a session that is not cluster-durable.
func (s *Session) detachDurable() {
	cj := s.clusterDurable()
	if cj == nil {
		return
	}
	cj.mu.Lock()
	d := cj.detach
	cj.detach = nil
	clear(cj.held)
	cj.mu.Unlock()
	if d != nil {
		d()
	}
}

// endDurable deletes s's record and consumers: the session ends.
func (s *Session) endDurable() {
	if cj := s.clusterDurable(); cj != nil {
		s.detachDurable()
		cj.dp.DeleteSession(cj.key)
	}
}

// DeliverFromPeer hands s one message of its cluster store consumers:
// to the subscription it is for, at the lower of the two QoS
// [MQTT-3.8.4-8], with the store's number as Seq; the cluster keeps it
// until the client acknowledges it (Router.Ack, ConfirmTaken). It reports
// false when s does not take it now (closed, full: it comes again to the
// next connection).
func (r *Router) DeliverFromPeer(s *Session, pd PeerDelivery) bool {
	cj := s.clusterDurable()
	if cj == nil || s.Closed() {
		return false
	}
	s.mu.Lock()
	sub := s.subs.get(pd.SubKey)
	s.mu.Unlock()
	m := pd.Msg
	switch {
	case sub == nil || !clusterSub(&sub.SubSpec):
		pd.H.Ack() // unsubscribed meanwhile
		return true
	case sub.NoLocal && m.From == s.ID, m.Expired(): // [MQTT-3.8.3-3], MQTT 5 §3.3.2.3.3
		pd.H.Ack()
		return true
	}
	d, drop := r.overlapFromPeer(s, cj, sub, &pd) // one copy for overlapping subscriptions (peers_overlap.go)
	if drop {
		return true
	}
	ref := heldRef{pd.Seq, pd.SubKey}
	cj.mu.Lock()
	if cj.held == nil {
		cj.held = make(map[heldRef]PeerMsg)
	}
	_, again := cj.held[ref]
	cj.held[ref] = pd.H // a redelivery while held: the newer handle acks it
	cj.mu.Unlock()
	if again {
		return true // in the outbox or in flight already
	}
	switch err := s.Outbox.PushDelivery(d); err {
	case nil:
		r.delivered.Add(1)
		return true
	case ErrSlowConsumer:
		r.slowConsumer(s)
	}
	cj.mu.Lock()
	delete(cj.held, ref)
	cj.mu.Unlock()
	return false
}

// settle acknowledges a delivery of the cluster store: the client has it.
func (cj *clusterSess) settle(d Delivery) {
	ref := heldRef{d.Seq, d.Sub.Key}
	cj.mu.Lock()
	h := cj.held[ref]
	delete(cj.held, ref)
	cj.mu.Unlock()
	if h != nil {
		h.Ack()
	}
}

// openDurable is Open's part for a cluster store (DurablePeers): it
// returns the link of a new cluster-durable session (nil for one that is
// not: STOMP, a generated id, no expiry, no store) and the state to
// install. A clean start deletes what the cluster kept of the id
// [MQTT-3.1.2-4], wherever that was; a resume that no node answered
// (the holder died) reads the session's record [MQTT-3.1.2-5], whose
// unacknowledged messages come with the attach. ErrClientIDOwned: the
// record is another owner's.
func (r *Router) openDurable(id SessionID, o *SessionOptions, owner string, imported *SessionState) (*clusterSess, *SessionState, error) {
	if o.Protocol == "stomp" || claimKey(o.Protocol, id, o.ClientID) == "" {
		return nil, imported, nil
	}
	dp := r.durablePeers()
	if dp == nil || !dp.DurableOn() {
		return nil, imported, nil
	}
	key := clusterKey(id)
	loaded, absent := false, false
	switch {
	case o.CleanStart:
		dp.DeleteSession(key)
		absent = true
	case imported == nil:
		r.mu.Lock()
		old := r.sessions[id]
		r.mu.Unlock()
		if old != nil && old.clusterDurable() != nil {
			break // resumed here (takeOver)
		}
		// None here, or one restored from this node's store before the
		// cluster's was up (its copies duplicate the cluster's): the
		// record is the session, and takeOver discards the old one.
		rec, err := dp.LoadSession(key)
		if err != nil {
			r.log.Warn("cluster: session record not read; the session starts new", "session", id, "err", err)
		}
		absent = err == nil && rec == nil
		if rec != nil {
			if rec.Owner != "" && rec.Owner != owner {
				return nil, nil, ErrClientIDOwned
			}
			imported, loaded = &SessionState{Subs: rec.Subs}, true
			if rl, ok := dp.(QoS2Releaser); ok {
				// PUBRELs the dead holder sent, or was about to, go
				// again [MQTT-4.4.0-1].
				for _, pid := range rl.ReleasedQoS2(key, rec) {
					imported.Flights = append(imported.Flights, MovedFlight{ID: pid, Released: true})
				}
			}
		}
	}
	if o.Expiry == 0 && !loaded {
		return nil, imported, nil
	}
	if imported != nil && !loaded {
		dropClusterCopies(imported)
	}
	return &clusterSess{dp: dp, key: key, unsaved: absent}, imported, nil
}

// dropClusterCopies takes out of a state another node handed over what
// the cluster store delivers again to the cluster-durable session: QoS
// 1/2 messages of its cluster subscriptions, not retained, not at the
// PUBREL stage. A cluster-durable session keeps none of those in its
// state, but a node restarted after a SIGKILL restores the session from
// its own store, not cluster-durable there, and keeps its own copies of
// the messages the cluster stores too; handed over when the client
// resumed elsewhere, they reached the client twice, the cluster's copy
// after the PUBREL of the first [MQTT-4.3.3-6] (TestClusterChaos).
func dropClusterCopies(st *SessionState) {
	cluster := func(md MovedDelivery) bool {
		if md.Msg == nil || md.QoS == AtMostOnce || md.Retained {
			return false
		}
		matched := false
		for i := range st.Subs {
			sp := &st.Subs[i]
			if (md.SubKey != "" && sp.Key != md.SubKey) || (md.SubKey == "" && !MatchTopic(sp.Filter, md.Msg.Topic)) {
				continue
			}
			if !clusterSub(sp) {
				return false // a share group's, or QoS 0: only the state has it
			}
			matched = true
		}
		return matched
	}
	st.Pending = slices.DeleteFunc(st.Pending, cluster)
	st.Queue = slices.DeleteFunc(st.Queue, cluster)
	st.Flights = slices.DeleteFunc(st.Flights, func(f MovedFlight) bool { return !f.Released && cluster(f.D) })
}

// durableOn reports a cluster store that keeps persistent sessions.
func (r *Router) durableOn() bool {
	dp := r.durablePeers()
	return dp != nil && dp.DurableOn()
}

// publishDurable stores a QoS 1/2 topic message published on this node
// in the cluster store, for the cluster-durable subscriptions of every
// node, before the publisher's acknowledgement; a no-op without one.
// The store keeps it only while a subscription wants it.
func (r *Router) publishDurable(m *Message) error {
	dp := r.durablePeers()
	if dp == nil {
		return nil
	}
	if err := dp.DurablePublish(m, ""); err != nil {
		r.log.Error("cluster: message not stored in the cluster; refused", "topic", m.Topic, "err", err)
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// BindingPeers is what a DurablePeers adds so that a STOMP durable topic
// subscription (binding.go) keeps its messages when the node holding it
// dies: the subscription is a durable consumer of the cluster store,
// named by its queue, so a consumer that subscribes again on any node
// with the same name gets what was published meanwhile (every QoS 1/2
// topic message is stored there before its RECEIPT: publishDurable).
type BindingPeers interface {
	DurablePeers
	// SaveBinding makes the consumer of durable subscription qname on
	// filter, or replaces it (its messages deleted) when its filter
	// changed. It returns once done: the SUBSCRIBE's RECEIPT waits.
	SaveBinding(qname, filter string) error
	// DeleteBinding deletes the consumer of qname with its messages.
	DeleteBinding(qname string)
	// ConsumeBinding starts taking qname's messages for this node's
	// consumers of its queue, the ones another node took and never got
	// acknowledged first, until no local consumer is left
	// (Router.EnqueueBindingFromPeer, Router.QueueRoom).
	ConsumeBinding(qname string)
}

// bindingPeers is Config.Peers as a BindingPeers when it keeps sessions
// now, nil otherwise.
func (r *Router) bindingPeers() BindingPeers {
	if r.cfg.Peers == nil || r.dur == nil {
		return nil
	}
	bp, _ := r.cfg.Peers.(BindingPeers)
	if bp == nil || !bp.DurableOn() {
		return nil
	}
	return bp
}

// EnqueueBindingFromPeer hands m, a message of the durable subscription
// qname's consumer in the cluster store, to one of this node's consumers
// of its queue, keeping h with the delivery until the consumer settles
// it (queued.peer: STOMP ACK acks it; NACK, or a consumer that leaves,
// gives it back to the cluster). false: no local consumer has room.
func (r *Router) EnqueueBindingFromPeer(qname string, m *Message, h PeerMsg) bool {
	r.qmu.Lock()
	q := r.queues[qname]
	r.qmu.Unlock()
	if q == nil || !isDurableQueue(qname) {
		return false
	}
	if m.Expired() {
		h.Term()
		return true
	}
	m.ID = r.nextMsgID.Add(1)
	// returns stays 0: the cluster's delivery count also counts resets,
	// full queues and dead nodes, which are no consumer's NACK; it
	// would dead-letter messages nobody refused.
	e := queued{msg: m, peer: h, redelivered: h.Delivered() > 1}
	q.mu.Lock()
	ok := q.dispatchPeerLocked(r, e)
	q.mu.Unlock()
	return ok
}

// BindingConsumers reports how many local consumers durable subscription
// qname's queue has.
func (r *Router) BindingConsumers(qname string) int {
	r.qmu.Lock()
	q := r.queues[qname]
	r.qmu.Unlock()
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.consumers)
}
