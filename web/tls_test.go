package web

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// testPKI is a CA with server and client certificates, written as PEM
// files into a temporary directory.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Duplex test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: t.TempDir(), ca: ca, caKey: key, pool: x509.NewCertPool(), serial: 1}
	p.pool.AddCert(ca)
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate signed by the CA; server ones are for
// 127.0.0.1. It writes name.pem and name.key and returns the pair.
func (p *testPKI) issue(t *testing.T, name string, tmpl *x509.Certificate, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(p.dir, name+".key"), "EC PRIVATE KEY", kder)
	pair, err := tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func (p *testPKI) file(name string) string { return filepath.Join(p.dir, name) }

// tlsServer is a gateway serving wss:// (NewHTTPServer on a TLS listener)
// and the peer protocol over TLS TCP, as cmd/duplex wires them.
type tlsServer struct {
	gw      *Server
	rl      *TLSReloader
	wssURL  string
	tlsAddr string
}

func startTLSServer(t *testing.T, p *testPKI, clientCerts string) *tlsServer {
	t.Helper()
	p.issue(t, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "server-1"}}, true)
	rl, err := NewTLS(TLSConfig{CertFile: p.file("server.pem"), KeyFile: p.file("server.key"),
		ClientCAFile: p.file("ca.pem"), ClientCerts: clientCerts})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}
	gw := New(cfg, broker.New(broker.Config{}, nil), subprotocol.Registry{echoProtocol{"alpha"}, peerProtocol{}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer(gw, cfg)
	go func() { _ = hs.Serve(tls.NewListener(gw.Listener(ln), rl.Config())) }()
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gw.ServeTCP(tls.NewListener(gw.Listener(tln), rl.Config()), peerProtocol{})
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tcpWait)
		defer cancel()
		_ = gw.Shutdown(ctx)
		_ = hs.Close()
		<-served
	})
	return &tlsServer{gw: gw, rl: rl, wssURL: "wss://" + ln.Addr().String() + "/ws", tlsAddr: tln.Addr().String()}
}

func (p *testPKI) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: certs}
}

func dialWSS(t *testing.T, s *tlsServer, cfg *tls.Config, proto string) (*websocket.Conn, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{proto}, TLSClientConfig: cfg, HandshakeTimeout: tcpWait}
	ws, _, err := d.Dial(s.wssURL, nil)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, err
}

var deviceCert = &x509.Certificate{
	Subject:        pkix.Name{CommonName: "device-1"},
	DNSNames:       []string{"dev1.example"},
	EmailAddresses: []string{"ops@example.com"},
	URIs:           []*url.URL{{Scheme: "spiffe", Host: "example.org", Path: "/device/1"}},
}

// TestWSSClientCertificate: over wss:// the Peer is "wss" with the verified
// client certificate's names (CN, DNS, e-mail, URI SANs); without a
// certificate (optional mode) it has none. A client without one and a
// client with one talk at the same time.
func TestWSSClientCertificate(t *testing.T) {
	p := newTestPKI(t)
	s := startTLSServer(t, p, "optional")
	dev := p.issue(t, "device", deviceCert, false)

	ws, err := dialWSS(t, s, p.clientTLS(dev), "peer.v1")
	if err != nil {
		t.Fatal(err)
	}
	got := askPeer(t, ws)
	want := []string{"device-1", "dev1.example", "ops@example.com", "spiffe://example.org/device/1"}
	if got.Peer.Transport != "wss" || !slices.Equal(got.Peer.CertNames, want) {
		t.Errorf("with certificate: %+v, want wss %v", got.Peer, want)
	}
	anon, err := dialWSS(t, s, p.clientTLS(), "peer.v1")
	if err != nil {
		t.Fatal(err)
	}
	if got := askPeer(t, anon); got.Peer.Transport != "wss" || got.Peer.CertNames != nil {
		t.Errorf("without certificate: %+v", got.Peer)
	}
	// A certificate from another CA fails the handshake (optional still
	// verifies what is given).
	other := newTestPKI(t)
	bad := other.issue(t, "rogue", &x509.Certificate{Subject: pkix.Name{CommonName: "rogue"}}, false)
	if _, err := dialWSS(t, s, p.clientTLS(bad), "peer.v1"); err == nil {
		t.Error("certificate from an unknown CA accepted")
	}
	askPeer(t, ws)
	askPeer(t, anon)
}

