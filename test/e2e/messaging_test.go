package e2e

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// TestTextAndBinaryBodies: a text body arrives in a text WebSocket message,
// a body of all 256 byte values (NUL included) arrives byte-exact in a
// binary one; content-type and content-length are preserved.
func TestTextAndBinaryBodies(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	subc := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	sub := subc.subscribe(t, "/topic/bodies", stomp.AckAuto)

	t.Run("text", func(t *testing.T) {
		text0, bin0 := subc.ws.textIn.Load(), subc.ws.binaryIn.Load()
		body := "héllo wörld ✓ – UTF-8 text"
		if err := pub.Send("/topic/bodies", "text/plain;charset=utf-8", []byte(body)); err != nil {
			t.Fatal(err)
		}
		m := recvBody(t, sub, body)
		if m.ContentType != "text/plain;charset=utf-8" {
			t.Errorf("content-type %q", m.ContentType)
		}
		if got := m.Header.Get("content-length"); got != strconv.Itoa(len(body)) {
			t.Errorf("content-length:%q, want %d", got, len(body))
		}
		if d := subc.ws.binaryIn.Load() - bin0; d != 0 {
			t.Errorf("text body came in %d binary WebSocket messages", d)
		}
		if d := subc.ws.textIn.Load() - text0; d < 1 {
			t.Errorf("no text WebSocket message received")
		}
	})

	t.Run("binary", func(t *testing.T) {
		bin0 := subc.ws.binaryIn.Load()
		body := make([]byte, 256)
		for i := range body {
			body[i] = byte(i)
		}
		body = append(body, body...) // twice, so NUL also appears mid-body
		if err := pub.Send("/topic/bodies", "application/octet-stream", body); err != nil {
			t.Fatal(err)
		}
		m := recv(t, sub, waitShort)
		if !bytes.Equal(m.Body, body) {
			t.Fatalf("binary body differs: got %d bytes %x…, want %d bytes", len(m.Body), m.Body[:min(16, len(m.Body))], len(body))
		}
		if m.ContentType != "application/octet-stream" {
			t.Errorf("content-type %q", m.ContentType)
		}
		if got := m.Header.Get("content-length"); got != "512" {
			t.Errorf("content-length:%q, want 512", got)
		}
		if d := subc.ws.binaryIn.Load() - bin0; d < 1 {
			t.Errorf("binary body did not come in a binary WebSocket message (text messages %d)", subc.ws.textIn.Load())
		}
	})

	t.Run("empty", func(t *testing.T) {
		if err := pub.Send("/topic/bodies", "", nil); err != nil {
			t.Fatal(err)
		}
		m := recv(t, sub, waitShort)
		if len(m.Body) != 0 {
			t.Errorf("empty body came back as %q", m.Body)
		}
		if _, ok := m.Header.Contains("content-type"); ok {
			t.Errorf("no content-type was sent but MESSAGE has one: %s", headerString(m.Header))
		}
	})

	t.Run("large", func(t *testing.T) {
		body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, several WebSocket messages each way
		if err := pub.Send("/topic/bodies", "text/plain", body); err != nil {
			t.Fatal(err)
		}
		m := recv(t, sub, waitLong)
		if !bytes.Equal(m.Body, body) {
			t.Fatalf("1 MiB body differs: got %d bytes", len(m.Body))
		}
	})
}

