package security

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// outcome is what one connection attempt got.
type outcome int

const (
	accepted outcome = iota // upgraded / CONNACK 0 / CONNECTED
	refused                 // HTTP 503 / TCP closed without an answer
	failed                  // anything else: the test fails
)

func (o outcome) String() string { return [...]string{"accepted", "refused", "failed"}[o] }

// attempt is one connection attempt's result; conn is open when accepted.
type attempt struct {
	out    outcome
	detail string
	conn   io.Closer
}

// wsAttempt upgrades /mqtt from src: 101 is accepted, 503 refused.
func wsAttempt(p *proc, src string) attempt { return wsAttemptH(p, src, nil) }

// wsAttemptH is wsAttempt with request headers.
func wsAttemptH(p *proc, src string, h http.Header) attempt {
	ws, resp, err := dialWS(src, p.WSURL("/mqtt"), "mqtt", h)
	switch {
	case err == nil:
		return attempt{out: accepted, conn: ws}
	case resp != nil && resp.StatusCode == 503:
		return attempt{out: refused, detail: "HTTP 503"}
	}
	return attempt{out: failed, detail: fmt.Sprintf("%v%s", err, respStatus(resp))}
}

// tcpAttempt connects to a TCP listener from src and logs in anonymously
// (proto "mqtt": a 3.1.1 CONNECT; "stomp": CONNECT). A success answer is
// accepted; the server closing without one is refused.
func tcpAttempt(p *proc, proto, src string) attempt {
	addr := p.MQTT
	if proto == "stomp" {
		addr = p.STOMP
	}
	nc, err := dialTCP(src, addr)
	if err != nil {
		return attempt{out: failed, detail: "dial: " + err.Error()}
	}
	closedBy := func(err error) attempt {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			nc.Close()
			return attempt{out: failed, detail: fmt.Sprintf("no answer and no close within %v", waitShort)}
		}
		nc.Close()
		return attempt{out: refused, detail: "closed: " + err.Error()}
	}
	if proto == "stomp" {
		r := newRawSTOMP(nc)
		if err := r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0"); err != nil {
			return closedBy(err)
		}
		f, err := r.next(waitShort)
		if err != nil {
			return closedBy(err)
		}
		if f.Command == "CONNECTED" {
			return attempt{out: accepted, conn: nc}
		}
		nc.Close()
		return attempt{out: failed, detail: "answered " + frameString(f)}
	}
	r := newRawMQTT(nc)
	if err := r.write(connectPacket(connectSpec{level: 4, id: uniq("flood-"), clean: true})); err != nil {
		return closedBy(err)
	}
	pk, err := r.read(waitShort)
	if err != nil {
		return closedBy(err)
	}
	if code, err := connackCode(pk); err == nil && code == 0 {
		return attempt{out: accepted, conn: nc}
	}
	nc.Close()
	return attempt{out: failed, detail: "answered " + pk.String()}
}

// tally counts outcomes and keeps the failures' details.
type tally struct {
	n        [3]int
	failures []string
	open     []io.Closer
}

func (t *tally) add(a attempt, keep bool) {
	t.n[a.out]++
	if a.out == failed && len(t.failures) < 5 {
		t.failures = append(t.failures, a.detail)
	}
	if a.conn != nil {
		if keep {
			t.open = append(t.open, a.conn)
		} else {
			a.conn.Close()
		}
	}
}

func (t *tally) String() string {
	return fmt.Sprintf("%d accepted, %d refused, %d failed %v", t.n[accepted], t.n[refused], t.n[failed], t.failures)
}

func (t *tally) closeAll() {
	for _, c := range t.open {
		c.Close()
	}
	t.open = nil
}

