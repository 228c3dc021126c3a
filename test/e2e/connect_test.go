package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gorilla/websocket"
)

// TestConnectVersions connects with go-stomp offering exactly one version
// each time and exercises send, receive and ACK in it (1.0/1.1 ACK by
// message-id + subscription, 1.2 by the ack header).
func TestConnectVersions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, v := range []stomp.Version{stomp.V10, stomp.V11, stomp.V12} {
		t.Run(string(v), func(t *testing.T) {
			var connected *frame.Header
			c := connect(t, s, stomp.ConnOpt.AcceptVersion(v), stomp.ConnOpt.Login("guest", "guest"),
				stomp.ConnOpt.ResponseHeaders(func(h *frame.Header) { connected = h.Clone() }))
			if c.Version() != v {
				t.Fatalf("negotiated version %s, want %s", c.Version(), v)
			}
			if got := connected.Get("version"); got != string(v) {
				t.Errorf("CONNECTED version:%q, want %q", got, v)
			}
			if !strings.HasPrefix(c.Server(), "Duplex/") {
				t.Errorf("CONNECTED server:%q, want Duplex/x.y", c.Server())
			}
			if c.Session() == "" {
				t.Errorf("CONNECTED has no session header: %s", headerString(connected))
			}
			if _, ok := connected.Contains("heart-beat"); !ok {
				t.Errorf("CONNECTED has no heart-beat header: %s", headerString(connected))
			}

			topic := "/topic/versions/" + strings.ReplaceAll(string(v), ".", "_")
			sub := c.subscribe(t, topic, stomp.AckAuto)
			c.send(t, topic, "hello "+string(v))
			m := recvBody(t, sub, "hello "+string(v))
			if m.Destination != topic {
				t.Errorf("MESSAGE destination %q, want %q", m.Destination, topic)
			}

			q := "versions-" + strings.ReplaceAll(string(v), ".", "_")
			qsub := c.subscribe(t, "/queue/"+q, stomp.AckClientIndividual)
			c.send(t, "/queue/"+q, "q1")
			c.send(t, "/queue/"+q, "q2")
			m1 := recvBody(t, qsub, "q1")
			m2 := recvBody(t, qsub, "q2")
			_, hasAck := m1.Header.Contains("ack")
			if (v == stomp.V12) != hasAck {
				t.Errorf("STOMP %s MESSAGE in client-individual mode: ack header present=%v: %s", v, hasAck, headerString(m1.Header))
			}
			waitQueue(t, s.Router, q, 0, 2)
			if err := c.Ack(m2); err != nil {
				t.Fatalf("ack: %v", err)
			}
			if err := c.Ack(m1); err != nil {
				t.Fatalf("ack: %v", err)
			}
			waitQueue(t, s.Router, q, 0, 0)
		})
	}

	t.Run("no common version", func(t *testing.T) {
		r := newRaw(t, s)
		r.send("CONNECT", "", "accept-version", "2.0,3.1", "host", "x")
		f := r.expect("ERROR")
		if f.Header.Get("version") != "1.2,1.1,1.0" {
			t.Errorf("ERROR version:%q, want 1.2,1.1,1.0 (%s)", f.Header.Get("version"), headerString(f.Header))
		}
		if f.Header.Get("message") == "" {
			t.Errorf("ERROR without message header: %s", headerString(f.Header))
		}
		r.expectClosed(waitShort)
	})

	t.Run("no accept-version is 1.0", func(t *testing.T) {
		r := newRaw(t, s)
		r.send("CONNECT", "", "host", "x")
		f := r.expect("CONNECTED")
		if v := f.Header.Get("version"); v != "1.0" {
			t.Errorf("CONNECTED version:%q, want 1.0", v)
		}
	})

	t.Run("STOMP command", func(t *testing.T) {
		c := connect(t, s, stomp.ConnOpt.UseStomp, stomp.ConnOpt.AcceptVersion(stomp.V12))
		if c.Version() != stomp.V12 {
			t.Fatalf("version %s", c.Version())
		}
	})
}

