package stomp

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/transporttest"
)

func TestConnectVersionNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command string
		headers []string
		want    string
	}{
		{"no accept-version is 1.0", frame.CONNECT, nil, "1.0"},
		{"1.0", frame.CONNECT, []string{"accept-version", "1.0"}, "1.0"},
		{"1.1", frame.CONNECT, []string{"accept-version", "1.1"}, "1.1"},
		{"1.1,1.2", frame.CONNECT, []string{"accept-version", "1.1,1.2"}, "1.2"},
		{"1.2,1.0 highest wins", frame.CONNECT, []string{"accept-version", "1.2,1.0"}, "1.2"},
		{"unknown ignored", frame.CONNECT, []string{"accept-version", "1.1,3.0"}, "1.1"},
		{"STOMP command", frame.STOMP, []string{"accept-version", "1.2"}, "1.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startServer(t, Config{}, broker.Config{})
			h.sendFrame(tc.command, nil, append([]string{"host", "test"}, tc.headers...)...)
			f := h.waitFrames("CONNECTED or ERROR", 1, func(f outFrame) bool { return f.Command == frame.CONNECTED || f.Command == "ERROR" })[0]
			if f.Command != frame.CONNECTED {
				t.Fatalf("got %v, want CONNECTED", f)
			}
			if v := f.Header.Get("version"); v != tc.want {
				t.Errorf("version = %q, want %q", v, tc.want)
			}
			if s := f.Header.Get("server"); s != ServerName {
				t.Errorf("server = %q, want %q", s, ServerName)
			}
			sess := f.Header.Get("session")
			if sess == "" {
				t.Error("no session header")
			}
			if hb := f.Header.Get("heart-beat"); hb != "0,0" {
				t.Errorf("heart-beat = %q, want 0,0 (the client offered none)", hb)
			}
			infos := h.r.Sessions()
			if len(infos) != 1 || infos[0].ID != sess || infos[0].Version != tc.want || infos[0].Protocol != "stomp" {
				t.Errorf("router sessions = %+v, want one stomp %s session %q", infos, tc.want, sess)
			}
			if len(infos) == 1 && infos[0].RemoteAddr != transporttest.Addr.String() {
				t.Errorf("RemoteAddr = %q, want %q", infos[0].RemoteAddr, transporttest.Addr.String())
			}
		})
	}
}

func TestConnectUnsupportedVersion(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.sendFrame(frame.CONNECT, nil, "accept-version", "2.0", "host", "test")
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "unsupported STOMP version" {
		t.Errorf("message = %q, want %q", m, "unsupported STOMP version")
	}
	// STOMP 1.2 §Protocol Negotiation: the ERROR names the supported versions.
	if v, ok := f.Header.Contains("version"); !ok || v != "1.2,1.1,1.0" {
		t.Errorf("ERROR version header = %q (present %v), want %q; frame %v", v, ok, "1.2,1.1,1.0", f)
	}
	if err := h.waitClosed(subprotocol.CloseProtocolError); err == nil {
		t.Error("Serve returned nil after a failed negotiation")
	}
	if n := h.r.Stats().Sessions; n != 0 {
		t.Errorf("router has %d sessions, want 0", n)
	}
	for _, f := range h.frames() {
		if f.Command == frame.CONNECTED {
			t.Errorf("CONNECTED sent despite the failed negotiation")
		}
	}
}

func TestConnectHeartBeatHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		accept  string
		hb      []string // heart-beat header, if any
		want    string
		timeout time.Duration // expected read deadline after CONNECT
	}{
		{"absent", Config{}, "1.2", nil, "0,0", DefaultIdleTimeout},
		{"0,0", Config{}, "1.2", []string{"heart-beat", "0,0"}, "0,0", DefaultIdleTimeout},
		// The server sends every max(cy, min) and expects every max(cx, min).
		{"5000,10000", Config{HeartbeatSlack: -1}, "1.2", []string{"heart-beat", "5000,10000"}, "10000,5000", 10 * time.Second},
		{"raised to min", Config{}, "1.2", []string{"heart-beat", "100,200"}, "1000,1000", 2*time.Second + DefaultHeartbeatSlack},
		{"send only", Config{}, "1.1", []string{"heart-beat", "0,3000"}, "3000,0", DefaultIdleTimeout},
		{"receive only", Config{HeartbeatGrace: 1.5, HeartbeatSlack: time.Second}, "1.2", []string{"heart-beat", "4000,0"}, "0,4000", 7 * time.Second},
		{"disabled by config", Config{HeartbeatMin: -1}, "1.2", []string{"heart-beat", "5000,5000"}, "0,0", DefaultIdleTimeout},
		{"1.0 has no heart-beats", Config{}, "1.0", []string{"heart-beat", "5000,5000"}, "0,0", DefaultIdleTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startServer(t, tc.cfg, broker.Config{})
			before := time.Now()
			h.sendFrame(frame.CONNECT, nil, append([]string{"accept-version", tc.accept, "host", "x"}, tc.hb...)...)
			f := h.waitFrame(frame.CONNECTED)
			after := time.Now()
			if got := f.Header.Get("heart-beat"); got != tc.want {
				t.Errorf("CONNECTED heart-beat = %q, want %q", got, tc.want)
			}
			rd := h.ft.ReadDeadlines()
			dl := rd[len(rd)-1]
			if dl.Before(before.Add(tc.timeout)) || dl.After(after.Add(tc.timeout)) {
				t.Errorf("read deadline %v after CONNECT, want %v", dl.Sub(before), tc.timeout)
			}
		})
	}
}

