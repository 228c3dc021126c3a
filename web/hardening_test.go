package web

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/go-stomp/stomp/v3"
	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
)

// TestHTTPIdleTimeout: an idle keep-alive connection is closed after
// HTTPIdleTimeout; a new request on a new connection is served.
func TestHTTPIdleTimeout(t *testing.T) {
	cfg := Config{HTTPIdleTimeout: 100 * time.Millisecond}
	gw := New(cfg, broker.New(broker.Config{}, nil), nil)
	hs := NewHTTPServer(gw, cfg)
	if hs.ReadHeaderTimeout != DefaultHTTPReadHeaderTimeout || hs.MaxHeaderBytes != 16<<10 || hs.ErrorLog == nil ||
		hs.TLSNextProto == nil || len(hs.TLSNextProto) != 0 {
		t.Errorf("server %+v", hs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(gw.Listener(ln)) }()
	defer hs.Close()

	get := func() net.Conn {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), tcpWait)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(tcpWait))
		_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Fatal("server did not keep the connection alive")
		}
		// Wait for the close: the read ends with EOF well before tcpWait.
		if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
		}
		return c
	}
	get().Close()
	waitFor(t, "socket released", func() bool { return gw.AdmissionStats().Sockets == 0 })
	get().Close()
}

// TestUTF8Reader: valid text passes whatever the read sizes, runes split
// across reads included; invalid bytes, an overlong form, a surrogate and a
// rune cut by the end of the message fail, and call invalid once.
func TestUTF8Reader(t *testing.T) {
	valid := "plain ascii, é, €, 😀, 日本語 and U+FFFD \uFFFD" + strings.Repeat("ü", 50)
	invalid := []string{"abc\xff", "\xc0\xaf", "\xed\xa0\x80", "ok \xe2\x82", "\xf0\x9f\x98", "\x80", "é\xc3"}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for name, wrap := range readers {
		for _, size := range []int{1, 3, 7, 64} { // the caller's buffer
			calls := 0
			u := &utf8Reader{invalid: func() { calls++ }}
			u.reset(wrap(strings.NewReader(valid)))
			got, err := readAllSized(u, size)
			if err != nil || string(got) != valid || calls != 0 {
				t.Errorf("%s/%d valid: %q, %v, %d calls", name, size, got, err, calls)
			}
			for _, in := range invalid {
				calls = 0
				u.reset(wrap(strings.NewReader(in)))
				got, err := readAllSized(u, size)
				if err != ErrInvalidUTF8 || calls != 1 || !utf8.Valid(got) {
					t.Errorf("%s/%d %q: %q, %v, %d calls; want ErrInvalidUTF8 once and only valid bytes", name, size, in, got, err, calls)
				}
				if _, err := u.Read(make([]byte, 8)); err != ErrInvalidUTF8 {
					t.Errorf("%q: read after the error: %v", in, err)
				}
			}
		}
	}
}

func readAllSized(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestInvalidUTF8TextClose1007: a text message with invalid UTF-8 closes
// the connection with 1007 (RFC 6455 §8.1); valid text split into 2-byte
// frames, runes cut in the middle, is echoed; a neighbour keeps echoing.
func TestInvalidUTF8TextClose1007(t *testing.T) {
	s := newGW(t, Config{})
	neighbour, _, _ := dialWS(t, s.wsURL(), "alpha.v1", nil)

	d := websocket.Dialer{Subprotocols: []string{"alpha.v1"}, WriteBufferSize: 2}
	split, _, err := d.Dial(s.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer split.Close()
	msg := "héllo €uro 😀"
	w, _ := split.NextWriter(websocket.TextMessage)
	_, _ = w.Write([]byte(msg))
	_ = w.Close()
	_ = split.SetReadDeadline(time.Now().Add(tcpWait))
	if _, got, err := split.ReadMessage(); err != nil || string(got) != "alpha:"+msg {
		t.Fatalf("split text: %q, %v", got, err)
	}

	bad, _, _ := dialWS(t, s.wsURL(), "alpha.v1", nil)
	_ = bad.WriteMessage(websocket.TextMessage, []byte("SEND\ndestination:/topic/x\n\n\xff\xfe\x00"))
	_ = bad.SetReadDeadline(time.Now().Add(tcpWait))
	if _, _, err := bad.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseInvalidFramePayloadData) {
		t.Fatalf("invalid UTF-8: %v, want close 1007", err)
	}
	// Binary messages are not checked.
	bin, _, _ := dialWS(t, s.wsURL(), "alpha.v1", nil)
	_ = bin.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0xfe})
	_ = bin.SetReadDeadline(time.Now().Add(tcpWait))
	if _, got, err := bin.ReadMessage(); err != nil || !bytes.HasSuffix(got, []byte{0xff, 0xfe}) {
		t.Errorf("binary: %q, %v", got, err)
	}
	mustEcho(t, neighbour, "still fine")
}

