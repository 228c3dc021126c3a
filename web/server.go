package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// Server is Duplex's HTTP side: the WebSocket gateway on Config.Paths and a
// small JSON status API. It implements http.Handler.
type Server struct {
	cfg      Config
	router   *broker.Router
	reg      subprotocol.Registry
	upgrader websocket.Upgrader
	public   http.Handler // ServeHTTP: Host check, client address, public mux
	admin    http.Handler // AdminHandler
	adm      *admission
	reqLog   subprotocol.LogLimiter // refused requests: one line per source per 10 s
	readBufs readBuffers            // parked connections' read buffers (wsTransport.WaitRead)
	parked   atomic.Int64           // connections parked now (park_linux.go)

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	// The management plane (issue 9). started is New's time (uptime);
	// ready is set by the integrator once the listeners are up (/readyz).
	started time.Time
	ready   atomic.Bool
	hist    *history     // live.go/history.go: the sampler behind the charts
	logins  *loginStore  // login.go: admin UI sessions (cookie, CSRF token)
	metrics http.Handler // metrics.go: /metrics

	mu      sync.Mutex // guards closing and conns.Add against Shutdown's Wait
	closing bool
	conns   sync.WaitGroup
}

// New returns a gateway that hands each WebSocket connection to the
// protocol in reg chosen by its Sec-WebSocket-Protocol header.
func New(cfg Config, r *broker.Router, reg subprotocol.Registry) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, router: r, reg: reg}
	s.adm = newAdmission(&s.cfg)
	s.readBufs.size = max(cfg.ReadBufferSize, minReadBuffer)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.started = time.Now()
	s.initConsole()
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		// ReadBufferSize stays 0: gorilla then keeps the read buffer of
		// cfg.ReadBufferSize bytes that sniffingWriter hands it.
		WriteBufferSize: cfg.WriteBufferSize,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
		// Subprotocols stays nil: gorilla would pick in the client's
		// order; ServeHTTP picks in ours and sets the response header.
	}
	api := s.apiHandler()
	healthz := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	mux := http.NewServeMux()
	for _, p := range cfg.Paths {
		dflt := protocolNamed(reg, path.Base(p))
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { s.serveWebSocket(w, r, dflt) })
	}
	if !cfg.SeparateAdmin {
		mux.Handle("/api/", api)
		s.consoleRoutes(mux)
	}
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", s.serveReadyz)
	s.public = &front{s: s, hosts: newHostList(cfg.AllowedHosts), next: mux}

	amux := http.NewServeMux()
	amux.Handle("/api/", api)
	s.consoleRoutes(amux)
	amux.HandleFunc("GET /healthz", healthz)
	amux.HandleFunc("GET /readyz", s.serveReadyz)
	adminHosts := newHostList(cfg.AllowedHosts)
	if !adminHosts.any {
		adminHosts = newHostList(cfg.AllowedHosts, LoopbackHosts)
	}
	s.admin = &front{s: s, hosts: adminHosts, next: amux}
	return s
}

// ServeHTTP implements http.Handler: the WebSocket gateway on Config.Paths,
// /healthz, and the management API under /api/ unless
// Config.SeparateAdmin. Every request first passes the Host allow-list.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.public.ServeHTTP(w, r) }