// TestTLSRequireClientCert: with client_certs = require a client without a
// certificate is refused, on wss and on TLS TCP; one with a certificate
// gets its names, also over TCP ("tls").
func TestTLSRequireClientCert(t *testing.T) {
	p := newTestPKI(t)
	s := startTLSServer(t, p, "require")
	dev := p.issue(t, "device", deviceCert, false)
	ws, err := dialWSS(t, s, p.clientTLS(dev), "peer.v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialWSS(t, s, p.clientTLS(), "peer.v1"); err == nil {
		t.Error("wss without a client certificate accepted")
	}

	c, err := tls.Dial("tcp", s.tlsAddr, p.clientTLS(dev))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(tcpWait))
	if _, err := c.Write([]byte("who")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var got peerReport
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	if got.Peer.Transport != "tls" || len(got.Peer.CertNames) == 0 || got.Peer.CertNames[0] != "device-1" {
		t.Errorf("tls tcp peer: %+v", got.Peer)
	}

	// Without a certificate: the TLS 1.3 client learns at its first read.
	nc, err := tls.Dial("tcp", s.tlsAddr, p.clientTLS())
	if err == nil {
		_ = nc.SetDeadline(time.Now().Add(tcpWait))
		_, _ = nc.Write([]byte("who"))
		_, err = nc.Read(make([]byte, 1))
		nc.Close()
	}
	if err == nil {
		t.Error("tls tcp without a client certificate accepted")
	}
	waitFor(t, "handshake failure counted", func() bool { return s.gw.AdmissionStats().TLSHandshakeFailures >= 1 })
	askPeer(t, ws)
}

