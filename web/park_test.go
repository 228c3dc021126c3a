package web

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/mqtt"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
)

// Tests of parked connections (park_linux.go) over real sockets: a
// connection parks once it has waited Config.ParkAfter, and everything a
// connection does must still work while it is parked.

// parkingEcho echoes every message; its read loop waits and parks as the
// protocols' do (subprotocol.WaitIdle).
type parkingEcho struct{ parkers chan<- bool }

func (parkingEcho) Name() string           { return "wait" }
func (parkingEcho) Subprotocols() []string { return []string{"wait.v1"} }
func (p parkingEcho) Serve(_ context.Context, t subprotocol.Transport, _ *broker.Router) error {
	_, ok := t.(subprotocol.Parker)
	p.parkers <- ok
	e := &echoLoop{t: t}
	e.src = &subprotocol.Stream{T: t} // unused by the loop: the transport restores br over it
	e.br = bufio.NewReaderSize(e.src, protoReadBuffer)
	return e.Resume()
}

type echoLoop struct {
	t   subprotocol.Transport
	br  *bufio.Reader
	src io.Reader
}

func (e *echoLoop) IdleReader() (*bufio.Reader, io.Reader) { return e.br, e.src }

func (e *echoLoop) Parking() {}

func (e *echoLoop) Resume() error {
	for {
		if subprotocol.WaitIdle(e.t, e.br, e) {
			return subprotocol.ErrParked
		}
		_, r, err := e.t.NextReader()
		if err != nil {
			e.t.Close(subprotocol.CloseNormal, "")
			return nil
		}
		b, _ := io.ReadAll(r)
		if err := e.t.WriteMessage(false, b); err != nil {
			return err
		}
	}
}

// TestWaitRead: a read loop that waits and parks between messages still
// gets every message, whether they arrive one by one or several in one TCP
// segment (then the later ones are already buffered and WaitRead must not
// block), and sees the client's close.
func TestWaitRead(t *testing.T) {
	t.Run("ws", func(t *testing.T) { testWaitRead(t, false) })
	// Under TLS the socket's bytes are not the stream: the connection
	// never parks and reads as usual.
	t.Run("wss", func(t *testing.T) { testWaitRead(t, true) })
}

func testWaitRead(t *testing.T, useTLS bool) {
	parkers := make(chan bool, 4)
	gw := New(Config{ParkAfter: time.Millisecond}, broker.New(broker.Config{}, nil), subprotocol.Registry{parkingEcho{parkers}})
	var hs *httptest.Server
	d := websocket.Dialer{Subprotocols: []string{"wait.v1"}}
	url := ""
	if useTLS {
		hs = httptest.NewTLSServer(gw)
		d.TLSClientConfig = hs.Client().Transport.(*http.Transport).TLSClientConfig
		url = "wss" + strings.TrimPrefix(hs.URL, "https") + "/ws"
	} else {
		hs = httptest.NewServer(gw)
		url = wsURL(hs)
	}
	t.Cleanup(func() {
		hs.Close()
		_ = gw.Shutdown(context.Background())
	})

	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if !<-parkers {
		t.Fatal("the WebSocket transport is no Parker")
	}
	read := func(want string) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, p, err := ws.ReadMessage()
		if err != nil || string(p) != want {
			t.Fatalf("got %q, %v; want %q", p, err, want)
		}
	}
	waitParked := func() {
		t.Helper()
		if !useTLS && parkingSupported() {
			testutil.Eventually(t, 10*time.Second, "the connection parks", func() bool { return gw.parked.Load() == 1 })
		}
	}
	for _, m := range []string{"one", "two", strings.Repeat("x", 5000)} {
		waitParked()
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		read(m)
	}
	if !useTLS {
		// Three masked frames in one write: after the first, the others
		// sit in the transport's read buffer.
		var burst []byte
		for _, m := range []string{"a", "bb", "ccc"} {
			burst = append(burst, 0x82, 0x80|byte(len(m)), 0, 0, 0, 0)
			burst = append(burst, m...)
		}
		waitParked()
		if _, err := ws.NetConn().Write(burst); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"a", "bb", "ccc"} {
			read(m)
		}
	}
	waitParked()
	_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the close frame: %v, want close 1000", err)
	}
}

