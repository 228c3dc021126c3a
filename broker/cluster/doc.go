// Package cluster links Duplex nodes through NATS: it implements
// broker.Peers, so that a topic message published on any node reaches the
// matching subscribers of every node.
//
// It owns:
//
//   - the topic ⇄ NATS subject encoding (subject.go): every MQTT topic
//     level becomes exactly one NATS token, losslessly, so MQTT '+' is NATS
//     '*' and MQTT '#' is NATS '>' plus the parent level;
//   - the message ⇄ NATS message encoding (header.go): the payload is the
//     NATS payload, every other broker.Message field in NATS headers
//     (one for the fixed fields, one line per user property);
//   - the NATS side of a node (node.go, embedded.go): an in-process
//     nats-server joined to the other nodes by NATS routes (embedded mode),
//     or a connection to an existing NATS cluster (external mode), and the
//     nats.go connection both use.
//
// What crosses the cluster is interest-based: a node subscribes in NATS
// only to the subjects of the filters its local clients hold (the router
// reference-counts them, Peers.Interest), and NoEcho keeps a node's own
// messages from coming back. A message arriving from NATS is routed with
// broker.Router.PublishFromPeer, which matches it against the local index
// again: NATS may over-deliver (the MQTT rule that a filter starting with
// a wildcard does not match a '$' topic [MQTT-4.7.2-1] has no NATS
// counterpart, and topics too long for a NATS subject travel on one
// shared subject) and the local match keeps MQTT's meaning.
//
// Retained messages go on one subject every node listens to, so every
// node keeps each of them; a node that was down when one was published
// does not get it.
//
// Guarantees, for now: delivery across nodes is at most once (QoS 0
// semantics whatever the message's QoS). Forward never blocks the
// publisher: it queues into a bounded buffer, and a message that finds
// the buffer full or the NATS connection down is dropped and counted.
// Acknowledged delivery across nodes (JetStream), sessions across nodes,
// and retained messages for nodes that join later (JetStream KV) are
// later steps.
//
// MQTT share groups compete across nodes (share.go): NATS queue groups
// pick one node per message and group, and that node one local member.
package cluster
