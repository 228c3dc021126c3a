package web

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/gorilla/websocket"

	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
)

// refusedWith dials from ip (behind the trusted loopback proxy) and
// expects an HTTP 503 naming key, with a Retry-After.
func refusedWith(t *testing.T, s *gwServer, ip, key string) {
	t.Helper()
	d := &http.Client{}
	req, _ := http.NewRequest("GET", s.hs.URL+"/ws", nil)
	req.Header = fromIP(ip)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "alpha.v1")
	resp, err := d.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), key) {
		t.Fatalf("from %s: %d Retry-After %q %q; want 503 naming %s", ip, resp.StatusCode, resp.Header.Get("Retry-After"), body, key)
	}
}

func mustDialFrom(t *testing.T, s *gwServer, ip string) *websocket.Conn {
	t.Helper()
	ws, code, body := dialWS(t, s.wsURL(), "alpha.v1", fromIP(ip))
	if ws == nil {
		t.Fatalf("dial from %s: %d %q", ip, code, body)
	}
	return ws
}

// TestMaxConnectionsPerIP: the third connection from one address gets
// HTTP 503 before the upgrade; another address connects at the same time,
// the first two keep working, and a slot freed is usable again.
func TestMaxConnectionsPerIP(t *testing.T) {
	s := newGW(t, Config{MaxConnectionsPerIP: 2, TrustedProxies: trustLoopback})
	a1 := mustDialFrom(t, s, "203.0.113.1")
	a2 := mustDialFrom(t, s, "203.0.113.1")
	refusedWith(t, s, "203.0.113.1", "max_connections_per_ip")
	b := mustDialFrom(t, s, "203.0.113.2")
	mustEcho(t, b, "neighbour")
	mustEcho(t, a1, "one")
	mustEcho(t, a2, "two")
	st := s.gw.AdmissionStats()
	if st.RefusedPerIP != 1 || st.Connections != 3 || st.RefusedTotal != 0 || st.RefusedRate != 0 {
		t.Errorf("stats %+v", st)
	}
	a1.Close()
	waitFor(t, "slot freed", func() bool { return s.gw.AdmissionStats().Connections == 2 })
	mustEcho(t, mustDialFrom(t, s, "203.0.113.1"), "again")
}

// TestMaxConnectionsPerIPv6Prefix: IPv6 clients count by their /64.
func TestMaxConnectionsPerIPv6Prefix(t *testing.T) {
	s := newGW(t, Config{MaxConnectionsPerIP: 1, TrustedProxies: trustLoopback})
	mustDialFrom(t, s, "2001:db8:1:2::1")
	refusedWith(t, s, "2001:db8:1:2::ffff", "max_connections_per_ip")
	mustEcho(t, mustDialFrom(t, s, "2001:db8:1:3::1"), "other /64")
}

