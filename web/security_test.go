package web

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// peerProtocol answers every chunk it reads with what the transport says
// about the connection (RemoteAddr and Peer) as one JSON line.
type peerProtocol struct{}

type peerReport struct {
	Remote string
	Peer   subprotocol.Peer
}

func (peerProtocol) Name() string           { return "peer" }
func (peerProtocol) Subprotocols() []string { return []string{"peer.v1"} }
func (peerProtocol) Serve(_ context.Context, t subprotocol.Transport, _ *broker.Router) error {
	buf := make([]byte, 512)
	for {
		_, r, err := t.NextReader()
		if err != nil {
			t.Close(subprotocol.CloseNormal, "")
			return err
		}
		for {
			n, err := r.Read(buf)
			if n > 0 {
				b, _ := json.Marshal(peerReport{Remote: t.RemoteAddr().String(), Peer: t.Peer()})
				if err := t.WriteMessage(false, append(b, '\n')); err != nil {
					return err
				}
			}
			if err != nil {
				break
			}
		}
	}
}

// gwServer is a gateway with the echo and peer protocols on httptest.
type gwServer struct {
	gw *Server
	hs *httptest.Server
}

func newGW(t *testing.T, cfg Config) *gwServer {
	t.Helper()
	gw := New(cfg, broker.New(broker.Config{}, nil),
		subprotocol.Registry{echoProtocol{"alpha"}, echoProtocol{"beta"}, peerProtocol{}})
	hs := httptest.NewUnstartedServer(gw)
	hs.Listener = gw.Listener(hs.Listener)
	hs.Start()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		_ = gw.Shutdown(context.Background())
	})
	return &gwServer{gw: gw, hs: hs}
}

func (s *gwServer) wsURL() string { return wsURL(s.hs) }
func (s *gwServer) addr() string  { return strings.TrimPrefix(s.hs.URL, "http://") }

// dialWS dials the gateway offering subprotocol proto with extra header
// h; it returns the response's status on failure.
func dialWS(t *testing.T, url, proto string, h http.Header) (*websocket.Conn, int, string) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: tcpWait}
	ws, resp, err := d.Dial(url, h)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, resp.StatusCode, string(body)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, http.StatusSwitchingProtocols, ""
}

// mustEcho checks that ws (on an echo protocol) answers a message.
func mustEcho(t *testing.T, ws *websocket.Conn, msg string) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(tcpWait))
	_ = ws.SetWriteDeadline(time.Now().Add(tcpWait))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, got, err := ws.ReadMessage()
	if err != nil || !strings.HasSuffix(string(got), ":"+msg) {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// askPeer sends a message on a peer.v1 connection and decodes the answer.
func askPeer(t *testing.T, ws *websocket.Conn) peerReport {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(tcpWait))
	_ = ws.SetWriteDeadline(time.Now().Add(tcpWait))
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte("who")); err != nil {
		t.Fatal(err)
	}
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var p peerReport
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return p
}

// fromIP is a header that makes a request come from ip behind the
// trusted proxy 127.0.0.1.
func fromIP(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }

var trustLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// TestAllowedHosts: a foreign Host gets 403 on the WebSocket paths and the
// API before anything else; allowed names match without case or port; a
// client with an allowed Host connects at the same time.
func TestAllowedHosts(t *testing.T) {
	s := newGW(t, Config{AllowedHosts: []string{"Broker.Example.com", "127.0.0.1", "::1"}})
	good, code, _ := dialWS(t, s.wsURL(), "alpha.v1", nil) // Host 127.0.0.1:port
	if good == nil {
		t.Fatalf("allowed Host refused: %d", code)
	}
	for _, host := range []string{"evil.example", "evil.example:8080", "localhost", "broker.example.com.evil"} {
		ws, code, body := dialWS(t, s.wsURL(), "alpha.v1", http.Header{"Host": {host}})
		if ws != nil || code != http.StatusForbidden || !strings.Contains(body, "web.allowed_hosts") || !strings.Contains(body, host) {
			t.Errorf("Host %q upgrade: %d %q, want 403 naming web.allowed_hosts", host, code, body)
		}
		req, _ := http.NewRequest("GET", s.hs.URL+"/api/stats", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("Host %q /api/stats: %d, want 403", host, resp.StatusCode)
		}
	}
	// /healthz answers any Host (load balancers probe by address).
	req, _ := http.NewRequest("GET", s.hs.URL+"/healthz", nil)
	req.Host = "10.1.2.3:8080"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz with a foreign Host: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, host := range []string{"broker.example.COM", "broker.example.com:443", "broker.example.com.", "[::1]:8080", "127.0.0.1"} {
		ws, code, body := dialWS(t, s.wsURL(), "alpha.v1", http.Header{"Host": {host}})
		if ws == nil {
			t.Errorf("Host %q refused: %d %q", host, code, body)
			continue
		}
		mustEcho(t, ws, "hello "+host)
	}
	mustEcho(t, good, "still here")

	// The admin handler also takes loopback names.
	ah := httptest.NewServer(s.gw.AdminHandler())
	defer ah.Close()
	for host, want := range map[string]int{"localhost:9": 200, "evil.example": 403, "broker.example.com": 200} {
		req, _ := http.NewRequest("GET", ah.URL+"/api/stats", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("admin Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// TestAllowedHostsEmptyOrStar: no list, or "*", allows any Host; ports
// written in the list are ignored.
func TestAllowedHostsEmptyOrStar(t *testing.T) {
	s := newGW(t, Config{AllowedHosts: []string{"app.example:8080", "[::1]:9"}})
	for host, ok := range map[string]bool{"app.example": true, "app.example:1": true, "[::1]": true, "other.example:8080": false} {
		ws, code, _ := dialWS(t, s.wsURL(), "alpha.v1", http.Header{"Host": {host}})
		if (ws != nil) != ok {
			t.Errorf("list with ports, Host %q: %d, want allowed=%v", host, code, ok)
		}
	}
	for _, hosts := range [][]string{nil, {"*"}, {"x.example", "*"}} {
		s := newGW(t, Config{AllowedHosts: hosts})
		ws, code, _ := dialWS(t, s.wsURL(), "alpha.v1", http.Header{"Host": {"anything.example"}})
		if ws == nil {
			t.Errorf("hosts %v: refused with %d", hosts, code)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.0.0.0/8", " 192.0.2.1 ", "2001:db8::/32", "::1", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32", "::1/128", "10.0.0.0/8"}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("%d: %v, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "", "1.2.3.4/x"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), "trusted_proxies") {
			t.Errorf("%q: err %v, want one naming trusted_proxies", bad, err)
		}
	}
}

// TestClientAddr: the headers count only from a trusted peer; the client
// is the right-most untrusted hop.
func TestClientAddr(t *testing.T) {
	trusted, _ := ParseTrustedProxies([]string{"10.0.0.0/8", "2001:db8::1"})
	s := New(Config{TrustedProxies: trusted}, broker.New(broker.Config{}, nil), nil)
	long := strings.Repeat("10.0.0.9, ", 40) + "10.0.0.8"
	cases := []struct {
		peer, xff, fwd, want string
	}{
		{"203.0.113.1:5000", "198.51.100.1", "", "203.0.113.1:5000"},                   // untrusted peer: ignored
		{"10.0.0.1:5000", "", "", "10.0.0.1:5000"},                                     // no header
		{"10.0.0.1:5000", "198.51.100.1", "", "198.51.100.1:0"},                        // one hop
		{"10.0.0.1:5000", "6.6.6.6, 198.51.100.1, 10.0.0.2", "", "198.51.100.1:0"},     // spoofed left part skipped
		{"10.0.0.1:5000", "198.51.100.1:4711", "", "198.51.100.1:4711"},                // with a port
		{"10.0.0.1:5000", "[2001:db8::7]:80", "", "[2001:db8::7]:80"},                  // IPv6 with a port
		{"10.0.0.1:5000", "garbage, 10.0.0.2", "", "10.0.0.2:0"},                       // garbage: last good hop
		{"10.0.0.1:5000", "10.0.0.3, 10.0.0.2", "", "10.0.0.3:0"},                      // all trusted: left-most
		{"10.0.0.1:5000", long, "", "10.0.0.9:0"},                                      // at most 32 hops
		{"10.0.0.1:5000", "", `for=192.0.2.60;proto=http;by=10.0.0.1`, "192.0.2.60:0"}, // RFC 7239
		{"10.0.0.1:5000", "", `for="[2001:db8:cafe::17]:4711", for=10.0.0.5`, "[2001:db8:cafe::17]:4711"},
		{"10.0.0.1:5000", "", `for=unknown`, "10.0.0.1:5000"},
		{"10.0.0.1:5000", "198.51.100.1", "for=192.0.2.60", "198.51.100.1:0"}, // X-Forwarded-For wins
		{"[2001:db8::1]:443", "198.51.100.9", "", "198.51.100.9:0"},
		{"[::ffff:10.0.0.1]:5000", "198.51.100.1", "", "198.51.100.1:0"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if c.fwd != "" {
			r.Header.Set("Forwarded", c.fwd)
		}
		if got := s.clientAddr(r).String(); got != c.want {
			t.Errorf("peer %s xff %q fwd %q: %s, want %s", c.peer, c.xff, c.fwd, got, c.want)
		}
	}
	// Several header lines read as one list.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Add("X-Forwarded-For", "198.51.100.1")
	r.Header.Add("X-Forwarded-For", "10.0.0.4")
	if got := s.clientAddr(r).String(); got != "198.51.100.1:0" {
		t.Errorf("two lines: %s", got)
	}
}

// TestTrustedProxyRemoteAddr: behind a trusted proxy the protocol sees the
// forwarded address; from an untrusted peer the header is ignored. The
// Peer carries the transport and the URL's access_token.
func TestTrustedProxyRemoteAddr(t *testing.T) {
	s := newGW(t, Config{TrustedProxies: trustLoopback})
	ws, code, _ := dialWS(t, s.wsURL()+"?access_token=tok%2Fen", "peer.v1", fromIP("198.51.100.7"))
	if ws == nil {
		t.Fatalf("dial: %d", code)
	}
	p := askPeer(t, ws)
	if p.Remote != "198.51.100.7:0" || p.Peer.Transport != "ws" || p.Peer.Token != "tok/en" || p.Peer.CertNames != nil {
		t.Errorf("got %+v", p)
	}

	u := newGW(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	ws, _, _ = dialWS(t, u.wsURL(), "peer.v1", fromIP("198.51.100.7"))
	if ws == nil {
		t.Fatal("dial")
	}
	p = askPeer(t, ws)
	if host, _, _ := net.SplitHostPort(p.Remote); host != "127.0.0.1" || p.Peer.Token != "" {
		t.Errorf("untrusted peer: got %+v, want 127.0.0.1", p)
	}
}
