package broker

// RetainFromPeer keeps m as its topic's retained message, or clears the
// topic's retained message when m's payload is empty [MQTT-3.3.1-10],
// without delivering it to anyone: a node that starts loads the cluster's
// retained messages this way (broker/cluster keeps them in JetStream), and
// its subscribers, restored persistent ones included, must not receive them
// again as new messages. Like PublishFromPeer, m is never forwarded.
func (r *Router) RetainFromPeer(m *Message) error {
	if err := ValidTopicName(m.Topic); err != nil {
		return err
	}
	m.Queue = ""
	m.Retain = true
	m.fromPeer = true
	m.ID = r.nextMsgID.Add(1)
	return r.retain(nil, m)
}

// RetainPeers is what a Peers adds so that an acknowledged retained
// message outlives the node that took it: the publisher's PUBACK or
// PUBREC waits for the cluster's retained store, as it waits for the
// local store's commit. Only QoS 1/2 retained messages wait (toPeers):
// MQTT QoS 0 has no acknowledgement to hold back, so those are forwarded
// as any message and stored in the background, in the same order.
type RetainPeers interface {
	Peers
	// StoreRetained is Forward for a retained message that returns once
	// the cluster's retained store has it (at once when there is no such
	// store), or the error that refuses the publish. Retained messages
	// of one node reach the store in the order they were handed over
	// (Forward or StoreRetained), so a topic's last one stays the last.
	// dedup, when not empty, names the message so that a second store
	// under the same name is stored once (a QoS 2 PUBLISH resent to
	// another node: InboundPeers); dup reports such a second store,
	// whose first copy already reached every node.
	StoreRetained(m *Message, dedup string) (dup bool, err error)
}
