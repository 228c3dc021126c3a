package broker

import (
	"errors"
	"fmt"
	"time"
)

// InboundPeers is what a DurablePeers adds so that an MQTT QoS 2 PUBLISH
// is published once in the whole cluster, however often the client sends
// it and to whichever node [MQTT-4.3.3-10]. On one node the packet id is
// recorded in the store with the message (PublishExactlyOnce), and a live
// session that moves carries its ids along (SessionState); but when the
// node that published the message dies before its PUBREC reaches the
// client, the client resends the PUBLISH, DUP set [MQTT-3.3.1-1], under
// the same id, to another node, which has neither.
//
// So for a cluster-durable session (clusterSess) the cluster keeps a
// record per (session, packet id) from before the message is stored until
// PUBREL [MQTT-4.3.3-12]: "pending" (HoldInbound), then "stored" once the
// message is in the cluster stores and before it is handed to the other
// nodes (StoredInbound). A resend (DUP) of an id held as stored is
// acknowledged and not published again; one held as pending (its node died
// before handing it on) is stored again under the hold's name
// (InboundHold.Dedup), which the cluster stores keep once, and then handed
// on. A PUBLISH without DUP is a new message whatever the record says
// [MQTT-3.3.1-1]: a client reuses an id as soon as its PUBCOMP came, and
// one that started clean never resends.
type InboundPeers interface {
	DurablePeers
	// HoldInbound records packet id of session key as a QoS 2 PUBLISH
	// being published, for ttl (0: until released), before the message
	// is stored. For a resend (dup) it reads the record first: Done for
	// an id whose message is stored, the pending hold's Dedup for one
	// whose node did not finish; with no record the resend is new.
	HoldInbound(key string, id uint16, dup bool, ttl time.Duration) (InboundHold, error)
	// StoredInbound marks h's message stored, on h's revision, before it
	// goes to the other nodes. ErrInboundMoved: the record changed since
	// h (another node took the resend over and hands the message on), so
	// this node must not. Another error is only logged by the caller: the
	// message is stored and goes on; a record left pending means a later
	// resend is stored once more under its Dedup (kept once) and handed
	// on again.
	StoredInbound(key string, id uint16, h InboundHold, ttl time.Duration) error
	// ReleaseInbound forgets packet id of session key cluster-wide
	// (PUBREL), returning once done: PUBCOMP waits for it. With check it
	// first reports whether the cluster held the id (a PUBREL for an id
	// the connection does not know: its PUBLISH went through a node that
	// died); without, held is false.
	ReleaseInbound(key string, id uint16, check bool) (held bool, err error)
}

// ErrInboundMoved is InboundPeers.StoredInbound's answer when another
// node took the packet id's message over.
var ErrInboundMoved = errors.New("broker: inbound QoS 2 packet id taken over by another node")

// InboundHold is the cluster's record of one inbound QoS 2 packet id.
type InboundHold struct {
	// Dedup names the message in the cluster stores: the same on every
	// node for one hold, another for the next message under the id.
	Dedup string
	// Done: a resend of an id whose message is stored and handed on;
	// it is acknowledged, not published again [MQTT-4.3.3-10].
	Done bool
	// Rev is the record's revision in the cluster.
	Rev uint64
}

// inboundHold is a publish's hold on its packet id in the cluster.
type inboundHold struct {
	ip  InboundPeers
	key string
	id  uint16
	ttl time.Duration
	InboundHold
}