func TestConnectMalformedHeartBeat(t *testing.T) {
	for _, hb := range []string{"x", "1000", "-1,0", "a,b", "1,2,3"} {
		t.Run(hb, func(t *testing.T) {
			h := startServer(t, Config{}, broker.Config{})
			h.sendFrame(frame.CONNECT, nil, "accept-version", "1.2", "host", "x", "heart-beat", hb)
			f := h.waitFrame("ERROR")
			if m := f.Header.Get("message"); m != "invalid heart-beat" {
				t.Errorf("message = %q, want %q", m, "invalid heart-beat")
			}
			h.waitClosed(subprotocol.CloseProtocolError)
			if n := h.r.Stats().Sessions; n != 0 {
				t.Errorf("router has %d sessions, want 0", n)
			}
		})
	}
}

// TestServerSendsHeartBeats: with a negotiated send interval the write loop
// sends EOLs when idle.
func TestServerSendsHeartBeats(t *testing.T) {
	h := startServer(t, Config{HeartbeatMin: 10 * time.Millisecond}, broker.Config{})
	f := h.connect("heart-beat", "0,10")
	if got := f.Header.Get("heart-beat"); got != "10,0" {
		t.Fatalf("heart-beat = %q, want 10,0", got)
	}
	checkFor(t, "two heart-beat EOLs", func() bool {
		n := 0
		for _, m := range h.ft.Messages() {
			if string(m.Data) == "\n" && !m.Binary {
				n++
			}
		}
		return n >= 2
	})
}

func TestFrameBeforeConnect(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.sendFrame(frame.SEND, []byte("x"), "destination", "/topic/a", "receipt", "r1")
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "not connected" {
		t.Errorf("message = %q, want %q", m, "not connected")
	}
	if r := f.Header.Get("receipt-id"); r != "r1" {
		t.Errorf("receipt-id = %q, want r1", r)
	}
	if err := h.waitClosed(subprotocol.CloseProtocolError); err == nil {
		t.Error("Serve returned nil after a protocol error")
	}
	if st := h.r.Stats(); st.Published != 0 || st.Sessions != 0 {
		t.Errorf("router: Published %d Sessions %d, want 0, 0", st.Published, st.Sessions)
	}
}

func TestUnknownCommand(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendRaw("FROB\nreceipt:r-bad\n\n\x00")
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "unknown command" {
		t.Errorf("message = %q, want %q", m, "unknown command")
	}
	if r := f.Header.Get("receipt-id"); r != "r-bad" {
		t.Errorf("receipt-id = %q, want r-bad", r)
	}
	if !bytes.Contains(f.Body, []byte("FROB")) {
		t.Errorf("ERROR body %q does not name the command", f.Body)
	}
	if err := h.waitClosed(subprotocol.CloseProtocolError); err == nil {
		t.Error("Serve returned nil after a protocol error")
	}
	if n := h.r.Stats().Sessions; n != 0 {
		t.Errorf("router still has %d sessions", n)
	}
}

func TestConnectTwice(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.CONNECT, nil, "accept-version", "1.2", "host", "x")
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "already connected" {
		t.Errorf("message = %q, want %q", m, "already connected")
	}
	h.waitClosed(subprotocol.CloseProtocolError)
}

func TestConnectReceipt(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect("receipt", "c-1")
	h.waitFrame(frame.RECEIPT, "receipt-id", "c-1")
}

func TestSubscribeReceipt(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/a/b", "receipt", "sub-1")
	h.waitFrame(frame.RECEIPT, "receipt-id", "sub-1")
	if n := h.r.Stats().Subscriptions; n != 1 {
		t.Errorf("router Subscriptions = %d, want 1", n)
	}
	h.sendFrame(frame.UNSUBSCRIBE, nil, "id", "0", "receipt", "unsub-1")
	h.waitFrame(frame.RECEIPT, "receipt-id", "unsub-1")
	if n := h.r.Stats().Subscriptions; n != 0 {
		t.Errorf("router Subscriptions after UNSUBSCRIBE = %d, want 0", n)
	}
}