// connectAfter polls until a fresh neighbour can connect (a WebSocket
// upgrade from src), then connects a STOMP neighbour and exchanges
// messages; it returns the time from start to the neighbour's CONNECTED.
func connectAfter(t *testing.T, p *proc, src string, start time.Time) *neighbour {
	t.Helper()
	checkFor(t, waitShort, func() error {
		a := wsAttempt(p, src)
		if a.conn != nil {
			a.conn.Close()
		}
		if a.out != accepted {
			return fmt.Errorf("upgrade from %s: %v %s", src, a.out, a.detail)
		}
		return nil
	})
	n := stompNeighbour(t, p, "ws", src, "", "")
	n.connect = time.Since(start)
	n.mustExchange(t, 20)
	return n
}

// TestFloodPerIP: one source address opening connections past
// [limits] max_connections_per_ip (50) gets HTTP 503 on the WebSocket
// endpoint and a TCP close on the MQTT and STOMP listeners; neighbours from
// another address, connected before, keep exchanging messages, and new ones
// connect while the flood holds its 50. Once the flood lets go, its address
// connects again.
func TestFloodPerIP(t *testing.T) {
	t.Parallel()
	const perIP = 50
	p := startBroker(t, fmt.Sprintf(`
[limits]
max_connections_per_ip = %d
connect_rate_per_ip = 100000
connect_burst_per_ip = 100000
connect_timeout = "60s"
`, perIP))
	before := []*neighbour{
		stompNeighbour(t, p, "ws", neighbourIP, "", ""),
		v3Neighbour(t, p, "tcp", neighbourIP, "", ""),
	}
	var ws, tcp tally
	var firstRefused = -1
	var during []*neighbour
	var floodErr error
	err := before[0].during(func() {
		floodErr = before[1].during(func() {
			for i := range 3 * perIP {
				a := wsAttempt(p, offenderIP)
				if a.out != accepted && firstRefused < 0 {
					firstRefused = i
				}
				ws.add(a, true)
			}
			for range 20 {
				tcp.add(tcpAttempt(p, "mqtt", offenderIP), true)
				tcp.add(tcpAttempt(p, "stomp", offenderIP), true)
			}
			// New neighbours while the flood holds its connections.
			n1 := stompNeighbour(t, p, "ws", neighbourIP, "", "")
			n2 := v5Neighbour(t, p, "tcp", neighbourIP, "", "")
			t.Logf("neighbour connects while the flood holds %d connections: STOMP over WebSocket %v, MQTT v5 over TCP %v",
				ws.n[accepted]+tcp.n[accepted], n1.connect.Round(time.Microsecond), n2.connect.Round(time.Microsecond))
			n1.mustExchange(t, 50)
			n2.mustExchange(t, 50)
			during = append(during, n1, n2)
		})
	})
	t.Logf("WebSocket flood from %s: %v (first refusal at attempt %d)", offenderIP, &ws, firstRefused+1)
	t.Logf("TCP flood from %s (MQTT and STOMP listeners): %v", offenderIP, &tcp)
	if ws.n[accepted] != perIP || firstRefused != perIP || ws.n[refused] != 2*perIP || ws.n[failed] != 0 {
		t.Errorf("WebSocket flood: %v, first refusal at attempt %d; want the first %d accepted and the other %d refused with 503",
			&ws, firstRefused+1, perIP, 2*perIP)
	}
	if tcp.n[refused] != 40 {
		t.Errorf("TCP flood with %d connections from the address already open: %v; want all 40 closed", perIP, &tcp)
	}
	p.checkLogged(t, ws.n[refused]+tcp.n[refused], 5, "refused", "max_connections_per_ip")
	p.checkCounted(t, ws.n[refused]+tcp.n[refused])
	for _, e := range []error{err, floodErr} {
		if e != nil {
			t.Error(e)
		}
	}
	for _, n := range append(before, during...) {
		n.report(t)
	}
	// The flood lets go: its address connects again.
	released := time.Now()
	ws.closeAll()
	tcp.closeAll()
	checkFor(t, waitShort, func() error {
		a := wsAttempt(p, offenderIP)
		if a.conn != nil {
			a.conn.Close()
		}
		if a.out != accepted {
			return fmt.Errorf("%s still refused after closing its connections: %v %s", offenderIP, a.out, a.detail)
		}
		return nil
	})
	t.Logf("%s connects again %v after closing its connections", offenderIP, time.Since(released).Round(time.Millisecond))
}