// parkServer runs the gateway with STOMP (heart-beats as configured) and
// MQTT, parking after 1 ms.
func parkServer(t *testing.T, scfg dstomp.Config) (*Server, *broker.Router, string) {
	t.Helper()
	return parkServerWith(t, Config{}, broker.Config{}, scfg)
}

// parkServerWith is parkServer with the gateway's and the broker's
// configuration.
func parkServerWith(t *testing.T, cfg Config, bcfg broker.Config, scfg dstomp.Config) (*Server, *broker.Router, string) {
	t.Helper()
	if !parkingSupported() {
		t.Skip("connections park on Linux only")
	}
	r := broker.New(bcfg, nil)
	cfg.ParkAfter = time.Millisecond
	gw := New(cfg, r, subprotocol.Registry{dstomp.New(scfg), mqtt.New(mqtt.Config{})})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		hs.Close()
		_ = gw.Shutdown(context.Background())
	})
	return gw, r, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// stompLogin connects over STOMP 1.2 with heart-beat hb and subscribes to
// dest (confirmed by a RECEIPT).
func stompLogin(t *testing.T, url, hb, dest string) *websocket.Conn {
	t.Helper()
	ws := wpDial(t, url+"/ws", "v12.stomp")
	wpSend(t, ws, false, wpFrame("CONNECT", "", "accept-version:1.2", "host:/", "heart-beat:"+hb))
	if f := wpRecv(t, ws); wpCommand(f) != "CONNECTED" {
		t.Fatalf("want CONNECTED, got %.200q", f)
	}
	if dest != "" {
		wpSend(t, ws, false, wpFrame("SUBSCRIBE", "", "id:0", "destination:"+dest, "receipt:s"))
		if f := wpRecv(t, ws); wpCommand(f) != "RECEIPT" {
			t.Fatalf("want RECEIPT, got %.200q", f)
		}
	}
	return ws
}

func waitParked(t *testing.T, gw *Server, n int64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "connections park", func() bool { return gw.parked.Load() >= n })
}

// TestParkedDelivery: a parked subscriber receives a message published on
// another connection, and its own next frame (a SEND with a receipt)
// resumes it.
func TestParkedDelivery(t *testing.T) {
	gw, _, url := parkServer(t, dstomp.Config{})
	sub := stompLogin(t, url, "0,0", "/topic/parked")
	waitParked(t, gw, 1)
	pub := stompLogin(t, url, "0,0", "")
	wpSend(t, pub, false, wpFrame("SEND", "hello", "destination:/topic/parked"))
	if f := wpRecv(t, sub); wpCommand(f) != "MESSAGE" || !strings.HasSuffix(string(f), "hello\x00") {
		t.Fatalf("want the MESSAGE, got %.200q", f)
	}
	waitParked(t, gw, 2)
	wpSend(t, sub, false, wpFrame("SEND", "back", "destination:/topic/parked", "receipt:r1"))
	for {
		f := wpRecv(t, sub)
		if wpCommand(f) == "RECEIPT" {
			break
		}
		if wpCommand(f) != "MESSAGE" { // its own "back", subscribed as it is
			t.Fatalf("want RECEIPT, got %.200q", f)
		}
	}
}

// TestParkedKeepAliveTimeout: a parked client that stops sending is closed
// when its heart-beat (STOMP) or keep-alive (MQTT) deadline passes.
func TestParkedKeepAliveTimeout(t *testing.T) {
	gw, _, url := parkServer(t, dstomp.Config{HeartbeatMin: 100 * time.Millisecond, HeartbeatGrace: 1, HeartbeatSlack: -1})
	t.Run("stomp", func(t *testing.T) {
		ws := stompLogin(t, url, "200,0", "")
		waitParked(t, gw, 1)
		if code := wpCloseCode(t, ws); code == 0 {
			t.Fatal("no close")
		}
	})
	t.Run("mqtt", func(t *testing.T) {
		ws := wpDial(t, url+"/mqtt", "mqtt")
		// Keep Alive 1 s: closed 1.5 s after the last packet [MQTT-3.1.2-24].
		body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 1, 0, 0}
		wpSend(t, ws, true, wpPacket(0x10, body))
		if p := wpRecv(t, ws); len(p) < 4 || p[0] != 0x20 || p[3] != 0 {
			t.Fatalf("want CONNACK 0, got % x", p)
		}
		waitParked(t, gw, 1)
		// A PINGREQ resumes it and is answered.
		wpSend(t, ws, true, []byte{0xc0, 0})
		if p := wpRecv(t, ws); len(p) != 2 || p[0] != 0xd0 {
			t.Fatalf("want PINGRESP, got % x", p)
		}
		waitParked(t, gw, 1)
		_ = ws.SetReadDeadline(time.Now().Add(wpWait))
		if _, _, err := ws.ReadMessage(); err == nil {
			t.Fatal("the connection outlived its keep-alive")
		}
	})
}