// TestErrorCarriesReceiptID: a frame that fails after CONNECTED gets an
// ERROR with its receipt as receipt-id, and no RECEIPT.
func TestErrorCarriesReceiptID(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "destination", "/topic/a", "receipt", "r9") // no id in 1.2
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "missing id" {
		t.Errorf("message = %q, want %q", m, "missing id")
	}
	if r := f.Header.Get("receipt-id"); r != "r9" {
		t.Errorf("receipt-id = %q, want r9", r)
	}
	h.waitClosed(subprotocol.CloseProtocolError)
	for _, f := range h.frames() {
		if f.Command == frame.RECEIPT {
			t.Errorf("RECEIPT sent for a failed frame: %v", f)
		}
	}
}

func TestSendSubscribeMessage(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "sub-7", "destination", "/topic/sensors/t1")
	h.sendFrame(frame.SEND, []byte("hello"),
		"destination", "/topic/sensors/t1", "content-type", "text/plain",
		"x-custom", "v1", "x-escaped:key", "line1\nline2\\", "receipt", "s-1")
	h.waitFrame(frame.RECEIPT, "receipt-id", "s-1")
	f := h.waitMessage("hello")
	want := []string{
		"destination", "/topic/sensors/t1",
		"subscription", "sub-7",
		"content-type", "text/plain",
		"content-length", "5",
		"x-custom", "v1",
		"x-escaped:key", "line1\nline2\\",
	}
	for i := 0; i < len(want); i += 2 {
		if v, ok := f.Header.Contains(want[i]); !ok || v != want[i+1] {
			t.Errorf("MESSAGE %s = %q (present %v), want %q", want[i], v, ok, want[i+1])
		}
	}
	if id, err := strconv.ParseUint(f.Header.Get("message-id"), 10, 64); err != nil || id == 0 {
		t.Errorf("message-id = %q, want a positive number", f.Header.Get("message-id"))
	}
	for _, k := range []string{"ack", "receipt", "transaction"} {
		if _, ok := f.Header.Contains(k); ok {
			t.Errorf("MESSAGE carries %s header: %v", k, f)
		}
	}
	if v, _ := f.Header.Contains("redelivered"); v != "false" {
		t.Errorf("first delivery: redelivered = %q, want false (as RabbitMQ sends it)", v)
	}
	if f.binary {
		t.Error("a UTF-8 body went out as a binary message")
	}
	// The publishing session sees its own message on a topic it subscribes to;
	// a second message gets a new id.
	h.sendFrame(frame.SEND, []byte("again"), "destination", "/topic/sensors/t1")
	g := h.waitMessage("again")
	if g.Header.Get("message-id") == f.Header.Get("message-id") {
		t.Errorf("two MESSAGEs share message-id %s", g.Header.Get("message-id"))
	}
}

func TestTopicSeparatorDot(t *testing.T) {
	h := startServer(t, Config{TopicSeparator: '.'}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/sensors.*.temp", "receipt", "r")
	h.waitFrame(frame.RECEIPT)
	h.sendFrame(frame.SEND, []byte("21"), "destination", "/topic/sensors.k1.temp")
	f := h.waitMessage("21")
	if d := f.Header.Get("destination"); d != "/topic/sensors.k1.temp" {
		t.Errorf("destination = %q, want /topic/sensors.k1.temp", d)
	}
}

// queueMessages subscribes to /queue/<q> with ack mode and sends bodies.
func (h *harness) queueMessages(q, ack string, bodies ...string) []outFrame {
	h.t.Helper()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "qs", "destination", "/queue/"+q, "ack", ack)
	for _, b := range bodies {
		h.sendFrame(frame.SEND, []byte(b), "destination", "/queue/"+q)
	}
	return h.waitFrames(fmt.Sprint(len(bodies), " MESSAGEs"), len(bodies), func(f outFrame) bool { return f.Command == frame.MESSAGE })
}

