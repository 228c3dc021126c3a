package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/store"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/mqtt"
	"github.com/duplexmq/duplex/subprotocol/stomp"
	"github.com/duplexmq/duplex/web"
)

// openListener is one listening socket and what it serves.
type openListener struct {
	key  string // config key, for errors
	name string // in the startup line: "duplex <name> listening on ADDR"
	ln   net.Listener
	// serve runs until the listener closes; shutdown is its graceful stop
	// (nil: the gateway's Shutdown stops it).
	serve    func() error
	shutdown func(context.Context) error
}

// serve runs the broker until SIGTERM or SIGINT; SIGHUP reloads users,
// ACLs, JWT keys and TLS certificates.
func serve(opts *options, stdout, stderr io.Writer) error {
	// Signals are caught before the broker says it is ready (before the
	// store is even opened): a SIGTERM at any moment after the first line
	// is a graceful shutdown (acknowledgements flushed, the store closed).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return runBroker(ctx, hup, opts, stdout, stderr)
}

// runBroker is the broker: it runs until ctx is done and reloads on every
// value from hup.
func runBroker(ctx context.Context, hup <-chan os.Signal, opts *options, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.logLevel}))
	if opts.v.DebugAddr != "" && !isLoopback(opts.v.DebugAddr) {
		log.Warn("debug_addr is not a loopback address: anyone who reaches it can read profiles", "debug_addr", opts.v.DebugAddr)
	}
	if len(opts.v.Web.TrustedProxies) > 0 && opts.anonymousAllowed() {
		log.Warn("web.trusted_proxies is set and anonymous clients are allowed: clients behind the proxy connect without a login (set password_file or allow_anonymous = false)")
	}
	// The files first: a bad password file or certificate fails before the
	// store is opened.
	sec, err := newSecurity(opts, log)
	if err != nil {
		return err
	}
	sec.wire(opts)

	if err := os.MkdirAll(opts.v.Data, 0o755); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	dbPath := opts.v.DB
	if dbPath == "" {
		dbPath = filepath.Join(opts.v.Data, "duplex.db")
	}
	st, err := store.Open(dbPath, store.Options{Sync: opts.sync})
	if err != nil {
		return err
	}
	defer st.Close()
	opts.broker.Store = st
	router := broker.New(opts.broker, log)
	loaded, err := router.Restore()
	if err != nil {
		return fmt.Errorf("loading %s: %w", dbPath, err)
	}
	log.Info("store loaded", "file", dbPath, "sync", opts.sync.String(),
		"sessions", loaded.Sessions, "subscriptions", loaded.Subs, "queued", loaded.Queued,
		"queue_msgs", loaded.QueueMsgs, "retained", loaded.Retained, "wills", loaded.Wills,
		"removed", loaded.Removed, "took", loaded.Took.Round(time.Millisecond))
	opts.stomp.Log = log
	opts.mqtt.Log = log
	opts.web.Log = log
	stompProto := stomp.New(opts.stomp)
	mqttProto := mqtt.New(opts.mqtt)
	gateway := web.New(opts.web, router, subprotocol.Registry{stompProto, mqttProto})

	lns, err := openListeners(opts, gateway, sec, stompProto, mqttProto)
	if err != nil {
		router.Stop()
		return err
	}
	for _, l := range lns {
		fmt.Fprintf(stdout, "duplex %s on %s\n", l.name, l.ln.Addr())
	}
	log.Info("duplex started", "version", versionString(), "data", opts.v.Data,
		"auth", opts.authConfigured(), "anonymous", opts.anonymousAllowed(), "admin_open", opts.adminOpen())
	if opts.v.DebugAddr != "" {
		go serveDebug(opts.v.DebugAddr, log)
	}

	errc := make(chan error, len(lns))
	for _, l := range lns {
		go func() {
			err := l.serve()
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, web.ErrServerClosed) {
				err = fmt.Errorf("%s: %w", l.key, err)
			} else {
				err = nil
			}
			errc <- err
		}()
	}
	var serveErr error
loop:
	for {
		select {
		case err := <-errc:
			if err != nil {
				serveErr = err
				break loop
			}
		case <-hup:
			if err := sec.reload(); err != nil {
				log.Error("reload failed", "err", err)
			} else {
				log.Info("reload done")
			}
		case <-ctx.Done():
			break loop
		}
	}
	log.Info("duplex shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range lns {
		if l.shutdown != nil {
			_ = l.shutdown(sctx)
		}
	}
	if err := gateway.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) && serveErr == nil {
		serveErr = err
	}
	router.Stop() // flushes pending acknowledgements to the store
	if err := st.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// openListeners opens every configured listener, in the order of the
// startup lines, each counted by the gateway's admission control (under
// TLS, so a refused socket costs no handshake). On an error it closes the
// ones already open and names the key.
func openListeners(opts *options, gw *web.Server, sec *security, stompProto, mqttProto subprotocol.Protocol) ([]openListener, error) {
	v := &opts.v
	var open []openListener
	fail := func(key string, err error) ([]openListener, error) {
		for _, l := range open {
			l.ln.Close()
		}
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	// listen opens addr with admission control (gw.Listener) and, when
	// useTLS, TLS on top; ln is the raw listener, for its address and Close.
	listen := func(addr string, useTLS bool) (ln, wrapped net.Listener, err error) {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, nil, err
		}
		wrapped = gw.Listener(ln)
		if useTLS {
			wrapped = tls.NewListener(wrapped, sec.tls.Config())
		}
		return ln, wrapped, nil
	}
	httpServer := func(key, name, addr string, h http.Handler, useTLS bool) error {
		if addr == "" {
			return nil
		}
		ln, wrapped, err := listen(addr, useTLS)
		if err != nil {
			return err
		}
		srv := web.NewHTTPServer(h, opts.web)
		open = append(open, openListener{key: key, name: name, ln: ln,
			serve: func() error { return srv.Serve(wrapped) }, shutdown: srv.Shutdown})
		return nil
	}
	tcpServer := func(key, name, addr string, proto subprotocol.Protocol, useTLS bool) error {
		if addr == "" {
			return nil
		}
		ln, wrapped, err := listen(addr, useTLS)
		if err != nil {
			return err
		}
		open = append(open, openListener{key: key, name: name, ln: ln,
			serve: func() error { return gw.ServeTCP(wrapped, proto) }})
		return nil
	}
	steps := []struct {
		key string
		do  func() error
	}{
		{"addr", func() error { return httpServer("addr", "listening", v.Addr, gw, false) }},
		{"tls.wss_addr", func() error { return httpServer("tls.wss_addr", "wss listening", v.TLS.WSSAddr, gw, true) }},
		{"admin_addr", func() error {
			return httpServer("admin_addr", "admin listening", v.AdminAddr, gw.AdminHandler(), false)
		}},
		{"mqtt_tcp_addr", func() error { return tcpServer("mqtt_tcp_addr", "mqtt-tcp listening", v.MQTTTCPAddr, mqttProto, false) }},
		{"tls.mqtt_tls_addr", func() error {
			return tcpServer("tls.mqtt_tls_addr", "mqtt-tls listening", v.TLS.MQTTTLSAddr, mqttProto, true)
		}},
		{"stomp_tcp_addr", func() error {
			return tcpServer("stomp_tcp_addr", "stomp-tcp listening", v.StompTCPAddr, stompProto, false)
		}},
		{"tls.stomp_tls_addr", func() error {
			return tcpServer("tls.stomp_tls_addr", "stomp-tls listening", v.TLS.StompTLSAddr, stompProto, true)
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fail(s.key, err)
		}
	}
	return open, nil
}
