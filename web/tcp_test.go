package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/subprotocol"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
)

// tcpWait bounds every wait in these tests.
const tcpWait = 5 * time.Second

// tcpTestServer is one gateway serving STOMP over WebSocket (httptest) and
// over plain TCP (ServeTCP) with one router.
type tcpTestServer struct {
	gw       *Server
	router   *broker.Router
	hs       *httptest.Server
	tcpAddr  string
	serveErr chan error // ServeTCP's result
}

func startTCPServer(t *testing.T, scfg dstomp.Config, wcfg Config) *tcpTestServer {
	t.Helper()
	router := broker.New(broker.Config{}, nil)
	gw := New(wcfg, router, subprotocol.Registry{dstomp.New(scfg)})
	hs := httptest.NewServer(gw)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpTestServer{gw: gw, router: router, hs: hs, tcpAddr: ln.Addr().String(), serveErr: make(chan error, 1)}
	go func() { s.serveErr <- gw.ServeTCP(ln, dstomp.New(scfg)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tcpWait)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		select {
		case <-s.serveErr:
		case <-time.After(tcpWait):
			t.Errorf("ServeTCP did not return after Shutdown")
		}
	})
	return s
}

// wsRWC turns a gorilla *websocket.Conn into the io.ReadWriteCloser that
// go-stomp wants (test/e2e's wsConn, cut down).
type wsRWC struct {
	ws   *websocket.Conn
	rbuf []byte
	wmu  sync.Mutex
}

func (c *wsRWC) Read(p []byte) (int, error) {
	for len(c.rbuf) == 0 {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return 0, io.EOF
			}
			return 0, err
		}
		c.rbuf = msg
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

func (c *wsRWC) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(tcpWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsRWC) Close() error { return c.ws.Close() }

func dialStompWS(t *testing.T, hs *httptest.Server) *stomp.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"v12.stomp"}, HandshakeTimeout: tcpWait}
	ws, _, err := d.Dial(wsURL(hs), nil)
	if err != nil {
		t.Fatalf("ws dial: %v", err)
	}
	c, err := stomp.Connect(&wsRWC{ws: ws}, stomp.ConnOpt.Host("/"))
	if err != nil {
		t.Fatalf("stomp over ws: %v", err)
	}
	t.Cleanup(func() { _ = c.MustDisconnect() })
	return c
}

func dialStompTCP(t *testing.T, addr string, opts ...func(*stomp.Conn) error) *stomp.Conn {
	t.Helper()
	opts = append([]func(*stomp.Conn) error{stomp.ConnOpt.Host("/")}, opts...)
	c, err := stomp.Dial("tcp", addr, opts...)
	if err != nil {
		t.Fatalf("stomp over tcp: %v", err)
	}
	t.Cleanup(func() { _ = c.MustDisconnect() })
	return c
}

