// Package web is Duplex's HTTP side: the WebSocket gateway, the TCP
// listeners (ServeTCP), the admin UI and the management API.
//
// The gateway reads Sec-WebSocket-Protocol before upgrading and picks, in
// the server's order of preference, the first subprotocol a registered
// protocol answers (gorilla would pick in the client's order and upgrade
// even with no match). No match is answered with HTTP 400 and a body that
// names the supported subprotocols. After the upgrade the connection gets a
// read limit and is wrapped in a subprotocol.Transport; the protocol's Serve
// runs on the handler's goroutine.
//
// Every HTTP request first meets the Host allow-list (Config.AllowedHosts:
// 403 otherwise; it closes DNS rebinding, since the same-origin check
// trusts Host), then the client address is worked out: the TCP peer, or,
// when the peer is one of Config.TrustedProxies, the right-most untrusted
// address of X-Forwarded-For or Forwarded. That address replaces
// r.RemoteAddr and is what logs, admission control, Transport.RemoteAddr
// and so the protocols' credentials and ACLs see.
//
// Origins: requests without Origin (non-browser clients) and same-origin
// requests are allowed, plus Config.AllowedOrigins ("*" must be explicit).
//
// Admission control (admission.go) is shared by the gateway and every TCP
// listener: a total connection cap (by default 95% of the descriptor
// limit), a per-source cap and a per-source connect rate. A WebSocket
// upgrade past a limit gets HTTP 503 with Retry-After; a TCP connection is
// closed at once. Server.Listener counts every socket and closes those past
// the cap plus a margin, so descriptors never run out, and those past the
// per-source cap that are not protocol connections yet (idle sockets).
//
// TLS (tls.go): TLSReloader serves a certificate and client CA that
// Reload replaces for new handshakes without touching listeners or
// connections; TLS 1.2 minimum. Transport.Peer reports "ws", "wss", "tcp"
// or "tls", the verified client certificate's names, and the URL's
// access_token (which is never logged).
//
// WebSocket checks gorilla leaves to the application: a text message must
// be UTF-8 (close 1007, RFC 6455 §8.1; checked as it streams), and a close
// frame with a 1-byte payload is a protocol error (close 1002, RFC 6455
// §5.5.1; gorilla reports it as 1005, so a frame-header sniffer on the
// hijacked connection tells the two apart).
//
// Plain TCP sockets (WebSocket over ws://, and the TCP listeners) read and
// write through rawTCPConn (rawconn_linux.go): read(2) and write(2) as raw
// system calls inside syscall.RawConn, still waiting in the runtime's
// poller with the connection's deadlines. Go's own calls enter the
// scheduler's syscall state, which woke the runtime's sleeping sysmon
// thread on every read and write of a broker idle between messages. A
// small write (an inline delivery) that finds the socket full is taken
// whole and finished on a goroutine of its own, so a publisher never waits
// on its subscriber's socket. Idle connections park without a goroutine
// (park_linux.go). TLS connections keep Go's calls.
//
// The management plane (console.go routes it): the admin UI (ui.go: web/ui
// embedded with go:embed, served at / with a strict Content-Security-Policy),
// the management API /api/v1 (apiv1*.go: copied, paginated snapshots from
// the router, and the operator's actions; docs/api.md), its live feeds
// (live.go, history.go: a 1-second sampler with 15 minutes of history,
// server-sent events for the charts and the Tail page, which reads a
// broker.Tap), Prometheus /metrics (metrics.go: a scrape-time collector, no
// cost on the publish path), the $SYS/broker topics (sys.go, Mosquitto's
// names), /healthz and /readyz. Protection (login.go): with
// Config.AdminAuth nil (the zero-config loopback default) everything is
// open but cross-site unsafe requests; otherwise an admin identity is
// needed: a login session (HttpOnly, SameSite=Strict cookie, a CSRF token on
// every unsafe request) for the UI, HTTP Basic or a bearer token for
// scripts. The older /api/stats, /api/sessions and /api/queues stay. All of
// it can move to its own listener (AdminHandler, Config.SeparateAdmin).
package web
