// Package mqtt is Duplex's MQTT 3.1, 3.1.1 and 5.0 support: its own codec
// and the server (New, a subprotocol.Protocol) on top of it.
//
// # Codec
//
// The codec is pure: bytes in, packet structs out, no sockets. Reader checks
// a packet's declared remaining length against MaxPacketSize before it
// allocates anything, then validates what each version's spec requires
// (flags per packet type, UTF-8 rules, topic and filter syntax, property
// placement and duplicates) and reports failures as Error values that
// carry the MQTT 5 reason code to send. Topic names and filters follow the
// broker's rules (broker.ValidTopicName, ValidFilter), plus the $share/
// syntax (codec_topic.go). AppendPacket encodes into a caller's buffer
// without allocating, mapping v5 reason codes to 3.x return codes.
//
// paho.golang's packets package is MQTT 5 only and allocates what a header
// claims (ARCHITECTURE §0.1), so it serves only as a test oracle here.
//
// # Server
//
// Files: protocol.go (Config, Protocol), conn.go (read loop, dispatch,
// fail/finish), conn_connect.go (CONNECT/CONNACK, will), publish_in.go
// (inbound PUBLISH, topic aliases, acknowledgements), publish_out.go
// (delivery → PUBLISH), inflight.go (packet ids, window, saved session
// state), subscribe_handle.go, writeloop.go, errors_server.go (brokerCodes:
// the one mapping from errors to reason codes and close codes).
//
// Each connection has two goroutines at most, like the STOMP server.
// An idle WebSocket connection has none: its read loop returns
// subprotocol.ErrParked when the transport parks it (subprotocol.Parker;
// web resumes it through Resume on input). The
// read goroutine (Serve's) reads through a small bufio.Reader over a
// subprotocol.Stream, because packets may span or share WebSocket messages
// [MQTT-6.0.0-2]; a text frame closes the connection with 1003
// [MQTT-6.0.0-1]. It calls the Router synchronously: QoS 1 is acknowledged
// after Router.Publish returns, QoS 2 is published once per packet id and
// the id kept until PUBREL (exactly once, [MQTT-4.3.3-10]). Replies go
// through the Outbox control lane and are written by the read loop itself
// when no write goroutine runs; the write goroutine starts on demand (the
// Outbox Wake hook) and exits after a second idle, so an idle connection
// holds no writer.
//
// The write side drains the Outbox into the connection's queue and sends
// it in order, QoS 1/2 deliveries only while the client's Receive Maximum
// (or Config.MaxInflight) allows; what does not fit waits, and a queue
// longer than the router's MaxPendingMsgs is a slow consumer (v5
// DISCONNECT 0x97, WebSocket 1008). Packets queued together go out in one
// binary message (up to 64 KiB). Expired messages are skipped, the rest
// carry their remaining expiry; a packet larger than the client's Maximum
// Packet Size is skipped for that client. Outbound topic aliases are not
// used.
//
// # Sessions and wills
//
// Router.Open takes over a connected client id [MQTT-3.1.4-3] and moves a
// persistent session's state. When a connection of a persistent session
// ends, it saves its unacknowledged and unsent QoS 1/2 deliveries and its
// inbound QoS 2 ids (Session.SaveState); the next connection resends the
// unacknowledged PUBLISH packets with DUP set, and PUBREL for those past
// PUBREC, with their original ids, before anything new [MQTT-4.4.0-1].
//
// The will is published when the connection ends without a normal
// DISCONNECT (network error, keep alive timeout, protocol error, server
// close; v5 DISCONNECT 0x04 too), after the v5 Will Delay bounded by the
// session expiry. On takeover a will without delay is published, a delayed
// one is not (the new connection arrived within the delay).
//
// # Security (issue 8)
//
// CONNECT's user name, password and client identifier, with the
// transport's Peer (ws/wss/tcp/tls, verified client certificate names, the
// URL's access_token), go to Router.Authenticate; then Router.Open may
// refuse the client id (owned by another user) or a new persistent session
// (quota). errors_server.go maps every refusal to its CONNACK code in one
// place (connackCode): bad credentials 0x86 (3.x 0x04), not authorized
// 0x87 (0x05), banned 0x8A (0x05), client id owned 0x85 (0x02), session
// quota 0x97 (0x03); then the close (1008). Refusals are counted (Stats)
// and logged at most once per source address per 10 s.
//
// Only CONNECT is read before login, within MaxPacketBeforeLogin (4 KiB
// by default): its declared length is checked before anything is
// allocated, and a larger one gets v5 CONNACK 0x95 (the protocol level is
// peeked from the unread body) or, in 3.x, the close (1009). MaxPacketSize
// applies from CONNACK on.
//
// A credential with an expiry (Identity.Expires, a JWT's exp) arms one
// timer per connection: v5 DISCONNECT 0xA0 (Maximum connect time), 3.x the
// close. The timer is stopped when the connection ends; connections
// without expiry have none.
//
// ACL: a refused SUBSCRIBE gets SUBACK 0x87 (3.x 0x80); a refused PUBLISH
// gets v5 PUBACK/PUBREC 0x87, while 3.x, which cannot refuse one, gets the
// usual acknowledgement and the message is dropped and counted, the
// connection kept. A retained PUBLISH past the retained quota is
// delivered but not retained: v5 0x97, 3.x the usual acknowledgement
// (counted). A message another subscriber's full stored queue could not
// keep reached everyone else: the publisher gets success in every version
// (that subscriber's loss is counted by the router). pubackCode is the one
// mapping.
//
// Publish rate (PublishRate, PublishBurst, PublishBytesRate): past it the
// read loop waits before routing a PUBLISH, reading nothing meanwhile, so
// the publisher is slowed by TCP back-pressure; nothing is dropped. The
// wait ends early when the session closes. A v5 PUBLISH of a message from
// another protocol (Message.Origin is set and not "mqtt") carries at most
// MaxOutboundHeaders user properties; the rest are dropped and counted.
//
// Sessions expire: a 3.x clean-session-0 session lives DefaultSessionExpiry
// (2 h) after its connection ends, and every session's expiry, v5's
// 0xFFFFFFFF included, is capped by MaxSessionExpiry (24 h); CONNACK tells
// a v5 client the granted value.
//
// # Lock order
//
// conn.mu (outbound queue and inflight table) → Outbox.mu. conn.mu is
// taken by the write loop and by the read loop's PUBACK/PUBREC/PUBCOMP and
// SUBSCRIBE handling; the only broker lock taken under it is Outbox.mu
// (Drain), and no Router call is made while it is held.
//
// q2mu (the inbound QoS 2 packet ids, qos2In) is a leaf: the read loop and
// the publish pipeline hold it only to read or change the map, never
// together with conn.mu and never across a Router call; finish reads the
// map without it (SaveState) once the pipeline has drained.
package mqtt
