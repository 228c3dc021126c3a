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
//     topic, loaded by every node before it is ready; a QoS 1/2 retained
//     publish is acknowledged once the stream's quorum has it
//     (StoreRetained);
//   - QoS 1/2 messages for MQTT persistent sessions and STOMP durable
//     subscriptions (durable.go, durable_binding.go): a QoS 1/2 topic
//     publish that such a subscription's filter matches is stored in an
//     interest-retention stream before the publisher's acknowledgement;
//     one that none matches is only forwarded, marked Duplex-Not-Stored.
//     Every node mirrors the stream's consumers' filters
//     (durable_interest.go), and a new consumer's SUBSCRIBE is
//     acknowledged once every routed node has it. Each QoS 1/2
//     subscription of a persistent session, and each durable
//     subscription, is a durable consumer, run by the node that holds the
//     connection (a durable subscription's fetch loop keeps its order
//     across a lost delivery: durable_binding_order.go; a session's
//     record is written at its CONNECT); a message matching several of
//     a session's subscriptions goes to it once (overlap.go), unless
//     mqtt.per_subscription_copies; session records in a KV bucket, so a
//     session whose node died resumes on another (and expires there if
//     none does);
//   - MQTT QoS 2 release records (durable_pubrel.go): at PUBREC a
//     cluster-durable session's deliveries are recorded per consumer
//     (session bucket key rel.<consumer>: stream sequence, packet id)
//     before the ack and the PUBREL, so no node hands a released message
//     to the session again (a dropped ack or a reset to the ack floor
//     would) [MQTT-4.3.3-6], and the node that resumes a session whose
//     holder died resends the open PUBRELs [MQTT-4.4.0-1];
//   - inbound MQTT QoS 2 packet ids of persistent sessions (qos2in.go):
//     a KV record per session and id from PUBLISH to PUBREL, so that a
//     PUBLISH resent to another node after its node died is published
//     once [MQTT-4.3.3-10];
//   - STOMP /queue/ messages (queue.go): a work-queue stream with one
//     shared pull consumer per queue, so consumers compete cluster-wide
//     and a message held on a dead node comes back after AckWait.
//
// Without JetStream these stay on the node that holds them, as on a
// single node.
//
// Sessions across nodes (session.go, claim.go, claim_sweep.go): a client
// id is claimed on NATS before it opens, and the holder hands a live
// session over. With JetStream a holder record per client id (KV
// duplex_<name>_clients, written by compare-and-set) makes the id unique
// even when two connections open it on two nodes at once: each writer
// claims the holder it replaces, on that node's own subject, and only the
// last stays. Every node registers in that bucket and pings the others;
// the records of a node that stopped answering are swept: its client ids
// are free, a persistent session's record expires after its Session
// Expiry Interval (a JetStream message TTL, counted from when its
// connection closed), a session with expiry 0 goes with its consumers.
//
// Locks inside this package (none is held across a network call):
// sessions.mu → claimLink.mu; attachment.mu → relSet.mu; relSet.wmu →
// relSet.mu; durableInterest.mu → its own broker.Index; consumerStarts.mu
// is a leaf; durableLink.mu and attachment.mu are never held together.
//
// MQTT share groups compete across nodes (share.go): NATS queue groups
// pick one node per message and group, and that node one local member.
package cluster
