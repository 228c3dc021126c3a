package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Config is a node's cluster configuration (the [cluster] section). The
// zero value is no cluster: Enabled reports false and the integrator
// leaves broker.Config.Peers nil.
type Config struct {
	// Name is the cluster's name: the NATS cluster name of the embedded
	// servers and a token of every subject, so that two Duplex clusters
	// may share one external NATS. Empty: "duplex".
	Name string

	// Embedded mode: Listen is this node's NATS route address
	// (host:port), Peers the route addresses of the other nodes.
	Listen string
	Peers  []string

	// External mode: NATSURLs are the URLs of an existing NATS cluster
	// (nats://host:4222, tls://…); the embedded server stays off.
	NATSURLs []string

	// TLS: in embedded mode TLSCert and TLSKey are the routes'
	// certificate (both ways) and TLSCA verifies the other nodes'; in
	// external mode TLSCA verifies the NATS servers and TLSCert/TLSKey are
	// an optional client certificate.
	TLSCert, TLSKey, TLSCA string
	// User and Password authenticate routes (embedded: every node must
	// have the same) or the connection to NATS (external).
	User, Password string
	// Credentials is a NATS credentials file (JWT and seed), external
	// mode only.
	Credentials string

	// NodeID names this node in logs, metrics and headers, and is the
	// embedded server's name (unique in the cluster). Empty: Name@Listen
	// in embedded mode (the host name for an unspecified listen host),
	// Name@ and a random id in external mode.
	NodeID string
	// MaxPayload is the largest message payload carried (the embedded
	// server's max_payload; an external NATS has its own, 1 MiB by
	// default). Larger messages are dropped and counted. 0: 8 MiB.
	MaxPayload int
	// ForwardQueue is how many messages may wait to be published to NATS
	// before Forward drops (0: 8192); ReceiveQueue how many received ones
	// may wait for the router (0: 65536; beyond, NATS drops them as a
	// slow consumer, counted).
	ForwardQueue, ReceiveQueue int
	// ClaimWait bounds how long a connection's Open waits for the node
	// holding its client id to hand the session over (session.go); 0:
	// DefaultClaimWait.
	ClaimWait time.Duration

	// StoreDir is the embedded server's JetStream folder (<data>/nats);
	// empty: JetStream off in embedded mode (retained messages then reach
	// only the nodes up when they are published). Replicas is the
	// replication factor of the node's JetStream streams; 0: min(3,
	// nodes) (jetstream.go).
	StoreDir string
	Replicas int
	// QueueAckWait is how long a /queue/ message delivered on a node
	// that stops answering (killed, cut off) waits before the cluster
	// hands it to another node (queue.go); 0: 30s.
	QueueAckWait time.Duration

	Log *slog.Logger // nil: slog.Default()
}

// Enabled reports whether the configuration asks for a cluster.
func (c Config) Enabled() bool {
	return c.Listen != "" || len(c.Peers) > 0 || len(c.NATSURLs) > 0
}

// Embedded reports whether this node runs its own NATS server.
func (c Config) Embedded() bool { return len(c.NATSURLs) == 0 }

// Check validates the configuration. Errors name the [cluster] key.
func (c Config) Check() error {
	if !c.Enabled() {
		return nil
	}
	if c.Name != "" && (len(c.Name) > 128 || !utf8.ValidString(c.Name) || strings.ContainsAny(c.Name, " \t\r\n")) {
		return fmt.Errorf("cluster.name %q: at most 128 bytes of UTF-8 without spaces", c.Name)
	}
	if len(c.NATSURLs) > 0 {
		if c.Listen != "" || len(c.Peers) > 0 {
			return errors.New("cluster.nats_urls (external NATS) and cluster.listen/cluster.peers (embedded NATS) exclude each other: set one")
		}
		for _, u := range c.NATSURLs {
			if u == "" || strings.ContainsAny(u, " \t,") {
				return fmt.Errorf("cluster.nats_urls: %q is not a URL", u)
			}
		}
		if c.Credentials != "" && c.User != "" {
			return errors.New("cluster.credentials and cluster.user exclude each other: set one")
		}
	} else {
		if c.Listen == "" {
			return errors.New("cluster.peers needs cluster.listen (this node's route address, host:port)")
		}
		if err := checkHostPort(c.Listen, false); err != nil {
			return fmt.Errorf("cluster.listen: %w", err)
		}
		for _, p := range c.Peers {
			if err := checkHostPort(p, true); err != nil {
				return fmt.Errorf("cluster.peers: %w", err)
			}
		}
		if c.Credentials != "" {
			return errors.New("cluster.credentials is for an external NATS (cluster.nats_urls); embedded routes use cluster.user and cluster.password")
		}
		if c.TLSCA != "" && c.TLSCert == "" {
			return errors.New("cluster.tls_ca needs cluster.tls_cert and cluster.tls_key for embedded routes")
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("cluster.tls_cert and cluster.tls_key go together: set both or neither")
	}
	if (c.User == "") != (c.Password == "") {
		return errors.New("cluster.user and cluster.password go together: set both or neither")
	}
	if c.MaxPayload < 0 || c.ForwardQueue < 0 || c.ReceiveQueue < 0 || c.Replicas < 0 || c.QueueAckWait < 0 {
		return errors.New("cluster: negative size")
	}
	return nil
}

// checkHostPort checks a host:port; the host may be empty (every
// interface) unless needHost.
func checkHostPort(a string, needHost bool) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", a)
	}
	if host == "" && needHost {
		return fmt.Errorf("%q: host missing", a)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "duplex"
	}
	if c.NodeID == "" {
		if c.Embedded() {
			c.NodeID = c.Name + "@" + nodeAddr(c.Listen)
		} else {
			c.NodeID = c.Name + "@" + randomHex(6)
		}
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 8 << 20
	}
	if c.ForwardQueue == 0 {
		c.ForwardQueue = 8192
	}
	if c.ReceiveQueue == 0 {
		c.ReceiveQueue = 65536
	}
	if c.QueueAckWait == 0 {
		c.QueueAckWait = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// nodeAddr is listen with the host name for an unspecified host
// ("0.0.0.0:6222" on every node would give every embedded server the same
// name, and nats-server closes routes between servers of the same name).
func nodeAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			return net.JoinHostPort(h, port)
		}
	}
	return listen
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
