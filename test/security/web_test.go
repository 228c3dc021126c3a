package security

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// upgradeCase is one WebSocket upgrade attempt and the status it must get.
type upgradeCase struct {
	name         string
	host, origin string // "" = default Host / no Origin; PORT is replaced
	want         int    // 101 or 403
}

// tryUpgrades makes each upgrade on both paths (STOMP and MQTT) and
// returns the mismatches.
func tryUpgrades(p *proc, cases []upgradeCase) []string {
	_, port, _ := net.SplitHostPort(p.HTTP)
	var bad []string
	for _, c := range cases {
		for _, path := range []struct{ path, proto string }{{"/ws", "v12.stomp"}, {"/mqtt", "mqtt"}} {
			h := http.Header{}
			if c.host != "" {
				h.Set("Host", strings.ReplaceAll(c.host, "PORT", port))
			}
			if c.origin != "" {
				h.Set("Origin", strings.ReplaceAll(c.origin, "PORT", port))
			}
			ws, resp, err := dialWS("", p.WSURL(path.path), path.proto, h)
			got := 0
			if resp != nil {
				got = resp.StatusCode
			}
			if ws != nil {
				ws.Close()
			}
			if got != c.want {
				bad = append(bad, fmt.Sprintf("%s on %s (Host %q Origin %q): status %d (%v), want %d", c.name, path.path, h.Get("Host"), h.Get("Origin"), got, err, c.want))
			}
		}
	}
	return bad
}

// TestUpgradeOriginAndHost: a cross-origin upgrade (Origin not allowed) and
// a foreign Host (DNS rebinding: evil.example resolving to 127.0.0.1, so the
// browser's Origin matches the Host) are refused with 403; same-origin,
// allow-listed origins, no Origin (non-browser clients) and loopback Host
// names are upgraded. Neighbours on both protocols exchange messages the
// whole time.
func TestUpgradeOriginAndHost(t *testing.T) {
	t.Parallel()
	p := startBroker(t, `
[web]
allowed_origins = ["https://app.example"]
`)
	ns := []*neighbour{stompNeighbour(t, p, "ws", "", "", ""), v5Neighbour(t, p, "ws", "", "", "")}
	cases := []upgradeCase{
		{"cross-origin", "", "https://evil.example", 403},
		{"cross-origin port", "", "http://127.0.0.1:1", 403},
		{"foreign Host", "evil.example:PORT", "", 403},
		{"foreign Host without port", "evil.example", "", 403},
		{"DNS rebinding", "evil.example:PORT", "http://evil.example:PORT", 403},
		{"null Origin (sandboxed page, file://)", "", "null", 403},
		{"look-alike origin", "", "https://app.example.evil", 403},
		{"look-alike Host", "localhost.evil.example:PORT", "", 403},
		{"Host resolving to loopback by name", "127.0.0.1.nip.io:PORT", "http://127.0.0.1.nip.io:PORT", 403},
		{"no Origin", "", "", 101},
		{"LOCALHOST in capitals", "LOCALHOST:PORT", "", 101},
		{"same-origin", "", "http://127.0.0.1:PORT", 101},
		{"allow-listed origin", "", "https://app.example", 101},
		{"localhost", "localhost:PORT", "http://localhost:PORT", 101},
		{"localhost without port", "localhost", "", 101},
		{"::1", "[::1]:PORT", "", 101},
	}
	var bad []string
	errs := make([]error, len(ns))
	ns[0].during(func() {
		errs[1] = ns[1].during(func() { bad = tryUpgrades(p, cases) })
	})
	for _, b := range bad {
		t.Error(b)
	}
	for i, n := range ns {
		if errs[i] != nil {
			t.Error(errs[i])
		}
		n.report(t)
	}
	// A foreign Host on the plain HTTP endpoints: logged, not asserted (the
	// contract speaks of upgrades).
	for _, path := range []string{"/healthz", "/api/stats"} {
		req, _ := http.NewRequest("GET", "http://"+p.HTTP+path, nil)
		req.Host = "evil.example"
		resp, err := (&http.Client{Timeout: waitShort}).Do(req)
		if err != nil {
			t.Logf("GET %s with Host evil.example: %v", path, err)
			continue
		}
		resp.Body.Close()
		t.Logf("GET %s with Host evil.example: HTTP %d", path, resp.StatusCode)
	}
}

// TestUpgradeAllowedHosts: with [web] allowed_hosts set, a listed Host (and
// its same origin) is upgraded and any other refused with 403.
func TestUpgradeAllowedHosts(t *testing.T) {
	t.Parallel()
	p := startBroker(t, `
[web]
allowed_hosts = ["broker.example"]
`)
	n := stompNeighbour(t, p, "tcp", "", "", "")
	var bad []string
	err := n.during(func() {
		bad = tryUpgrades(p, []upgradeCase{
			{"listed Host", "broker.example:PORT", "", 101},
			{"listed Host same-origin", "broker.example:PORT", "http://broker.example:PORT", 101},
			{"other Host", "evil.example:PORT", "http://evil.example:PORT", 403},
		})
	})
	for _, b := range bad {
		t.Error(b)
	}
	if err != nil {
		t.Error(err)
	}
	n.report(t)
}

