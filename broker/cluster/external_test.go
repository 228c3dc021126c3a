package cluster

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

func runNATS(t *testing.T, addr string) *server.Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	s, err := server.NewServer(&server.Options{Host: host, Port: p, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	return s
}

// probeThrough forwards numbered messages from a until r has one.
func probeThrough(t *testing.T, a *Node, r *fakeRouter, topic string) {
	t.Helper()
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		a.Forward(&broker.Message{Topic: topic, Payload: []byte("p")})
		for _, got := range r.topics() {
			if got == topic {
				return nil
			}
		}
		return fmt.Errorf("nothing on %s through yet", topic)
	})
}

// TestExternalReconnect: with an external NATS, a node is not ready while
// NATS is down, drops (and counts) what it forwards meanwhile, and once
// NATS is back it is ready again and its interest is declared again.
func TestExternalReconnect(t *testing.T) {
	addr := freeAddr(t)
	s := runNATS(t, addr)
	cfg := Config{Name: "ext", NATSURLs: []string{"nats://" + addr}}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := &fakeRouter{}, &fakeRouter{}
	if err := a.Start(ra); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b.Interest("t/#", true) // before Start: declared once connected
	if err := b.Start(rb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	testutil.EventuallyErr(t, 10*time.Second, func() error { return errorsJoin(a.Ready(), b.Ready()) })
	probeThrough(t, a, rb, "t/1")

	s.Shutdown()
	s.WaitForShutdown()
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		if a.Ready() == nil {
			return fmt.Errorf("a still ready with NATS down")
		}
		return nil
	})
	dropped := a.Stats().ForwardDropped.Load()
	a.Forward(&broker.Message{Topic: "t/lost"})
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		if a.Stats().ForwardDropped.Load() == dropped {
			return fmt.Errorf("the message forwarded while NATS is down is not counted as dropped")
		}
		return nil
	})

	s = runNATS(t, addr)
	t.Cleanup(s.Shutdown)
	testutil.EventuallyErr(t, 20*time.Second, func() error { return errorsJoin(a.Ready(), b.Ready()) })
	probeThrough(t, a, rb, "t/2")
}

// TestExternalTLSAndPassword: a node reaches an external NATS over TLS
// (verified with tls_ca) with a user and password; with the wrong
// password it stays not ready.
func TestExternalTLSAndPassword(t *testing.T) {
	cert, key := writeRouteCert(t, t.TempDir())
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true,
		TLSConfig: tc, TLS: true, Username: "duplex", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	url := "tls://" + s.Addr().String()
	start := func(password string) *Node {
		n, err := New(Config{NATSURLs: []string{url}, TLSCA: cert, User: "duplex", Password: password, Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(&fakeRouter{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		return n
	}
	// nats.Connect makes its first attempt before Start returns (later
	// ones are retries): bad has been refused once before good starts.
	bad := start("wrong")
	good := start("secret")
	testutil.EventuallyErr(t, 10*time.Second, good.Ready)
	if bad.Ready() == nil {
		t.Fatal("the node with the wrong password is ready")
	}
}
