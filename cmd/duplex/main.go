// Command duplex runs the Duplex broker: STOMP (and MQTT) over WebSocket on
// one endpoint, with zero configuration.
//
//	duplex [-addr 127.0.0.1:8080] [-data ./data] [flags]
//
// Every flag can also be set by environment variable DUPLEX_<FLAG> with
// dashes as underscores (DUPLEX_ADDR, DUPLEX_MAX_FRAME_SIZE); a flag given
// on the command line wins. Run duplex -h for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "duplex:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "compact" {
		return compact(args[1:])
	}
	opts, err := parseOptions(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.logLevel}))
	if err := os.MkdirAll(opts.dataDir, 0o755); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}

	dbPath := opts.dbPath
	if dbPath == "" {
		dbPath = filepath.Join(opts.dataDir, "duplex.db")
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

	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	// Plain TCP listeners reuse the protocols, for clients without WebSocket.
	tcp, err := listenTCP([]tcpListener{
		{flag: "-stomp-tcp-addr", addr: opts.stompTCPAddr, proto: stompProto},
		{flag: "-mqtt-tcp-addr", addr: opts.mqttTCPAddr, proto: mqttProto},
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
	fmt.Printf("duplex listening on %s\n", ln.Addr())
	log.Info("duplex started", "addr", ln.Addr().String(), "ws", "ws://"+ln.Addr().String()+"/ws", "data", opts.dataDir)

	if opts.debugAddr != "" {
		go serveDebug(opts.debugAddr, log)
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

// options is everything the command line and environment configure.
type options struct {
	addr         string
	stompTCPAddr string
	mqttTCPAddr  string
	debugAddr    string
	dataDir      string
	dbPath       string
	sync         store.SyncPolicy
	logLevel     slog.Level
	broker       broker.Config
	stomp        stomp.Config
	mqtt         mqtt.Config
	web          web.Config
}

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("duplex", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address (host:port; port 0 picks one)")
	fs.StringVar(&o.dataDir, "data", "data", "data folder")
	fs.StringVar(&o.dbPath, "db", "", "database file (default <data>/duplex.db)")
	syncPolicy := fs.String("sync", "always", "store sync policy: always (fsync before every acknowledgement), or an interval such as 200ms (may lose that much on a power cut)")
	fs.IntVar(&o.broker.MaxOfflineMsgs, "max-session-queue", broker.DefaultMaxOfflineMsgs, "QoS 1/2 messages stored for one persistent MQTT session before new ones are refused")
	fs.Int64Var(&o.broker.MaxOfflineBytes, "max-session-queue-bytes", 0, "payload bytes stored for one persistent MQTT session before new messages are refused (0: no limit)")
	fs.IntVar(&o.broker.MaxQueueBytes, "max-queue-bytes", broker.DefaultMaxQueueBytes, "payload bytes held by one /queue or durable subscription before new messages are refused")
	fs.StringVar(&o.stompTCPAddr, "stomp-tcp-addr", "127.0.0.1:61613", "serve STOMP over plain TCP on this address (empty: off)")
	fs.StringVar(&o.mqttTCPAddr, "mqtt-tcp-addr", "127.0.0.1:1883", "serve MQTT over plain TCP on this address (empty: off)")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (off when empty; keep it on loopback)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	origins := fs.String("allowed-origins", "", "comma-separated Origins allowed besides same-origin (\"*\" for any)")
	maxFrame := fs.Int("max-frame-size", 4<<20, "largest STOMP frame body in bytes")
	fs.IntVar(&o.broker.MaxPendingMsgs, "max-pending-msgs", broker.DefaultMaxPendingMsgs, "deliveries queued per connection before the slow-consumer policy")
	fs.IntVar(&o.broker.MaxPendingBytes, "max-pending-bytes", broker.DefaultMaxPendingBytes, "bytes queued per connection before the slow-consumer policy")
	fs.IntVar(&o.broker.MaxQueueDepth, "max-queue-depth", broker.DefaultMaxQueueDepth, "messages waiting in one /queue before SEND is refused")
	slow := fs.String("slow-consumer", "disconnect", "slow-consumer policy: disconnect, or drop (QoS 0 only)")
	fs.DurationVar(&o.stomp.HeartbeatMin, "heartbeat-min", stomp.DefaultHeartbeatMin, "smallest STOMP heart-beat interval offered and accepted (negative: off)")
	fs.Float64Var(&o.stomp.HeartbeatGrace, "heartbeat-grace", stomp.DefaultHeartbeatGrace, "a client heart-beat may be this many intervals late...")
	fs.DurationVar(&o.stomp.HeartbeatSlack, "heartbeat-slack", stomp.DefaultHeartbeatSlack, "...plus this much (browsers throttle background tabs; negative or 0s: none)")
	sep := fs.String("topic-separator", "/", "STOMP topic level separator: / (as MQTT) or . (RabbitMQ style)")

	fs.VisitAll(func(f *flag.Flag) {
		env := "DUPLEX_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			_ = f.Value.Set(v)
		}
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := o.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	var err error
	if o.sync, err = store.ParseSyncPolicy(*syncPolicy); err != nil {
		return nil, fmt.Errorf("-sync: %w", err)
	}
	if o.broker.SlowConsumer, err = broker.ParseSlowConsumerPolicy(*slow); err != nil {
		return nil, err
	}
	switch *sep {
	case "/", ".":
		o.stomp.TopicSeparator = (*sep)[0]
	default:
		return nil, fmt.Errorf("-topic-separator must be / or ., not %q", *sep)
	}
	if o.stomp.HeartbeatSlack == 0 {
		o.stomp.HeartbeatSlack = -1 // explicit zero: no slack
	}
	if *maxFrame <= 0 {
		return nil, fmt.Errorf("-max-frame-size must be positive")
	}
	o.stomp.Limits.MaxBodyLength = *maxFrame
	o.mqtt.MaxPacketSize = *maxFrame + 64<<10
	o.web.MaxMessageSize = int64(*maxFrame) + 64<<10
	if *origins != "" {
		o.web.AllowedOrigins = strings.Split(*origins, ",")
	}
	return o, nil
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