// TestFloodGlobal: connections past [limits] max_connections (40) are
// refused whatever their address (HTTP 503, TCP close); neighbours connected
// before keep exchanging messages; once the flood lets go a new neighbour
// connects (the time is logged).
func TestFloodGlobal(t *testing.T) {
	t.Parallel()
	const total = 40
	p := startBroker(t, fmt.Sprintf(`
[limits]
max_connections = %d
max_connections_per_ip = 1000
connect_rate_per_ip = 100000
connect_burst_per_ip = 100000
connect_timeout = "60s"
`, total))
	before := []*neighbour{
		stompNeighbour(t, p, "ws", neighbourIP, "", ""),
		v3Neighbour(t, p, "tcp", neighbourIP, "", ""),
	}
	var ws, tcp tally
	var neighbourRefused attempt
	var floodErr error
	err := before[0].during(func() {
		floodErr = before[1].during(func() {
			for range 2 * total {
				ws.add(wsAttempt(p, offenderIP), true)
			}
			for range 10 {
				tcp.add(tcpAttempt(p, "mqtt", offenderIP), true)
				tcp.add(tcpAttempt(p, "stomp", offenderIP), true)
			}
			// The cap is global: another address is refused too.
			neighbourRefused = wsAttempt(p, neighbourIP)
			if neighbourRefused.conn != nil {
				neighbourRefused.conn.Close()
			}
		})
	})
	t.Logf("WebSocket flood from %s: %v; TCP: %v; a new connection from %s at the cap: %v %s",
		offenderIP, &ws, &tcp, neighbourIP, neighbourRefused.out, neighbourRefused.detail)
	if want := total - len(before); ws.n[accepted] != want || ws.n[refused] != 2*total-want || ws.n[failed] != 0 {
		t.Errorf("WebSocket flood: %v; want %d accepted (cap %d minus %d neighbour connections), the rest refused with 503",
			&ws, want, total, len(before))
	}
	if tcp.n[refused] != 20 {
		t.Errorf("TCP flood at the cap: %v; want all 20 closed", &tcp)
	}
	p.checkLogged(t, ws.n[refused]+tcp.n[refused], 5, "refused", "max_connections")
	p.checkCounted(t, ws.n[refused]+tcp.n[refused]+1) // and the neighbour's attempt
	if neighbourRefused.out != refused {
		t.Errorf("a new connection from %s at the global cap: %v %s, want 503", neighbourIP, neighbourRefused.out, neighbourRefused.detail)
	}
	for _, e := range []error{err, floodErr} {
		if e != nil {
			t.Error(e)
		}
	}
	for _, n := range before {
		n.report(t)
	}
	released := time.Now()
	ws.closeAll()
	tcp.closeAll()
	n := connectAfter(t, p, neighbourIP, released)
	t.Logf("after the global flood let go, a new neighbour connected in %v", n.connect.Round(time.Microsecond))
	n.report(t)
}

