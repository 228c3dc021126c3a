// Command duplex runs the Duplex broker: STOMP and MQTT over WebSocket on
// one endpoint, and over TCP and TLS, with zero configuration.
//
//	duplex [-config duplex.toml] [-addr 127.0.0.1:8080] [-data ./data] [flags]
//	duplex config check FILE
//	duplex passwd [-b] FILE USER [PASSWORD] | duplex passwd -D FILE USER
//	duplex compact [-data DIR | -db FILE]
//
// Every setting is a key of the TOML config file, a flag and an environment
// variable DUPLEX_<FLAG> with dashes as underscores (DUPLEX_ADDR,
// DUPLEX_MAX_FRAME_SIZE). Built-in defaults < the file < the environment <
// flags. settingsTable (table.go) lists them all; run duplex -h for the
// list, and see duplex.example.toml.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
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

func main() {
	os.Exit(exitCode(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr), os.Stderr))
}

// exitCode prints err and maps it to the exit status: 0 for success and
// help, 2 for a mistake on the command line, 1 for everything else.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "duplex:", err)
		fmt.Fprintln(stderr, "Run duplex -h for help.")
		return 2
	default:
		fmt.Fprintln(stderr, "duplex:", err)
		return 1
	}
}

// run is the whole command: a subcommand, or the broker.
func run(args []string, env lookupEnv, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "compact":
			return runCompact(args[1:], stdout, stderr)
		case "passwd":
			return runPasswd(args[1:], os.Stdin, stdout, stderr)
		case "config":
			if len(args) < 2 || args[1] != "check" {
				return usagef("usage: duplex config check FILE")
			}
			return runConfigCheck(args[2:], stdout, stderr)
		case "help":
			printUsage(stdout)
			return nil
		case "version":
			fmt.Fprintln(stdout, versionString())
			return nil
		}
	}
	opts, err := parseOptions(args, env)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return err
	}
	if err != nil {
		return err
	}
	if opts.version {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	if err := opts.checkExposure(); err != nil {
		return err
	}
	return serve(opts, stdout, stderr)
}

// serve runs the broker until SIGTERM or SIGINT.
func serve(opts *options, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.logLevel}))
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

	ln, err := net.Listen("tcp", opts.v.Addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	// Plain TCP listeners reuse the protocols, for clients without WebSocket.
	tcp, err := listenTCP([]tcpListener{
		{flag: "stomp_tcp_addr", addr: opts.v.StompTCPAddr, proto: stompProto},
		{flag: "mqtt_tcp_addr", addr: opts.v.MQTTTCPAddr, proto: mqttProto},
	})
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: gateway, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	// Signals are caught before the broker says it is ready: a SIGTERM at
	// any moment after that line is a graceful shutdown (acknowledgements
	// flushed, the store closed).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "duplex listening on %s\n", ln.Addr())
	log.Info("duplex started", "addr", ln.Addr().String(), "ws", "ws://"+ln.Addr().String()+"/ws", "data", opts.v.Data)

	if opts.v.DebugAddr != "" {
		go serveDebug(opts.v.DebugAddr, log)
	}

	for _, l := range tcp {
		log.Info("tcp listener", "protocol", l.proto.Name(), "addr", l.ln.Addr().String())
	}

	errc := make(chan error, 1+len(tcp))
	go func() { errc <- srv.Serve(ln) }()
	for _, l := range tcp {
		go func() { errc <- gateway.ServeTCP(l.ln, l.proto) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("duplex shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := gateway.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	router.Stop() // flushes pending acknowledgements to the store
	return st.Close()
}

// serveDebug serves net/http/pprof on its own listener, never on the public
// address.
func serveDebug(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("debug profiles", "addr", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("debug listener", "err", err)
	}
}

// tcpListener is one plain-TCP listener and the protocol it serves.
type tcpListener struct {
	flag, addr string
	proto      subprotocol.Protocol
	ln         net.Listener
}

// listenTCP opens every listener with an address; on an error it closes
// the ones already open.
func listenTCP(want []tcpListener) ([]tcpListener, error) {
	var open []tcpListener
	for _, l := range want {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, o := range open {
				o.ln.Close()
			}
			return nil, fmt.Errorf("%s: %w", l.flag, err)
		}
		l.ln = ln
		open = append(open, l)
	}
	return open, nil
}
