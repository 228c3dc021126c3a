// Package subprotocol defines what a wire protocol needs from a connection
// (Transport) and what the gateway needs from a protocol (Protocol), plus
// the Registry that picks a protocol from a client's offered WebSocket
// subprotocols. The protocols themselves live in the stomp (and later mqtt)
// subpackages; this package never imports them.
package subprotocol
