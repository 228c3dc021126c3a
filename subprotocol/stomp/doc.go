// Package stomp serves STOMP 1.0, 1.1 and 1.2 (https://stomp.github.io) over
// a subprotocol.Transport and feeds the broker.Router.
//
// It reads frames with its own bounded Reader (go-stomp's frame.Reader has no
// size limits) into go-stomp's frame.Frame, and writes with AppendFrame so
// the write loop can coalesce many frames into one WebSocket message.
//
// Each connection has two goroutines. The read loop (the caller of Serve)
// decodes frames and runs the state machine: connecting, then connected,
// where each command has a handleX method. It calls the router
// synchronously and never writes once the write loop runs. The write loop
// (writeloop.go) is the only writer after CONNECTED: it drains the
// session's Outbox (control frames first, then MESSAGE deliveries), sends
// heart-beats and pings, and writes the final frame when the session closes.
//
// Destinations: /topic/<t> is the router topic <t> (wildcards + and #);
// /queue/<name> is a point-to-point queue; /temp-queue/<name> in reply-to
// becomes a private queue named in /reply-queue/<name> (RabbitMQ semantics).
//
// Every protocol error is fatal: an ERROR frame with a message header, a
// body explaining it and receipt-id when the bad frame asked for a receipt,
// then the connection closes (STOMP 1.2 §ERROR). errors.go's wireError is
// the one mapping from an error to the ERROR frame and close code.
//
// Security (issue 8):
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
// Lock order: conn.ackMu is a leaf; no broker call is made while holding it.
package stomp