// TestCustomHeaders: user headers of a SEND come back on the MESSAGE, with
// STOMP 1.2 escaping of ':', '\n' and '\\' undone; the MESSAGE carries the
// required headers.
func TestCustomHeaders(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	subc := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	sub := subc.subscribe(t, "/topic/headers", stomp.AckAuto, stomp.SubscribeOpt.Id("my-sub"))

	custom := [][2]string{
		{"x-plain", "value"},
		{"x-colon", "a:b:c"},
		{"x-newline", "line1\nline2"},
		{"x-backslash", `C:\path\to`},
		{"x-unicode", "héllo ✓ 日本"},
		{"correlation-id", "42"},
		{"priority", "9"},
		{"x-empty", ""},
	}
	opts := []func(*frame.Frame) error{}
	for _, h := range custom {
		opts = append(opts, stomp.SendOpt.Header(h[0], h[1]))
	}
	if err := pub.Send("/topic/headers", "application/json", []byte(`{"a":1}`), opts...); err != nil {
		t.Fatal(err)
	}
	m := recvBody(t, sub, `{"a":1}`)
	for _, h := range custom {
		got, ok := m.Header.Contains(h[0])
		if !ok || got != h[1] {
			t.Errorf("header %s: got %q (present %v), want %q; all: %s", h[0], got, ok, h[1], headerString(m.Header))
		}
	}
	for k, want := range map[string]string{
		"destination":  "/topic/headers",
		"subscription": "my-sub",
		"content-type": "application/json",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("MESSAGE %s:%q, want %q", k, got, want)
		}
	}
	if m.Header.Get("message-id") == "" {
		t.Errorf("MESSAGE without message-id: %s", headerString(m.Header))
	}
	if _, ok := m.Header.Contains("receipt"); ok {
		t.Errorf("MESSAGE carries the SEND's receipt header: %s", headerString(m.Header))
	}
}

// TestReceipts: every client frame with a receipt header is answered with a
// RECEIPT; DISCONNECT's receipt is followed by the close.
func TestReceipts(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	t.Run("go-stomp send", func(t *testing.T) {
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		for i := range 5 {
			if err := c.Send("/topic/receipts", "text/plain", []byte(strconv.Itoa(i)), stomp.SendOpt.Receipt); err != nil {
				t.Fatalf("send %d with receipt: %v", i, err)
			}
		}
		if err := c.Disconnect(); err != nil {
			t.Fatalf("disconnect (waits for the DISCONNECT receipt): %v", err)
		}
	})

	t.Run("raw frames", func(t *testing.T) {
		r := newRaw(t, s)
		cf := r.send
		r.connect("receipt", "r-connect")
		receipts := map[string]bool{}
		next := func(want string) {
			t.Helper()
			f, err := r.next(waitShort)
			if err != nil {
				t.Fatalf("waiting for RECEIPT receipt-id:%s: %v", want, err)
			}
			if f.Command != "RECEIPT" || f.Header.Get("receipt-id") != want {
				t.Fatalf("got %s %s, want RECEIPT receipt-id:%s", f.Command, headerString(f.Header), want)
			}
			id := f.Header.Get("receipt-id")
			if id == "" {
				t.Fatalf("RECEIPT without receipt-id: %s", headerString(f.Header))
			}
			receipts[id] = true
		}
		next("r-connect")
		cf("SUBSCRIBE", "", "id", "s1", "destination", "/topic/raw-receipts", "receipt", "r-sub")
		next("r-sub")
		cf("BEGIN", "", "transaction", "tx1", "receipt", "r-begin")
		next("r-begin")
		cf("SEND", "in tx", "destination", "/topic/raw-receipts", "transaction", "tx1", "receipt", "r-txsend")
		cf("COMMIT", "", "transaction", "tx1", "receipt", "r-commit")
		// r-txsend, then r-commit; the MESSAGE may come anywhere after the
		// SEND's receipt. Read until both the MESSAGE and r-commit are in.
		var gotMsg bool
		for !gotMsg || !receipts["r-commit"] {
			f, err := r.next(waitShort)
			if err != nil {
				t.Fatalf("waiting for the committed MESSAGE and RECEIPT r-commit: %v (receipts %v, message %v)", err, receipts, gotMsg)
			}
			switch f.Command {
			case "RECEIPT":
				id := f.Header.Get("receipt-id")
				if id == "r-commit" && !receipts["r-txsend"] {
					t.Errorf("RECEIPT r-commit arrived without RECEIPT r-txsend before it (the SEND in the transaction had receipt:r-txsend)")
				}
				receipts[id] = true
			case "MESSAGE":
				if string(f.Body) != "in tx" {
					t.Errorf("MESSAGE %q, want the committed \"in tx\"", f.Body)
				}
				gotMsg = true
			default:
				t.Fatalf("unexpected %s %s", f.Command, headerString(f.Header))
			}
		}
		cf("UNSUBSCRIBE", "", "id", "s1", "receipt", "r-unsub")
		next("r-unsub")
		cf("DISCONNECT", "", "receipt", "r-disc")
		next("r-disc")
		frames, code := r.expectClosed(waitShort)
		if len(frames) != 0 {
			t.Errorf("frames after DISCONNECT's RECEIPT: %s", describeFrames(frames))
		}
		if code != 1000 {
			t.Errorf("close code after DISCONNECT %d, want 1000", code)
		}
		for _, id := range []string{"r-connect", "r-sub", "r-begin", "r-txsend", "r-commit", "r-unsub", "r-disc"} {
			if !receipts[id] {
				t.Errorf("no RECEIPT for %s (got %v)", id, receipts)
			}
		}
	})
}

