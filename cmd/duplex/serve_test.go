package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker/auth"
	"github.com/duplexmq/duplex/internal/testutil"
)

// lockedBuffer is a bytes.Buffer safe for the broker's log writes.
type lockedBuffer = testutil.Buffer

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, cond)
}

// TestServeListeners starts the broker with every listener on a free
// loopback port, checks the startup lines and that each listener answers
// (TLS ones with TLS 1.2 or later only), then reloads the certificate with
// SIGHUP while a TLS connection stays open.
func TestServeListeners(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testutil.WriteSelfSignedCert(t, certFile, keyFile, 1)
	cfg := filepath.Join(dir, "duplex.toml")
	os.WriteFile(cfg, []byte(`
addr = "127.0.0.1:0"
admin_addr = "127.0.0.1:0"
mqtt_tcp_addr = "127.0.0.1:0"
stomp_tcp_addr = "127.0.0.1:0"
data = "data"
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
wss_addr = "127.0.0.1:0"
mqtt_tls_addr = "127.0.0.1:0"
stomp_tls_addr = "127.0.0.1:0"
`), 0o600)
	opts, err := parseOptions([]string{"-config", cfg}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := opts.checkExposure(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	outR, outW := io.Pipe()
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runBroker(ctx, hup, opts, outW, &logs)
		outW.Close()
	}()

	names := []string{"listening", "wss listening", "admin listening", "mqtt-tcp listening", "mqtt-tls listening", "stomp-tcp listening", "stomp-tls listening"}
	addrs := map[string]string{}
	sc := bufio.NewScanner(outR)
	for _, name := range names {
		if !sc.Scan() {
			t.Fatalf("stdout ended before %q; logs:\n%s", name, logs.String())
		}
		line := sc.Text()
		prefix := "duplex " + name + " on 127.0.0.1:"
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("startup line %q, want %q…", line, prefix)
		}
		addrs[name] = strings.TrimPrefix(line, "duplex "+name+" on ")
	}
	go io.Copy(io.Discard, outR)

	get := func(client *http.Client, url string) int {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code := get(http.DefaultClient, "http://"+addrs["listening"]+"/healthz"); code != 200 {
		t.Errorf("plain /healthz: %d", code)
	}
	if code := get(tlsClient, "https://"+addrs["wss listening"]+"/healthz"); code != 200 {
		t.Errorf("wss /healthz: %d", code)
	}
	if code := get(http.DefaultClient, "http://"+addrs["admin listening"]+"/api/stats"); code != 200 {
		t.Errorf("admin /api/stats: %d (zero config on loopback: open)", code)
	}
	if code := get(http.DefaultClient, "http://"+addrs["listening"]+"/api/stats"); code != 404 {
		t.Errorf("/api/stats on addr with admin_addr set: %d, want 404", code)
	}
	for _, name := range []string{"mqtt-tcp listening", "stomp-tcp listening"} {
		c, err := net.Dial("tcp", addrs[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Close()
	}
	// TLS listeners: a handshake with the served certificate; TLS 1.1 is
	// refused.
	serial := func(addr string) int64 {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	var kept *tls.Conn
	for _, name := range []string{"wss listening", "mqtt-tls listening", "stomp-tls listening"} {
		if s := serial(addrs[name]); s != 1 {
			t.Errorf("%s: certificate serial %d, want 1", name, s)
		}
		c, err := tls.Dial("tcp", addrs[name], &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
		if err == nil {
			c.Close()
			t.Errorf("%s accepted TLS 1.1", name)
		}
	}
	kept, err = tls.Dial("tcp", addrs["wss listening"], &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()

	// SIGHUP: a new certificate for new handshakes; the open connection
	// still works.
	testutil.WriteSelfSignedCert(t, certFile, keyFile, 2)
	hup <- os.Interrupt // any value: runBroker only receives
	waitFor(t, "reload done", func() bool { return strings.Contains(logs.String(), "reload done") })
	for _, name := range []string{"wss listening", "mqtt-tls listening", "stomp-tls listening"} {
		if s := serial(addrs[name]); s != 2 {
			t.Errorf("%s after SIGHUP: certificate serial %d, want 2", name, s)
		}
	}
	if _, err := kept.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
		t.Fatalf("connection opened before the reload: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(kept), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("connection opened before the reload: %v %v", resp, err)
	}

	// A broken certificate: reload failed, the old one stays.
	os.WriteFile(certFile, []byte("not a certificate"), 0o644)
	hup <- os.Interrupt
	waitFor(t, "reload failed", func() bool { return strings.Contains(logs.String(), "reload failed") })
	if s := serial(addrs["mqtt-tls listening"]); s != 2 {
		t.Errorf("after a failed reload: serial %d, want 2", s)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runBroker: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("runBroker did not return after cancel")
	}
}

// testBroker is a broker started by startTestBroker.
type testBroker struct {
	addrs map[string]string // startup-line name ("listening", "admin listening", …) to address
	logs  *lockedBuffer
	hup   chan os.Signal
}

// startTestBroker runs the broker with the config file cfg until the test
// ends, and reads n startup lines.
func startTestBroker(t *testing.T, cfg string, n int) *testBroker {
	t.Helper()
	opts, err := parseOptions([]string{"-config", cfg}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := opts.checkExposure(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &testBroker{addrs: map[string]string{}, logs: &lockedBuffer{}, hup: make(chan os.Signal, 1)}
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runBroker(ctx, b.hup, opts, outW, b.logs)
		outW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runBroker: %v", err)
		}
	})
	sc := bufio.NewScanner(outR)
	for range n {
		if !sc.Scan() {
			t.Fatalf("stdout ended; logs:\n%s", b.logs.String())
		}
		name, addr, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "duplex "), " on ")
		b.addrs[name] = addr
	}
	go io.Copy(io.Discard, outR)
	return b
}

// status is the HTTP status of GET url with optional basic credentials.
func status(t *testing.T, url, user, password string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminAuth: with a password file the management API needs an admin
// login; SIGHUP reloads the users. Without authentication but off
// loopback, nobody gets in (anonymous identities are refused).
func TestAdminAuth(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	if err := auth.SetPassword(users, "root", "pw1"); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "duplex.toml")
	os.WriteFile(cfg, []byte(`addr = "127.0.0.1:0"
mqtt_tcp_addr = ""
stomp_tcp_addr = ""
data = "data"
password_file = "users"
admins = ["root"]
[auth]
failure_delay = "1ms"
`), 0o600)
	b := startTestBroker(t, cfg, 1)
	api := "http://" + b.addrs["listening"] + "/api/stats"
	if code := status(t, api, "", ""); code != 401 {
		t.Errorf("no login: %d, want 401", code)
	}
	if code := status(t, api, "root", "pw1"); code != 200 {
		t.Errorf("admin login: %d, want 200", code)
	}
	if err := auth.SetPassword(users, "root", "pw2"); err != nil {
		t.Fatal(err)
	}
	b.hup <- os.Interrupt
	waitFor(t, "reload done", func() bool { return strings.Contains(b.logs.String(), "reload done") })
	if code := status(t, api, "root", "pw1"); code != 401 {
		t.Errorf("old password after SIGHUP: %d, want 401", code)
	}
	if code := status(t, api, "root", "pw2"); code != 200 {
		t.Errorf("new password after SIGHUP: %d, want 200", code)
	}

	// No authentication, allow_anonymous = true on 0.0.0.0: the API is
	// closed to everyone, whatever the credentials.
	cfg2 := filepath.Join(dir, "open.toml")
	os.WriteFile(cfg2, []byte(`addr = "0.0.0.0:0"
allow_anonymous = true
mqtt_tcp_addr = ""
stomp_tcp_addr = ""
data = "data2"
`), 0o600)
	b2 := startTestBroker(t, cfg2, 1)
	_, port, _ := net.SplitHostPort(b2.addrs["listening"])
	api2 := "http://127.0.0.1:" + port + "/api/stats"
	for _, user := range []string{"", "anyone"} {
		if code := status(t, api2, user, "x"); code != 401 {
			t.Errorf("anonymous broker on 0.0.0.0, user %q: /api/stats %d, want 401", user, code)
		}
	}
	if code := status(t, "http://127.0.0.1:"+port+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}
