package web

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/store"
)

// Defaults for Config.
const (
	// ReadLimitMargin is how far the WebSocket read limit sits above the
	// largest frame or packet the protocols accept (see
	// Config.MaxMessageSize).
	ReadLimitMargin = 64 << 10
	// DefaultMaxMessageSize is ReadLimitMargin above the largest frame the
	// protocols accept by default: a STOMP frame with a 4 MiB body and
	// 64 KiB of headers.
	DefaultMaxMessageSize = 4<<20 + 64<<10 + ReadLimitMargin

	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultPongWait         = 60 * time.Second
	DefaultParkAfter        = 100 * time.Millisecond
	DefaultReadBufferSize   = 512
	DefaultWriteBufferSize  = 4096

	DefaultMaxConnectionsPerIP   = 1000
	DefaultConnectRatePerIP      = 100 // connections per second
	DefaultConnectBurstPerIP     = 200
	DefaultHTTPIdleTimeout       = 60 * time.Second
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	// DefaultMaxHeaderBytes bounds an HTTP request's header (net/http's
	// default is 1 MiB).
	DefaultMaxHeaderBytes = 16 << 10
	// fallbackMaxConnections is MaxConnections where the descriptor limit
	// cannot be read.
	fallbackMaxConnections = 10000
)

// LoopbackHosts are the Host names of the loopback interface: the
// AllowedHosts the integrator sets when every HTTP listener is on loopback.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// Config holds the gateway's settings. The zero value is valid.
type Config struct {
	// Paths that accept WebSocket upgrades. Default: /ws, /stomp, /mqtt;
	// every path offers every protocol, chosen by subprotocol. A request
	// that offers none gets the protocol the path's last element names
	// (/stomp: STOMP, /mqtt: MQTT), elsewhere HTTP 400.
	Paths []string
	// AllowedOrigins lists Origin values allowed besides same-origin
	// requests (gorilla's default check). "*" allows every origin and must
	// be set explicitly.
	AllowedOrigins []string
	// MaxMessageSize is the WebSocket read limit; a bigger message closes
	// the connection with 1009 before the protocol sees it. It belongs
	// above the protocols' own limits (their largest frame or packet plus
	// ReadLimitMargin): a frame just over those then gets the protocol's
	// answer (STOMP ERROR, MQTT 5 DISCONNECT 0x95), as over TCP, and 1009
	// is left for what is far beyond.
	MaxMessageSize   int64
	HandshakeTimeout time.Duration
	// WriteTimeout bounds control frames (pings, close) the transport writes.
	WriteTimeout time.Duration
	// PongWait is how far a pong extends the read deadline.
	PongWait time.Duration
	// ReadBufferSize and WriteBufferSize are gorilla's I/O buffers. Write
	// buffers come from a pool shared by all connections, so idle
	// connections hold none.
	ReadBufferSize, WriteBufferSize int
	Log                             *slog.Logger

	// AllowedHosts is the Host allow-list, checked on every HTTP request
	// before anything else: host names or IP addresses, matched without
	// case and without the port. "*" or an empty list allows any Host.
	// Other Hosts get HTTP 403 (except on /healthz, which load balancers
	// probe by address). It closes DNS rebinding, since the same-origin
	// check trusts Host. The admin handler also allows LoopbackHosts.
	AllowedHosts []string
	// TrustedProxies are the proxies whose X-Forwarded-For or Forwarded
	// (RFC 7239) header is believed (see ParseTrustedProxies). Behind one,
	// the client address is the right-most address in the header that is
	// not itself trusted; it is what logs, admission limits and
	// Transport.RemoteAddr (so the protocols and ACLs) see. Empty: the
	// headers are ignored.
	TrustedProxies []netip.Prefix

	// MaxConnections caps protocol connections (WebSocket and TCP
	// together); past it a WebSocket upgrade gets HTTP 503 and a TCP
	// connection is closed at once. 0: derived from the process's
	// descriptor limit, 95% of the RLIMIT_NOFILE soft limit (leaving at
	// least 32 descriptors), so ~5% stay in reserve and accept never fails
	// in a loop. Server.Listener closes new sockets past MaxConnections
	// plus a small margin, and never lets sockets reach the limit.
	MaxConnections int
	// MaxConnectionsPerIP caps connections from one source address (an
	// IPv6 client is counted by its /64). Default 1000; -1: off.
	MaxConnectionsPerIP int
	// ConnectRatePerIP is the sustained rate of new connections a source
	// may open, per second, with ConnectBurstPerIP at once. Default 100;
	// -1: off.
	ConnectRatePerIP float64
	// ConnectBurstPerIP is the connection burst a source may open at once.
	// Default 200.
	ConnectBurstPerIP int

	// HTTPIdleTimeout closes idle HTTP keep-alive connections
	// (NewHTTPServer). Default 60s.
	HTTPIdleTimeout time.Duration
	// HTTPReadHeaderTimeout bounds reading a request's header, TLS handshake
	// included (NewHTTPServer). Default 10s.
	HTTPReadHeaderTimeout time.Duration

	socketCap int // Server.Listener's cap, set by withDefaults

	// AdminAuth protects the management API (/api/*): when set, every
	// request needs HTTP Basic credentials or an Authorization: Bearer
	// token whose identity is an admin. nil: the API is open (the
	// zero-config loopback default).
	AdminAuth broker.Authenticator
	// SeparateAdmin removes /api/* from the public handler: it is then
	// served only by AdminHandler, on its own listener (admin_addr).
	SeparateAdmin bool

	// ParkAfter is how long a plain (not TLS) WebSocket connection waits
	// for input with a goroutine before it is parked (Linux): its read
	// loop ends and its read buffers go back to pools, and one shared
	// epoll poller starts a read goroutine again when input arrives, so
	// an idle connection holds no stack (park_linux.go). Busy connections
	// never wait that long. Default 100ms; negative: never park.
	ParkAfter time.Duration

	// Version is the broker's version, shown by /api/v1/overview, the UI
	// and $SYS/broker/version.
	Version string
	// Store, when set, is the broker's store: /api/v1/overview and
	// /metrics show its size and commit latency (store.StatsOf), and
	// /readyz checks it answers.
	Store store.Store
	// CommitLatency, when set, is the histogram the store's
	// Options.OnCommit feeds (NewCommitHistogram, metrics.go): /metrics
	// exports it as duplex_store_commit_seconds. nil: no histogram (the
	// store's other metrics come from store.StatsOf(Store)).
	CommitLatency *CommitHistogram
	// Ready, when set, is one more condition of /readyz: a non-nil error
	// answers 503 with it (the cluster link: not joined yet).
	Ready func() error
	// Collectors are more /metrics collectors (the cluster link's).
	Collectors []prometheus.Collector
	// Cluster is the node's cluster link (apiv1_cluster.go); nil: a
	// single node.
	Cluster ClusterLink
}

func (c Config) withDefaults() Config {
	if len(c.Paths) == 0 {
		c.Paths = []string{"/ws", "/stomp", "/mqtt"}
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ParkAfter == 0 {
		c.ParkAfter = DefaultParkAfter
	}
	if c.PongWait <= 0 {
		c.PongWait = DefaultPongWait
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.WriteBufferSize <= 0 {
		c.WriteBufferSize = DefaultWriteBufferSize
	}
	c.MaxConnections, c.socketCap = admissionLimits(nofileLimit(), c.MaxConnections)
	if c.MaxConnectionsPerIP == 0 {
		c.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if c.ConnectRatePerIP == 0 {
		c.ConnectRatePerIP = DefaultConnectRatePerIP
	}
	if c.ConnectBurstPerIP <= 0 {
		c.ConnectBurstPerIP = DefaultConnectBurstPerIP
	}
	if c.HTTPIdleTimeout <= 0 {
		c.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	if c.HTTPReadHeaderTimeout <= 0 {
		c.HTTPReadHeaderTimeout = DefaultHTTPReadHeaderTimeout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}
