// Package stomp serves STOMP 1.0, 1.1 and 1.2 (https://stomp.github.io) over
// a subprotocol.Transport and feeds the broker.Router.
//
// # Codec
//
// Reader reads frames with its own bounds (Limits: line, headers, header
// count and body, checked before anything is allocated; go-stomp's
// frame.Reader has none) into go-stomp's frame.Frame. A malformed frame is
// a protocol error (close 1002), one over a limit a size error
// (IsSizeError, close 1009). AppendFrame encodes into a caller's buffer, so
// the write side coalesces many frames into one WebSocket message; MESSAGE
// frames are encoded straight from a delivery (appendMessage), and one
// whose body is not UTF-8 goes in a binary message.
//
// # Server
//
// Files: protocol.go (Config, Protocol), conn.go (read loop, fail/finish),
// connect.go (CONNECT/STOMP, version and heart-beat negotiation, login,
// CONNECTED), connected.go (dispatch after CONNECTED, RECEIPT), send.go
// (SEND, reply-to temporary queues), pipeline.go (SENDs that wait for a
// store commit), subscribe.go (SUBSCRIBE, UNSUBSCRIBE, durable names),
// ack.go (ACK, NACK), tx.go (BEGIN, COMMIT, ABORT), message.go (delivery →
// MESSAGE), writeloop.go (write side, heart-beats, pings, the final
// ERROR), destination.go, heartbeat.go, errors.go (the one wireError
// mapping).
//
// Each connection has two goroutines at most, like the MQTT server.
// An idle WebSocket connection has none: its read loop returns
// subprotocol.ErrParked when the transport parks it (subprotocol.Parker;
// web resumes it through Resume on input). The
// read goroutine (Serve's) decodes frames through a small bufio.Reader
// over a subprotocol.Stream (a frame may span or share WebSocket messages)
// and runs the state machine: connecting (only CONNECT or STOMP), then
// connected. It calls the Router synchronously; a SEND is at least once
// and its RECEIPT follows Router.Publish. With a store, SENDs that must be
// committed (to a queue, or to topics while durable subscriptions exist)
// go through a Pipeline: what queued up during one commit shares the next
// (Router.PublishBatch), RECEIPTs go out in order, and any other frame
// waits for the pipeline to empty, so frames take effect in the order
// sent. BEGIN buffers SEND, ACK and NACK frames until COMMIT (bounded by
// MaxTx, MaxTxFrames, MaxTxBytes).
//
// Writes go through the session's Outbox and a subprotocol.Writer:
// replies (RECEIPT, ERROR) on the control lane, ahead of MESSAGE
// deliveries. When no write goroutine runs, the read loop writes a RECEIPT
// itself; otherwise the write goroutine, started on demand (the Outbox
// Wake hook) and gone after a second idle, drains and writes. Heart-beats
// and, for clients that send none, WebSocket pings (at 9/10 of
// IdleTimeout) are marked due by one timer for all connections
// (keepalive.go), so an idle connection holds no write goroutine and no
// timer of its own. When the session closes, the write
// side sends the server's ERROR, if the reason has one, and closes the
// transport; the read loop then detaches the session (finish).
//
// Destinations: /topic/<t> is the router topic <t> (wildcards + and #;
// with TopicSeparator '.', RabbitMQ's a.b and '*'); /queue/<name> is a
// point-to-point queue, round robin over its consumers within their
// prefetch-count; /temp-queue/<name> in reply-to becomes a private queue
// named in /reply-queue/<name> (RabbitMQ semantics). A topic subscription
// named as durable (RabbitMQ durable:true, ActiveMQ
// activemq.subscriptionName, Artemis durable-subscription-name, scoped by
// CONNECT's client-id) keeps collecting while its subscriber is away.
// Ack modes auto, client and client-individual; MESSAGE carries
// redelivered; NACK redelivers, and NACK requeue:false rejects (ack.go).
//
// Every protocol error is fatal: an ERROR frame with a message header, a
// body explaining it and receipt-id when the bad frame asked for a receipt,
// then the connection closes (STOMP 1.2 §ERROR). errors.go's wireError is
// the one mapping from an error to the ERROR frame and close code.
//
// # Security (issue 8)
//
//   - Login: CONNECT's login, passcode and client-id, with the transport's
//     Peer (ws/wss/tcp/tls, verified client certificate names, the URL's
//     access_token), go to Router.Authenticate. Every refusal is ERROR
//     "access refused" (bad credentials, not authorized, banned, client id
//     owned by another user) or "quota exceeded" (persistent session
//     quota), then close 1008; the body never says which check failed.
//     Refusals are counted (Stats) and logged at most once per source
//     address per 10 s, with the number of lines suppressed.
//   - Before CONNECTED the reader's limits are MaxFrameBeforeLogin (4 KiB
//     by default, RabbitMQ's) for the whole frame, its headers and its
//     body, checked before anything is allocated; a bigger CONNECT gets
//     ERROR "frame too large" and close 1009. After login, Limits apply.
//   - A credential with an expiry (Identity.Expires, a JWT's exp) arms one
//     timer per connection: when it fires, ERROR "credential expired" and
//     close 1008. Connections without expiry have no timer; the timer is
//     stopped when the connection ends.
//   - ACL: a SUBSCRIBE or SEND the Authorizer refuses gets ERROR "not
//     authorized" (with receipt-id when asked) and the close. STOMP has no
//     retained messages, so the retained quota never applies to a SEND.
//   - Publish rate (PublishRate, PublishBurst, PublishBytesRate): past it,
//     the read loop waits before routing a SEND, reading nothing
//     meanwhile, so the publisher is slowed by TCP back-pressure; nothing
//     is dropped. The wait ends early when the session closes. No limiter
//     exists when both rates are 0.
//   - A MESSAGE whose message came from another protocol (Message.Origin
//     is not "stomp") carries at most MaxOutboundHeaders user headers; the
//     rest are dropped and counted (Stats().HeadersDropped).
//
// # Lock order
//
// conn.ackMu (the unacknowledged deliveries: pending and every
// subState.unacked) is a leaf: the write side takes it to track a MESSAGE
// before writing it, the read loop to settle ACK and NACK; no Router call
// is made while it is held (Session.SetInflight is an atomic store).
package stomp