// TestHeartBeatNegotiated: the server's minimum is 50ms and the client asks
// 100ms both ways. CONNECTED must say 100,100; the idle connection must
// stay up while heart-beats flow both ways, and messages still flow after.
func TestHeartBeatNegotiated(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *serverConfig) {
		c.Stomp.HeartbeatMin = 50 * time.Millisecond
		c.Stomp.HeartbeatGrace = 5 // server read deadline 500ms: a client that stops heart-beating dies
		c.Stomp.HeartbeatSlack = -1
	})
	var hb string
	var mu sync.Mutex
	c := connect(t, s,
		stomp.ConnOpt.AcceptVersion(stomp.V12),
		stomp.ConnOpt.HeartBeat(100*time.Millisecond, 100*time.Millisecond),
		// go-stomp's read timeout is the server's interval + this: a
		// server that stops heart-beating trips it.
		stomp.ConnOpt.HeartBeatError(400*time.Millisecond),
		stomp.ConnOpt.ResponseHeaders(func(h *frame.Header) { mu.Lock(); hb = h.Get("heart-beat"); mu.Unlock() }),
	)
	mu.Lock()
	got := hb
	mu.Unlock()
	if got != "100,100" {
		t.Fatalf("CONNECTED heart-beat:%q, want 100,100", got)
	}
	sub := c.subscribe(t, "/topic/hb", stomp.AckAuto)
	c.send(t, "/topic/hb", "before idle")
	recvBody(t, sub, "before idle")

	// Idle for at least 10 server heart-beat intervals (>1s, longer than
	// both read deadlines), counting heart-beats each way.
	in0, out0 := c.ws.hbIn.Load(), c.ws.hbOut.Load()
	start := time.Now()
	checkFor(t, waitLong, func() error {
		in, out := c.ws.hbIn.Load()-in0, c.ws.hbOut.Load()-out0
		if in < 10 || out < 8 {
			return fmt.Errorf("heart-beats so far: %d from the server, %d from the client", in, out)
		}
		return nil
	})
	idle := time.Since(start)
	if n := len(s.Router.Sessions()); n != 1 {
		t.Fatalf("router has %d sessions after %v idle, want 1", n, idle)
	}
	select {
	case m := <-sub.C:
		t.Fatalf("while idle the subscription got %v (err %v)", m.Body, m.Err)
	default:
	}
	c.send(t, "/topic/hb", "after idle")
	recvBody(t, sub, "after idle")
	t.Logf("idle %v: %d heart-beats in, %d out", idle.Round(time.Millisecond), c.ws.hbIn.Load()-in0, c.ws.hbOut.Load()-out0)
}

// TestHeartBeatNegotiationTable checks CONNECTED heart-beat values for a few
// client offers against a 50ms server minimum.
func TestHeartBeatNegotiationTable(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *serverConfig) { c.Stomp.HeartbeatMin = 50 * time.Millisecond })
	for _, tc := range []struct{ offer, want string }{
		{"0,0", "0,0"},
		{"10,20", "50,50"}, // below the minimum: raised to it
		{"100,0", "0,100"}, // client sends, wants none
		{"0,200", "200,0"}, // client wants, sends none
		{"300,400", "400,300"},
	} {
		t.Run(tc.offer, func(t *testing.T) {
			r := newRaw(t, s)
			f := r.connect("heart-beat", tc.offer)
			if got := f.Header.Get("heart-beat"); got != tc.want {
				t.Errorf("CONNECT heart-beat:%s → CONNECTED heart-beat:%q, want %q", tc.offer, got, tc.want)
			}
		})
	}
}