// TestIdleKeepAliveClosed: an HTTP keep-alive connection left idle is closed
// after [limits] http_idle_timeout (1s here); until then it serves more
// requests. A WebSocket subscriber that sends nothing for longer than that
// is not cut, and receives everything a publisher sends meanwhile.
func TestIdleKeepAliveClosed(t *testing.T) {
	t.Parallel()
	p := startBroker(t, `
[limits]
http_idle_timeout = "1s"
`)
	// The silent subscriber: STOMP over WebSocket, heart-beats off, it
	// only reads. The publisher is a separate connection.
	sub := stompNeighbour(t, p, "ws", neighbourIP, "", "")
	pub, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("idle-pub-"), "", "", true, 0))
	subTopic := "nb/" + sub.name // the STOMP destination /topic/nb/NAME
	pubSendTo := func(body string) error {
		rc, err := pub.publish(subTopic, 1, false, []byte(body))
		if err == nil && rc >= 0x80 {
			err = fmt.Errorf("PUBACK %#02x", rc)
		}
		return err
	}

	nc, err := dialTCP(offenderIP, p.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	get := func() error {
		_ = nc.SetDeadline(time.Now().Add(waitShort))
		if _, err := fmt.Fprintf(nc, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", p.HTTP); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// Keep-alive works: two requests on one connection.
	for i := range 2 {
		if err := get(); err != nil {
			t.Fatalf("request %d on the keep-alive connection: %v", i+1, err)
		}
	}
	idleFrom := time.Now()

	// Meanwhile the publisher sends to the silent subscriber's topic, one
	// message at a time, until the idle connection is closed.
	closed := make(chan error, 1)
	go func() {
		_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err := br.ReadByte()
		closed <- err
	}()
	sent := 0
	var closeErr error
loop:
	for {
		select {
		case closeErr = <-closed:
			break loop
		default:
		}
		body := fmt.Sprintf("%s-%d", sub.name, sent)
		if err := pubSendTo(body); err != nil {
			t.Fatalf("publisher: %v", err)
		}
		sent++
		if sent > 100000 {
			t.Fatal("idle connection never closed")
		}
		time.Sleep(20 * time.Millisecond) // pacing the publisher, not synchronization
	}
	idle := time.Since(idleFrom)
	var ne net.Error
	if errors.As(closeErr, &ne) && ne.Timeout() {
		t.Fatalf("idle keep-alive connection still open after 15s (http_idle_timeout 1s)")
	}
	t.Logf("idle keep-alive connection closed after %v (%v)", idle.Round(time.Millisecond), closeErr)
	// Two more after the close, then the subscriber must have all.
	for range 2 {
		if err := pubSendTo(fmt.Sprintf("%s-%d", sub.name, sent)); err != nil {
			t.Fatalf("publisher after the close: %v", err)
		}
		sent++
	}
	sub.sent = sent
	for sub.got < sub.sent {
		select {
		case b := <-sub.msgs:
			if want := fmt.Sprintf("%s-%d", sub.name, sub.got); b != want {
				t.Fatalf("silent subscriber got %q, want %q", b, want)
			}
			sub.got++
		case <-time.After(waitShort):
			t.Fatalf("silent subscriber: message %d of %d not received (cut by the idle timeout?)", sub.got, sub.sent)
		}
	}
	sub.report(t)
	// And the subscriber's connection still works both ways.
	sub.mustExchange(t, 5)
	sub.report(t)
}

// TestSlowClientsCut: [limits] http_read_header_timeout and connect_timeout
// (1s each here) cut a client that sends half a request (slowloris) and
// clients that connect and never log in — WebSocket, MQTT TCP, STOMP TCP —
// while a logged-in neighbour that only listens for longer than that keeps
// its connection and receives every message.
func TestSlowClientsCut(t *testing.T) {
	t.Parallel()
	p := startBroker(t, `
[limits]
http_read_header_timeout = "1s"
connect_timeout = "1s"
`)
	listener, _ := mustV5(t, p, "ws", neighbourIP, v5Login(uniq("silent-"), "", "", true, 0))
	topic := uniq("slow/t")
	listener.sub(t, topic, 1)
	pub := v5Neighbour(t, p, "tcp", neighbourIP, "", "")
	pubc, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("slow-pub-"), "", "", true, 0))

	type slow struct {
		name string
		nc   net.Conn
	}
	var slows []slow
	half, err := dialTCP(offenderIP, p.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if _, err := fmt.Fprintf(half, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n", p.HTTP); err != nil {
		t.Fatal(err)
	}
	slows = append(slows, slow{"half an HTTP request", half})
	for _, o := range []struct {
		name string
		open func() (net.Conn, error)
	}{
		{"WebSocket (STOMP) without CONNECT", func() (net.Conn, error) { return openSTOMP(p, "ws", offenderIP) }},
		{"WebSocket (MQTT) without CONNECT", func() (net.Conn, error) { return openMQTT(p, "ws", offenderIP) }},
		{"MQTT TCP without CONNECT", func() (net.Conn, error) { return openMQTT(p, "tcp", offenderIP) }},
		{"STOMP TCP without CONNECT", func() (net.Conn, error) { return openSTOMP(p, "tcp", offenderIP) }},
	} {
		nc, err := o.open()
		if err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		defer nc.Close()
		slows = append(slows, slow{o.name, nc})
	}
	start := time.Now()
	type result struct {
		name  string
		after time.Duration
		err   error
	}
	results := make(chan result, len(slows))
	for _, s := range slows {
		go func() {
			_ = s.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
			buf := make([]byte, 512)
			for {
				if _, err := s.nc.Read(buf); err != nil {
					results <- result{s.name, time.Since(start), err}
					return
				}
			}
		}()
	}
	// The silent listener receives while the slow clients wait to be cut.
	sent := 0
	got := 0
	var cut []result
	err = pub.during(func() {
		for len(cut) < len(slows) {
			select {
			case r := <-results:
				cut = append(cut, r)
			case <-time.After(50 * time.Millisecond): // pacing, not synchronization
			}
			pubc.mustPub(t, topic, 1, false, fmt.Sprintf("slow-%d", sent))
			sent++
		}
	})
	if err != nil {
		t.Error(err)
	}
	for _, r := range cut {
		var ne net.Error
		if errors.As(r.err, &ne) && ne.Timeout() {
			t.Errorf("%s: still open after 15s", r.name)
			continue
		}
		t.Logf("%s: cut after %v (%v)", r.name, r.after.Round(time.Millisecond), r.err)
	}
	for got < sent {
		select {
		case m := <-listener.msgs:
			if want := fmt.Sprintf("slow-%d", got); string(m.Payload) != want {
				t.Fatalf("silent listener got %q, want %q", m.Payload, want)
			}
			got++
		case <-time.After(waitShort):
			t.Fatalf("silent listener: %d of %d messages (cut? %s)", got, sent, listener.trouble())
		}
	}
	t.Logf("silent listener (quiet for %v): received all %d messages", time.Since(start).Round(time.Millisecond), got)
	pub.report(t)
}

// TestAPIListsBounded: no management API answer holds a list longer than
// a page (web.MaxPageLimit, 1000), whatever clients created: a user who
// makes 1500 queues (one SEND each, no other limit stops it) does not make
// every GET /api/stats carry 1500 entries (the 28 MB per request).
func TestAPIListsBounded(t *testing.T) {
	t.Parallel()
	const queues, maxPage = 1500, 1000
	p := startBroker(t, authConfig(t))
	nb := stompNeighbour(t, p, "tcp", neighbourIP, "b", "pw-b")
	nb.mustExchange(t, 10)
	nc, err := openSTOMP(p, "tcp", offenderIP)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := newRawSTOMP(nc)
	_ = r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0", "login", "a", "passcode", "pw-a")
	if f, err := r.next(waitShort); err != nil || f.Command != "CONNECTED" {
		t.Fatalf("CONNECT %v %v", f, err)
	}
	base := uniq("many")
	var buf []byte
	for i := range queues {
		buf = append(buf, encodeFrame("SEND", []byte("x"), "destination", fmt.Sprintf("/queue/%s-%d", base, i))...)
	}
	buf = append(buf, encodeFrame("SEND", []byte("x"), "destination", "/queue/"+base+"-last", "receipt", "done")...)
	go func() { _, _ = nc.Write(buf) }()
	if f, err := r.next(waitLong); err != nil || f.Command != "RECEIPT" {
		t.Fatalf("after %d SENDs: %v %v", queues, f, err)
	}
	nb.mustExchange(t, 10)
	for _, path := range []string{"/api/stats", "/api/sessions"} {
		code, body := p.apiGet(t, path, "admin", "pw-admin")
		if code != 200 {
			t.Fatalf("%s: HTTP %d", path, code)
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		longest, where := longestList(v, "")
		t.Logf("%s with %d queues: %d bytes, longest list %d (%s)", path, queues+1, len(body), longest, where)
		if longest > maxPage {
			t.Errorf("%s carries a list of %d entries (%s), more than a page of %d: one request allocates in proportion to what clients created", path, longest, where, maxPage)
		}
	}
	nb.report(t)
}

// longestList returns the length and path of the longest JSON array in v.
func longestList(v any, path string) (int, string) {
	best, where := 0, ""
	switch x := v.(type) {
	case []any:
		best, where = len(x), path
		for _, e := range x {
			if n, w := longestList(e, path+"[]"); n > best {
				best, where = n, w
			}
		}
	case map[string]any:
		for k, e := range x {
			if n, w := longestList(e, path+"."+k); n > best {
				best, where = n, w
			}
		}
	}
	return best, where
}
