// Package e2e holds end-to-end interop tests: the broker runs in-process
// behind httptest (or as the real binary) and is driven over real loopback
// WebSockets by the go-stomp client and by a raw frame-level client.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/subprotocol"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
	"github.com/duplexmq/duplex/web"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries() // the real binary, built for the operations tests
	os.Exit(code)
}

// Timeouts. Every wait in these tests is bounded by one of them.
const (
	waitShort = 5 * time.Second  // one frame, one message, a connect
	waitLong  = 20 * time.Second // bulk transfers
)

// ---------------------------------------------------------------------------
// Server

// serverConfig is what a test may change before the server starts.
type serverConfig struct {
	Broker broker.Config
	Stomp  dstomp.Config
	Web    web.Config
}

// testServer is one in-process broker behind httptest.
type testServer struct {
	URL     string // ws://127.0.0.1:PORT/ws
	HTTPURL string // http://127.0.0.1:PORT
	Router  *broker.Router
	Gateway *web.Server
	HTTP    *httptest.Server
}

// testLogger logs to stderr when DUPLEX_E2E_LOG is set (debug, info, warn),
// and discards otherwise.
func testLogger() *slog.Logger {
	lv := os.Getenv("DUPLEX_E2E_LOG")
	if lv == "" {
		return slog.New(slog.DiscardHandler)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(lv))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startServer runs web.New(web, broker.New(broker), {stomp.New(stomp)})
// under httptest; configure may adjust the limits first. The server is shut
// down (sessions closed, handlers waited for) when the test ends.
func startServer(t testing.TB, configure ...func(*serverConfig)) *testServer {
	t.Helper()
	var cfg serverConfig
	for _, f := range configure {
		f(&cfg)
	}
	log := testLogger()
	cfg.Stomp.Log = log
	cfg.Web.Log = log
	router := broker.New(cfg.Broker, log)
	gw := web.New(cfg.Web, router, subprotocol.Registry{dstomp.New(cfg.Stomp)})
	hs := httptest.NewServer(gw)
	s := &testServer{
		URL:     "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws",
		HTTPURL: hs.URL,
		Router:  router,
		Gateway: gw,
		HTTP:    hs,
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitShort)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
		hs.Close()
	})
	return s
}

// ---------------------------------------------------------------------------
// WebSocket adapter

// wsConn turns a gorilla *websocket.Conn into the io.ReadWriteCloser that
// go-stomp (and frame.Reader) want. Read concatenates incoming messages into
// one stream: the server may put several frames in one message, or split
// nothing at all. Each Write goes out as one message: text, unless the bytes
// are not valid UTF-8 (a binary body), which go out as a binary message, as
// browser clients do (RFC 6455 forbids invalid UTF-8 in text messages).
type wsConn struct {
	ws *websocket.Conn

	rbuf []byte // unread rest of the current message; reader goroutine only

	wmu sync.Mutex

	closeOnce sync.Once

	// Counters for assertions.
	textIn, binaryIn atomic.Int64 // messages received by type
	hbIn, hbOut      atomic.Int64 // heart-beat-only messages ("\n") each way
	closeCode        atomic.Int64 // close code the peer sent; -1 = closed without a close frame
	readErr          atomic.Pointer[error]
}

func newWSConn(ws *websocket.Conn) *wsConn {
	return &wsConn{ws: ws}
}

func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.rbuf) == 0 {
		mt, msg, err := c.ws.ReadMessage()
		if err != nil {
			c.noteReadErr(err)
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return 0, io.EOF
			}
			return 0, err
		}
		if mt == websocket.BinaryMessage {
			c.binaryIn.Add(1)
		} else {
			c.textIn.Add(1)
		}
		if isHeartBeat(msg) {
			c.hbIn.Add(1)
		}
		c.rbuf = msg
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

func (c *wsConn) noteReadErr(err error) {
	c.readErr.CompareAndSwap(nil, &err)
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		c.closeCode.CompareAndSwap(0, int64(ce.Code))
	} else {
		c.closeCode.CompareAndSwap(0, -1)
	}
}

func isHeartBeat(b []byte) bool {
	return len(b) > 0 && len(bytes.Trim(b, "\r\n")) == 0
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	mt := websocket.TextMessage
	if !utf8.Valid(p) {
		mt = websocket.BinaryMessage
	}
	if isHeartBeat(p) {
		c.hbOut.Add(1)
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(waitShort))
	if err := c.ws.WriteMessage(mt, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeRaw sends p as one WebSocket message of type mt.
func (c *wsConn) writeRaw(mt int, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(waitShort))
	return c.ws.WriteMessage(mt, p)
}

// Close sends a normal close frame (best effort) and closes the socket.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = c.ws.Close()
	})
	return nil
}

// abort closes the socket without a close frame (a crashed client).
func (c *wsConn) abort() {
	c.closeOnce.Do(func() { _ = c.ws.Close() })
}

