package broker

// Messages the cluster store did not keep. A DurablePeers stores a QoS 1/2
// topic message published on its node only when a cluster-durable
// subscription somewhere in the cluster wants it (broker/cluster keeps a
// mirror of those subscriptions' filters on every node). When none does,
// it says so on the message (SetNotInCluster) and the message travels to
// the other nodes marked that way (their decoder sets it again). A
// cluster-durable subscription that such a message reaches all the same (a
// subscription made while the publishing node did not know of it yet)
// takes it from this delivery, as a subscription that is not
// cluster-durable would (sortStored, plan): a persistent session gets it
// live, or kept in memory while it is offline; a durable subscription's
// queue stores it here. Without the mark, such a subscription skips the
// delivery, because the cluster store brings it (nothing comes twice).

// SetNotInCluster records whether m, a QoS 1/2 topic message, is missing
// from the cluster store (not) or stored there. It is set before m is
// routed: by DurablePeers.DurablePublish on the publishing node, by the
// cluster's decoder on the others.
func (m *Message) SetNotInCluster(not bool) { m.notInCluster = not }

// NotInCluster reports SetNotInCluster(true): the cluster store did not
// keep m, so this delivery is the only copy a cluster-durable subscription
// gets.
func (m *Message) NotInCluster() bool { return m.notInCluster }
