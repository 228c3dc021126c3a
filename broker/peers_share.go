package broker

import "errors"

// ErrNoShareMember: the cluster picked this node for a share group that
// has no member here any more (it left while the message was on its way).
// The message is lost for that group (the cluster link is at most once).
var ErrNoShareMember = errors.New("broker: share group has no member on this node")

// SharePeers is a Peers that also lets MQTT shared subscriptions
// ($share/<group>/<filter>, MQTT 5 §4.8.2) compete across the cluster:
// each message goes to one member of a group in the whole cluster, not one
// per node that has members.
//
// With a SharePeers the router does not pick a member for a message routed
// through its index (a local or a peer's publication): the group's index
// entry is skipped (shareGroup.pick), and its filter does not count as
// Interest. Instead the router tells the peers which groups have local
// members (ShareInterest), the peers let the cluster choose one node per
// message and group (every node's own messages included), and that node's
// peers hand the message in through Router.PublishToShare, which picks one
// local member of that group only. Plain subscribers on the same filter get
// the message through the ordinary Interest path, as before.
type SharePeers interface {
	Peers
	// ShareInterest reports that the first local member of the share
	// group (group, filter) joined (add), or that the last one left
	// (!add). It is called under Router.smu, so add and remove for one
	// group stay in order; like Interest it may not block on the network
	// or call back into the router.
	ShareInterest(group, filter string, add bool)
}

// sharePeers returns the router's Peers when they carry share groups.
func (r *Router) sharePeers() SharePeers {
	sp, _ := r.cfg.Peers.(SharePeers)
	return sp
}

// PublishToShare delivers m, a topic message that the cluster picked this
// node for on behalf of the share group (group, filter), to one local
// member of that group (round robin, connected members first), and to no
// other subscription. It is dropped when it does not match filter (it
// came on a subject that carries more, such as the long or the retained
// one, or is a '$' topic for a filter starting with a wildcard
// [MQTT-4.7.2-1]), or when the group has no member here any more
// (ErrNoShareMember). It is
// not retained here (the retained copy travels the ordinary path) and
// never forwarded again. Shared subscriptions have no no-local
// [MQTT-3.8.3-4], so From plays no part.
func (r *Router) PublishToShare(group, filter string, m *Message) error {
	m.Queue = ""
	m.fromPeer = true
	if !MatchTopic(filter, m.Topic) {
		return nil
	}
	r.smu.Lock()
	g := r.shares[shareKey(group, filter)]
	r.smu.Unlock()
	var sub *Subscription
	if g != nil {
		sub = g.member()
	}
	if sub == nil {
		return ErrNoShareMember
	}
	m.ID = r.nextMsgID.Add(1)
	return r.route(m, sub)
}
