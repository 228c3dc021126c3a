package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// echoProtocol is a minimal Protocol: it answers each message with its
// name and the message, then closes when the client does.
type echoProtocol struct{ name string }

func (p echoProtocol) Name() string           { return p.name }
func (p echoProtocol) Subprotocols() []string { return []string{p.name + ".v2", p.name + ".v1"} }
func (p echoProtocol) Serve(_ context.Context, t subprotocol.Transport, _ *broker.Router) error {
	for {
		_, r, err := t.NextReader()
		if err != nil {
			t.Close(subprotocol.CloseNormal, "")
			return nil
		}
		b, _ := io.ReadAll(r)
		if err := t.WriteMessage(false, append([]byte(p.name+":"), b...)); err != nil {
			return err
		}
	}
}

func newTestServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	gw := New(cfg, broker.New(broker.Config{}, nil), subprotocol.Registry{echoProtocol{"alpha"}, echoProtocol{"beta"}})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		hs.Close()
		_ = gw.Shutdown(context.Background())
	})
	return hs
}

func wsURL(hs *httptest.Server) string { return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws" }

// TestSubprotocolServerPreference: the server's order wins over the
// client's (gorilla would pick the client's first match).
func TestSubprotocolServerPreference(t *testing.T) {
	hs := newTestServer(t, Config{})
	cases := []struct {
		offered []string
		want    string
	}{
		{[]string{"beta.v1", "alpha.v1"}, "alpha.v1"},
		{[]string{"alpha.v1", "alpha.v2"}, "alpha.v2"},
		{[]string{"nope", "beta.v1"}, "beta.v1"},
	}
	for _, c := range cases {
		d := websocket.Dialer{Subprotocols: c.offered}
		ws, _, err := d.Dial(wsURL(hs), nil)
		if err != nil {
			t.Fatalf("offered %v: %v", c.offered, err)
		}
		if got := ws.Subprotocol(); got != c.want {
			t.Errorf("offered %v: got %q, want %q", c.offered, got, c.want)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		_, msg, err := ws.ReadMessage()
		if err != nil || !strings.HasSuffix(string(msg), ":hi") {
			t.Errorf("echo through %q: %q, %v", c.want, msg, err)
		}
		ws.Close()
	}
}

// TestNoSubprotocolIs400: no match is refused before the upgrade, with a
// body that names what is supported.
func TestNoSubprotocolIs400(t *testing.T) {
	hs := newTestServer(t, Config{})
	for _, offered := range [][]string{nil, {"gamma"}} {
		d := websocket.Dialer{Subprotocols: offered}
		_, resp, err := d.Dial(wsURL(hs), nil)
		if err == nil || resp == nil {
			t.Fatalf("offered %v: dial succeeded, want HTTP 400", offered)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("offered %v: status %d, want 400", offered, resp.StatusCode)
		}
		if !strings.Contains(string(body), "alpha.v2") || !strings.Contains(string(body), "beta.v1") {
			t.Errorf("offered %v: body %q does not name the supported subprotocols", offered, body)
		}
	}
}

// TestCheckOrigin: no Origin and same-origin pass; others only when allowed.
func TestCheckOrigin(t *testing.T) {
	cases := []struct {
		allowed []string
		origin  string
		ok      bool
	}{
		{nil, "", true},
		{nil, "SAME", true},
		{nil, "http://evil.example", false},
		{[]string{"http://app.example"}, "http://app.example", true},
		{[]string{"http://app.example"}, "http://other.example", false},
		{[]string{"*"}, "http://other.example", true},
	}
	for _, c := range cases {
		hs := newTestServer(t, Config{AllowedOrigins: c.allowed})
		h := http.Header{}
		switch c.origin {
		case "":
		case "SAME":
			h.Set("Origin", hs.URL)
		default:
			h.Set("Origin", c.origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"alpha.v1"}}
		ws, resp, err := d.Dial(wsURL(hs), h)
		if c.ok != (err == nil) {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("allowed %v, origin %q: err %v (status %d), want ok=%v", c.allowed, c.origin, err, status, c.ok)
		}
		if ws != nil {
			ws.Close()
		}
	}
}

// TestReadLimit: a message over MaxMessageSize closes with 1009.
func TestReadLimit(t *testing.T) {
	hs := newTestServer(t, Config{MaxMessageSize: 1024})
	d := websocket.Dialer{Subprotocols: []string{"alpha.v1"}}
	ws, _, err := d.Dial(wsURL(hs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.WriteMessage(websocket.BinaryMessage, make([]byte, 4096))
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("got %v, want close 1009", err)
	}
}

// TestPlainHTTPOnWebSocketPath explains itself with a 400.
func TestPlainHTTPOnWebSocketPath(t *testing.T) {
	hs := newTestServer(t, Config{})
	resp, err := http.Get(hs.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "WebSocket") {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}