// TestTransactions: SENDs in a transaction are held until COMMIT and
// dropped by ABORT; transactional ACKs likewise. Absence is proven with a
// marker sent after the transactional frames.
func TestTransactions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	subc := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	sub := subc.subscribe(t, "/topic/tx", stomp.AckAuto)

	t.Run("commit", func(t *testing.T) {
		tx := pub.Begin()
		for _, b := range []string{"t1", "t2"} {
			if err := tx.Send("/topic/tx", "text/plain", []byte(b)); err != nil {
				t.Fatal(err)
			}
		}
		pub.send(t, "/topic/tx", "marker-1", stomp.SendOpt.Receipt)
		recvBody(t, sub, "marker-1") // t1, t2 were not delivered before the COMMIT
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		recvBody(t, sub, "t1")
		recvBody(t, sub, "t2")
	})

	t.Run("abort", func(t *testing.T) {
		tx := pub.Begin()
		if err := tx.Send("/topic/tx", "text/plain", []byte("aborted")); err != nil {
			t.Fatal(err)
		}
		if err := tx.Abort(); err != nil {
			t.Fatal(err)
		}
		pub.send(t, "/topic/tx", "marker-2")
		recvBody(t, sub, "marker-2") // not "aborted"
	})

	t.Run("ack", func(t *testing.T) {
		qc := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		qsub := qc.subscribe(t, "/queue/tx-ack", stomp.AckClientIndividual)
		pub.send(t, "/queue/tx-ack", "q")
		m := recvBody(t, qsub, "q")
		waitQueue(t, s.Router, "tx-ack", 0, 1)

		tx := qc.Begin()
		if err := tx.Ack(m); err != nil {
			t.Fatal(err)
		}
		qc.barrier(t)
		if q, _ := queueInfo(s.Router, "tx-ack"); q.Unacked != 1 {
			t.Fatalf("ACK inside an open transaction settled the message: %+v", q)
		}
		if err := tx.Abort(); err != nil {
			t.Fatal(err)
		}
		qc.barrier(t)
		if q, _ := queueInfo(s.Router, "tx-ack"); q.Unacked != 1 {
			t.Fatalf("aborted ACK settled the message: %+v", q)
		}

		tx = qc.Begin()
		if err := tx.Ack(m); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		waitQueue(t, s.Router, "tx-ack", 0, 0)
	})
}

// collectUntil reads sub until a message with body marker arrives and
// returns the destinations of everything before it.
func collectUntil(t *testing.T, sub *stomp.Subscription, marker string) []string {
	t.Helper()
	var got []string
	for {
		m := recv(t, sub, waitShort)
		if string(m.Body) == marker {
			return got
		}
		got = append(got, m.Destination)
		if m.Header.Get("subscription") != sub.Id() {
			t.Errorf("MESSAGE subscription:%q on subscription %q", m.Header.Get("subscription"), sub.Id())
		}
	}
}

