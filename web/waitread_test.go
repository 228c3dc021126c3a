package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// waitingEcho echoes like echoProtocol but parks in WaitRead before each
// message, as a read loop with an empty buffer does.
type waitingEcho struct{ waits chan<- bool }

func (waitingEcho) Name() string           { return "wait" }
func (waitingEcho) Subprotocols() []string { return []string{"wait.v1"} }
func (p waitingEcho) Serve(_ context.Context, t subprotocol.Transport, _ *broker.Router) error {
	w, ok := t.(interface{ WaitRead() })
	p.waits <- ok
	for {
		if ok {
			w.WaitRead()
		}
		_, r, err := t.NextReader()
		if err != nil {
			t.Close(subprotocol.CloseNormal, "")
			return nil
		}
		b, _ := io.ReadAll(r)
		if err := t.WriteMessage(false, b); err != nil {
			return err
		}
	}
}

// TestWaitRead: a read loop that waits for the socket between messages
// still gets every message, whether they arrive one by one or several in
// one TCP segment (then the later ones are already buffered and WaitRead
// must not block), and sees the client's close.
func TestWaitRead(t *testing.T) {
	t.Run("ws", func(t *testing.T) { testWaitRead(t, false) })
	// Under TLS the socket's bytes are not the stream: WaitRead must
	// leave them to the TLS connection.
	t.Run("wss", func(t *testing.T) { testWaitRead(t, true) })
}

func testWaitRead(t *testing.T, useTLS bool) {
	waits := make(chan bool, 4)
	gw := New(Config{IdleReadWait: true}, broker.New(broker.Config{}, nil), subprotocol.Registry{waitingEcho{waits}})
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
	if !<-waits {
		t.Fatal("the WebSocket transport has no WaitRead")
	}
	read := func(want string) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, p, err := ws.ReadMessage()
		if err != nil || string(p) != want {
			t.Fatalf("got %q, %v; want %q", p, err, want)
		}
	}
	for _, m := range []string{"one", "two", strings.Repeat("x", 5000)} {
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
		if _, err := ws.NetConn().Write(burst); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"a", "bb", "ccc"} {
			read(m)
		}
	}
	_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the close frame: %v, want close 1000", err)
	}
}
