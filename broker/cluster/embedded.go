package cluster

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbedded starts this node's in-process NATS server: a route
// listener on Listen and routes to Peers, JetStream on when c.StoreDir is
// set (jetStreamOptions). The node's connection is in-process
// (nats.InProcessServer). nats-server starts its routes only once its
// client listener is up (StartRouting waits for it; with DontListen it
// never starts them), so there is one, on a random loopback port, and it
// takes only the user and password made up here (clientUser), which the
// node's connection presents.
func startEmbedded(c Config, clientUser, clientPass string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster.listen: %w", err)
	}
	port, _ := strconv.Atoi(portStr)
	opts := &server.Options{
		ServerName: c.NodeID,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		Username:   clientUser,
		Password:   clientPass,
		NoSigs:     true,
		MaxPayload: int32(c.MaxPayload),
		// The node's own connection may hold a whole burst of large
		// messages; the server closes a client past MaxPending.
		MaxPending: int64(max(64<<20, 8*c.MaxPayload)),
		Cluster: server.ClusterOpts{
			Name:     c.Name,
			Host:     host,
			Port:     port,
			Username: c.User,
			Password: c.Password,
		},
	}
	if c.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: c.TLSCert, KeyFile: c.TLSKey, CaFile: c.TLSCA, Verify: c.TLSCA != "",
		})
		if err != nil {
			return nil, fmt.Errorf("cluster.tls_cert: %w", err)
		}
		// As nats-server's own cluster config does (getTLSConfig): a node
		// is server and client of its routes, so the CA verifies both
		// ways, and a CA makes client certificates required.
		tc.RootCAs = tc.ClientCAs
		if c.TLSCA != "" {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts.Cluster.TLSConfig = tc
		opts.Cluster.TLSTimeout = 5
	}
	jetStreamOptions(c, opts)
	for _, p := range c.Peers {
		u := &url.URL{Scheme: "nats-route", Host: p}
		if c.User != "" {
			u.User = url.UserPassword(c.User, c.Password)
		}
		opts.Routes = append(opts.Routes, u)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS server: %w", err)
	}
	srv.SetLogger(natsLogger{c.Log.With("nats", c.NodeID)}, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("cluster.listen %s: the embedded NATS server did not start (address in use?)", c.Listen)
	}
	return srv, nil
}

// natsLogger writes the embedded server's log through slog: notices and
// debug at Debug (the node logs joins and losses itself); trace is off.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }

// Warnf: the node's own client password is made up per run, plain text is
// fine for it.
func (n natsLogger) Warnf(format string, v ...any) {
	if strings.HasPrefix(format, "Plaintext passwords detected") {
		return
	}
	msg := fmt.Sprintf(format, v...)
	if jsStartupNoise(msg) {
		n.l.Debug(msg)
		return
	}
	n.l.Warn(msg)
}

// Errorf: a peer not up yet is normal while a cluster starts (the server
// retries; Node.Ready says whether any route is up).
func (n natsLogger) Errorf(format string, v ...any) {
	if strings.HasPrefix(format, "Error trying to connect to route") {
		n.l.Debug(fmt.Sprintf(format, v...))
		return
	}
	n.l.Error(fmt.Sprintf(format, v...))
}
func (n natsLogger) Debugf(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(string, ...any)          {}