func TestAckClientIndividual(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	ms := h.queueMessages("work", "client-individual", "m1", "m2")
	if got := string(ms[0].Body) + "," + string(ms[1].Body); got != "m1,m2" {
		t.Fatalf("MESSAGE bodies %s, want m1,m2", got)
	}
	for _, m := range ms {
		if m.Header.Get("destination") != "/queue/work" || m.Header.Get("subscription") != "qs" {
			t.Errorf("MESSAGE %v: want destination /queue/work, subscription qs", m)
		}
		if a := m.Header.Get("ack"); a == "" || a != m.Header.Get("message-id") {
			t.Errorf("MESSAGE ack header %q, want the message-id %q", a, m.Header.Get("message-id"))
		}
	}
	if q := h.queueInfo("work"); q.Unacked != 2 || q.Ready != 0 {
		t.Fatalf("queue before ACK: %+v, want 2 unacked", q)
	}
	// Individual: acking the second leaves the first unacknowledged.
	h.sendFrame(frame.ACK, nil, "id", ms[1].Header.Get("ack"))
	checkFor(t, "second message settled", func() bool { return h.queueInfo("work").Unacked == 1 })
	h.sendFrame(frame.ACK, nil, "id", ms[0].Header.Get("ack"), "receipt", "a")
	h.waitFrame(frame.RECEIPT, "receipt-id", "a")
	if q := h.queueInfo("work"); q.Unacked != 0 || q.Ready != 0 || q.Consumers != 1 {
		t.Errorf("queue after ACKs: %+v, want everything settled", q)
	}
}

// TestAckClientCumulative: in client mode an ACK covers every earlier
// message of the subscription.
func TestAckClientCumulative(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	ms := h.queueMessages("cum", "client", "m1", "m2", "m3", "m4")
	if q := h.queueInfo("cum"); q.Unacked != 4 {
		t.Fatalf("queue before ACK: %+v, want 4 unacked", q)
	}
	h.sendFrame(frame.ACK, nil, "id", ms[2].Header.Get("ack"), "receipt", "a3")
	h.waitFrame(frame.RECEIPT, "receipt-id", "a3")
	if q := h.queueInfo("cum"); q.Unacked != 1 || q.Ready != 0 {
		t.Fatalf("after ACK of the 3rd: %+v, want 1 unacked (the 4th)", q)
	}
	// The 1st is already settled: ignored, not an error.
	h.sendFrame(frame.ACK, nil, "id", ms[0].Header.Get("ack"), "receipt", "a1")
	h.waitFrame(frame.RECEIPT, "receipt-id", "a1")
	if q := h.queueInfo("cum"); q.Unacked != 1 {
		t.Fatalf("after a repeated ACK: %+v, want 1 unacked", q)
	}
	h.sendFrame(frame.ACK, nil, "id", ms[3].Header.Get("ack"), "receipt", "a4")
	h.waitFrame(frame.RECEIPT, "receipt-id", "a4")
	if q := h.queueInfo("cum"); q.Unacked != 0 {
		t.Fatalf("after ACK of the 4th: %+v, want 0 unacked", q)
	}
	for _, f := range h.frames() {
		if f.Command == "ERROR" {
			t.Errorf("unexpected %v", f)
		}
	}
}

func TestAckUnknownID(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.ACK, nil, "id", "999", "receipt", "bad-ack")
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "unknown message" {
		t.Errorf("message = %q, want %q", m, "unknown message")
	}
	if r := f.Header.Get("receipt-id"); r != "bad-ack" {
		t.Errorf("receipt-id = %q, want bad-ack", r)
	}
	h.waitClosed(subprotocol.CloseProtocolError)
}

// TestAck11MessageID: STOMP 1.1 names the message in ACK by message-id.
func TestAck11MessageID(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.sendFrame(frame.CONNECT, nil, "accept-version", "1.1", "host", "x")
	h.waitFrame(frame.CONNECTED, "version", "1.1")
	h.version = "1.1"
	ms := h.queueMessages("q11", "client-individual", "m1")
	if _, ok := ms[0].Header.Contains("ack"); ok {
		t.Errorf("1.1 MESSAGE has an ack header: %v", ms[0])
	}
	h.sendFrame(frame.ACK, nil, "message-id", ms[0].Header.Get("message-id"), "subscription", "qs", "receipt", "a")
	h.waitFrame(frame.RECEIPT, "receipt-id", "a")
	if q := h.queueInfo("q11"); q.Unacked != 0 {
		t.Errorf("after 1.1 ACK: %+v, want settled", q)
	}
}

