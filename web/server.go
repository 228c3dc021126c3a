package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
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
	mux      *http.ServeMux

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	mu      sync.Mutex // guards closing and conns.Add against Shutdown's Wait
	closing bool
	conns   sync.WaitGroup
}

// New returns a gateway that hands each WebSocket connection to the
// protocol in reg chosen by its Sec-WebSocket-Protocol header.
func New(cfg Config, r *broker.Router, reg subprotocol.Registry) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, router: r, reg: reg, mux: http.NewServeMux()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferSize:  cfg.WriteBufferSize,
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin:      s.checkOrigin,
		// Subprotocols stays nil: gorilla would pick in the client's
		// order; ServeHTTP picks in ours and sets the response header.
	}
	for _, p := range cfg.Paths {
		s.mux.HandleFunc(p, s.serveWebSocket)
	}
	s.mux.HandleFunc("GET /api/stats", s.serveStats)
	s.mux.HandleFunc("GET /api/sessions", s.serveSessions)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// serveWebSocket picks the subprotocol before upgrading: no match is HTTP
// 400 naming the supported ones (gorilla would upgrade without one).
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "Duplex: this endpoint speaks WebSocket; connect with one of the subprotocols "+
			strings.Join(s.reg.Names(), ", "), http.StatusBadRequest)
		return
	}
	offered := websocket.Subprotocols(r)
	proto, name := s.reg.Select(offered)
	if proto == nil {
		s.cfg.Log.Info("web: no supported subprotocol", "remote", r.RemoteAddr, "offered", offered)
		http.Error(w, fmt.Sprintf("Duplex: unsupported WebSocket subprotocol %q; supported: %s",
			strings.Join(offered, ", "), strings.Join(s.reg.Names(), ", ")), http.StatusBadRequest)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, http.Header{"Sec-Websocket-Protocol": {name}})
	if err != nil {
		s.cfg.Log.Info("web: upgrade failed", "remote", r.RemoteAddr, "err", err)
		return // the upgrader has answered
	}
	ws.SetReadLimit(s.cfg.MaxMessageSize)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(subprotocol.CloseGoingAway, "server shutting down"), time.Now().Add(s.cfg.WriteTimeout))
		ws.Close()
		return
	}
	s.conns.Add(1)
	s.mu.Unlock()
	// Serve on a fresh goroutine and let net/http's return: its grown stack,
	// its 4 KiB read buffer and the request are then garbage, which is most
	// of what an idle connection would otherwise hold.
	go s.serveConn(ws, proto)
}

// serveConn runs one upgraded connection to its end.
func (s *Server) serveConn(ws *websocket.Conn, proto subprotocol.Protocol) {
	defer s.conns.Done()
	t := newTransport(ws, &s.cfg)
	if err := proto.Serve(s.ctx, t, s.router); err != nil {
		s.cfg.Log.Debug("web: connection ended", "remote", ws.RemoteAddr().String(), "protocol", proto.Name(), "err", err)
	}
	t.linger()
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
	s.cfg.Log.Info("web: origin refused", "remote", r.RemoteAddr, "origin", origin)
	return false
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.router.Stats())
}

func (s *Server) serveSessions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.router.Sessions())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
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