// TestConnectRate: a burst of connections from one address past
// [limits] connect_rate_per_ip (5/s, burst 10) gets the first 10 through and
// the excess refused (503; TCP close), never more than the bucket allows;
// neighbours from another address connect meanwhile and exchange messages.
func TestConnectRate(t *testing.T) {
	t.Parallel()
	const rate, burst = 5, 10
	p := startBroker(t, fmt.Sprintf(`
[limits]
connect_rate_per_ip = %d
connect_burst_per_ip = %d
max_connections_per_ip = 1000
`, rate, burst))
	before := stompNeighbour(t, p, "ws", neighbourIP, "", "")
	var ws, tcp tally
	var seq []string
	var elapsed time.Duration
	var during *neighbour
	err := before.during(func() {
		start := time.Now()
		for range 60 {
			a := wsAttempt(p, offenderIP)
			seq = append(seq, a.out.String()[:1])
			ws.add(a, false)
		}
		for range 10 {
			tcp.add(tcpAttempt(p, "mqtt", offenderIP), false)
			tcp.add(tcpAttempt(p, "stomp", offenderIP), false)
		}
		elapsed = time.Since(start)
		during = connectAfter(t, p, neighbourIP, time.Now())
	})
	if err != nil {
		t.Error(err)
	}
	t.Logf("burst from %s in %v: WebSocket %v [%s]; TCP %v", offenderIP, elapsed.Round(time.Millisecond), &ws, strings.Join(seq, ""), &tcp)
	t.Logf("neighbour from %s connected right after the burst in %v", neighbourIP, during.connect.Round(time.Microsecond))
	if strings.Join(seq[:burst], "") != strings.Repeat("a", burst) {
		t.Errorf("the first %d attempts (the burst) were not all accepted: %s", burst, strings.Join(seq, ""))
	}
	// The token bucket bounds what got through, counted over both
	// listeners: the limit is per source address.
	bound := burst + int(float64(rate)*elapsed.Seconds()) + 1
	if got := ws.n[accepted] + tcp.n[accepted]; got > bound {
		t.Errorf("%d connections accepted in %v; a bucket of %d refilled at %d/s allows at most %d", got, elapsed, burst, rate, bound)
	}
	if ws.n[refused] == 0 || ws.n[failed] != 0 {
		t.Errorf("WebSocket burst: %v; want the excess refused with 503 and nothing else", &ws)
	}
	if tcp.n[failed] != 0 || tcp.n[refused] == 0 {
		t.Errorf("TCP burst: %v; want the excess closed", &tcp)
	}
	p.checkLogged(t, ws.n[refused]+tcp.n[refused], 5, "refused", "connect_rate_per_ip")
	p.checkCounted(t, ws.n[refused]+tcp.n[refused])
	before.report(t)
	during.report(t)
	// The bucket refills: the address gets a connection again.
	again := time.Now()
	checkFor(t, waitShort, func() error {
		a := wsAttempt(p, offenderIP)
		if a.conn != nil {
			a.conn.Close()
		}
		if a.out != accepted {
			return fmt.Errorf("%s: %v %s", offenderIP, a.out, a.detail)
		}
		return nil
	})
	t.Logf("%s accepted again %v after the burst", offenderIP, time.Since(again).Round(time.Millisecond))
}