// holdInbound records the QoS 2 PUBLISH id of from in the cluster when
// from is a cluster-durable session and Peers keeps inbound ids; nil
// otherwise. Only prepare calls it, behind its Peers nil check.
func (r *Router) holdInbound(from *Session, id uint16, dup bool) (*inboundHold, error) {
	cj := from.clusterDurable()
	if cj == nil {
		return nil, nil
	}
	ip, ok := cj.dp.(InboundPeers)
	if !ok {
		return nil, nil
	}
	ttl := inboundTTL(from.Expiry())
	h, err := ip.HoldInbound(cj.key, id, dup, ttl)
	if err != nil {
		r.log.Error("cluster: QoS 2 packet id not recorded in the cluster; refused", "session", from.ID, "err", err)
		return nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	return &inboundHold{ip: ip, key: cj.key, id: id, ttl: ttl, InboundHold: h}, nil
}

// inboundTTL is how long the cluster keeps an inbound packet id that is
// never released: the session's expiry and a minute, counted from the
// publish (the record only matters to a client that lost the connection
// before PUBREC or PUBCOMP, and such a client resumes within its
// session's expiry or not at all); 0, no limit, for NeverExpire.
func inboundTTL(expiry time.Duration) time.Duration {
	if expiry >= NeverExpire {
		return 0
	}
	return expiry + time.Minute
}

// toPeers hands m, published on this node, to the cluster, before the
// publisher's acknowledgement: a QoS 1/2 message to the cluster store
// (under the hold's name for a QoS 2 PUBLISH of a cluster-durable
// session), a retained QoS 1/2 message to the cluster's retained store
// too (which takes it to the other nodes); then the hold is marked
// stored; then the message goes to the other nodes' live subscribers
// (Forward). The hold is marked before Forward so that a resend finding
// it pending (its node died in between) hands the message on without a
// live subscriber getting it twice. done: a resend the other nodes have
// already had (the retained store had it, or another node took the id
// over); it is acknowledged and not delivered here either.
func (r *Router) toPeers(m *Message, h *inboundHold) (done bool, err error) {
	if m.QoS > AtMostOnce && r.dur != nil {
		if h != nil {
			err = r.publishDurableAs(m, h.Dedup)
		} else {
			err = r.publishDurable(m)
		}
		if err != nil {
			return false, err // stored in the cluster before it is acknowledged (peers_durable.go)
		}
	}
	retained := false
	if m.Retain && m.QoS > AtMostOnce {
		// A retained message is acknowledged once the cluster's
		// retained store has it [MQTT-3.3.1-5], as once the local
		// store has it: a node's death after PUBACK or PUBREC must not
		// lose it.
		if rp, ok := r.cfg.Peers.(RetainPeers); ok {
			dedup := ""
			if h != nil {
				dedup = h.Dedup + ".r"
			}
			dup, err := rp.StoreRetained(m, dedup)
			if err != nil {
				r.log.Error("cluster: retained message not stored in the cluster; refused", "topic", m.Topic, "err", err)
				return false, fmt.Errorf("%w: %v", ErrStore, err)
			}
			retained, done = true, dup
		}
	}
	if h != nil {
		err := h.ip.StoredInbound(h.key, h.id, h.InboundHold, h.ttl)
		switch {
		case errors.Is(err, ErrInboundMoved):
			return true, nil
		case err != nil:
			r.log.Warn("cluster: QoS 2 packet id not marked stored in the cluster", "topic", m.Topic, "err", err)
		}
	}
	if !retained && !done {
		r.cfg.Peers.Forward(m)
	}
	return done, nil
}

// publishDurableAs is publishDurable under the name dedup.
func (r *Router) publishDurableAs(m *Message, dedup string) error {
	dp := r.durablePeers()
	if dp == nil {
		return nil
	}
	if err := dp.DurablePublish(m, dedup); err != nil {
		r.log.Error("cluster: message not stored in the cluster; refused", "topic", m.Topic, "err", err)
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// releaseInbound forgets s's inbound QoS 2 packet id in the cluster (see
// InboundPeers.ReleaseInbound); a no-op for a session that is not
// cluster-durable.
func (r *Router) releaseInbound(s *Session, id uint16, check bool) (held bool, err error) {
	cj := s.clusterDurable()
	if cj == nil {
		return false, nil
	}
	ip, ok := cj.dp.(InboundPeers)
	if !ok {
		return false, nil
	}
	held, err = ip.ReleaseInbound(cj.key, id, check)
	if err != nil {
		r.log.Error("cluster: QoS 2 packet id not released in the cluster", "session", s.ID, "err", err)
		return false, fmt.Errorf("%w: %v", ErrStore, err)
	}
	return held, nil
}

// ReleaseInboundID forgets an inbound exactly-once id at PUBREL, or when
// a failure code ends the flow, before the caller sends PUBCOMP
// [MQTT-4.3.3-11]: in the cluster for a cluster-durable session, so that
// a new PUBLISH under the id is new on every node [MQTT-4.3.3-12], and in
// the store (ForgetInboundID). known says whether the connection held the
// id; for one it did not (its PUBLISH went through a node that died),
// held reports whether the cluster did, so the protocol can answer
// PUBCOMP as for a known id. Without a cluster-durable session held is
// known, at the cost of nil checks.
func (r *Router) ReleaseInboundID(s *Session, packetID uint16, known bool) (held bool, err error) {
	held, err = r.releaseInbound(s, packetID, !known)
	if err != nil {
		return false, err
	}
	if !known {
		return held, nil
	}
	return true, r.ForgetInboundID(s, packetID)
}