// subscribeSync subscribes and then waits for a SEND receipt: the server
// handles one connection's frames in order, so the subscription is in place.
func subscribeSync(t *testing.T, c *stomp.Conn, dest string) *stomp.Subscription {
	t.Helper()
	sub, err := c.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	if err := c.Send("/topic/barrier", "", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	return sub
}

func recvBody(t *testing.T, sub *stomp.Subscription) string {
	t.Helper()
	select {
	case m, ok := <-sub.C:
		if !ok || m.Err != nil {
			t.Fatalf("subscription ended: %v", m)
		}
		return string(m.Body)
	case <-time.After(tcpWait):
		t.Fatalf("no message on %s", sub.Destination())
	}
	return ""
}

// TestTCPAndWebSocketShareRouter: a STOMP client over plain TCP and one
// over WebSocket on the same server exchange messages both ways.
func TestTCPAndWebSocketShareRouter(t *testing.T) {
	s := startTCPServer(t, dstomp.Config{}, Config{})
	tc := dialStompTCP(t, s.tcpAddr)
	wc := dialStompWS(t, s.hs)

	subTCP := subscribeSync(t, tc, "/topic/to-tcp")
	subWS := subscribeSync(t, wc, "/topic/to-ws")

	if err := wc.Send("/topic/to-tcp", "text/plain", []byte("hello from ws"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	if got := recvBody(t, subTCP); got != "hello from ws" {
		t.Errorf("tcp got %q", got)
	}
	if err := tc.Send("/topic/to-ws", "text/plain", []byte("hello from tcp"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	if got := recvBody(t, subWS); got != "hello from tcp" {
		t.Errorf("ws got %q", got)
	}

	// A queue: sent over TCP before anyone consumes, received over WebSocket.
	body := bytes.Repeat([]byte("x"), 64<<10) // spans many TCP reads
	if err := tc.Send("/queue/work", "application/octet-stream", body, stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	q := subscribeSync(t, wc, "/queue/work")
	if got := recvBody(t, q); got != string(body) {
		t.Errorf("queue message: got %d bytes, want %d", len(got), len(body))
	}

	protos := map[string]int{}
	for _, si := range s.router.Sessions() {
		protos[si.Protocol]++
	}
	if protos["stomp"] != 2 {
		t.Errorf("sessions: %v, want 2 stomp", protos)
	}
}

// readUntilEOF reads everything the server sends until it closes.
func readUntilEOF(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(tcpWait))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read until close: %v (got %q)", err, b)
	}
	return string(b)
}

// TestTCPBadInput: garbage over TCP gets an ERROR frame, then the server
// closes the connection; before and after CONNECT.
func TestTCPBadInput(t *testing.T) {
	s := startTCPServer(t, dstomp.Config{}, Config{})
	cases := []struct {
		name, input string
	}{
		{"before connect", "HELLO\n\n\x00"},
		{"unknown command after connect", "CONNECT\naccept-version:1.2\nhost:/\n\n\x00BOGUS\n\n\x00"},
		{"send without destination", "CONNECT\naccept-version:1.2\nhost:/\n\n\x00SEND\n\nbody\x00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", s.tcpAddr, tcpWait)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte(tc.input)); err != nil {
				t.Fatal(err)
			}
			got := readUntilEOF(t, c)
			if i := strings.Index(got, "ERROR\n"); i < 0 {
				t.Fatalf("no ERROR frame before close: %q", got)
			}
			if strings.HasPrefix(tc.input, "CONNECT") && !strings.HasPrefix(got, "CONNECTED\n") {
				t.Errorf("want CONNECTED first: %q", got)
			}
		})
	}
	// The server stays up for the next client.
	c := dialStompTCP(t, s.tcpAddr)
	if err := c.Send("/topic/x", "", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
}

// TestTCPBadInputWhileClientKeepsSending: the ERROR reaches a client that
// keeps writing after its bad frame, although the server closes with unread
// input (a reset).
func TestTCPBadInputWhileClientKeepsSending(t *testing.T) {
	s := startTCPServer(t, dstomp.Config{}, Config{})
	c, err := net.DialTimeout("tcp", s.tcpAddr, tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		junk := bytes.Repeat([]byte("junk\n"), 1000)
		_ = c.SetWriteDeadline(time.Now().Add(tcpWait))
		if _, err := c.Write([]byte("HELLO\n\n\x00")); err != nil {
			return
		}
		for range 20 {
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	}()
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(tcpWait))
	line, err := br.ReadString('\n')
	if err != nil || line != "ERROR\n" {
		t.Fatalf("first line %q, %v; want ERROR", line, err)
	}
	<-done
}

// TestTCPShutdown: Shutdown ends TCP sessions (each gets its final frame
// and EOF), waits for their handlers, and makes ServeTCP return. (A
// connection that has not sent CONNECT yet has no session and ends by the
// protocol's ConnectTimeout, on TCP as on WebSocket.)
func TestTCPShutdown(t *testing.T) {
	router := broker.New(broker.Config{}, nil)
	gw := New(Config{}, router, subprotocol.Registry{dstomp.New(dstomp.Config{})})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gw.ServeTCP(ln, dstomp.New(dstomp.Config{})) }()

	// A connected session.
	c, err := net.DialTimeout("tcp", ln.Addr().String(), tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(tcpWait))
	if line, err := br.ReadString('\n'); err != nil || line != "CONNECTED\n" {
		t.Fatalf("got %q, %v; want CONNECTED", line, err)
	}
	waitFor(t, "session", func() bool { return len(router.Sessions()) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), tcpWait)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- gw.Shutdown(ctx) }()

	// The client gets its final frames, then EOF.
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("read to EOF: %v", err)
	}
	c.Close()
	select {
	case err := <-serveErr:
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeTCP = %v, want ErrServerClosed", err)
		}
	case <-time.After(tcpWait):
		t.Fatal("ServeTCP did not return")
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if n := len(router.Sessions()); n != 0 {
		t.Errorf("%d sessions after Shutdown", n)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), tcpWait); err == nil {
		c.Close()
		t.Error("listener still accepts after Shutdown")
	}
	// ServeTCP after Shutdown returns at once and closes its listener.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.ServeTCP(ln2, dstomp.New(dstomp.Config{})); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ServeTCP after Shutdown = %v", err)
	}
	if _, err := ln2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener not closed: %v", err)
	}
}

