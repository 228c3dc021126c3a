package broker

import "time"

// PeerMsg is a message a Peers took from the cluster's replicated store
// (package broker/cluster: a JetStream consumer) for delivery on this
// node. The router settles each one exactly once, when the client has
// taken it in the protocol's terms (STOMP ACK, MQTT PUBACK or PUBREC) or
// when it gives it back; until then the cluster keeps it, so a node that
// dies holding it loses nothing: another node gets it again.
//
// A router without Peers never sees one; the queues and sessions that
// hold one keep it next to the delivery (queued.peer and the like).
type PeerMsg interface {
	// Ack: the client has the message; the cluster forgets it.
	Ack()
	// Nak gives the message back to the cluster for redelivery, to any
	// node, after delay (0: at once).
	Nak(delay time.Duration)
	// Term: never deliver it again (it was dead-lettered or expired).
	Term()
	// Delivered counts the cluster's deliveries of it, 1 for the first;
	// more than 1 means redelivered (the STOMP redelivered header, as
	// RabbitMQ sends it; MQTT's DUP flag [MQTT-3.3.1-1] stays a property
	// of the packet, not of this count).
	Delivered() uint64
}
