package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// recorder is a handler that keeps what the reader passes it.
type recorder struct {
	bodies   []string
	confirms []uint64
	others   int
}

func (r *recorder) delivery(b []byte)    { r.bodies = append(r.bodies, string(b)) }
func (r *recorder) confirmed(seq uint64) { r.confirms = append(r.confirms, seq) }
func (r *recorder) other()               { r.others++ }

// fakeMQTTServer accepts one WebSocket connection with subprotocol mqtt and
// runs script on it; it reports script's failures on t.
func fakeMQTTServer(t *testing.T, script func(ws *websocket.Conn)) string {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		script(ws)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/mqtt"
}

// readMessage reads one WebSocket message and returns its bytes.
func readMessage(t *testing.T, ws *websocket.Conn) []byte {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := ws.ReadMessage()
	if err != nil {
		t.Errorf("server read: %v", err)
		return nil
	}
	if typ != websocket.BinaryMessage {
		t.Errorf("server read message type %d, want binary", typ)
	}
	return b
}

// TestMQTTClientStream runs a QoS 1 subscriber against a scripted server
// that sends three PUBLISHes split and coalesced across three WebSocket
// messages, and checks the deliveries, the PUBACKs (one message for each
// incoming message that completed a QoS 1 PUBLISH) and the DISCONNECT
// confirmation (the server closes).
func TestMQTTClientStream(t *testing.T) {
	var pubs []byte
	pubs = appendMQTTPublish(pubs, mqttPublishPrefix("bench/0", 1, 3), 1, 10, []byte("one"))
	pubs = appendMQTTPublish(pubs, mqttPublishPrefix("bench/0", 0, 3), 0, 0, []byte("two"))
	pubs = appendMQTTPublish(pubs, mqttPublishPrefix("bench/0", 1, 5), 1, 11, []byte("three"))
	cut1, cut2 := 5, len(pubs)-4 // inside the first topic, inside the last payload

	acks := make(chan []byte, 8)
	url := fakeMQTTServer(t, func(ws *websocket.Conn) {
		if b := readMessage(t, ws); len(b) == 0 || b[0]>>4 != mqttCONNECT {
			t.Errorf("first packet %x, want CONNECT", b)
			return
		}
		ws.WriteMessage(websocket.BinaryMessage, []byte{mqttCONNACK << 4, 2, 0, 0})
		sub := readMessage(t, ws)
		if len(sub) == 0 || sub[0] != mqttSUBSCRIBE<<4|2 {
			t.Errorf("second packet %x, want SUBSCRIBE", sub)
			return
		}
		ws.WriteMessage(websocket.BinaryMessage, []byte{mqttSUBACK << 4, 3, sub[2], sub[3], 1})
		for _, part := range [][]byte{pubs[:cut1], pubs[cut1:cut2], pubs[cut2:]} {
			ws.WriteMessage(websocket.BinaryMessage, part)
		}
		for {
			b := readMessage(t, ws)
			if len(b) == 0 || b[0]>>4 == mqttDISCONNECT {
				return // closing confirms the DISCONNECT
			}
			acks <- b
		}
	})

	cfg := &config{url: url, protocol: protoMQTT, qos: 1, timeout: 5 * time.Second}
	d, err := newDialer(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.subscribe(0, "bench/0", time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	var s session
	s.start(c, &rec)
	want := [][]byte{appendMQTTPuback(nil, 10), appendMQTTPuback(nil, 11)}
	for i, w := range want {
		select {
		case b := <-acks:
			if !bytes.Equal(b, w) {
				t.Errorf("PUBACK message %d: %x, want %x", i, b, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("PUBACK message %d never came", i)
		}
	}
	if !s.stop(5 * time.Second) {
		t.Errorf("DISCONNECT not confirmed: %v", s.err)
	}
	if got := strings.Join(rec.bodies, ","); got != "one,two,three" {
		t.Errorf("deliveries %q, want one,two,three", got)
	}
	if c.messagesRead() != 3 {
		t.Errorf("%d WebSocket messages read by the loop, want 3", c.messagesRead())
	}
}

// TestMQTTClientPubacks checks that a publisher's reader turns in-order
// PUBACKs into confirmations and rejects one out of order.
func TestMQTTClientPubacks(t *testing.T) {
	url := fakeMQTTServer(t, func(ws *websocket.Conn) {
		readMessage(t, ws)
		ws.WriteMessage(websocket.BinaryMessage, []byte{mqttCONNACK << 4, 2, 0, 0})
		var b []byte
		b = appendMQTTPuback(b, 1)
		b = appendMQTTPuback(b, 2)
		ws.WriteMessage(websocket.BinaryMessage, b[:5])
		ws.WriteMessage(websocket.BinaryMessage, b[5:])
		ws.WriteMessage(websocket.BinaryMessage, appendMQTTPuback(nil, 9))
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		ws.ReadMessage() // until the client goes
	})
	cfg := &config{url: url, protocol: protoMQTT, qos: 1, timeout: 5 * time.Second}
	d, err := newDialer(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var rec recorder
	err = c.readLoop(&rec)
	if err == nil || !strings.Contains(err.Error(), "PUBACK for packet 9, want 3") {
		t.Errorf("readLoop: %v, want an out-of-order PUBACK error", err)
	}
	if len(rec.confirms) != 2 || rec.confirms[0] != 1 || rec.confirms[1] != 2 {
		t.Errorf("confirmed %v, want [1 2]", rec.confirms)
	}
}
