package cluster

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// writeRouteCert writes a self-signed certificate for 127.0.0.1 that is
// its own CA and good for both ends of a route (server and client auth).
func writeRouteCert(t *testing.T, dir string) (cert, key string) {
	cert, key = filepath.Join(dir, "route.pem"), filepath.Join(dir, "route.key")
	testutil.WriteSelfSignedCA(t, cert, key)
	return cert, key
}

// TestRoutesTLSAndAuth: routes with mutual TLS and a user/password join
// and carry messages; a node with the wrong password never joins.
func TestRoutesTLSAndAuth(t *testing.T) {
	cert, key := writeRouteCert(t, t.TempDir())
	la, lb, lc := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := func(listen string, password string, peers ...string) Config {
		return Config{Name: "tls", Listen: listen, Peers: peers, TLSCert: cert, TLSKey: key, TLSCA: cert,
			User: "route", Password: password}
	}
	a, err := New(cfg(la, "secret", lb))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg(lb, "secret", la))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg(lc, "wrong", la, lb))
	if err != nil {
		t.Fatal(err)
	}
	ra, rb, rc := &fakeRouter{}, &fakeRouter{}, &fakeRouter{}
	for _, s := range []struct {
		n *Node
		r *fakeRouter
	}{{a, ra}, {b, rb}, {c, rc}} {
		if err := s.n.Start(s.r); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.n.Close)
	}
	testutil.EventuallyErr(t, 10*time.Second, func() error { return errorsJoin(a.Ready(), b.Ready()) })
	b.Interest("t", true)
	c.Interest("t", true)
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		a.Forward(&broker.Message{Topic: "t", Payload: []byte("over TLS")})
		if len(rb.topics()) == 0 {
			return fmt.Errorf("nothing through the TLS route yet")
		}
		return nil
	})
	if err := c.Ready(); err == nil || len(rc.topics()) != 0 {
		t.Fatalf("the node with the wrong route password joined (Ready %v) or got %d messages", err, len(rc.topics()))
	}
}