// dialOptions tune dialWS.
type dialOptions struct {
	subprotocols []string
	path         string // default /ws
	readBuffer   int    // SO_RCVBUF for the TCP socket; 0 = system default
}

// dialWS opens a WebSocket to the server, offering v12.stomp unless told
// otherwise, and closes it when the test ends.
func dialWS(t testing.TB, s *testServer, opts ...func(*dialOptions)) *wsConn {
	t.Helper()
	o := dialOptions{subprotocols: []string{"v12.stomp"}}
	for _, f := range opts {
		f(&o)
	}
	url := s.URL
	if o.path != "" {
		url = strings.TrimSuffix(url, "/ws") + o.path
	}
	return dialURL(t, url, o)
}

func dialURL(t testing.TB, url string, o dialOptions) *wsConn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: o.subprotocols, HandshakeTimeout: waitShort}
	if o.readBuffer > 0 {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(o.readBuffer)
			}
			return c, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s: %v %s", url, err, status)
	}
	c := newWSConn(ws)
	t.Cleanup(func() { c.Close() })
	return c
}

// ---------------------------------------------------------------------------
// go-stomp client

// quietLogger silences go-stomp's own logging.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...interface{})   {}
func (quietLogger) Infof(string, ...interface{})    {}
func (quietLogger) Warningf(string, ...interface{}) {}
func (quietLogger) Errorf(string, ...interface{})   {}
func (quietLogger) Debug(string)                    {}
func (quietLogger) Info(string)                     {}
func (quietLogger) Warning(string)                  {}
func (quietLogger) Error(string)                    {}

// client is a go-stomp connection and its WebSocket.
type client struct {
	*stomp.Conn
	ws *wsConn
}

// connect dials the server and performs the STOMP handshake with go-stomp.
// The connection is disconnected (bounded) when the test ends.
func connect(t testing.TB, s *testServer, opts ...func(*stomp.Conn) error) *client {
	t.Helper()
	return connectWS(t, dialWS(t, s), opts...)
}

func connectWS(t testing.TB, ws *wsConn, opts ...func(*stomp.Conn) error) *client {
	t.Helper()
	all := append([]func(*stomp.Conn) error{
		stomp.ConnOpt.Logger(quietLogger{}),
		stomp.ConnOpt.DisconnectReceiptTimeout(2 * time.Second),
		stomp.ConnOpt.RcvReceiptTimeout(waitShort),
		stomp.ConnOpt.MsgSendTimeout(waitShort),
		stomp.ConnOpt.UnsubscribeReceiptTimeout(waitShort),
	}, opts...)
	type result struct {
		c   *stomp.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := stomp.Connect(ws, all...)
		done <- result{c, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(waitShort):
		ws.abort()
		t.Fatalf("go-stomp connect: no CONNECTED within %v", waitShort)
	}
	if r.err != nil {
		t.Fatalf("go-stomp connect: %v", r.err)
	}
	c := &client{Conn: r.c, ws: ws}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { _ = r.c.Disconnect(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
		}
		ws.abort()
	})
	return c
}

// subscribe subscribes and waits until the server has processed the
// SUBSCRIBE (barrier), so messages published afterwards reach it.
func (c *client) subscribe(t testing.TB, dest string, ack stomp.AckMode, opts ...func(*frame.Frame) error) *stomp.Subscription {
	t.Helper()
	sub, err := c.Subscribe(dest, ack, opts...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	c.barrier(t)
	return sub
}

// barrierTopic is where barrier SENDs go: a $ topic, which no test filter
// starting with a wildcard matches [MQTT-4.7.2-1].
const barrierTopic = "/topic/$e2e/barrier"

// barrier sends a SEND with a receipt and waits for the RECEIPT: the server
// handles a connection's frames in order, so everything sent before has
// been processed. (go-stomp routes a receipt on SUBSCRIBE into the
// subscription's channel and closes it, so SUBSCRIBE itself cannot carry one.)
func (c *client) barrier(t testing.TB) {
	t.Helper()
	if err := c.Send(barrierTopic, "", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("barrier receipt: %v", err)
	}
}

// send sends a text message, failing the test on error.
func (c *client) send(t testing.TB, dest, body string, opts ...func(*frame.Frame) error) {
	t.Helper()
	if err := c.Send(dest, "text/plain", []byte(body), opts...); err != nil {
		t.Fatalf("send to %s: %v", dest, err)
	}
}

// recv returns the next message of sub, failing after timeout.
func recv(t testing.TB, sub *stomp.Subscription, timeout time.Duration) *stomp.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C:
		if !ok {
			t.Fatalf("subscription %s (%s) closed", sub.Id(), sub.Destination())
		}
		if m.Err != nil {
			t.Fatalf("subscription %s (%s): %v", sub.Id(), sub.Destination(), m.Err)
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("subscription %s (%s): no message within %v", sub.Id(), sub.Destination(), timeout)
	}
	return nil
}