func TestNackRedelivers(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	ms := h.queueMessages("nq", "client-individual", "n1")
	if r, ok := ms[0].Header.Contains("redelivered"); !ok || r != "false" {
		t.Errorf("first delivery: redelivered = %q, want false (as RabbitMQ sends it); %v", r, ms[0])
	}
	h.sendFrame(frame.NACK, nil, "id", ms[0].Header.Get("ack"))
	again := h.waitFrames("redelivery", 2, func(f outFrame) bool { return f.Command == frame.MESSAGE && string(f.Body) == "n1" })[1]
	if r := again.Header.Get("redelivered"); r != "true" {
		t.Errorf("redelivery: redelivered = %q, want true; %v", r, again)
	}
	if again.Header.Get("message-id") == ms[0].Header.Get("message-id") {
		t.Error("redelivery reuses the message-id")
	}
	if q := h.queueInfo("nq"); q.Unacked != 1 || q.Ready != 0 {
		t.Errorf("queue after NACK: %+v, want the redelivery unacked", q)
	}
	h.sendFrame(frame.ACK, nil, "id", again.Header.Get("ack"))
	checkFor(t, "redelivery settled", func() bool { return h.queueInfo("nq").Unacked == 0 })
}

func TestTransactionAbort(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/tx")
	h.sendFrame(frame.BEGIN, nil, "transaction", "tx1")
	h.sendFrame(frame.SEND, []byte("aborted"), "destination", "/topic/tx", "transaction", "tx1")
	h.sendFrame(frame.ABORT, nil, "transaction", "tx1", "receipt", "ab")
	h.waitFrame(frame.RECEIPT, "receipt-id", "ab")
	// A later plain SEND is delivered; had the aborted one been published it
	// would have been queued ahead of it.
	h.sendFrame(frame.SEND, []byte("marker"), "destination", "/topic/tx")
	h.waitMessage("marker")
	for _, f := range h.messageFrames() {
		if string(f.Body) != "marker" {
			t.Errorf("aborted transaction delivered %v", f)
		}
	}
	if st := h.r.Stats(); st.Published != 1 {
		t.Errorf("router Published = %d, want 1", st.Published)
	}
	// The transaction is gone.
	h.sendFrame(frame.COMMIT, nil, "transaction", "tx1")
	if m := h.waitFrame("ERROR").Header.Get("message"); m != "unknown transaction" {
		t.Errorf("COMMIT after ABORT: message %q, want unknown transaction", m)
	}
}

func TestTransactionCommit(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/tx")
	h.sendFrame(frame.BEGIN, nil, "transaction", "tx2")
	h.sendFrame(frame.SEND, []byte("in-tx-1"), "destination", "/topic/tx", "transaction", "tx2")
	h.sendFrame(frame.SEND, []byte("in-tx-2"), "destination", "/topic/tx", "transaction", "tx2")
	h.sendFrame(frame.SEND, []byte("marker"), "destination", "/topic/tx")
	h.waitMessage("marker")
	if ms := h.messageFrames(); len(ms) != 1 {
		t.Fatalf("before COMMIT: %d MESSAGEs, want only the marker: %v", len(ms), ms)
	}
	h.sendFrame(frame.COMMIT, nil, "transaction", "tx2", "receipt", "committed")
	h.waitFrame(frame.RECEIPT, "receipt-id", "committed")
	h.waitMessage("in-tx-2")
	var bodies []string
	for _, f := range h.messageFrames() {
		bodies = append(bodies, string(f.Body))
		if _, ok := f.Header.Contains("transaction"); ok {
			t.Errorf("MESSAGE carries the transaction header: %v", f)
		}
	}
	if fmt.Sprint(bodies) != "[marker in-tx-1 in-tx-2]" {
		t.Errorf("MESSAGE bodies %q, want [marker in-tx-1 in-tx-2]", bodies)
	}
	if st := h.r.Stats(); st.Published != 3 {
		t.Errorf("router Published = %d, want 3", st.Published)
	}
}

// TestTransactionReceipt: STOMP 1.2 §RECEIPT — a frame inside a transaction
// that carries a receipt header gets its RECEIPT when it is buffered, and
// only then (not again at COMMIT).
func TestTransactionReceipt(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/tx")
	h.sendFrame(frame.BEGIN, nil, "transaction", "tx3", "receipt", "begun")
	h.waitFrame(frame.RECEIPT, "receipt-id", "begun")
	h.sendFrame(frame.SEND, []byte("in-tx"), "destination", "/topic/tx", "transaction", "tx3", "receipt", "buffered")
	h.sendFrame(frame.BEGIN, nil, "transaction", "sync", "receipt", "sync") // processed after the SEND
	h.waitFrame(frame.RECEIPT, "receipt-id", "sync")
	if n := len(h.waitFrames("receipts", 0, func(f outFrame) bool { return hasHeaders(f, frame.RECEIPT, "receipt-id", "buffered") })); n != 1 {
		t.Errorf("%d RECEIPTs for the buffered SEND before COMMIT, want 1", n)
	}
	h.sendFrame(frame.COMMIT, nil, "transaction", "tx3", "receipt", "committed")
	h.waitFrame(frame.RECEIPT, "receipt-id", "committed")
	h.waitMessage("in-tx")
	if n := len(h.waitFrames("receipts", 0, func(f outFrame) bool { return hasHeaders(f, frame.RECEIPT, "receipt-id", "buffered") })); n != 1 {
		t.Errorf("%d RECEIPTs for the buffered SEND after COMMIT, want 1", n)
	}
}