// TestConnectRatePerIP: past the burst a source is refused until its
// bucket refills; another source connects at the same time.
func TestConnectRatePerIP(t *testing.T) {
	s := newGW(t, Config{ConnectRatePerIP: 0.001, ConnectBurstPerIP: 2, TrustedProxies: trustLoopback})
	a := mustDialFrom(t, s, "203.0.113.1")
	a.Close()
	mustDialFrom(t, s, "203.0.113.1")
	refusedWith(t, s, "203.0.113.1", "connect_rate_per_ip")
	mustEcho(t, mustDialFrom(t, s, "203.0.113.2"), "neighbour")
	if st := s.gw.AdmissionStats(); st.RefusedRate != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestMaxConnections: past the total cap every source is refused; the
// connections in place keep working and a freed slot is usable.
func TestMaxConnections(t *testing.T) {
	s := newGW(t, Config{MaxConnections: 2, TrustedProxies: trustLoopback})
	a := mustDialFrom(t, s, "203.0.113.1")
	b := mustDialFrom(t, s, "203.0.113.2")
	refusedWith(t, s, "203.0.113.3", "max_connections")
	mustEcho(t, a, "a")
	mustEcho(t, b, "b")
	if st := s.gw.AdmissionStats(); st.RefusedTotal != 1 || st.MaxConnections != 2 {
		t.Errorf("stats %+v", st)
	}
	b.Close()
	waitFor(t, "slot freed", func() bool { return s.gw.AdmissionStats().Connections == 1 })
	mustEcho(t, mustDialFrom(t, s, "203.0.113.3"), "c")
}

// TestTCPMaxConnectionsPerIP: on a TCP listener a connection past the
// per-IP cap is closed at once, before any byte; a client from another
// address (127.0.0.2) connects and exchanges messages at the same time.
func TestTCPMaxConnectionsPerIP(t *testing.T) {
	s := startTCPServer(t, dstomp.Config{}, Config{MaxConnectionsPerIP: 1})
	first := dialStompTCP(t, s.tcpAddr)
	sub := subscribeSync(t, first, "/topic/t")

	c, err := net.DialTimeout("tcp", s.tcpAddr, tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(tcpWait))
	_, _ = c.Write([]byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00"))
	// Closed with the CONNECT unread: EOF or a reset, nothing sent.
	if n, err := c.Read(make([]byte, 64)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("over the cap: read %d bytes, %v; want a close with nothing", n, err)
	}
	if st := s.gw.AdmissionStats(); st.RefusedPerIP != 1 {
		t.Errorf("stats %+v", st)
	}

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: tcpWait}
	nc, err := d.Dial("tcp", s.tcpAddr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	other, err := stomp.Connect(nc, stomp.ConnOpt.Host("/"))
	if err != nil {
		t.Fatalf("neighbour: %v", err)
	}
	defer other.MustDisconnect()
	if err := other.Send("/topic/t", "text/plain", []byte("from the neighbour"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	if got := recvBody(t, sub); got != "from the neighbour" {
		t.Errorf("got %q", got)
	}
}

// TestListenerSocketCap: Server.Listener closes sockets past
// MaxConnections plus the margin at once (idle HTTP keep-alive sockets
// count); the open ones keep working, and a freed socket is reusable.
func TestListenerSocketCap(t *testing.T) {
	s := newGW(t, Config{MaxConnections: 1})
	max := s.gw.AdmissionStats().MaxSockets
	if max != 1+16 {
		t.Fatalf("MaxSockets %d", max)
	}
	var conns []net.Conn
	for range max {
		c, err := net.DialTimeout("tcp", s.addr(), tcpWait)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	waitFor(t, "sockets accepted", func() bool { return s.gw.AdmissionStats().Sockets == max })
	extra, err := net.DialTimeout("tcp", s.addr(), tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(tcpWait))
	if n, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatalf("socket past the cap: read %d bytes, want a close", n)
	}
	if st := s.gw.AdmissionStats(); st.RefusedSockets != 1 || st.Sockets != max {
		t.Errorf("stats %+v", st)
	}
	// An open socket still serves requests.
	get := func(c net.Conn) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(tcpWait))
		_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	get(conns[0])
	conns[1].Close()
	waitFor(t, "socket freed", func() bool { return s.gw.AdmissionStats().Sockets == max-1 })
	c, err := net.DialTimeout("tcp", s.addr(), tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get(c)
}

// TestAdmissionSourceTable: sources without connections are bounded; when
// the table is full of sources still refilling, a new source is refused,
// while sources with connections and refilled ones make room.
func TestAdmissionSourceTable(t *testing.T) {
	cfg := Config{MaxConnections: 100, ConnectRatePerIP: 1, ConnectBurstPerIP: 2}.withDefaults()
	a := newAdmission(&cfg)
	a.maxIdle = 3
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	for i := range 3 {
		if why := a.admit(ip(i)); why != admitted {
			t.Fatalf("source %d: %v", i, why)
		}
		a.release(ip(i))
	}
	held := ip(9)
	if why := a.admit(ip(3)); why != refusedRate {
		t.Fatalf("full table: %v, want refused", why)
	}
	if st := a.stats(); st.Sources != 3 || st.Connections != 0 {
		t.Errorf("stats %+v", st)
	}
	now = now.Add(2 * time.Second) // every bucket refilled: evictable
	if why := a.admit(held); why != admitted {
		t.Fatalf("after refill: %v", why)
	}
	if st := a.stats(); st.Sources > 3 {
		t.Errorf("sources %d after eviction", st.Sources)
	}
	// Sources with open connections are never evicted.
	for i := 10; i < 20; i++ {
		if why := a.admit(ip(i)); why != admitted {
			t.Fatalf("source %d: %v", i, why)
		}
	}
	if st := a.stats(); st.Connections != 11 || st.Sources < 11 {
		t.Errorf("stats %+v", st)
	}
}

// TestAdmissionLimits: the derived cap is 95% of the descriptor limit
// with at least 32 descriptors kept; the socket cap is a margin above the
// connection cap and always below the limit.
func TestAdmissionLimits(t *testing.T) {
	cases := []struct{ nofile, max, conns, sockets int }{
		{1024, 0, 972, 988},
		{256, 0, 224, 240},
		{1 << 20, 0, 996147, 1006108},
		{0, 0, fallbackMaxConnections, fallbackMaxConnections + 100},
		{1024, 10, 10, 26},
		{1024, 5000, 5000, 1024 - 26}, // set above the limit: sockets still capped
		{0, 2, 2, 18},
	}
	for _, c := range cases {
		conns, sockets := admissionLimits(c.nofile, c.max)
		if conns != c.conns || sockets != c.sockets {
			t.Errorf("nofile %d max %d: %d, %d; want %d, %d", c.nofile, c.max, conns, sockets, c.conns, c.sockets)
		}
		if c.nofile > 0 && (sockets >= c.nofile || (c.max == 0 && conns > c.nofile*95/100)) {
			t.Errorf("nofile %d: %d connections, %d sockets", c.nofile, conns, sockets)
		}
	}
}

// TestDerivedMaxConnections: the defaults, and limits turned off.
func TestDerivedMaxConnections(t *testing.T) {
	cfg := Config{}.withDefaults()
	if n := cfg.MaxConnections; n <= 0 || cfg.socketCap <= n {
		t.Fatalf("MaxConnections %d, sockets %d", n, cfg.socketCap)
	}
	if cfg.MaxConnectionsPerIP != 1000 || cfg.ConnectRatePerIP != 100 || cfg.ConnectBurstPerIP != 200 {
		t.Errorf("defaults %+v", cfg)
	}
	off := Config{MaxConnections: 10000, MaxConnectionsPerIP: -1, ConnectRatePerIP: -1}.withDefaults()
	a := newAdmission(&off)
	for range 5000 {
		if why := a.admit(netip.MustParseAddr("192.0.2.1")); why != admitted {
			t.Fatalf("limits off: %v", why)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestListenerIdleSocketsPerIP: sockets that never become a protocol
// connection count per address: past MaxConnectionsPerIP a new one from
// that address is closed at once, while another address (127.0.0.2)
// connects and talks. WebSocket connections leave that count when they
// upgrade, so a client past the cap still gets HTTP 503, not a silent
// close.
func TestListenerIdleSocketsPerIP(t *testing.T) {
	const perIP = 3
	s := newGW(t, Config{MaxConnectionsPerIP: perIP})
	var idle []net.Conn
	for range perIP {
		c, err := net.DialTimeout("tcp", s.addr(), tcpWait)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	waitFor(t, "idle sockets accepted", func() bool { return s.gw.AdmissionStats().Sockets == perIP })
	extra, err := net.DialTimeout("tcp", s.addr(), tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(tcpWait))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("idle socket past the per-IP cap: %d, %v; want a close", n, err)
	}
	if st := s.gw.AdmissionStats(); st.RefusedPerIP != 1 || st.Sockets != perIP {
		t.Errorf("stats %+v", st)
	}

	d := websocket.Dialer{Subprotocols: []string{"alpha.v1"}, HandshakeTimeout: tcpWait,
		NetDial: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial}
	other, _, err := d.Dial(s.wsURL(), nil)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer other.Close()
	mustEcho(t, other, "neighbour")

	// Upgraded connections leave the socket count: with the idle sockets
	// gone, perIP WebSocket connections and then a 503.
	for _, c := range idle {
		c.Close()
	}
	waitFor(t, "idle sockets closed", func() bool { return s.gw.AdmissionStats().Sockets == 1 })
	for range perIP {
		mustEcho(t, mustDialWS(t, s), "ok")
	}
	if ws, code, body := dialWS(t, s.wsURL(), "alpha.v1", nil); ws != nil || code != http.StatusServiceUnavailable {
		t.Errorf("past the per-IP cap: %d %q, want 503", code, body)
	}
}

func mustDialWS(t *testing.T, s *gwServer) *websocket.Conn {
	t.Helper()
	ws, code, body := dialWS(t, s.wsURL(), "alpha.v1", nil)
	if ws == nil {
		t.Fatalf("dial: %d %q", code, body)
	}
	return ws
}