// TestClosePayloadOneByte: a close frame with a 1-byte payload is answered
// with 1002 (RFC 6455 §5.5.1); an empty one and a normal one are echoed.
func TestClosePayloadOneByte(t *testing.T) {
	s := newGW(t, Config{})
	neighbour, _, _ := dialWS(t, s.wsURL(), "alpha.v1", nil)
	cases := []struct {
		payload []byte
		want    int
	}{
		{[]byte{0x03}, websocket.CloseProtocolError},
		{nil, websocket.CloseNoStatusReceived},
		{websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), websocket.CloseNormalClosure},
	}
	for _, c := range cases {
		ws, _, _ := dialWS(t, s.wsURL(), "alpha.v1", nil)
		mustEcho(t, ws, "before") // frames before the close are skipped by length
		big := bytes.Repeat([]byte("x"), 70000)
		_ = ws.WriteMessage(websocket.BinaryMessage, big) // a 64-bit length header
		_ = ws.SetReadDeadline(time.Now().Add(tcpWait))
		if _, got, err := ws.ReadMessage(); err != nil || len(got) != len(big)+len("alpha:") {
			t.Fatalf("big echo: %d, %v", len(got), err)
		}
		if err := ws.WriteControl(websocket.CloseMessage, c.payload, time.Now().Add(tcpWait)); err != nil {
			t.Fatal(err)
		}
		_, _, err := ws.ReadMessage()
		if !websocket.IsCloseError(err, c.want) {
			t.Errorf("close payload %q: %v, want %d", c.payload, err, c.want)
		}
	}
	mustEcho(t, neighbour, "still fine")
}

// TestFrameSniffer: header lengths of every size, masked or not, are
// skipped until the first close frame, whose payload length is recorded;
// feeding byte by byte gives the same.
func TestFrameSniffer(t *testing.T) {
	frame := func(op byte, n int, masked bool) []byte {
		b := []byte{0x80 | op}
		m := byte(0)
		if masked {
			m = 0x80
		}
		switch {
		case n < 126:
			b = append(b, m|byte(n))
		case n < 1<<16:
			b = append(b, m|126, 0, 0)
			binary.BigEndian.PutUint16(b[2:], uint16(n))
		default:
			b = append(b, m|127)
			b = binary.BigEndian.AppendUint64(b, uint64(n))
		}
		if masked {
			b = append(b, 1, 2, 3, 4)
		}
		return append(b, bytes.Repeat([]byte{0x88}, n)...) // payload bytes that look like close headers
	}
	var stream []byte
	stream = append(stream, frame(0x1, 5, true)...)
	stream = append(stream, frame(0x2, 300, true)...)
	stream = append(stream, frame(0x2, 70000, false)...)
	stream = append(stream, frame(0x9, 0, true)...)
	stream = append(stream, frame(0x8, 1, true)...)
	stream = append(stream, frame(0x8, 5, true)...)
	for _, chunk := range []int{1, 7, len(stream)} {
		f := newFrameSniffer(nil)
		for b := stream; len(b) > 0; {
			n := min(chunk, len(b))
			f.sniff(b[:n])
			b = b[n:]
		}
		if f.closeLen != 1 {
			t.Errorf("chunks of %d: closeLen %d, want 1", chunk, f.closeLen)
		}
	}
	f := newFrameSniffer(nil)
	f.sniff(frame(0x2, 10, true))
	if f.closeLen != -1 {
		t.Errorf("no close: closeLen %d", f.closeLen)
	}
}

// TestErrorLogWriter: TLS handshake noise goes to debug, the rest to warn.
func TestErrorLogWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &errorLogWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	_, _ = w.Write([]byte("http: TLS handshake error from 1.2.3.4:5: EOF\n"))
	_, _ = w.Write([]byte("http: panic serving 1.2.3.4:5: boom\n"))
	out := buf.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "boom") {
		t.Errorf("log: %s", out)
	}
}

