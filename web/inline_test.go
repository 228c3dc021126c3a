package web

import (
	"bytes"
	"context"
	"net"
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

// Tests of inline delivery writes (subprotocol.Writer.FlushInline): a publisher
// writes a delivery on its own goroutine when the subscriber's writer is
// idle and its socket has room. A subscriber that stops reading must
// still never hold a publisher up: once its socket is full the deliveries
// wait for its write goroutine, and the slow-consumer policy ends it.

// inlineWriteTimeout is the servers' write deadline in these tests: far
// longer than wpWait, so a publisher blocked in a write to the stalled
// subscriber would fail the test rather than be freed by the deadline.
const inlineWriteTimeout = time.Minute

// inlineServer serves STOMP and MQTT with every delivery eligible for an
// inline write (InlineGap 0).
func inlineServer(t *testing.T) string {
	t.Helper()
	gap := broker.InlineGap
	broker.InlineGap = 0
	t.Cleanup(func() { broker.InlineGap = gap })
	r := broker.New(broker.Config{}, nil)
	gw := New(Config{}, r, subprotocol.Registry{
		dstomp.New(dstomp.Config{WriteTimeout: inlineWriteTimeout}),
		mqtt.New(mqtt.Config{WriteTimeout: inlineWriteTimeout}),
	})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		hs.Close()
		_ = gw.Shutdown(context.Background())
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// stalledDial dials with a small socket receive buffer, so that a client
// that stops reading fills the server's socket soon.
func stalledDial(t *testing.T, url, subprotocol string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{
		Subprotocols: []string{subprotocol},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// inlineBody is a delivery that an inline write may take (at most
// subprotocol.InlineMax bytes).
var inlineBody = bytes.Repeat([]byte("x"), 1000)

// inlineMessages is enough to fill the stalled subscriber's socket, both
// kernel buffers and its outbox many times over.
const inlineMessages = 4000

func TestInlineWriteStalledSubscriberSTOMP(t *testing.T) {
	url := inlineServer(t) + "/stomp"
	sub := stalledDial(t, url, "v12.stomp")
	wpSend(t, sub, false, []byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00"))
	wpExpectPrefix(t, sub, "CONNECTED")
	wpSend(t, sub, false, []byte("SUBSCRIBE\nid:1\ndestination:/topic/stall\nreceipt:s\n\n\x00"))
	wpExpectPrefix(t, sub, "RECEIPT")
	// sub reads no more.

	pub := wpDial(t, url, "v12.stomp")
	wpSend(t, pub, false, []byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00"))
	wpExpectPrefix(t, pub, "CONNECTED")
	for i := range inlineMessages {
		f := []byte("SEND\ndestination:/topic/stall\n")
		if i == inlineMessages-1 {
			f = append(f, "receipt:done\n"...)
		}
		f = append(append(append(f, '\n'), inlineBody...), 0)
		wpSend(t, pub, false, f)
	}
	// Within wpWait, far less than the write timeout a blocked inline
	// write would wait for.
	if got := wpRecv(t, pub); !bytes.HasPrefix(got, []byte("RECEIPT")) || !bytes.Contains(got, []byte("receipt-id:done")) {
		t.Fatalf("publisher got %q, want the RECEIPT for its last SEND", got)
	}
}

func TestInlineWriteStalledSubscriberMQTT(t *testing.T) {
	url := inlineServer(t) + "/mqtt"
	const v = mqtt.Version311
	sub := stalledDial(t, url, "mqtt")
	wpSend(t, sub, true, mqtt.AppendPacket(nil, &mqtt.Connect{ProtocolLevel: v, CleanStart: true, ClientID: "stalled"}, v))
	wpExpectType(t, sub, mqtt.CONNACK)
	wpSend(t, sub, true, mqtt.AppendPacket(nil, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "stall"}}}, v))
	wpExpectType(t, sub, mqtt.SUBACK)
	// sub reads no more.

	pub := wpDial(t, url, "mqtt")
	wpSend(t, pub, true, mqtt.AppendPacket(nil, &mqtt.Connect{ProtocolLevel: v, CleanStart: true, ClientID: "publisher"}, v))
	wpExpectType(t, pub, mqtt.CONNACK)
	for i := range inlineMessages {
		p := &mqtt.Publish{Topic: "stall", Payload: inlineBody}
		if i == inlineMessages-1 {
			p.QoS, p.PacketID = 1, 7
		}
		wpSend(t, pub, true, mqtt.AppendPacket(nil, p, v))
	}
	wpExpectType(t, pub, mqtt.PUBACK) // within wpWait, as above
}

// wpExpectPrefix reads the next message and checks how it starts.
func wpExpectPrefix(t *testing.T, ws *websocket.Conn, prefix string) {
	t.Helper()
	if got := wpRecv(t, ws); !bytes.HasPrefix(got, []byte(prefix)) {
		t.Fatalf("got %q, want %s", got, prefix)
	}
}

// wpExpectType reads the next message and checks that it starts with an
// MQTT packet of type want.
func wpExpectType(t *testing.T, ws *websocket.Conn, want mqtt.PacketType) {
	t.Helper()
	got := wpRecv(t, ws)
	if len(got) == 0 || mqtt.PacketType(got[0]>>4) != want {
		t.Fatalf("got % x, want packet type %v", got, want)
	}
}