// AdminHandler serves the management API (/api/*, protected by
// Config.AdminAuth) and /healthz, for a listener of its own (admin_addr).
// Its Host allow-list is Config.AllowedHosts plus LoopbackHosts.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// serveWebSocket picks the subprotocol before upgrading: no match is HTTP
// 400 naming the supported ones (gorilla would upgrade without one). A
// request that offers no subprotocol at all gets dflt, the protocol its
// path is named after (/stomp, /mqtt), when there is one, as RabbitMQ
// Web-STOMP does for legacy clients (new WebSocket(url), Stomp.over(ws)):
// the protocol then reads the version from CONNECT, as over TCP.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, dflt subprotocol.Protocol) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "Duplex: this endpoint speaks WebSocket; connect with one of the subprotocols "+
			strings.Join(s.reg.Names(), ", "), http.StatusBadRequest)
		return
	}
	offered := websocket.Subprotocols(r)
	proto, name := s.reg.Select(offered)
	if proto == nil && len(offered) == 0 {
		proto = dflt
	}
	if proto == nil {
		s.logRequest(r, "web: no supported subprotocol", "offered", offered)
		if len(offered) == 0 {
			http.Error(w, fmt.Sprintf("Duplex: no WebSocket subprotocol offered; supported: %s",
				strings.Join(s.reg.Names(), ", ")), http.StatusBadRequest)
			return
		}
		http.Error(w, fmt.Sprintf("Duplex: unsupported WebSocket subprotocol %q; supported: %s",
			strings.Join(offered, ", "), strings.Join(s.reg.Names(), ", ")), http.StatusBadRequest)
		return
	}
	// r.RemoteAddr is the client after trusted proxies (front).
	client, _ := netip.ParseAddrPort(r.RemoteAddr)
	if why := s.adm.admit(client.Addr()); why != admitted {
		w.Header().Set("Retry-After", s.adm.retryAfter(why))
		http.Error(w, refusalText(why), http.StatusServiceUnavailable)
		return
	}
	peer := subprotocol.Peer{Transport: "ws", Token: r.URL.Query().Get("access_token")}
	if r.TLS != nil {
		peer.Transport = "wss"
		peer.CertNames = certNames(r.TLS)
	}
	sw := &sniffingWriter{ResponseWriter: w, bufs: &s.readBufs}
	var hdr http.Header
	if name != "" {
		hdr = http.Header{"Sec-Websocket-Protocol": {name}}
	}
	ws, err := s.upgrader.Upgrade(sw, r, hdr)
	if err != nil {
		s.adm.release(client.Addr())
		s.logRequest(r, "web: upgrade failed", "err", err)
		return // the upgrader has answered
	}
	ws.SetReadLimit(s.cfg.MaxMessageSize)
	promoteSocket(ws.UnderlyingConn()) // counted as a connection now
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.adm.release(client.Addr())
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(subprotocol.CloseGoingAway, "server shutting down"), time.Now().Add(s.cfg.WriteTimeout))
		ws.Close()
		return
	}
	s.conns.Add(1)
	s.mu.Unlock()
	var remote net.Addr // nil: the socket's peer, which needs no copy
	if client.IsValid() {
		if ra, ok := ws.RemoteAddr().(*net.TCPAddr); !ok || ra.AddrPort().Addr().Unmap() != client.Addr() || ra.Port != int(client.Port()) {
			remote = tcpAddr(client)
		}
	}
	t := newTransport(ws, &s.cfg, remote, peer, sw.sniffer)
	if sw.br != nil {
		t.br, t.bufs = sw.br, &s.readBufs
		if s.cfg.ParkAfter > 0 {
			t.srv, t.proto, t.ip = s, proto, client.Addr()
			t.parkTicks = parkTicksFor(s.cfg.ParkAfter)
			if p := getPoller(); p != nil {
				p.register(t, sw.sniffer.Conn)
			}
		}
	}
	// Serve on a fresh goroutine and let net/http's return: its grown stack,
	// its 4 KiB read buffer and the request are then garbage, which is most
	// of what an idle connection would otherwise hold.
	go s.serveConn(t, proto, client.Addr())
}

// protocolNamed returns the protocol in reg called name (Protocol.Name),
// or nil.
func protocolNamed(reg subprotocol.Registry, name string) subprotocol.Protocol {
	for _, p := range reg {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// logRequest logs a refused request at info level, at most one line per
// source per 10 s. It names the path, never the query (which may hold an
// access_token).
func (s *Server) logRequest(r *http.Request, msg string, args ...any) {
	ok, suppressed := s.reqLog.Allow(hostOf(r.RemoteAddr), time.Now())
	if !ok {
		return
	}
	args = append([]any{"remote", r.RemoteAddr, "path", r.URL.Path}, args...)
	s.cfg.Log.Info(msg, append(args, "suppressed", suppressed)...)
}

// refusalText is the body of an HTTP 503 admission refusal.
func refusalText(why refusal) string {
	switch why {
	case refusedPerIP:
		return "Duplex: too many connections from your address (limits.max_connections_per_ip); try again later"
	case refusedRate:
		return "Duplex: connecting too fast from your address (limits.connect_rate_per_ip); try again later"
	}
	return "Duplex: the server is at its connection limit (limits.max_connections); try again later"
}

// serveConn runs one upgraded connection to its end, or until it is
// parked (subprotocol.ErrParked: wsTransport.resumed ends it). Its frame
// is at the bottom of every waiting connection's stack, so it keeps it
// small: no defers, the rest in connEnded.
func (s *Server) serveConn(t *wsTransport, proto subprotocol.Protocol, ip netip.Addr) {
	err := proto.Serve(s.ctx, t, s.router)
	if err == subprotocol.ErrParked {
		return
	}
	s.connEnded(t, proto, ip, err)
}

//go:noinline
func (s *Server) connEnded(t *wsTransport, proto subprotocol.Protocol, ip netip.Addr, err error) {
	defer s.conns.Done()
	defer s.adm.release(ip)
	if err != nil {
		s.cfg.Log.Debug("web: connection ended", "remote", t.remote.String(), "protocol", proto.Name(), "err", err)
	}
	t.linger()
	t.releaseBuffers()
	if t.ps != nil {
		getPoller().release(t)
	}
}

// checkOrigin allows requests without Origin (non-browser clients),
// same-origin requests and the configured allow-list ("*" for any).
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if slices.Contains(s.cfg.AllowedOrigins, "*") || slices.Contains(s.cfg.AllowedOrigins, origin) {
		return true
	}
	s.logRequest(r, "web: origin refused", "origin", origin)
	return false
}

// Shutdown closes every session (they send their final frames) and waits
// for connection handlers to return or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	_ = s.router.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