// TestStompInvalidUTF8NotRouted: a STOMP SEND in a text message with
// invalid UTF-8 closes the sender with 1007 and reaches no subscriber; a
// valid client's message right after is delivered.
func TestStompInvalidUTF8NotRouted(t *testing.T) {
	s := startTCPServer(t, dstomp.Config{}, Config{})
	sub := subscribeSync(t, dialStompTCP(t, s.tcpAddr), "/topic/x")

	d := websocket.Dialer{Subprotocols: []string{"v12.stomp"}, HandshakeTimeout: tcpWait}
	bad, _, err := d.Dial(wsURL(s.hs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	_ = bad.SetReadDeadline(time.Now().Add(tcpWait))
	_ = bad.WriteMessage(websocket.TextMessage, []byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00"))
	if _, msg, err := bad.ReadMessage(); err != nil || !strings.HasPrefix(string(msg), "CONNECTED") {
		t.Fatalf("connect: %q, %v", msg, err)
	}
	_ = bad.WriteMessage(websocket.TextMessage, []byte("SEND\ndestination:/topic/x\n\nbad \xc3\x28 body\x00"))
	for {
		_, _, err := bad.ReadMessage()
		if err == nil {
			continue // an ERROR frame may come first
		}
		if !websocket.IsCloseError(err, websocket.CloseInvalidFramePayloadData) {
			t.Fatalf("got %v, want close 1007", err)
		}
		break
	}

	good := dialStompWS(t, s.hs)
	if err := good.Send("/topic/x", "text/plain", []byte("valid ü"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	if got := recvBody(t, sub); got != "valid ü" {
		t.Errorf("subscriber got %q first, want the valid message", got)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer = testutil.Buffer

// TestRefusalLogs: refused requests log one line per source per interval,
// and never the URL's query (the access_token); the admission refusal
// logs its cause.
func TestRefusalLogs(t *testing.T) {
	var logs syncBuffer
	// Behind the trusted loopback proxy: the per-IP cap of 1 applies to
	// the forwarded address, not to the sockets (test ones may linger).
	s := newGW(t, Config{Log: slog.New(slog.NewTextHandler(&logs, nil)), MaxConnectionsPerIP: 1, TrustedProxies: trustLoopback})
	for range 5 {
		ws, code, _ := dialWS(t, s.wsURL()+"?access_token=secret-token", "alpha.v1", http.Header{"Origin": {"http://evil.example"}, "X-Forwarded-For": {"198.51.100.1"}})
		if ws != nil || code != http.StatusForbidden {
			t.Fatalf("cross-origin: %d", code)
		}
	}
	keep, _, _ := dialWS(t, s.wsURL(), "alpha.v1", fromIP("198.51.100.1"))
	for range 3 {
		if ws, code, _ := dialWS(t, s.wsURL()+"?access_token=secret-token", "alpha.v1", fromIP("198.51.100.1")); ws != nil || code != 503 {
			t.Fatalf("over the cap: %d", code)
		}
	}
	mustEcho(t, keep, "still here")
	out := logs.String()
	if n := strings.Count(out, "origin refused"); n != 1 {
		t.Errorf("%d origin lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "connection refused"); n != 1 || !strings.Contains(out, "cause=max_connections_per_ip") {
		t.Errorf("%d admission lines, want 1 with its cause:\n%s", n, out)
	}
	if strings.Contains(out, "secret-token") || strings.Contains(out, "access_token") {
		t.Errorf("the token was logged:\n%s", out)
	}
}

// BenchmarkUTF8Reader is the cost of the text-message check on a typical
// STOMP frame, against reading it unchecked.
func BenchmarkUTF8Reader(b *testing.B) {
	frame := []byte("SEND\ndestination:/topic/sensors/42\ncontent-type:application/json\n\n" +
		strings.Repeat(`{"t":21.5,"unit":"°C"},`, 40) + "\x00")
	buf := make([]byte, 4096)
	br := bytes.NewReader(frame)
	b.Run("unchecked", func(b *testing.B) {
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			br.Reset(frame)
			for {
				if _, err := br.Read(buf); err != nil {
					break
				}
			}
		}
	})
	ascii := bytes.ReplaceAll(frame, []byte("°"), []byte("d"))
	for name, f := range map[string][]byte{"checked": frame, "checked-ascii": ascii} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(f)))
			u := &utf8Reader{invalid: func() {}}
			for b.Loop() {
				br.Reset(f)
				u.reset(br)
				for {
					if _, err := u.Read(buf); err != nil {
						break
					}
				}
			}
		})
	}
}
