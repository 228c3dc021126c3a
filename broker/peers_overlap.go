package broker

// OverlapPeers is what a DurablePeers adds so that a message matching
// several QoS 1/2 subscriptions of one cluster-durable MQTT session goes
// to it once, as on one node (route.go merge, combine): at the highest QoS
// granted among them [MQTT-3.3.4-2], with every matching subscription
// identifier [MQTT-3.3.4-3] [MQTT-3.3.4-4]. The cluster store has one
// consumer per subscription, so each of them hands the session a copy
// (DeliverFromPeer); overlapFromPeer keeps one. Config.PerSubscriptionCopies
// keeps them all (Session.overlaps stays under two).
type OverlapPeers interface {
	// ConsumerStart returns the first cluster store sequence the consumer
	// of the session key's subscription subKey holds: it holds every later
	// message its filter matches until the session acknowledges it. false
	// when it is not known.
	ConsumerStart(key, subKey string) (uint64, bool)
}

// overlapFromPeer makes the delivery of pd, a cluster store copy for sub
// of s. When s has overlapping subscriptions that share one copy, one of
// those that match the message and whose consumers hold it carries it
// for all: the one with the highest QoS for it, then the oldest consumer,
// then the lowest key, the same choice whichever copy asks. A copy for
// another subscription is acknowledged and dropped (drop): the carrier's
// consumer holds the message until the client acknowledges it, on this
// node or the next. A start that is not known counts as not holding it:
// a copy too many at worst, never one too few.
func (r *Router) overlapFromPeer(s *Session, cj *clusterSess, sub *Subscription, pd *PeerDelivery) (d Delivery, drop bool) {
	m := pd.Msg
	d = Delivery{Msg: m, Sub: sub, QoS: min(m.QoS, sub.QoS), Seq: pd.Seq, Redelivered: pd.Redelivered}
	if s.overlaps.Load() < 2 {
		return d, false
	}
	op, ok := cj.dp.(OverlapPeers)
	if !ok {
		return d, false
	}
	var others []*Subscription
	s.mu.Lock()
	for _, o := range s.subs.all() {
		if o != sub && o.kind == kindTopic && clusterSub(&o.SubSpec) && !(o.NoLocal && m.From == s.ID) &&
			MatchTopic(o.Filter, m.Topic) {
			others = append(others, o)
		}
	}
	s.mu.Unlock()
	if len(others) == 0 {
		return d, false
	}
	start, ok := op.ConsumerStart(cj.key, sub.Key)
	if !ok {
		return d, false
	}
	carrier, cStart := sub, start
	for _, o := range others {
		st, ok := op.ConsumerStart(cj.key, o.Key)
		if !ok || st > pd.Seq {
			continue // its consumer was made after the message was stored
		}
		d = combine(d, Delivery{Msg: m, Sub: o, QoS: min(m.QoS, o.QoS)})
		oq, cq := min(m.QoS, o.QoS), min(m.QoS, carrier.QoS)
		if oq > cq || oq == cq && (st < cStart || st == cStart && o.Key < carrier.Key) {
			carrier, cStart = o, st
		}
	}
	if carrier != sub {
		pd.H.Ack()
		return Delivery{}, true
	}
	d.Sub = sub // combine keeps it: no other holder has a higher QoS
	return d, false
}
