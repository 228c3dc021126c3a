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
// Live delivery across nodes (Forward, to subscribers that are not
// cluster-durable) is at most once: Forward never blocks the publisher;
// it queues into a bounded buffer, and a message that finds the buffer
// full or the NATS connection down is dropped and counted.
//
// What must outlive a node is in JetStream (jetstream.go: embedded
// nodes with peers, or an external NATS whose account has it),
// replicated on min(3, nodes) servers by default:
//
//   - retained messages (retained.go): one stream, the last message per
//     topic, loaded by every node before it is ready;
//   - QoS 1/2 messages for MQTT persistent sessions and STOMP durable
//     subscriptions (durable.go, durable_binding.go): every QoS 1/2
//     topic publish is stored in an interest-retention stream before
//     the publisher's acknowledgement; each QoS 1/2 subscription of a
//     persistent session, and each durable subscription, is a durable
//     consumer, run by the node that holds the connection; session
//     records in a KV bucket, so a session whose node died resumes on
//     another;
//   - STOMP /queue/ messages (queue.go): a work-queue stream with one
//     shared pull consumer per queue, so consumers compete cluster-wide
//     and a message held on a dead node comes back after AckWait.
//
// Without JetStream these stay on the node that holds them, as on a
// single node.
//
// Sessions across nodes (session.go): a client id is claimed on NATS
// before it opens, and the holder hands a live session over.
//
// MQTT share groups compete across nodes (share.go): NATS queue groups
// pick one node per message and group, and that node one local member.
package cluster