// TestServeTCPListenerClosed: ServeTCP returns when its listener is closed
// by its owner, with the Accept error.
func TestServeTCPListenerClosed(t *testing.T) {
	gw := New(Config{}, broker.New(broker.Config{}, nil), nil)
	t.Cleanup(func() { _ = gw.Shutdown(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gw.ServeTCP(ln, dstomp.New(dstomp.Config{})) }()
	ln.Close()
	select {
	case err := <-serveErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ServeTCP = %v, want net.ErrClosed", err)
		}
	case <-time.After(tcpWait):
		t.Fatal("ServeTCP did not return")
	}
}

// fakeListener hands out scripted Accept results, then blocks until Close.
type fakeListener struct {
	results chan acceptResult
	done    chan struct{}
	once    sync.Once
	calls   atomic.Int32
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newFakeListener(rs ...acceptResult) *fakeListener {
	l := &fakeListener{results: make(chan acceptResult, len(rs)), done: make(chan struct{})}
	for _, r := range rs {
		l.results <- r
	}
	return l
}

func (l *fakeListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	select {
	case r := <-l.results:
		return r.c, r.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 61613} }

// tempErr is an Accept error like EMFILE or ECONNABORTED.
type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

// TestServeTCPRetriesAcceptError: Accept errors other than a closed
// listener are retried, and the connection accepted afterwards is served.
func TestServeTCPRetriesAcceptError(t *testing.T) {
	gw := New(Config{}, broker.New(broker.Config{}, nil), nil)
	server, client := net.Pipe()
	defer client.Close()
	ln := newFakeListener(
		acceptResult{err: tempErr{}},
		acceptResult{err: errors.New("accept: some other failure")},
		acceptResult{err: tempErr{}},
		acceptResult{c: server},
	)
	serveErr := make(chan error, 1)
	go func() { serveErr <- gw.ServeTCP(ln, dstomp.New(dstomp.Config{})) }()

	_ = client.SetDeadline(time.Now().Add(tcpWait))
	if _, err := client.Write([]byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(client).ReadString('\n'); err != nil || line != "CONNECTED\n" {
		t.Fatalf("got %q, %v; want CONNECTED", line, err)
	}
	if n := ln.calls.Load(); n < 4 {
		t.Errorf("Accept called %d times, want at least 4", n)
	}
	select {
	case err := <-serveErr:
		t.Fatalf("ServeTCP returned early: %v", err)
	default:
	}
	client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tcpWait)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-serveErr:
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeTCP = %v, want ErrServerClosed", err)
		}
	case <-time.After(tcpWait):
		t.Fatal("ServeTCP did not return after Shutdown")
	}
}