// TestWildcards: MQTT wildcards in SUBSCRIBE: '+' is exactly one level,
// '#' the rest (including the parent), /topic/# everything except $ topics.
func TestWildcards(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	subc := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	filters := []string{"/topic/a/+/c", "/topic/a/#", "/topic/#", "/topic/+", "/topic/+/+/c"}
	subs := make([]*stomp.Subscription, len(filters))
	for i, f := range filters {
		subs[i] = subc.subscribe(t, f, stomp.AckAuto)
	}
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	topics := []string{"a/b/c", "a/b/b/c", "a/x/c", "a", "a/b", "$SYS/a/b/c", "z", "z/y/c", "a/b/c/d"}
	for _, tp := range topics {
		pub.send(t, "/topic/"+tp, "payload")
	}
	// The markers: "m" reaches the single-level filters, "a/m/c" the rest.
	pub.send(t, "/topic/a/m/c", "END")
	pub.send(t, "/topic/m", "END")

	want := map[string][]string{
		"/topic/a/+/c": {"a/b/c", "a/x/c"},
		"/topic/a/#":   {"a/b/c", "a/b/b/c", "a/x/c", "a", "a/b", "a/b/c/d"},
		"/topic/#":     {"a/b/c", "a/b/b/c", "a/x/c", "a", "a/b", "z", "z/y/c", "a/b/c/d"},
		"/topic/+":     {"a", "z"},
		"/topic/+/+/c": {"a/b/c", "a/x/c", "z/y/c"},
	}
	for i, f := range filters {
		got := collectUntil(t, subs[i], "END")
		var w []string
		for _, tp := range want[f] {
			w = append(w, "/topic/"+tp)
		}
		if !slices.Equal(got, w) {
			t.Errorf("subscription %s received %q, want %q", f, got, w)
		}
	}
}

// TestTopicSeparatorDot: with TopicSeparator '.', destinations follow
// RabbitMQ: /topic/a.b.c reaches /topic/a.*.c and /topic/a.#.
func TestTopicSeparatorDot(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *serverConfig) { c.Stomp.TopicSeparator = '.' })
	subc := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	star := subc.subscribe(t, "/topic/a.*.c", stomp.AckAuto)
	hash := subc.subscribe(t, "/topic/a.#", stomp.AckAuto)
	exact := subc.subscribe(t, "/topic/a.b.c", stomp.AckAuto)
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	for _, tp := range []string{"a.b.c", "a.b.b.c", "a.x.c", "b.b.c"} {
		pub.send(t, "/topic/"+tp, "payload")
	}
	pub.send(t, "/topic/a.m.c", "END")
	pub.send(t, "/topic/a.b.c", "END-exact")

	if got, want := collectUntil(t, star, "END"), []string{"/topic/a.b.c", "/topic/a.x.c"}; !slices.Equal(got, want) {
		t.Errorf("/topic/a.*.c received %q, want %q", got, want)
	}
	if got, want := collectUntil(t, hash, "END"), []string{"/topic/a.b.c", "/topic/a.b.b.c", "/topic/a.x.c"}; !slices.Equal(got, want) {
		t.Errorf("/topic/a.# received %q, want %q", got, want)
	}
	if got, want := collectUntil(t, exact, "END-exact"), []string{"/topic/a.b.c"}; !slices.Equal(got, want) {
		t.Errorf("/topic/a.b.c received %q, want %q", got, want)
	}
}