// recvBody receives the next message and checks its body.
func recvBody(t testing.TB, sub *stomp.Subscription, want string) *stomp.Message {
	t.Helper()
	m := recv(t, sub, waitShort)
	if string(m.Body) != want {
		t.Fatalf("subscription %s (%s): got body %q, want %q (headers %s)", sub.Id(), sub.Destination(), m.Body, want, headerString(m.Header))
	}
	return m
}

func headerString(h *frame.Header) string {
	if h == nil {
		return "{}"
	}
	var b strings.Builder
	b.WriteString("{")
	for i := range h.Len() {
		k, v := h.GetAt(i)
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s:%q", k, v)
	}
	b.WriteString("}")
	return b.String()
}

// ---------------------------------------------------------------------------
// Raw frame client

// rawClient speaks STOMP frames by hand over a WebSocket, for what go-stomp
// cannot or will not send. Reads are synchronous with a read deadline, so
// they never hang; a timed-out read fails the test.
type rawClient struct {
	t  testing.TB
	ws *wsConn
	rd *frame.Reader
}

func newRaw(t testing.TB, s *testServer, opts ...func(*dialOptions)) *rawClient {
	t.Helper()
	ws := dialWS(t, s, opts...)
	return &rawClient{t: t, ws: ws, rd: frame.NewReader(ws)}
}

// encodeFrame builds a frame's wire form; headers are key, value pairs
// written as given (no escaping).
func encodeFrame(cmd string, body []byte, headers ...string) []byte {
	var b bytes.Buffer
	b.WriteString(cmd)
	b.WriteByte('\n')
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i])
		b.WriteByte(':')
		b.WriteString(headers[i+1])
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(body)
	b.WriteByte(0)
	return b.Bytes()
}

// send writes one frame as one text message.
func (r *rawClient) send(cmd string, body string, headers ...string) {
	r.t.Helper()
	r.sendBytes(encodeFrame(cmd, []byte(body), headers...))
}

// sendBytes writes p as one text message, as is.
func (r *rawClient) sendBytes(p []byte) {
	r.t.Helper()
	if err := r.ws.writeRaw(websocket.TextMessage, p); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// next reads the next frame (skipping heart-beats) within timeout.
func (r *rawClient) next(timeout time.Duration) (*frame.Frame, error) {
	_ = r.ws.ws.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = r.ws.ws.SetReadDeadline(time.Time{}) }()
	for {
		f, err := r.rd.Read()
		if err != nil {
			return nil, err
		}
		if f != nil {
			return f, nil
		}
	}
}

// expect reads the next frame and checks its command.
func (r *rawClient) expect(cmd string) *frame.Frame {
	r.t.Helper()
	f, err := r.next(waitShort)
	if err != nil {
		r.t.Fatalf("waiting for %s: %v (close code %d)", cmd, err, r.ws.closeCode.Load())
	}
	if f.Command != cmd {
		r.t.Fatalf("got %s %s %q, want %s", f.Command, headerString(f.Header), f.Body, cmd)
	}
	return f
}

// connect sends CONNECT with the given extra headers and expects CONNECTED.
func (r *rawClient) connect(headers ...string) *frame.Frame {
	r.t.Helper()
	h := append([]string{"accept-version", "1.2", "host", "localhost"}, headers...)
	r.send("CONNECT", "", h...)
	return r.expect("CONNECTED")
}

// expectClosed reads until the connection ends (within timeout) and
// returns the frames read before the end and the peer's close code (-1:
// no close frame). A timeout fails the test: the server did not close.
func (r *rawClient) expectClosed(timeout time.Duration) (frames []*frame.Frame, code int) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	_ = r.ws.ws.SetReadDeadline(deadline)
	defer func() { _ = r.ws.ws.SetReadDeadline(time.Time{}) }()
	for {
		f, err := r.rd.Read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("connection still open after %v (read %d frames)", timeout, len(frames))
			}
			return frames, int(r.ws.closeCode.Load())
		}
		if f != nil {
			frames = append(frames, f)
		}
	}
}

// ---------------------------------------------------------------------------
// Polling

// checkFor calls f until it returns nil or timeout passes, then fails the
// test with f's last error (nats-server's checkFor).
func checkFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	testutil.EventuallyErr(t, timeout, f)
}

// queueInfo returns the router's view of queue name (without /queue/).
func queueInfo(r *broker.Router, name string) (broker.QueueInfo, bool) { return r.Queue(name) }

// waitQueue polls until queue name has the given ready and unacked counts.
func waitQueue(t testing.TB, r *broker.Router, name string, ready, unacked int) {
	t.Helper()
	checkFor(t, waitShort, func() error {
		q, ok := queueInfo(r, name)
		if !ok {
			return fmt.Errorf("queue %q does not exist", name)
		}
		if q.Ready != ready || q.Unacked != unacked {
			return fmt.Errorf("queue %q: ready %d unacked %d, want ready %d unacked %d", name, q.Ready, q.Unacked, ready, unacked)
		}
		return nil
	})
}

// afterShort is a fresh waitShort timer, for select loops.
func afterShort() <-chan time.Time { return time.After(waitShort) }
