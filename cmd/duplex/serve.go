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
	close    func() error // forced stop after shutdown ran out of time (nil: none)
}

// serve runs the broker until SIGTERM or SIGINT; SIGHUP reloads users,
// ACLs, JWT keys and TLS certificates.
func serve(opts *options, stdout, stderr io.Writer) error {
	// Signals are caught before the broker says it is ready (before the
	// store is even opened): a SIGTERM at any moment after the first line
	// is a graceful shutdown (acknowledgements flushed, the store closed).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once the first signal has started the shutdown, a second one (Ctrl-C
	// again) gets the default action: the process ends at once.
	context.AfterFunc(ctx, stop)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return runBroker(ctx, hup, opts, stdout, stderr)
}

// newLogger is the broker's logger on w: log_level, and log_format text
// (key=value) or json (one object a line).
func newLogger(opts *options, w io.Writer) *slog.Logger {
	ho := &slog.HandlerOptions{Level: opts.logLevel}
	if opts.v.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// runBroker is the broker: it runs until ctx is done and reloads on every
// value from hup.
func runBroker(ctx context.Context, hup <-chan os.Signal, opts *options, stdout, stderr io.Writer) error {
	log := newLogger(opts, stderr)
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
	// The store's commit durations feed /metrics (duplex_store_commit_seconds).
	commits := web.NewCommitHistogram()
	st, err := store.Open(dbPath, store.Options{Sync: opts.sync, OnCommit: commits.Observe})
	if err != nil {
		return err
	}
	opts.broker.Store = st
	node, err := startCluster(opts, log) // nil without [cluster]
	if err != nil {
		_ = st.Close()
		return err
	}
	if node != nil {
		opts.broker.Peers = node
	}
	router := broker.New(opts.broker, log)
	// fail undoes the start on an error before the listeners serve.
	fail := func(err error) error {
		if node != nil {
			node.Close()
		}
		router.Stop()
		_ = st.Close()
		return err
	}
	loaded, err := router.Restore()
	if err != nil {
		return fail(fmt.Errorf("loading %s: %w", dbPath, err))
	}
	log.Info("store loaded", "file", dbPath, "sync", opts.sync.String(),
		"sessions", loaded.Sessions, "subscriptions", loaded.Subs, "queued", loaded.Queued,
		"queue_msgs", loaded.QueueMsgs, "retained", loaded.Retained, "wills", loaded.Wills,
		"removed", loaded.Removed, "took", loaded.Took.Round(time.Millisecond))
	opts.stomp.Log = log
	opts.mqtt.Log = log
	opts.web.Log = log
	opts.web.Version = versionString()
	opts.web.Store = st
	opts.web.CommitLatency = commits
	var link *clusterLink
	if node != nil {
		if err := node.Start(router); err != nil {
			return fail(err)
		}
		opts.web.Ready = node.Ready
		opts.web.Collectors = append(opts.web.Collectors, newClusterCollector(node))
		link = &clusterLink{Node: node} // cluster_admin.go: the admin API's cluster view
		opts.web.Cluster = link
	}
	stompProto := stomp.New(opts.stomp)
	mqttProto := mqtt.New(opts.mqtt)
	gateway := web.New(opts.web, router, subprotocol.Registry{stompProto, mqttProto})

	lns, err := openListeners(opts, gateway, sec, stompProto, mqttProto)
	if err != nil {
		return fail(err)
	}
	for _, l := range lns {
		fmt.Fprintf(stdout, "duplex %s on %s\n", l.name, l.ln.Addr())
	}
	if link != nil {
		link.setListeners(lns)
	}
	log.Info("duplex started", "version", versionString(), "data", opts.v.Data,
		"auth", opts.authConfigured(), "anonymous", opts.anonymousAllowed(), "admin_open", opts.adminOpen())
	if opts.v.DebugAddr != "" {
		go serveDebug(opts.v.DebugAddr, log)
	}
	sysCtx, cancelSys := context.WithCancel(context.Background())
	// stopSys stops the background publishers: $SYS, and the cluster link
	// (after the clients left, before the router stops).
	stopSys := func() {
		cancelSys()
		if node != nil {
			node.Close()
		}
	}
	defer stopSys()
	sysDone := make(chan struct{})
	go func() {
		defer close(sysDone)
		gateway.RunSys(sysCtx, opts.v.SysInterval)
	}()

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
	// Every listener is open (the kernel queues connections from here on)
	// and served.
	gateway.SetReady(true)
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
	if err := shutdown(ctx, log, opts.v.ShutdownGrace, gateway, router, st, lns, stopSys, sysDone); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// shutdown stops the broker within grace, in this order:
//
//  1. /readyz answers 503 and every listener is closed, so new
//     connections are refused at once (a load balancer stops sending them);
//  2. every client is told (router.Shutdown, through the gateway: STOMP
//     ERROR "server shutting down", MQTT 5 DISCONNECT 0x8B, MQTT 3 a closed
//     connection) and its connection is waited for; HTTP requests in flight
//     finish; the $SYS publisher stops;
//  3. pending acknowledgements are flushed to the store (router.Stop) and
//     the store is closed.
//
// Steps 1 and 2 get four fifths of grace, step 3 what is left of it; a
// step that runs out is logged and the broker exits anyway (whatever the
// store committed is safe: an acknowledgement not yet flushed means the
// message is delivered again). The error is the store's Close only: a
// signal-driven stop exits 0 otherwise.
func shutdown(ctx context.Context, log *slog.Logger, grace time.Duration, gateway *web.Server, router *broker.Router,
	st store.Store, lns []openListener, stopSys context.CancelFunc, sysDone <-chan struct{}) error {
	began := time.Now()
	deadline := began.Add(grace)
	why := "listener failed"
	if ctx.Err() != nil {
		why = context.Cause(ctx).Error()
	}
	gateway.SetReady(false)
	for _, l := range lns {
		_ = l.ln.Close()
	}
	log.Info("duplex shutting down", "cause", why, "grace", grace, "hint", "a second SIGINT or SIGTERM stops at once")

	cctx, cancel := context.WithDeadline(context.Background(), began.Add(grace-grace/5))
	defer cancel()
	clean := true
	if err := gateway.Shutdown(cctx); err != nil {
		log.Warn("shutdown grace ran out while clients disconnected; closing the rest", "err", err)
		clean = false
	}
	for _, l := range lns {
		if l.shutdown == nil {
			continue
		}
		// The listener is closed above: Shutdown closing it again (when
		// Serve has not returned yet) reports net.ErrClosed, which is no
		// grace running out.
		if err := l.shutdown(cctx); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Warn("shutdown grace ran out while HTTP requests finished; closing them", "listener", l.key, "err", err)
			clean = false
			if l.close != nil {
				_ = l.close()
			}
		}
	}
	stopSys()
	select {
	case <-sysDone:
	case <-cctx.Done():
	}

	// The store: flush, then close, within what is left of grace.
	stored := make(chan error, 1)
	go func() {
		router.Stop() // flushes pending acknowledgements to the store
		stored <- st.Close()
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var err error
	select {
	case err = <-stored:
		if err != nil {
			log.Error("closing the store", "err", err)
			clean = false
		}
	case <-timer.C:
		log.Error("shutdown grace ran out before the store was closed; exiting anyway (committed data is safe, unflushed acknowledgements mean redeliveries)",
			"grace", grace)
		clean = false
	}
	log.Info("duplex stopped", "took", time.Since(began).Round(time.Millisecond), "clean", clean)
	return err
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
			serve: func() error { return srv.Serve(wrapped) }, shutdown: srv.Shutdown, close: srv.Close})
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