// TestTransactionAck: an ACK inside a transaction settles only at COMMIT.
func TestTransactionAck(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	ms := h.queueMessages("txq", "client-individual", "m1")
	h.sendFrame(frame.BEGIN, nil, "transaction", "t")
	h.sendFrame(frame.ACK, nil, "id", ms[0].Header.Get("ack"), "transaction", "t")
	h.sendFrame(frame.BEGIN, nil, "transaction", "sync", "receipt", "sync") // processed after the ACK
	h.waitFrame(frame.RECEIPT, "receipt-id", "sync")
	if q := h.queueInfo("txq"); q.Unacked != 1 {
		t.Fatalf("ACK in an open transaction settled the message: %+v", q)
	}
	h.sendFrame(frame.COMMIT, nil, "transaction", "t", "receipt", "c")
	h.waitFrame(frame.RECEIPT, "receipt-id", "c")
	if q := h.queueInfo("txq"); q.Unacked != 0 {
		t.Errorf("after COMMIT: %+v, want settled", q)
	}
}

func TestCommitUnknownTransaction(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.COMMIT, nil, "transaction", "nope", "receipt", "c1")
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "unknown transaction" {
		t.Errorf("message = %q, want %q", m, "unknown transaction")
	}
	if r := f.Header.Get("receipt-id"); r != "c1" {
		t.Errorf("receipt-id = %q, want c1", r)
	}
	if err := h.waitClosed(subprotocol.CloseProtocolError); err == nil {
		t.Error("Serve returned nil after a protocol error")
	}
}

func TestSendUnknownTransaction(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SEND, []byte("x"), "destination", "/topic/a", "transaction", "nope")
	if m := h.waitFrame("ERROR").Header.Get("message"); m != "unknown transaction" {
		t.Errorf("message = %q, want %q", m, "unknown transaction")
	}
	h.waitClosed(subprotocol.CloseProtocolError)
	if n := h.r.Stats().Published; n != 0 {
		t.Errorf("Published = %d, want 0", n)
	}
}

func TestDisconnectReceipt(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/a")
	h.sendFrame(frame.DISCONNECT, nil, "receipt", "bye")
	if err := h.waitClosed(subprotocol.CloseNormal); err != nil {
		t.Errorf("Serve after DISCONNECT = %v, want nil", err)
	}
	var receipt *outFrame
	for _, f := range h.frames() {
		if hasHeaders(f, frame.RECEIPT, "receipt-id", "bye") {
			receipt = &f
		}
		if f.Command == "ERROR" {
			t.Errorf("unexpected %v", f)
		}
	}
	if receipt == nil {
		t.Fatal("no RECEIPT for DISCONNECT")
	}
	if _, _, after := h.ft.CloseState(); receipt.msg >= after {
		t.Errorf("RECEIPT written in message %d, after Close (which followed %d messages)", receipt.msg, after)
	}
	if st := h.r.Stats(); st.Sessions != 0 || st.Subscriptions != 0 {
		t.Errorf("router after DISCONNECT: Sessions %d Subscriptions %d, want 0, 0", st.Sessions, st.Subscriptions)
	}
}

// TestClientHangUp: EOF without DISCONNECT ends the session and detaches
// it; unacked queue messages go back.
func TestClientHangUp(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.queueMessages("hq", "client", "m1")
	h.ft.HangUp()
	if err := h.waitDone(); err != nil {
		t.Errorf("Serve after EOF = %v, want nil", err)
	}
	if !h.ft.Closed() {
		t.Error("transport not closed")
	}
	if q := h.queueInfo("hq"); q.Ready != 1 || q.Unacked != 0 || q.Consumers != 0 {
		t.Errorf("queue after hang-up: %+v, want the message back in ready", q)
	}
	if n := h.r.Stats().Sessions; n != 0 {
		t.Errorf("router Sessions = %d, want 0", n)
	}
}