// TestTLSHandshakeFailureTCP: a plain-text client on a TLS TCP port, or
// on the wss port, is closed and counted; a TLS client at the same time is
// served.
func TestTLSHandshakeFailureTCP(t *testing.T) {
	p := newTestPKI(t)
	s := startTLSServer(t, p, "off")
	c, err := net.DialTimeout("tcp", s.tlsAddr, tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("CONNECT\naccept-version:1.2\n\n\x00"))
	_ = c.SetReadDeadline(time.Now().Add(tcpWait))
	if _, err := c.Read(make([]byte, 512)); err == nil {
		// A TLS alert may come first; the close follows.
		_, err = c.Read(make([]byte, 512))
		if err == nil {
			t.Fatal("plain-text client not closed")
		}
	}
	waitFor(t, "handshake failure counted", func() bool { return s.gw.AdmissionStats().TLSHandshakeFailures == 1 })

	// The same on the wss listener (net/http reports it in ErrorLog).
	u, _ := url.Parse(s.wssURL)
	hc, err := net.DialTimeout("tcp", u.Host, tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	_, _ = hc.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	waitFor(t, "https handshake failure counted", func() bool { return s.gw.AdmissionStats().TLSHandshakeFailures == 2 })

	tc, err := tls.Dial("tcp", s.tlsAddr, p.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(tcpWait))
	_, _ = tc.Write([]byte("who"))
	if line, err := bufio.NewReader(tc).ReadString('\n'); err != nil || !strings.Contains(line, `"tls"`) {
		t.Errorf("tls client: %q, %v", line, err)
	}
}

// TestTLSReload: after Reload new handshakes get the new certificate
// while a connection made before keeps working; a failed reload keeps the
// old one.
func TestTLSReload(t *testing.T) {
	p := newTestPKI(t)
	s := startTLSServer(t, p, "off")
	served := func() string {
		c, err := tls.Dial("tcp", s.tlsAddr, p.clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	old, err := dialWSS(t, s, p.clientTLS(), "alpha.v1")
	if err != nil {
		t.Fatal(err)
	}
	if cn := served(); cn != "server-1" {
		t.Fatalf("served %q", cn)
	}
	p.issue(t, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "server-2"}}, true)
	if err := s.rl.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn := served(); cn != "server-2" {
		t.Errorf("after reload: served %q, want server-2", cn)
	}
	fresh, err := dialWSS(t, s, p.clientTLS(), "alpha.v1")
	if err != nil {
		t.Fatal(err)
	}
	mustEcho(t, fresh, "new")
	mustEcho(t, old, "old connection still works")

	// A broken key file: Reload fails, the served certificate stays.
	if err := os.WriteFile(p.file("server.key"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.rl.Reload(); err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Errorf("Reload with a bad key: %v", err)
	}
	if cn := served(); cn != "server-2" {
		t.Errorf("after a failed reload: served %q", cn)
	}
}

// TestTLSMinVersion: TLS 1.1 is refused; a TLS 1.2 client is served.
func TestTLSMinVersion(t *testing.T) {
	p := newTestPKI(t)
	s := startTLSServer(t, p, "off")
	cfg := p.clientTLS()
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, err := tls.Dial("tcp", s.tlsAddr, cfg); err == nil {
		c.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
	d := websocket.Dialer{Subprotocols: []string{"alpha.v1"}, TLSClientConfig: cfg}
	if ws, _, err := d.Dial(s.wssURL, nil); err == nil {
		ws.Close()
		t.Error("wss over TLS 1.1 succeeded")
	}
	cfg12 := p.clientTLS()
	cfg12.MaxVersion = tls.VersionTLS12
	ws, err := dialWSS(t, s, cfg12, "alpha.v1")
	if err != nil {
		t.Fatal(err)
	}
	mustEcho(t, ws, "tls12")
}

func TestNewTLSErrors(t *testing.T) {
	p := newTestPKI(t)
	p.issue(t, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "s"}}, true)
	cases := []struct {
		c    TLSConfig
		want string
	}{
		{TLSConfig{KeyFile: p.file("server.key")}, "cert_file"},
		{TLSConfig{CertFile: p.file("server.pem"), KeyFile: p.file("server.key"), ClientCerts: "maybe"}, "client_certs"},
		{TLSConfig{CertFile: p.file("server.pem"), KeyFile: p.file("server.key"), ClientCerts: "require"}, "client_ca_file"},
		{TLSConfig{CertFile: p.file("missing.pem"), KeyFile: p.file("server.key")}, "cert_file"},
		{TLSConfig{CertFile: p.file("server.pem"), KeyFile: p.file("server.key"), ClientCAFile: p.file("server.key")}, "client_ca_file"},
	}
	for _, c := range cases {
		if _, err := NewTLS(c.c); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.c, err, c.want)
		}
	}
	rl, err := NewTLS(TLSConfig{CertFile: p.file("server.pem"), KeyFile: p.file("server.key"), ClientCAFile: p.file("ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := rl.Config().GetConfigForClient(nil)
	if cfg.ClientAuth != tls.VerifyClientCertIfGiven || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("defaults: ClientAuth %v MinVersion %x", cfg.ClientAuth, cfg.MinVersion)
	}
}

// TestTLSReloadEndsResumption: a session is resumed while the
// configuration stands, and not after a reload (a client certificate is
// then verified against the new CA file); the reloaded server resumes its
// own sessions again.
func TestTLSReloadEndsResumption(t *testing.T) {
	p := newTestPKI(t)
	s := startTLSServer(t, p, "optional")
	dev := p.issue(t, "device", deviceCert, false)
	cfg := p.clientTLS(dev)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	talk := func() bool {
		t.Helper()
		c, err := tls.Dial("tcp", s.tlsAddr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(tcpWait))
		_, _ = c.Write([]byte("who"))
		line, err := bufio.NewReader(c).ReadString('\n') // also reads the ticket
		if err != nil || !strings.Contains(line, "device-1") {
			t.Fatalf("peer: %q, %v", line, err)
		}
		return c.ConnectionState().DidResume
	}
	if talk() {
		t.Fatal("first connection resumed")
	}
	if !talk() {
		t.Fatal("second connection not resumed: the test cannot show anything")
	}
	if err := s.rl.Reload(); err != nil {
		t.Fatal(err)
	}
	if talk() {
		t.Error("resumed a session from before the reload")
	}
	if !talk() {
		t.Error("not resumed after the reload")
	}
}

// TestTLSTicketKeyRotation: a due rotation adds a key in front and keeps
// the previous one, so sessions from the last period still resume.
func TestTLSTicketKeyRotation(t *testing.T) {
	p := newTestPKI(t)
	s := startTLSServer(t, p, "off")
	cfg := p.clientTLS()
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	talk := func() bool {
		t.Helper()
		c, err := tls.Dial("tcp", s.tlsAddr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(tcpWait))
		_, _ = c.Write([]byte("who"))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		return c.ConnectionState().DidResume
	}
	talk()
	s.rl.mu.Lock()
	first := s.rl.keys[0]
	s.rl.mu.Unlock()
	s.rl.rotated.Store(time.Now().Add(-ticketKeyPeriod - time.Minute).UnixNano())
	if !talk() {
		t.Error("session from the previous period not resumed")
	}
	s.rl.mu.Lock()
	keys := s.rl.keys
	s.rl.mu.Unlock()
	if len(keys) != 2 || keys[1] != first || keys[0] == first {
		t.Errorf("keys after rotation: %d, previous kept %v", len(keys), len(keys) == 2 && keys[1] == first)
	}
}