// TestFanOut100: 100 connections subscribed to one topic each receive every
// message, in order.
func TestFanOut100(t *testing.T) {
	t.Parallel()
	const nSubs, nMsgs = 100, 50
	s := startServer(t)
	subs := make([]*stomp.Subscription, nSubs)
	for i := range subs {
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		subs[i] = c.subscribe(t, "/topic/fan/out", stomp.AckAuto)
	}
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	for i := range nMsgs {
		pub.send(t, "/topic/fan/out", strconv.Itoa(i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, nSubs)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for i, sub := range subs {
		wg.Go(func() {
			for j := range nMsgs {
				select {
				case m, ok := <-sub.C:
					if !ok || m.Err != nil {
						errs <- fmt.Errorf("subscriber %d: closed after %d messages (%v)", i, j, m)
						return
					}
					if string(m.Body) != strconv.Itoa(j) {
						errs <- fmt.Errorf("subscriber %d: message %d has body %q", i, j, m.Body)
						return
					}
				case <-ctx.Done():
					errs <- fmt.Errorf("subscriber %d: only %d of %d messages within %v", i, j, nMsgs, waitLong)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Router.Stats(); st.Delivered < nSubs*nMsgs {
		t.Errorf("router counted %d deliveries, want >= %d", st.Delivered, nSubs*nMsgs)
	}
}

// TestTopicNackAndUnsubscribe: on a topic, NACK redelivers to the same
// subscription (redelivered:true); UNSUBSCRIBE by id stops deliveries to
// that subscription only.
func TestTopicNackAndUnsubscribe(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	t.Run("NACK", func(t *testing.T) {
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		sub := c.subscribe(t, "/topic/nack", stomp.AckClientIndividual)
		c.send(t, "/topic/nack", "n1")
		m := recvBody(t, sub, "n1")
		if isRedelivered(m) {
			t.Errorf("first delivery marked redelivered")
		}
		if err := c.Nack(m); err != nil {
			t.Fatal(err)
		}
		m2 := recvBody(t, sub, "n1")
		if !isRedelivered(m2) {
			t.Errorf("topic NACK redelivery without redelivered:true: %s", headerString(m2.Header))
		}
		if m2.Header.Get("subscription") != sub.Id() {
			t.Errorf("redelivered to subscription %q, want %q", m2.Header.Get("subscription"), sub.Id())
		}
		if err := c.Ack(m2); err != nil {
			t.Fatal(err)
		}
		c.send(t, "/topic/nack", "n2")
		recvBody(t, sub, "n2") // the ACKed message is not redelivered again
	})

	t.Run("UNSUBSCRIBE", func(t *testing.T) {
		r := newRaw(t, s)
		r.connect()
		r.send("SUBSCRIBE", "", "id", "a", "destination", "/topic/unsub")
		r.send("SUBSCRIBE", "", "id", "b", "destination", "/topic/unsub")
		r.send("UNSUBSCRIBE", "", "id", "a")
		r.send("SEND", "x", "destination", "/topic/unsub")
		r.send("SEND", "y", "destination", "/topic/unsub")
		for _, want := range []string{"x", "y"} {
			f := r.expect("MESSAGE")
			if string(f.Body) != want || f.Header.Get("subscription") != "b" {
				t.Fatalf("got MESSAGE %q subscription:%q, want %q on b only", f.Body, f.Header.Get("subscription"), want)
			}
		}
		r.send("UNSUBSCRIBE", "", "id", "never-subscribed", "receipt", "r-u")
		f := r.expect("ERROR")
		if f.Header.Get("receipt-id") != "r-u" || f.Header.Get("message") == "" {
			t.Errorf("UNSUBSCRIBE of an unknown id: %s", headerString(f.Header))
		}
		r.expectClosed(waitShort)
	})
}

// TestSTOMP10Raw: a 1.0 client (no accept-version) may SUBSCRIBE without an
// id (the destination is the id) and ACK by message-id.
func TestSTOMP10Raw(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRaw(t, s)
	r.send("CONNECT", "", "login", "guest", "passcode", "guest")
	if f := r.expect("CONNECTED"); f.Header.Get("version") != "1.0" {
		t.Fatalf("CONNECTED %s, want version 1.0", headerString(f.Header))
	}
	r.send("SUBSCRIBE", "", "destination", "/queue/old", "ack", "client", "receipt", "r1")
	if f := r.expect("RECEIPT"); f.Header.Get("receipt-id") != "r1" {
		t.Fatalf("RECEIPT %s", headerString(f.Header))
	}
	r.send("SEND", "old school", "destination", "/queue/old")
	f := r.expect("MESSAGE")
	if string(f.Body) != "old school" || f.Header.Get("destination") != "/queue/old" {
		t.Fatalf("MESSAGE %s %q", headerString(f.Header), f.Body)
	}
	id := f.Header.Get("message-id")
	waitQueue(t, s.Router, "old", 0, 1)
	r.send("ACK", "", "message-id", id, "receipt", "r2")
	r.expect("RECEIPT")
	waitQueue(t, s.Router, "old", 0, 0)
	r.send("UNSUBSCRIBE", "", "destination", "/queue/old", "receipt", "r3")
	r.expect("RECEIPT")
	if q, _ := queueInfo(s.Router, "old"); q.Consumers != 0 {
		t.Errorf("UNSUBSCRIBE by destination left %d consumers", q.Consumers)
	}
}