// TestTCPIdleClientWithoutHeartbeats: a STOMP client that negotiates no
// heart-beats is kept, like one on WebSocket whose pongs extend its read
// deadline, well past the idle timeout, and still gets messages.
func TestTCPIdleClientWithoutHeartbeats(t *testing.T) {
	const idle = 300 * time.Millisecond
	s := startTCPServer(t, dstomp.Config{IdleTimeout: idle}, Config{PongWait: 2 * time.Second})
	c := dialStompTCP(t, s.tcpAddr, stomp.ConnOpt.HeartBeat(0, 0))
	sub := subscribeSync(t, c, "/topic/rare")
	// Watch for five idle timeouts: the session must stay.
	end := time.Now().Add(5 * idle)
	for time.Now().Before(end) {
		if len(s.router.Sessions()) != 1 {
			t.Fatalf("idle subscriber was dropped")
		}
		select {
		case m := <-sub.C:
			t.Fatalf("subscription ended: %v", m)
		case <-time.After(20 * time.Millisecond):
		}
	}
	w := dialStompWS(t, s.hs)
	if err := w.Send("/topic/rare", "text/plain", []byte("finally"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	if got := recvBody(t, sub); got != "finally" {
		t.Errorf("got %q", got)
	}
}

// TestTCPTransport checks the transport's contract on a real TCP pair.
func TestTCPTransport(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.DialTimeout("tcp", ln.Addr().String(), tcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	setKeepAlive(sc)
	tr := &tcpTransport{c: sc, pongWait: time.Minute}
	var _ subprotocol.Transport = tr
	if tr.Subprotocol() != "" {
		t.Errorf("Subprotocol = %q", tr.Subprotocol())
	}
	if tr.RemoteAddr().String() != peer.LocalAddr().String() {
		t.Errorf("RemoteAddr = %v, want %v", tr.RemoteAddr(), peer.LocalAddr())
	}
	if err := tr.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
	_ = tr.SetReadDeadline(time.Now().Add(tcpWait))
	_ = tr.SetWriteDeadline(time.Now().Add(tcpWait))

	// Two writes on the peer read as one stream; its close ends it.
	go func() {
		_, _ = peer.Write([]byte("abc"))
		_, _ = peer.Write([]byte("def"))
		_ = peer.(*net.TCPConn).CloseWrite()
	}()
	st := &subprotocol.Stream{T: tr}
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "abcdef" {
		t.Errorf("stream read %q, %v", got, err)
	}
	if st.TextFrames != 0 {
		t.Errorf("TextFrames = %d", st.TextFrames)
	}
	if bin, r, err := tr.NextReader(); !bin || r != nil || err != io.EOF {
		t.Errorf("NextReader after the end = %v, %v, %v; want io.EOF", bin, r, err)
	}

	if err := tr.WriteMessage(false, []byte("out")); err != nil {
		t.Fatal(err)
	}
	tr.InterruptWrite(time.Now().Add(tcpWait))
	tr.Close(subprotocol.CloseNormal, "bye")
	tr.Close(subprotocol.CloseGoingAway, "again")
	_ = peer.SetReadDeadline(time.Now().Add(tcpWait))
	got, err = io.ReadAll(peer)
	if err != nil || string(got) != "out" {
		t.Errorf("peer read %q, %v; want out then EOF", got, err)
	}
	if _, err := sc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v, want closed", err)
	}
	tr.Abort()
}

// waitFor polls cond until it holds or tcpWait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, tcpWait, what, cond)
}

// TestShutdownClosesConnectionsBeforeHandshake: a client that connected
// but never sent CONNECT holds no session; Shutdown still ends it at once
// (close 1001) instead of waiting out the connect timeout.
func TestShutdownClosesConnectionsBeforeHandshake(t *testing.T) {
	gw := New(Config{}, broker.New(broker.Config{}, nil), subprotocol.Registry{dstomp.New(dstomp.Config{ConnectTimeout: time.Minute})})
	hs := httptest.NewServer(gw)
	defer hs.Close()
	d := websocket.Dialer{Subprotocols: []string{"v12.stomp"}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v after %v (the connection waited for its connect timeout)", err, time.Since(start))
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("client got %v, want close 1001", err)
	}
}
