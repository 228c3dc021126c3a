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
// then the connection closes (STOMP 1.2 §ERROR).
//
// Lock order: conn.ackMu is a leaf; no broker call is made while holding it.
package stomp
