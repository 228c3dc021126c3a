package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/mqtt"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
)

// Tests of the gateway with the real protocols behind it, at their default
// limits: subprotocol choice by path and the WebSocket read limit.

// wpWait bounds every read and write so a broken server fails the test
// instead of hanging it; it is no timing assertion.
const wpWait = 10 * time.Second

func wpServer(t *testing.T, cfg Config) string {
	t.Helper()
	r := broker.New(broker.Config{}, nil)
	gw := New(cfg, r, subprotocol.Registry{dstomp.New(dstomp.Config{}), mqtt.New(mqtt.Config{})})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		hs.Close()
		_ = gw.Shutdown(context.Background())
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

func wpDial(t *testing.T, url string, offered ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: offered}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s offering %q: %v (HTTP %d)", url, offered, err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func wpSend(t *testing.T, ws *websocket.Conn, binary bool, p []byte) {
	t.Helper()
	mt := websocket.TextMessage
	if binary {
		mt = websocket.BinaryMessage
	}
	_ = ws.SetWriteDeadline(time.Now().Add(wpWait))
	if err := ws.WriteMessage(mt, p); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// recv returns the next message that is not a STOMP heart-beat (a lone EOL).
func wpRecv(t *testing.T, ws *websocket.Conn) []byte {
	t.Helper()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(wpWait))
		_, p, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if s := string(p); s != "\n" && s != "\r\n" {
			return p
		}
	}
}

// wpCloseCode reads until the server's close frame and returns its code.
func wpCloseCode(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(wpWait))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			t.Fatalf("read until close: %v", err)
		}
	}
}

func wpFrame(command string, body string, headers ...string) []byte {
	return []byte(command + "\n" + strings.Join(headers, "\n") + "\n\n" + body + "\x00")
}

func wpCommand(p []byte) string { c, _, _ := strings.Cut(string(p), "\n"); return c }

// wpHeader returns the value of header name in frame p ("" when absent).
func wpHeader(p []byte, name string) string {
	head, _, _ := strings.Cut(string(p), "\n\n")
	for _, line := range strings.Split(head, "\n")[1:] {
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			return v
		}
	}
	return ""
}