// TestFloodIdleSockets: one source address opening sockets that never send
// a byte (the "20k idle sockets", a slowloris without even a
// request line) past [limits] max_connections_per_ip (20) has all but 20 of
// them closed, on the HTTP listener as on the MQTT TCP listener, and does
// not fill the global cap (max_connections 100): a neighbour from another
// address, connected before, keeps exchanging messages, and a new one
// connects (the time is logged).
func TestFloodIdleSockets(t *testing.T) {
	t.Parallel()
	const perIP, total, idle = 20, 100, 150
	p := startBroker(t, fmt.Sprintf(`
[limits]
max_connections = %d
max_connections_per_ip = %d
connect_rate_per_ip = 100000
connect_burst_per_ip = 100000
`, total, perIP))
	before := stompNeighbour(t, p, "ws", neighbourIP, "", "")
	for _, listener := range []struct {
		name, addr string
		request    bool // send GET /healthz and read the answer first (keep-alive)
	}{{"http", p.HTTP, false}, {"http-keepalive", p.HTTP, true}, {"mqtt-tcp", p.MQTT, false}} {
		t.Run(listener.name, func(t *testing.T) {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			var closedCount atomic.Int64
			var dialFailed []string
			err := before.during(func() {
				for range idle {
					c, err := dialTCP(offenderIP, listener.addr)
					if err != nil {
						dialFailed = append(dialFailed, err.Error())
						continue
					}
					conns = append(conns, c)
					if listener.request {
						// One request answered, then idle on keep-alive; a
						// refusal (503 or the close) counts as closed below.
						_ = c.SetDeadline(time.Now().Add(waitShort))
						fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", p.HTTP)
						br := bufio.NewReader(c)
						resp, err := http.ReadResponse(br, nil)
						if err != nil || resp.StatusCode != 200 {
							closedCount.Add(1)
							c.Close()
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						_ = c.SetDeadline(time.Time{})
					}
					go func() {
						// Read until the server closes the socket or the test
						// closes it; only the server's close counts.
						_ = c.SetReadDeadline(time.Now().Add(waitStart))
						var b [1]byte
						if _, err := c.Read(b[:]); err != nil && !errors.Is(err, net.ErrClosed) {
							var ne net.Error
							if !(errors.As(err, &ne) && ne.Timeout()) {
								closedCount.Add(1)
							}
						}
					}()
				}
			})
			if err != nil {
				t.Error(err)
			}
			opened := len(conns)
			t.Logf("%d idle sockets from %s to the %s listener (%d dials failed %v)", opened, offenderIP, listener.name, len(dialFailed), first(dialFailed))
			e := waitFor(waitShort, func() error {
				if open := opened - int(closedCount.Load()); open > perIP {
					return fmt.Errorf("%d of %d idle sockets from %s still open on the %s listener, max_connections_per_ip %d",
						open, opened, offenderIP, listener.name, perIP)
				}
				return nil
			})
			if e != nil {
				t.Error(e)
			}
			start := time.Now()
			var n *neighbour
			if listener.name != "mqtt-tcp" {
				a := wsAttempt(p, neighbourIP)
				if a.conn != nil {
					a.conn.Close()
				}
				if a.out != accepted {
					t.Fatalf("a neighbour from %s cannot connect while %s holds %d idle sockets: %v %s",
						neighbourIP, offenderIP, opened-int(closedCount.Load()), a.out, a.detail)
				}
				n = stompNeighbour(t, p, "ws", neighbourIP, "", "")
			} else {
				a := tcpAttempt(p, "mqtt", neighbourIP)
				if a.conn != nil {
					a.conn.Close()
				}
				if a.out != accepted {
					t.Fatalf("a neighbour from %s cannot connect while %s holds %d idle sockets: %v %s",
						neighbourIP, offenderIP, opened-int(closedCount.Load()), a.out, a.detail)
				}
				n = v3Neighbour(t, p, "tcp", neighbourIP, "", "")
			}
			n.connect = time.Since(start)
			n.mustExchange(t, 20)
			t.Logf("with %d idle sockets of %s open, a new neighbour connected in %v", opened-int(closedCount.Load()), offenderIP, n.connect.Round(time.Microsecond))
			n.report(t)
		})
	}
	before.report(t)
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// TestFloodBehindProxy: behind a trusted proxy ([web] trusted_proxies) the
// per-address cap (max_connections_per_ip = 5) applies to the address the
// proxy forwards (X-Forwarded-For), not to the proxy, which carries more
// than 5 clients; an untrusted peer's X-Forwarded-For is ignored, so
// spoofing a fresh address per connection does not get past the cap.
// Neighbours, direct and through the proxy, exchange messages, and the
// forwarded address is the one /api/sessions shows.
func TestFloodBehindProxy(t *testing.T) {
	t.Parallel()
	const perIP, proxyIP = 5, "127.0.0.4"
	p := startBroker(t, fmt.Sprintf(`
[web]
trusted_proxies = [%q]

[limits]
max_connections_per_ip = %d
connect_rate_per_ip = 100000
connect_burst_per_ip = 100000
connect_timeout = "60s"
`, proxyIP, perIP))
	direct := stompNeighbour(t, p, "ws", neighbourIP, "", "")
	xff := func(a string) http.Header { return http.Header{"X-Forwarded-For": {a}} }
	var spoof, viaProxy1, viaProxy2 tally
	defer spoof.closeAll()
	defer viaProxy1.closeAll()
	defer viaProxy2.closeAll()
	var proxied *neighbour
	err := direct.during(func() {
		for i := range 2 * perIP {
			spoof.add(wsAttemptH(p, offenderIP, xff(fmt.Sprintf("198.51.100.%d", 100+i))), true)
		}
		for range perIP + 3 {
			viaProxy1.add(wsAttemptH(p, proxyIP, xff("198.51.100.1")), true)
		}
		for range perIP {
			viaProxy2.add(wsAttemptH(p, proxyIP, xff("198.51.100.2")), true)
		}
		// A neighbour through the proxy.
		start := time.Now()
		ws, resp, err := dialWS(proxyIP, p.WSURL("/ws"), "v12.stomp", xff("198.51.100.3"))
		if err != nil {
			t.Fatalf("neighbour through the proxy: %v%s", err, respStatus(resp))
		}
		proxied = stompNeighbourOn(t, newWSConn(ws, true), start, "ws-proxied", "", "")
		proxied.mustExchange(t, 20)
	})
	if err != nil {
		t.Error(err)
	}
	t.Logf("untrusted %s spoofing a new X-Forwarded-For each time: %v", offenderIP, &spoof)
	t.Logf("trusted proxy %s for 198.51.100.1: %v; for 198.51.100.2: %v", proxyIP, &viaProxy1, &viaProxy2)
	if spoof.n[accepted] != perIP || spoof.n[refused] != perIP {
		t.Errorf("untrusted peer with spoofed X-Forwarded-For: %v; want %d accepted and %d refused: its own address is capped", &spoof, perIP, perIP)
	}
	if viaProxy1.n[accepted] != perIP || viaProxy1.n[refused] != 3 {
		t.Errorf("through the proxy for one client address: %v; want %d accepted, 3 refused", &viaProxy1, perIP)
	}
	if viaProxy2.n[accepted] != perIP {
		t.Errorf("through the proxy for a second client address: %v; want all %d accepted (the proxy itself is not capped)", &viaProxy2, perIP)
	}
	if code, body := p.apiGet(t, "/api/sessions", "", ""); code != 200 || !strings.Contains(body, "198.51.100.3") {
		t.Errorf("/api/sessions (HTTP %d) does not show the forwarded address 198.51.100.3 of the proxied neighbour: %s", code, truncate(body, 1500))
	}
	direct.report(t)
	proxied.report(t)
}

// TestFloodDescriptors: with max_connections left at 0 (derived: 95% of the
// open-file limit, set here for the broker process to 1024 — a common
// container and systemd figure — and 256, the macOS default) a flood of
// WebSocket connections from one address (per-address limits out of the
// way) is refused — HTTP 503 past the cap, or a TCP close once the socket
// margin is used — and accept never runs out of descriptors ("too many open
// files" in the log, clients left hanging in the backlog); the neighbours
// connected before keep exchanging messages and a new one connects once the
// flood lets go (the time is logged).
func TestFloodDescriptors(t *testing.T) {
	t.Parallel()
	for _, nofile := range []int{1024, 256} {
		t.Run(fmt.Sprint(nofile), func(t *testing.T) { floodDescriptors(t, nofile) })
	}
}

func floodDescriptors(t *testing.T, nofile int) {
	p := startBrokerNofile(t, nofile, `
[limits]
max_connections_per_ip = 100000
connect_rate_per_ip = 100000
connect_burst_per_ip = 100000
connect_timeout = "60s"
`)
	before := []*neighbour{
		stompNeighbour(t, p, "ws", neighbourIP, "", ""),
		v3Neighbour(t, p, "tcp", neighbourIP, "", ""),
	}
	var open []io.Closer
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	var n503, nClosed, nHung, nOther int
	var other []string
	var floodErr error
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: time.Second, NetDialContext: dialer(offenderIP).DialContext}
	err := before[0].during(func() {
		floodErr = before[1].during(func() {
			hungInARow := 0
			for range nofile + nofile/4 {
				ws, resp, err := d.Dial(p.WSURL("/mqtt"), nil)
				var ne net.Error
				switch {
				case err == nil:
					open = append(open, ws)
				case resp != nil && resp.StatusCode == 503:
					n503++
				case errors.As(err, &ne) && ne.Timeout():
					nHung++
				case resp == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)):
					nClosed++
				default:
					nOther++
					if len(other) < 3 {
						other = append(other, fmt.Sprintf("%v%s", err, respStatus(resp)))
					}
				}
				if errors.As(err, &ne) && ne.Timeout() {
					if hungInARow++; hungInARow == 3 {
						break // the broker no longer accepts: no use waiting more
					}
				} else {
					hungInARow = 0
				}
			}
		})
	})
	t.Logf("flood of WebSocket connections under RLIMIT_NOFILE %d: %d accepted, %d refused with 503, %d closed at once, %d hung (no answer in 1s), %d other %v",
		nofile, len(open), n503, nClosed, nHung, nOther, other)
	if limit := nofile * 95 / 100; len(open)+len(before) > limit {
		t.Errorf("%d connections open (flood %d + neighbours %d), over 95%% of the open-file limit (%d)", len(open)+len(before), len(open), len(before), limit)
	}
	if n503 == 0 || nHung != 0 || nOther != 0 {
		t.Errorf("past the derived cap: %d refused with 503, %d hung, %d other failures %v; want 503 first and nothing but refusals", n503, nHung, nOther, other)
	}
	if strings.Contains(p.Stderr(), "too many open files") {
		t.Errorf("the broker ran out of descriptors: %s", grepLines(p.Stderr(), "too many open files", 3))
	}
	for _, e := range []error{err, floodErr} {
		if e != nil {
			t.Error(e)
		}
	}
	for _, n := range before {
		n.report(t)
	}
	released := time.Now()
	for _, c := range open {
		c.Close()
	}
	open = nil
	n := connectAfter(t, p, neighbourIP, released)
	t.Logf("after the descriptor flood let go, a new neighbour connected in %v", n.connect.Round(time.Microsecond))
	n.report(t)
}

