// Package web is Duplex's HTTP side: the WebSocket gateway and the status
// API.
//
// The gateway reads Sec-WebSocket-Protocol before upgrading and picks, in
// the server's order of preference, the first subprotocol a registered
// protocol answers (gorilla would pick in the client's order and upgrade
// even with no match). No match is answered with HTTP 400 and a body that
// names the supported subprotocols. After the upgrade the connection gets a
// read limit and is wrapped in a subprotocol.Transport; the protocol's Serve
// runs on the handler's goroutine.
//
// Origins: requests without Origin (non-browser clients) and same-origin
// requests are allowed, plus Config.AllowedOrigins ("*" must be explicit).
package web