// TestParkedAdminDisconnect: an admin disconnect reaches a parked client,
// and ends the connection also when the client does not answer the close
// frame (the socket is aborted while parked).
func TestParkedAdminDisconnect(t *testing.T) {
	for _, answer := range []bool{true, false} {
		gw, r, url := parkServer(t, dstomp.Config{})
		ws := stompLogin(t, url, "0,0", "/topic/x")
		waitParked(t, gw, 1)
		sessions := r.Sessions()
		if len(sessions) != 1 {
			t.Fatalf("%d sessions, want 1", len(sessions))
		}
		if err := r.Disconnect(broker.SessionID(sessions[0].ID)); err != nil {
			t.Fatal(err)
		}
		if answer {
			if code := wpCloseCode(t, ws); code == 0 {
				t.Fatal("no close")
			}
		}
		testutil.Eventually(t, 10*time.Second, "the session ends", func() bool { return len(r.Sessions()) == 0 })
		testutil.Eventually(t, 10*time.Second, "the connection ends", func() bool { return gw.parked.Load() == 0 })
	}
}

// TestParkedShutdown: Shutdown closes many parked connections and returns
// once every one has ended.
func TestParkedShutdown(t *testing.T) {
	gw, _, url := parkServer(t, dstomp.Config{})
	const n = 50
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = stompLogin(t, url, "0,0", "/topic/s")
	}
	waitParked(t, gw, n)
	goroutines := runtime.NumGoroutine()
	if goroutines > n {
		t.Logf("%d goroutines with %d parked connections", goroutines, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- gw.Shutdown(ctx) }()
	for i, ws := range conns {
		if i%2 == 1 {
			continue // does not answer: aborted after closeLinger
		}
		if code := wpCloseCode(t, ws); code == 0 {
			t.Fatal("no close")
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if p := gw.parked.Load(); p != 0 {
		t.Fatalf("%d connections still parked", p)
	}
}

// TestParkedReadLimit: a parked connection that sends a frame over the
// limit gets the protocol's answer (STOMP ERROR, close 1009) as an active
// one does.
func TestParkedReadLimit(t *testing.T) {
	gw, _, url := parkServer(t, dstomp.Config{})
	ws := stompLogin(t, url, "0,0", "")
	waitParked(t, gw, 1)
	body := strings.Repeat("x", dstomp.DefaultMaxBodyLength+1)
	wpSend(t, ws, false, wpFrame("SEND", body, "destination:/topic/big", "receipt:big"))
	if f := wpRecv(t, ws); wpCommand(f) != "ERROR" {
		t.Fatalf("want ERROR, got %.200q", f)
	}
	if code := wpCloseCode(t, ws); code != websocket.CloseMessageTooBig {
		t.Errorf("close %d after the ERROR, want %d", code, websocket.CloseMessageTooBig)
	}
}

// TestParkedSlowConsumer: a parked subscriber that stops reading is closed
// by the slow-consumer policy, and its connection ends although the
// client never answers (the write times out, the socket is aborted while
// parked).
func TestParkedSlowConsumer(t *testing.T) {
	gw, r, url := parkServerWith(t, Config{WriteTimeout: 200 * time.Millisecond},
		broker.Config{MaxPendingMsgs: 10}, dstomp.Config{WriteTimeout: 200 * time.Millisecond})
	_ = stompLogin(t, url, "0,0", "/topic/slow") // never read again
	waitParked(t, gw, 1)
	pub := stompLogin(t, url, "0,0", "")
	body := strings.Repeat("x", 64<<10)
	testutil.Eventually(t, 30*time.Second, "the slow subscriber is closed", func() bool {
		if len(r.Sessions()) == 1 {
			return true
		}
		wpSend(t, pub, false, wpFrame("SEND", body, "destination:/topic/slow"))
		return false
	})
	testutil.Eventually(t, 10*time.Second, "its connection ends", func() bool { return gw.parked.Load() <= 1 })
}