// grepLines returns up to n lines of s containing sub.
func grepLines(s, sub string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDefaultConnectRate: with no [limits] at all the defaults are in force
// (connect_rate_per_ip 100/s, connect_burst_per_ip 200): a burst of 400
// connections from one address gets no more than the bucket allows, the
// rest 503, while a neighbour connects and exchanges messages.
func TestDefaultConnectRate(t *testing.T) {
	t.Parallel()
	const rate, burst, attempts = 100, 200, 400
	p := startBroker(t, "")
	before := stompNeighbour(t, p, "ws", neighbourIP, "", "")
	var ws tally
	var elapsed time.Duration
	var during *neighbour
	err := before.during(func() {
		start := time.Now()
		for range attempts {
			ws.add(wsAttempt(p, offenderIP), false)
		}
		elapsed = time.Since(start)
		during = connectAfter(t, p, neighbourIP, time.Now())
	})
	if err != nil {
		t.Error(err)
	}
	bound := burst + int(rate*elapsed.Seconds()) + 1
	t.Logf("burst of %d from %s in %v with the default limits: %v (bucket bound %d); neighbour connected after it in %v",
		attempts, offenderIP, elapsed.Round(time.Millisecond), &ws, bound, during.connect.Round(time.Microsecond))
	if ws.n[accepted] > bound || ws.n[failed] != 0 {
		t.Errorf("%v in %v; the default bucket (%d, %d/s) allows %d, the rest 503", &ws, elapsed, burst, rate, bound)
	}
	if bound < attempts && ws.n[refused] == 0 {
		t.Errorf("nothing refused: the default connect_rate_per_ip is not in force")
	}
	before.report(t)
	during.report(t)
}