func TestBinaryBody(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/bin")
	bin := []byte{0xff, 0x00, 0xfe, 'a'}
	h.sendFrame(frame.SEND, []byte("text-1"), "destination", "/topic/bin")
	h.sendFrame(frame.SEND, bin, "destination", "/topic/bin", "content-length", "4")
	h.sendFrame(frame.SEND, []byte("text-2"), "destination", "/topic/bin")
	fs := h.waitFrames("3 MESSAGEs", 3, func(f outFrame) bool { return f.Command == frame.MESSAGE })
	for _, f := range fs {
		isBin := bytes.Equal(f.Body, bin)
		if f.binary != isBin {
			t.Errorf("MESSAGE %q went out with binary=%v, want %v", f.Body, f.binary, isBin)
		}
		if f.Header.Get("content-length") != strconv.Itoa(len(f.Body)) {
			t.Errorf("MESSAGE %q content-length %q", f.Body, f.Header.Get("content-length"))
		}
	}
	if !bytes.Equal(fs[1].Body, bin) {
		t.Errorf("binary body = %q, want %q", fs[1].Body, bin)
	}
	for _, m := range h.ft.Messages() {
		if m.Binary && bytes.Contains(m.Data, []byte("text-")) {
			t.Errorf("a text frame shares a binary message: %q", m.Data)
		}
	}
}

// TestMessageSeveralSubscriptions: one SEND matching two subscriptions of
// the connection gives two MESSAGEs, one per subscription id.
func TestMessageSeveralSubscriptions(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "exact", "destination", "/topic/a/b")
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "wild", "destination", "/topic/a/#")
	h.sendFrame(frame.SEND, []byte("x"), "destination", "/topic/a/b")
	fs := h.waitFrames("2 MESSAGEs", 2, func(f outFrame) bool { return f.Command == frame.MESSAGE })
	subs := map[string]bool{}
	for _, f := range fs {
		subs[f.Header.Get("subscription")] = true
	}
	if !subs["exact"] || !subs["wild"] {
		t.Errorf("subscriptions %v, want exact and wild", subs)
	}
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "exact", "destination", "/topic/c")
	if m := h.waitFrame("ERROR").Header.Get("message"); m != "duplicate subscription id" {
		t.Errorf("duplicate id: message %q", m)
	}
}

// TestTempQueueReply: a reply-to /temp-queue/ is rewritten to a private
// reply queue; a reply sent there comes back to the requester on its
// /temp-queue/ name.
func TestTempQueueReply(t *testing.T) {
	req := startServer(t, Config{}, broker.Config{})
	// The responder shares the requester's router.
	resp := &harness{t: t, ft: transporttest.New("v12.stomp"), r: req.r, version: "1.2", done: make(chan struct{})}
	go func() {
		defer close(resp.done)
		resp.err = New(Config{}).Serve(t.Context(), resp.ft, resp.r)
	}()
	t.Cleanup(func() { resp.ft.HangUp(); <-resp.done })

	req.connect()
	resp.connect()
	resp.sendFrame(frame.SUBSCRIBE, nil, "id", "svc", "destination", "/queue/service", "receipt", "r")
	resp.waitFrame(frame.RECEIPT)
	req.sendFrame(frame.SEND, []byte("ping"), "destination", "/queue/service", "reply-to", "/temp-queue/answers")
	got := resp.waitMessage("ping")
	replyTo := got.Header.Get("reply-to")
	if len(replyTo) <= len(replyQueuePrefix) || replyTo[:len(replyQueuePrefix)] != replyQueuePrefix {
		t.Fatalf("reply-to = %q, want a %s name", replyTo, replyQueuePrefix)
	}
	resp.sendFrame(frame.SEND, []byte("pong"), "destination", replyTo)
	back := req.waitMessage("pong")
	if d := back.Header.Get("destination"); d != "/temp-queue/answers" {
		t.Errorf("reply destination = %q, want /temp-queue/answers", d)
	}
	if s := back.Header.Get("subscription"); s != "/temp-queue/answers" {
		t.Errorf("reply subscription = %q, want /temp-queue/answers", s)
	}
	// Nobody else may consume the reply queue.
	resp.sendFrame(frame.SUBSCRIBE, nil, "id", "steal", "destination", "/queue/"+replyTo[len(replyQueuePrefix):])
	if m := resp.waitFrame("ERROR").Header.Get("message"); m != "access refused" {
		t.Errorf("subscribing to another's reply queue: message %q, want access refused", m)
	}
}

