package security

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRefuseAnonymousPublicListener: a listener on a non-loopback address
// with anonymous access and no TLS refuses to start (exit 1, a message naming
// allow_anonymous and password_file, the keys to set), whether it is the
// HTTP listener or a TCP one; written `allow_anonymous = true` starts, and a
// neighbour exchanges messages through it.
func TestRefuseAnonymousPublicListener(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
	}{
		{"http", []string{"-addr", "0.0.0.0:0", "-stomp-tcp-addr", "127.0.0.1:0", "-mqtt-tcp-addr", "127.0.0.1:0"}},
		{"mqtt-tcp", []string{"-addr", "127.0.0.1:0", "-stomp-tcp-addr", "127.0.0.1:0", "-mqtt-tcp-addr", "0.0.0.0:0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			// Zero config: no -config, flags only.
			p := launch(t, dir, append(c.args, "-data", filepath.Join(dir, "data"))...)
			select {
			case <-p.Exited():
			case <-time.After(waitStart):
				t.Fatalf("broker still running %v after start on a public address with anonymous access; stdout %q", waitStart, p.Stdout())
			}
			code := p.ExitCode()
			stderr := p.Stderr()
			t.Logf("exit code %d, stderr: %s", code, strings.TrimSpace(stderr))
			if code == 0 {
				t.Errorf("exit code 0, want non-zero")
			}
			for _, key := range []string{"allow_anonymous", "password_file"} {
				if !strings.Contains(stderr, key) {
					t.Errorf("stderr does not name %s: %q", key, stderr)
				}
			}
			if strings.Contains(p.Stdout(), "listening on") {
				t.Errorf("it said it was listening: %q", p.Stdout())
			}
		})
	}

	t.Run("allow_anonymous", func(t *testing.T) {
		p := startBroker(t, "allow_anonymous = true\n", "-addr", "0.0.0.0:0")
		host, port, err := net.SplitHostPort(p.HTTP)
		if err != nil || (host != "0.0.0.0" && host != "::") {
			t.Fatalf("HTTP listener %q, want 0.0.0.0:PORT", p.HTTP)
		}
		t.Logf("listening on %s (stdout %q)", p.HTTP, p.Stdout())
		// Reach it on loopback: the neighbour exchanges messages over both
		// protocols.
		p.HTTP = "127.0.0.1:" + port
		for _, n := range []*neighbour{
			stompNeighbour(t, p, "ws", "", "", ""),
			v5Neighbour(t, p, "ws", "", "", ""),
			v3Neighbour(t, p, "tcp", "", "", ""),
		} {
			n.mustExchange(t, 20)
			n.report(t)
		}
		if _, err := os.Stat(filepath.Join(p.dir, "data")); err != nil {
			t.Errorf("data folder: %v", err)
		}
	})
}

// TestConfigCheckRefusesPublicAnonymous: `duplex config check FILE` names
// the same keys for a config that would refuse to start, and passes the
// same config with allow_anonymous = true.
func TestConfigCheckRefusesPublicAnonymous(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	good := filepath.Join(dir, "good.toml")
	base := fmt.Sprintf("addr = \"0.0.0.0:8080\"\ndata = %q\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(bad, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte(base+"allow_anonymous = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, dir, "config", "check", bad)
	select {
	case <-p.Exited():
	case <-time.After(waitStart):
		t.Fatalf("config check still running after %v", waitStart)
	}
	out := p.Stdout() + p.Stderr()
	t.Logf("config check %s: exit %d: %s", bad, p.ExitCode(), strings.TrimSpace(out))
	if p.ExitCode() == 0 {
		t.Errorf("config check of an anonymous 0.0.0.0 config exited 0")
	}
	for _, key := range []string{"allow_anonymous", "password_file"} {
		if !strings.Contains(out, key) {
			t.Errorf("config check output does not name %s", key)
		}
	}
	p2 := launch(t, dir, "config", "check", good)
	select {
	case <-p2.Exited():
	case <-time.After(waitStart):
		t.Fatalf("config check still running after %v", waitStart)
	}
	if code := p2.ExitCode(); code != 0 {
		t.Errorf("config check with allow_anonymous = true: exit %d: %s%s", code, p2.Stdout(), p2.Stderr())
	}
}
