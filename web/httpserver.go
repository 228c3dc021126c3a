package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"log"
	"log/slog"
	"net/http"
)

// NewHTTPServer returns an http.Server for h (the Server, or its
// AdminHandler) with c's limits: idle keep-alive connections are closed
// after HTTPIdleTimeout, a request's header (and a TLS handshake) must
// arrive within HTTPReadHeaderTimeout and fit in 16 KiB, and net/http's own
// errors go to c.Log (TLS handshake failures at debug level, as scanners
// make many). There is no read or write timeout: upgraded WebSocket
// connections set their own deadlines. HTTP/2 is off (WebSocket upgrades
// need HTTP/1.1), even under ServeTLS; serve TLS with
//
//	hs.Serve(tls.NewListener(gw.Listener(ln), reloader.Config()))
//
// so that Server.Listener counts the sockets and a certificate reload
// reaches new handshakes.
//
// When h is the Server or its AdminHandler, failed TLS handshakes are
// counted in AdmissionStats.TLSHandshakeFailures.
func NewHTTPServer(h http.Handler, c Config) *http.Server {
	c = c.withDefaults()
	w := &errorLogWriter{log: c.Log}
	switch h := h.(type) {
	case *Server:
		w.adm = h.adm
	case *front:
		w.adm = h.s.adm
	}
	return &http.Server{
		Handler:           h,
		IdleTimeout:       c.HTTPIdleTimeout,
		ReadHeaderTimeout: c.HTTPReadHeaderTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ErrorLog:          log.New(w, "", 0),
		// A non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
}

// errorLogWriter turns net/http's ErrorLog lines into slog records.
type errorLogWriter struct {
	log *slog.Logger
	adm *admission // counts TLS handshake failures; may be nil
}

func (w *errorLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelWarn
	if bytes.Contains(p, []byte("TLS handshake error")) {
		level = slog.LevelDebug
		if w.adm != nil {
			w.adm.tlsFailures.Add(1)
		}
	}
	w.log.Log(context.Background(), level, "web: http server", "err", msg)
	return len(p), nil
}
