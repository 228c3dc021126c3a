package stomp

import (
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/transporttest"
)

// An operator's Router.Disconnect ends a STOMP session with ERROR
// "disconnected by an administrator" and close code 1008.
func TestAdminDisconnect(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	c := h.connect()
	id := broker.SessionID(c.Header.Get("session"))
	if err := h.r.Disconnect(id); err != nil {
		t.Fatalf("Disconnect(%q): %v", id, err)
	}
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "disconnected by an administrator" {
		t.Errorf("ERROR message %q, want disconnected by an administrator", m)
	}
	h.waitClosed(subprotocol.ClosePolicy)
	if n := len(h.frames()); h.frames()[n-1].Command != "ERROR" {
		t.Errorf("last frame %v, want the ERROR", h.frames()[n-1])
	}
}

// sentBytes sends one frame like sendFrame and returns its wire size.
func (h *harness) sentBytes(command string, body []byte, headers ...string) int {
	f := frame.New(command, headers...)
	f.Body = body
	b := AppendFrame(nil, f, h.version)
	h.ft.Send(false, b)
	return len(b)
}

// The admin API's gauges: transport and heart-beat from CONNECT, bytes as
// on the wire both ways (CONNECT and heart-beats included), and the
// client-ack deliveries not yet acknowledged.
func TestSessionGauges(t *testing.T) {
	h := serveOn(t, t.Context(), New(Config{}), broker.New(broker.Config{}, nil), func(ft *transporttest.Fake) {
		ft.PeerInfo.Transport = "tls"
	})
	in := h.sentBytes(frame.CONNECT, nil, "accept-version", "1.2", "host", "test", "heart-beat", "7000,0")
	c := h.waitFrame(frame.CONNECTED)
	id := broker.SessionID(c.Header.Get("session"))
	info := func() broker.ClientInfo {
		ci, _, ok := h.r.Client(id)
		if !ok {
			t.Fatalf("Client(%q) not found", id)
		}
		return ci
	}
	written := func() (n int) {
		for _, b := range h.ft.Written() {
			n += len(b)
		}
		return n
	}
	ci := info()
	if ci.Transport != "tls" || ci.KeepAlive != 7*time.Second {
		t.Errorf("Transport %q KeepAlive %v, want tls 7s", ci.Transport, ci.KeepAlive)
	}
	in += h.sentBytes(frame.SUBSCRIBE, nil, "id", "s", "destination", "/queue/g", "ack", "client")
	for _, b := range []string{"m1", "m2", "m3"} {
		in += h.sentBytes(frame.SEND, []byte(b), "destination", "/queue/g")
	}
	h.ft.Send(false, []byte("\n")) // a heart-beat
	in++
	ms := h.waitFrames("3 MESSAGEs", 3, func(f outFrame) bool { return f.Command == frame.MESSAGE })
	checkFor(t, "3 in flight", func() bool { return info().Inflight == 3 })
	in += h.sentBytes(frame.ACK, nil, "id", ms[1].Header.Get("ack"), "receipt", "r")
	h.waitFrame(frame.RECEIPT, "receipt-id", "r")
	checkFor(t, "1 in flight after a cumulative ACK", func() bool { return info().Inflight == 1 })
	checkFor(t, "bytes in", func() bool { return info().BytesIn == uint64(in) })
	checkFor(t, "bytes out", func() bool { return info().BytesOut == uint64(written()) })
	if ci := info(); ci.BytesOut == 0 || ci.MsgsIn != 5 {
		t.Errorf("BytesOut %d MsgsIn %d, want > 0 and 5", ci.BytesOut, ci.MsgsIn)
	}
}