func wpVarint(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func wpPacket(first byte, body []byte) []byte {
	return append(append([]byte{first}, wpVarint(len(body))...), body...)
}

// wpConnectMQTT sends a clean CONNECT at protocol level (4: 3.1.1, 5) and
// returns the CONNACK's return code or reason code.
func wpConnectMQTT(t *testing.T, ws *websocket.Conn, level byte) byte {
	t.Helper()
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', level, 0x02, 0, 60}
	if level == 5 {
		body = append(body, 0) // no properties
	}
	body = append(body, 0, 0) // empty client id: the server assigns one
	wpSend(t, ws, true, wpPacket(0x10, body))
	p := wpRecv(t, ws)
	if len(p) < 4 || p[0] != 0x20 {
		t.Fatalf("want CONNACK, got % x", p[:min(len(p), 16)])
	}
	return p[3]
}

// TestLegacyNoSubprotocol: on /stomp and /mqtt a request offering no
// subprotocol gets that path's protocol (the version comes from CONNECT);
// on /ws, and when only unknown subprotocols are offered, it is HTTP 400.
func TestLegacyNoSubprotocol(t *testing.T) {
	base := wpServer(t, Config{})

	t.Run("stomp", func(t *testing.T) {
		ws := wpDial(t, base+"/stomp")
		if ws.Subprotocol() != "" {
			t.Fatalf("server chose subprotocol %q, offered none", ws.Subprotocol())
		}
		wpSend(t, ws, false, wpFrame("CONNECT", "", "accept-version:1.1,1.2", "host:x"))
		f := wpRecv(t, ws)
		if wpCommand(f) != "CONNECTED" || wpHeader(f, "version") != "1.2" {
			t.Fatalf("want CONNECTED version 1.2, got %q", f)
		}
		wpSend(t, ws, false, wpFrame("SUBSCRIBE", "", "id:0", "destination:/topic/legacy", "receipt:r1"))
		if f := wpRecv(t, ws); wpCommand(f) != "RECEIPT" {
			t.Fatalf("want RECEIPT, got %q", f)
		}
		wpSend(t, ws, false, wpFrame("SEND", "hello", "destination:/topic/legacy"))
		if f := wpRecv(t, ws); wpCommand(f) != "MESSAGE" || !bytes.HasSuffix(f, []byte("\n\nhello\x00")) {
			t.Fatalf("want MESSAGE hello, got %q", f)
		}
	})
	t.Run("stomp 1.0", func(t *testing.T) {
		ws := wpDial(t, base+"/stomp")
		wpSend(t, ws, false, wpFrame("CONNECT", ""))
		if f := wpRecv(t, ws); wpCommand(f) != "CONNECTED" {
			t.Fatalf("want CONNECTED, got %q", f)
		}
	})
	for _, level := range []byte{4, 5} {
		t.Run("mqtt level "+string('0'+level), func(t *testing.T) {
			ws := wpDial(t, base+"/mqtt")
			if ws.Subprotocol() != "" {
				t.Fatalf("server chose subprotocol %q, offered none", ws.Subprotocol())
			}
			if rc := wpConnectMQTT(t, ws, level); rc != 0 {
				t.Fatalf("CONNACK code %#x", rc)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			path    string
			offered []string
		}{
			{"/ws", nil},
			{"/stomp", []string{"v13.stomp"}},
			{"/mqtt", []string{"chat.example"}},
		} {
			d := websocket.Dialer{Subprotocols: c.offered}
			ws, resp, err := d.Dial(base+c.path, nil)
			if err == nil {
				ws.Close()
				t.Errorf("%s offering %q: upgraded, want HTTP 400", c.path, c.offered)
				continue
			}
			if resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s offering %q: %v, want HTTP 400", c.path, c.offered, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "v12.stomp") || !strings.Contains(string(body), "mqtt") {
				t.Errorf("%s offering %q: body %q does not name the supported subprotocols", c.path, c.offered, body)
			}
		}
	})
}

// TestReadLimitAboveProtocols: with the default limits, a frame or packet
// just over the protocol's limit gets the protocol's answer over WebSocket
// (STOMP ERROR, MQTT 5 DISCONNECT 0x95, 3.1.1 the close), as over TCP; only
// a message over the WebSocket limit, far beyond, is cut with 1009 alone.
func TestReadLimitAboveProtocols(t *testing.T) {
	base := wpServer(t, Config{})

	t.Run("stomp body just over the limit", func(t *testing.T) {
		ws := wpDial(t, base+"/ws", "v12.stomp")
		wpSend(t, ws, false, wpFrame("CONNECT", "", "accept-version:1.2", "host:x"))
		if f := wpRecv(t, ws); wpCommand(f) != "CONNECTED" {
			t.Fatalf("want CONNECTED, got %q", f)
		}
		body := strings.Repeat("x", dstomp.DefaultMaxBodyLength+1)
		wpSend(t, ws, false, wpFrame("SEND", body, "destination:/topic/big", "receipt:big"))
		f := wpRecv(t, ws)
		if wpCommand(f) != "ERROR" || wpHeader(f, "message") == "" {
			t.Fatalf("want ERROR with a message header, got %.200q", f)
		}
		if code := wpCloseCode(t, ws); code != websocket.CloseMessageTooBig {
			t.Errorf("close %d after the ERROR, want %d", code, websocket.CloseMessageTooBig)
		}
	})
	t.Run("stomp headers at their limit", func(t *testing.T) {
		// The largest frame STOMP accepts, a full body and 64 KiB of
		// headers, fits in one WebSocket message.
		ws := wpDial(t, base+"/ws", "v12.stomp")
		wpSend(t, ws, false, wpFrame("CONNECT", "", "accept-version:1.2", "host:x"))
		if f := wpRecv(t, ws); wpCommand(f) != "CONNECTED" {
			t.Fatalf("want CONNECTED, got %q", f)
		}
		headers := []string{"destination:/topic/full", "receipt:full"}
		room := dstomp.DefaultMaxHeaderBytes - len("CONNECT") - len(headers[0]) - len(headers[1])
		for i := 0; room > 0; i++ {
			name := "x-pad-" + string('a'+rune(i)) + ":"
			n := min(room-len(name), dstomp.DefaultMaxLineLength-len(name))
			headers = append(headers, name+strings.Repeat("p", n))
			room -= len(name) + n
		}
		wpSend(t, ws, false, wpFrame("SEND", strings.Repeat("y", dstomp.DefaultMaxBodyLength), headers...))
		if f := wpRecv(t, ws); wpCommand(f) != "RECEIPT" {
			t.Fatalf("want RECEIPT, got %.200q", f)
		}
	})
	for _, level := range []byte{5, 4} {
		t.Run("mqtt packet just over the limit, level "+string('0'+level), func(t *testing.T) {
			ws := wpDial(t, base+"/ws", "mqtt")
			if rc := wpConnectMQTT(t, ws, level); rc != 0 {
				t.Fatalf("CONNACK code %#x", rc)
			}
			head := []byte{0, 1, 't'}
			if level == 5 {
				head = append(head, 0) // no properties
			}
			// The whole packet, fixed header included, is one byte over.
			size := mqtt.DefaultMaxPacketSize + 1
			payload := size - 1 - len(wpVarint(size)) - len(head)
			pkt := wpPacket(0x30, append(head, bytes.Repeat([]byte{'z'}, payload)...))
			if len(pkt) != size {
				t.Fatalf("packet of %d bytes, want %d", len(pkt), size)
			}
			wpSend(t, ws, true, pkt)
			if level == 5 {
				p := wpRecv(t, ws)
				if len(p) < 3 || p[0] != 0xe0 || p[2] != 0x95 {
					t.Fatalf("want DISCONNECT 0x95, got % x", p[:min(len(p), 16)])
				}
			}
			if code := wpCloseCode(t, ws); code != websocket.CloseMessageTooBig {
				t.Errorf("close %d, want %d", code, websocket.CloseMessageTooBig)
			}
		})
	}
	t.Run("far beyond: 1009 from the WebSocket layer", func(t *testing.T) {
		ws := wpDial(t, base+"/ws", "v12.stomp")
		wpSend(t, ws, false, wpFrame("CONNECT", "", "accept-version:1.2", "host:x"))
		if f := wpRecv(t, ws); wpCommand(f) != "CONNECTED" {
			t.Fatalf("want CONNECTED, got %q", f)
		}
		wpSend(t, ws, false, wpFrame("SEND", strings.Repeat("x", DefaultMaxMessageSize), "destination:/topic/huge"))
		if code := wpCloseCode(t, ws); code != websocket.CloseMessageTooBig {
			t.Errorf("close %d, want %d", code, websocket.CloseMessageTooBig)
		}
	})
}