// TestMaxUnacked: a client that holds Config.MaxUnacked unacknowledged
// deliveries is closed as a slow consumer with ERROR and close code 1008.
func TestMaxUnacked(t *testing.T) {
	h := startServer(t, Config{MaxUnacked: 2}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/u", "ack", "client-individual")
	for i := range 3 {
		h.sendFrame(frame.SEND, []byte(fmt.Sprint("m", i)), "destination", "/topic/u")
	}
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "slow consumer" {
		t.Errorf("message = %q, want slow consumer", m)
	}
	h.waitClosed(subprotocol.ClosePolicy)
	if n := len(h.messageFrames()); n != 2 {
		t.Errorf("%d MESSAGEs before the close, want 2 (the limit)", n)
	}
}

// TestErrorCloseCodeAfterConnect: after CONNECTED, the WebSocket close code
// is the one wireError assigns to the error, as it is before CONNECTED.
func TestErrorCloseCodeAfterConnect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		second  string // destination of a second SUBSCRIBE with id "a"/"b"
		id      string
		message string
		code    int
	}{
		{"duplicate subscription id", "/topic/y", "a", "duplicate subscription id", subprotocol.CloseProtocolError},
		{"too many subscriptions", "/topic/y", "b", "too many subscriptions", subprotocol.ClosePolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startServer(t, Config{}, broker.Config{MaxSubsPerSession: 1})
			h.connect()
			h.sendFrame(frame.SUBSCRIBE, nil, "id", "a", "destination", "/topic/x")
			h.sendFrame(frame.SUBSCRIBE, nil, "id", tc.id, "destination", tc.second)
			if m := h.waitFrame("ERROR").Header.Get("message"); m != tc.message {
				t.Errorf("message = %q, want %q", m, tc.message)
			}
			if want := wireError(broker.ErrTooManySubs).code; tc.message == "too many subscriptions" && want != tc.code {
				t.Fatalf("wireError(ErrTooManySubs).code = %d; the table here is stale", want)
			}
			h.waitClosed(tc.code)
		})
	}
}

// TestSlowConsumer: a subscriber whose write is stuck while its outbox
// overflows is closed as a slow consumer: the router counts it, Publish
// does not wait, the stuck write keeps its deadline (it is not cut short,
// so a client that reads again still learns why), and once it returns the
// client gets ERROR "slow consumer" and close 1008; the queued deliveries
// are discarded.
func TestSlowConsumer(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{MaxPendingMsgs: 2})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/s", "receipt", "r")
	h.waitFrame(frame.RECEIPT)
	h.ft.HoldWrites()
	pub := func(body string) {
		t.Helper()
		if err := h.r.Publish(t.Context(), nil, &broker.Message{Topic: "s", Payload: []byte(body), QoS: broker.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}
	pub("m0")
	checkFor(t, "the write loop stuck writing m0", func() bool { return h.ft.BlockedWrites() == 1 })
	for i := 1; i <= 3; i++ { // two fit in the outbox, the third overflows it
		pub(fmt.Sprint("m", i))
	}
	if n := h.r.Stats().SlowConsumers; n != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", n)
	}
	interrupts := len(h.ft.Interrupts())
	if interrupts != 0 {
		t.Errorf("%d InterruptWrite calls, want 0: the write in progress keeps its deadline", interrupts)
	}
	h.ft.ReleaseWrites()
	f := h.waitFrame("ERROR")
	if m := f.Header.Get("message"); m != "slow consumer" {
		t.Errorf("message = %q, want slow consumer", m)
	}
	if err := h.waitClosed(subprotocol.ClosePolicy); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	var bodies []string
	for _, m := range h.messageFrames() {
		bodies = append(bodies, string(m.Body))
	}
	if fmt.Sprint(bodies) != "[m0]" {
		t.Errorf("MESSAGEs %q, want only [m0] (what was queued is dropped)", bodies)
	}
	if st := h.r.Stats(); st.Sessions != 0 || st.Subscriptions != 0 {
		t.Errorf("router: Sessions %d Subscriptions %d, want 0, 0", st.Sessions, st.Subscriptions)
	}
}

// TestReservedUserPropertiesDropped: user properties named like STOMP's own
// headers (an MQTT 5 publisher may send them) are not written, so the
// frame's own content-length and destination stay the ones that count.
func TestReservedUserPropertiesDropped(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "0", "destination", "/topic/clash", "receipt", "r")
	h.waitFrame(frame.RECEIPT)
	err := h.r.Publish(t.Context(), nil, &broker.Message{Topic: "clash", Payload: []byte("hello world"), QoS: broker.AtMostOnce,
		Props: []broker.Property{{Key: "content-length", Value: "1"}, {Key: "destination", Value: "/topic/elsewhere"}, {Key: "x", Value: "y"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := h.waitFrame(frame.MESSAGE)
	if string(f.Body) != "hello world" || f.Header.Get("destination") != "/topic/clash" || f.Header.Get("x") != "y" {
		t.Fatalf("MESSAGE %q destination %q x %q", f.Body, f.Header.Get("destination"), f.Header.Get("x"))
	}
	if n := len(f.Header.GetAll("content-length")); n != 1 {
		t.Fatalf("%d content-length headers, want 1", n)
	}
}