// TestHeartBeatSilentClientClosed: a client that promises heart-beats every
// 100ms and then stays silent is closed (grace 1, no slack).
func TestHeartBeatSilentClientClosed(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *serverConfig) {
		c.Stomp.HeartbeatMin = 50 * time.Millisecond
		c.Stomp.HeartbeatGrace = 1
		c.Stomp.HeartbeatSlack = -1
	})
	r := newRaw(t, s)
	start := time.Now()
	f := r.connect("heart-beat", "100,0")
	if got := f.Header.Get("heart-beat"); got != "0,100" {
		t.Fatalf("CONNECTED heart-beat:%q, want 0,100", got)
	}
	frames, code := r.expectClosed(waitShort)
	elapsed := time.Since(start)
	if elapsed < 100*time.Millisecond {
		t.Errorf("closed after %v, before one heart-beat interval", elapsed)
	}
	t.Logf("closed after %v, close code %d, frames %d", elapsed, code, len(frames))
	if len(frames) != 1 || frames[0].Command != "ERROR" {
		t.Fatalf("want exactly one ERROR before the close, got %s", describeFrames(frames))
	}
	if msg := frames[0].Header.Get("message"); msg == "" {
		t.Errorf("ERROR without message header: %s", headerString(frames[0].Header))
	}
	checkFor(t, waitShort, func() error {
		if n := len(s.Router.Sessions()); n != 0 {
			return fmt.Errorf("%d sessions left", n)
		}
		return nil
	})
}

func describeFrames(fs []*frame.Frame) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("%s %s %q", f.Command, headerString(f.Header), f.Body))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// TestSubprotocols: the server prefers the newest STOMP subprotocol, serves
// /ws and /stomp, and refuses a handshake without a supported one with HTTP
// 400 naming v12.stomp.
func TestSubprotocols(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"v10.stomp", "v11.stomp", "v12.stomp"}, "v12.stomp"},
		{[]string{"v11.stomp"}, "v11.stomp"},
		{[]string{"mqtt", "v10.stomp"}, "v10.stomp"},
	} {
		t.Run("offer "+strings.Join(tc.offer, ","), func(t *testing.T) {
			ws := dialWS(t, s, func(o *dialOptions) { o.subprotocols = tc.offer })
			if got := ws.ws.Subprotocol(); got != tc.want {
				t.Fatalf("selected subprotocol %q, want %q", got, tc.want)
			}
			c := connectWS(t, ws)
			sub := c.subscribe(t, "/topic/sp", stomp.AckAuto)
			c.send(t, "/topic/sp", "x")
			recvBody(t, sub, "x")
		})
	}

	t.Run("path /stomp", func(t *testing.T) {
		ws := dialWS(t, s, func(o *dialOptions) { o.path = "/stomp" })
		c := connectWS(t, ws)
		sub := c.subscribe(t, "/topic/sp", stomp.AckAuto)
		c.send(t, "/topic/sp", "y")
		recvBody(t, sub, "y")
	})

	for _, offer := range [][]string{nil, {"mqtt"}, {"v13.stomp"}} {
		t.Run(fmt.Sprintf("refused %q", offer), func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: offer, HandshakeTimeout: waitShort}
			ws, resp, err := d.Dial(s.URL, nil)
			if err == nil {
				ws.Close()
				t.Fatalf("handshake offering %q succeeded (subprotocol %q), want HTTP 400", offer, ws.Subprotocol())
			}
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
				t.Fatalf("dial: %v, want a bad handshake with a response", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400 (body %q)", resp.StatusCode, body)
			}
			if !strings.Contains(string(body), "v12.stomp") {
				t.Errorf("body %q does not name v12.stomp", body)
			}
		})
	}

	t.Run("plain GET", func(t *testing.T) {
		cl := http.Client{Timeout: waitShort}
		resp, err := cl.Get(s.HTTPURL + "/ws")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "v12.stomp") {
			t.Errorf("plain GET /ws: status %d body %q, want 400 naming v12.stomp", resp.StatusCode, body)
		}
	})
}
