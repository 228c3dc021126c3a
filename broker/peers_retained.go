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
