// Package security holds end-to-end tests of Duplex's admission control and
// quotas (issue 8) against the real broker binary.
//
// TestMain builds cmd/duplex once (without -race, for speed); every test runs
// it as a child process with a generated TOML config (-config FILE) in its
// own temporary folder, on loopback ports the broker picks (127.0.0.1:0), and
// reads the addresses from the startup lines ("duplex listening on …",
// "duplex mqtt-tcp listening on …", "duplex stomp-tcp listening on …").
//
// Every test asserts a refusal (what the offender got) and that a
// well-behaved neighbour connected at the same time keeps sending and
// receiving without loss (its messages are counted). Offenders that must be
// told apart from the neighbour by source address bind their sockets to
// 127.0.0.2, neighbours to 127.0.0.3: the whole of 127.0.0.0/8 is loopback on
// Linux. Waits are bounded and poll; there are no sleeps for
// synchronization.
//
// Environment:
//
//	DUPLEX_SECURITY_BIN  a broker binary to test instead of building one
//	DUPLEX_SECURITY_LOG  set: print each broker's stderr at the end of each test
package security

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/internal/testutil"
)

// Bounds. Every wait in these tests ends after one of them.
const (
	waitShort = 5 * time.Second  // one connect, one publish, one refusal
	waitLong  = 20 * time.Second // a bulk transfer
	waitStart = 20 * time.Second // the broker starting and listening
	pollEvery = 10 * time.Millisecond
)

// Source addresses: offenders and neighbours are told apart by these.
const (
	offenderIP  = "127.0.0.2"
	neighbourIP = "127.0.0.3"
)

// duplexBin is the broker binary TestMain built.
var duplexBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("security tests skipped in -short mode (they build and run the broker)")
		os.Exit(0)
	}
	// Offenders and neighbours need source addresses of their own: the
	// whole of 127.0.0.0/8 answers on Linux; elsewhere (macOS has only
	// 127.0.0.1 until aliases are added) these tests cannot run.
	for _, ip := range []string{offenderIP, neighbourIP, "127.0.0.4"} {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			fmt.Printf("security tests skipped: cannot use source address %s (%v)\n", ip, err)
			os.Exit(0)
		}
		l.Close()
	}
	os.Exit(func() int {
		if bin := os.Getenv("DUPLEX_SECURITY_BIN"); bin != "" {
			duplexBin = bin
			return m.Run()
		}
		defer testutil.RemoveBinaries()
		bin, err := testutil.Build(testutil.NoRace)
		if err != nil {
			fmt.Fprintln(os.Stderr, "security:", err)
			return 1
		}
		duplexBin = bin
		return m.Run()
	}())
}

// ---------------------------------------------------------------------------
// The broker process

// proc is one run of the broker binary.
type proc struct {
	*testutil.Proc
	t   testing.TB
	dir string

	// Listener addresses from the startup lines.
	HTTP, MQTT, STOMP string
}

// WSURL is the WebSocket URL of path on the HTTP listener.
func (p *proc) WSURL(path string) string { return "ws://" + p.HTTP + path }

// baseConfig is the top of every generated config: loopback listeners on
// ports the broker picks, the data folder, info logs.
func baseConfig(dir string) string {
	return fmt.Sprintf(`addr = "127.0.0.1:0"
stomp_tcp_addr = "127.0.0.1:0"
mqtt_tcp_addr = "127.0.0.1:0"
data = %q
log_level = "info"
`, filepath.Join(dir, "data"))
}

// startBroker writes baseConfig plus config (top-level keys first, then
// [sections]) to duplex.toml in a fresh folder, runs the binary with
// -config and the extra args, and waits for the HTTP, mqtt-tcp and
// stomp-tcp startup lines. The process is stopped when the test ends.
func startBroker(t testing.TB, config string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "duplex.toml")
	if err := os.WriteFile(file, []byte(baseConfig(dir)+config), 0o600); err != nil {
		t.Fatal(err)
	}
	return waitStarted(t, launch(t, dir, append([]string{"-config", file}, args...)...), config)
}

// startBrokerNofile is startBroker under an open-file limit of nofile
// (soft and hard, so Go cannot raise it).
func startBrokerNofile(t testing.TB, nofile int, config string) *proc {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "duplex.toml")
	if err := os.WriteFile(file, []byte(baseConfig(dir)+config), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), duplexBin, "-config", file}
	return waitStarted(t, launchCmd(t, dir, exec.Command("/bin/sh", args...), args), config)
}

// waitStarted waits for the startup lines of p.
func waitStarted(t testing.TB, p *proc, config string) *proc {
	t.Helper()
	if err := p.WaitListening(waitStart, 0, "", "mqtt-tcp", "stomp-tcp"); err != nil {
		t.Fatalf("%v\nconfig:\n%s", err, baseConfig(p.dir)+config)
	}
	p.HTTP, p.MQTT, p.STOMP = p.Addr(""), p.Addr("mqtt-tcp"), p.Addr("stomp-tcp")
	return p
}

// launch starts the binary with args in dir (no DUPLEX_* variables) and
// does not wait for it. When the test ends it is stopped (SIGTERM, then
// SIGKILL), and its stderr logged when the test failed.
func launch(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	return launchCmd(t, dir, exec.Command(duplexBin, args...), args)
}

// launchCmd is launch for a command of its own (a shell setting limits).
func launchCmd(t testing.TB, dir string, cmd *exec.Cmd, args []string) *proc {
	t.Helper()
	tp := testutil.StartConfig(t, testutil.Config{Cmd: cmd, Args: args, Dir: dir, NoWait: true,
		Log: os.Getenv("DUPLEX_SECURITY_LOG") != ""})
	return &proc{Proc: tp, t: t, dir: dir}
}

// passwdFile makes a password file with `duplex passwd -b FILE USER
// PASSWORD` for each user, password pairs.
func passwdFile(t testing.TB, pairs ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "passwd")
	for i := 0; i+1 < len(pairs); i += 2 {
		ctx, cancel := context.WithTimeout(context.Background(), waitStart)
		out, err := exec.CommandContext(ctx, duplexBin, "passwd", "-b", file, pairs[i], pairs[i+1]).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("duplex passwd -b %s %s: %v\n%s", file, pairs[i], err, out)
		}
	}
	return file
}

// apiGet GETs path on the HTTP listener with basic auth (user "" = none)
// and returns the status and body.
func (p *proc) apiGet(t testing.TB, path, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+p.HTTP+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	hc := &http.Client{Timeout: waitShort}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// ---------------------------------------------------------------------------
// Polling

// errStop, returned by a condition, ends a waitFor early.
var errStop = testutil.ErrStop

// waitFor calls f until it returns nil, errStop, or timeout passes; it
// returns f's last error.
func waitFor(timeout time.Duration, f func() error) error { return testutil.Poll(timeout, f) }

// checkFor is waitFor that fails the test.
func checkFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	testutil.EventuallyErr(t, timeout, f)
}

var uniqSeq atomic.Int64

// uniq makes a topic or client id unique within the run.
func uniq(prefix string) string { return fmt.Sprintf("%s%d", prefix, uniqSeq.Add(1)) }

// ---------------------------------------------------------------------------
// Dialing from a chosen source address

// dialer binds to source IP src ("" = any).
func dialer(src string) *net.Dialer {
	d := &net.Dialer{Timeout: waitShort}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// dialTCP opens a TCP connection to addr from src.
func dialTCP(src, addr string) (net.Conn, error) {
	return dialer(src).Dial("tcp", addr)
}

// dialWS upgrades to a WebSocket at url from src, offering subprotocol
// proto, with extra request headers (a "Host" entry sets the Host). It
// returns the response too, for the status of a refusal.
func dialWS(src, url, proto string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{
		Subprotocols:     []string{proto},
		HandshakeTimeout: waitShort,
		NetDialContext:   dialer(src).DialContext,
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	ws, resp, err := d.DialContext(ctx, url, header)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return ws, resp, err
}

// wsConn is a WebSocket as a net.Conn: reads stream across messages; each
// Write is one message, text when text is set and p is valid UTF-8 (STOMP
// as browsers send it), else binary (MQTT). It is a sync.Locker, which
// paho.golang takes around each packet it writes in pieces.
type wsConn struct {
	ws   *websocket.Conn
	text bool

	r   io.Reader // current message; reader goroutine only
	wmu sync.Mutex
	lk  sync.Mutex

	closeCode atomic.Int64 // the peer's close code; -1 closed without one
}

func newWSConn(ws *websocket.Conn, text bool) *wsConn { return &wsConn{ws: ws, text: text} }

func (c *wsConn) Lock()   { c.lk.Lock() }
func (c *wsConn) Unlock() { c.lk.Unlock() }

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					c.closeCode.CompareAndSwap(0, int64(ce.Code))
					return 0, io.EOF
				}
				c.closeCode.CompareAndSwap(0, -1)
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	mt := websocket.BinaryMessage
	if c.text && utf8.Valid(p) {
		mt = websocket.TextMessage
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(waitShort))
	if err := c.ws.WriteMessage(mt, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.ws.SetReadDeadline(t)
	return c.ws.SetWriteDeadline(t)
}

// transport is how a client reaches the broker: "ws" (WebSocket on the
// HTTP listener) or "tcp" (the protocol's own TCP listener).
var transports = []string{"ws", "tcp"}

// openMQTT opens a connection for MQTT over transport from src.
func openMQTT(p *proc, transport, src string) (net.Conn, error) {
	if transport == "tcp" {
		return dialTCP(src, p.MQTT)
	}
	ws, resp, err := dialWS(src, p.WSURL("/mqtt"), "mqtt", nil)
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w%s", p.WSURL("/mqtt"), err, respStatus(resp))
	}
	return newWSConn(ws, false), nil
}

// openSTOMP opens a connection for STOMP over transport from src.
func openSTOMP(p *proc, transport, src string) (net.Conn, error) {
	if transport == "tcp" {
		return dialTCP(src, p.STOMP)
	}
	ws, resp, err := dialWS(src, p.WSURL("/ws"), "v12.stomp", nil)
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w%s", p.WSURL("/ws"), err, respStatus(resp))
	}
	return newWSConn(ws, true), nil
}

func respStatus(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	return " (HTTP " + resp.Status + ")"
}

// ---------------------------------------------------------------------------
// Neighbours: well-behaved clients whose messages are counted

// neighbour is a client that publishes to its own topic and receives its
// own messages back: send is acknowledged (QoS 1 PUBACK, STOMP RECEIPT),
// msgs carries the bodies received.
type neighbour struct {
	name    string
	send    func(body string) error
	msgs    chan string
	sent    int
	got     int
	connect time.Duration // how long the connect took
}

// exchange sends k messages and receives them all, in order.
func (n *neighbour) exchange(k int) error {
	for range k {
		body := fmt.Sprintf("%s-%d", n.name, n.sent)
		if err := n.send(body); err != nil {
			return fmt.Errorf("neighbour %s: send %d: %w", n.name, n.sent, err)
		}
		n.sent++
	}
	for n.got < n.sent {
		select {
		case b := <-n.msgs:
			if want := fmt.Sprintf("%s-%d", n.name, n.got); b != want {
				return fmt.Errorf("neighbour %s: got %q, want %q (lost or reordered)", n.name, b, want)
			}
			n.got++
		case <-time.After(waitShort):
			return fmt.Errorf("neighbour %s: message %d of %d not received within %v", n.name, n.got, n.sent, waitShort)
		}
	}
	return nil
}

// mustExchange is exchange that fails the test.
func (n *neighbour) mustExchange(t testing.TB, k int) {
	t.Helper()
	if err := n.exchange(k); err != nil {
		t.Fatal(err)
	}
}

// during runs exchanges of 5 messages in a loop while f runs, then one more
// exchange; it returns the first error. The neighbour is busy the whole
// time the offender acts.
func (n *neighbour) during(f func()) error {
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			if err := n.exchange(5); err != nil {
				done <- err
				return
			}
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
		}
	}()
	f()
	close(stop)
	if err := <-done; err != nil {
		return err
	}
	return n.exchange(5)
}

// report logs the neighbour's counts and fails the test on a loss.
func (n *neighbour) report(t testing.TB) {
	t.Helper()
	t.Logf("neighbour %s: sent %d, received %d (connect took %v)", n.name, n.sent, n.got, n.connect)
	if n.sent == 0 || n.got != n.sent {
		t.Errorf("neighbour %s: sent %d, received %d", n.name, n.sent, n.got)
	}
}

// quietLogger silences go-stomp.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...interface{})   {}
func (quietLogger) Infof(string, ...interface{})    {}
func (quietLogger) Warningf(string, ...interface{}) {}
func (quietLogger) Errorf(string, ...interface{})   {}
func (quietLogger) Debug(string)                    {}
func (quietLogger) Info(string)                     {}
func (quietLogger) Warning(string)                  {}
func (quietLogger) Error(string)                    {}

// stompConnect performs the STOMP handshake over nc with go-stomp; login ""
// means anonymous. The connection is closed when the test ends.
func stompConnect(t testing.TB, nc net.Conn, login, passcode string) (*stomp.Conn, error) {
	opts := []func(*stomp.Conn) error{
		stomp.ConnOpt.Logger(quietLogger{}),
		stomp.ConnOpt.AcceptVersion(stomp.V12),
		stomp.ConnOpt.DisconnectReceiptTimeout(2 * time.Second),
		stomp.ConnOpt.RcvReceiptTimeout(waitShort),
		stomp.ConnOpt.MsgSendTimeout(waitShort),
		stomp.ConnOpt.HeartBeat(0, 0),
	}
	if login != "" {
		opts = append(opts, stomp.ConnOpt.Login(login, passcode))
	}
	type result struct {
		c   *stomp.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := stomp.Connect(nc, opts...)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			nc.Close()
			return nil, r.err
		}
		t.Cleanup(func() {
			d := make(chan struct{})
			go func() { _ = r.c.Disconnect(); close(d) }()
			select {
			case <-d:
			case <-time.After(3 * time.Second):
			}
			nc.Close()
		})
		return r.c, nil
	case <-time.After(waitShort):
		nc.Close()
		return nil, fmt.Errorf("no CONNECTED within %v", waitShort)
	}
}

// stompNeighbour connects a go-stomp neighbour over transport from src,
// subscribed to its own topic.
func stompNeighbour(t testing.TB, p *proc, transport, src, login, passcode string) *neighbour {
	t.Helper()
	start := time.Now()
	nc, err := openSTOMP(p, transport, src)
	if err != nil {
		t.Fatalf("STOMP neighbour over %s from %s: %v", transport, src, err)
	}
	return stompNeighbourOn(t, nc, start, transport, login, passcode)
}

// stompNeighbourOn is stompNeighbour over a connection already open (since
// start).
func stompNeighbourOn(t testing.TB, nc net.Conn, start time.Time, transport, login, passcode string) *neighbour {
	t.Helper()
	n := &neighbour{name: uniq("stomp-" + transport + "-"), msgs: make(chan string, 1024)}
	c, err := stompConnect(t, nc, login, passcode)
	if err != nil {
		t.Fatalf("neighbour %s: connect: %v", n.name, err)
	}
	n.connect = time.Since(start)
	dest := "/topic/nb/" + n.name
	sub, err := c.Subscribe(dest, stomp.AckAuto)
	if err != nil {
		t.Fatalf("neighbour %s: subscribe: %v", n.name, err)
	}
	go func() {
		for m := range sub.C {
			if m.Err != nil {
				n.msgs <- "error: " + m.Err.Error()
				return
			}
			n.msgs <- string(m.Body)
		}
	}()
	// The SUBSCRIBE is handled before this SEND: frames are handled in order.
	n.send = func(body string) error {
		return c.Send(dest, "text/plain", []byte(body), stomp.SendOpt.Receipt)
	}
	return n
}

// v5 is a paho.golang client on a connection the test opened.
type v5 struct {
	c     *paho.Client
	nc    net.Conn
	msgs  chan *paho.Publish
	disc  chan *paho.Disconnect // the server's DISCONNECT
	errs  chan error            // client errors (the connection failing)
	id    string
	start time.Time

	gotDisc atomic.Int32 // the server's DISCONNECT reason + 1; 0 = none
	failed  atomic.Pointer[error]
}

// trouble describes a DISCONNECT from the server or a failed connection
// ("" if neither happened).
func (c *v5) trouble() string {
	var s []string
	if d := c.gotDisc.Load(); d != 0 {
		s = append(s, fmt.Sprintf("server DISCONNECT %#02x", d-1))
	}
	if e := c.failed.Load(); e != nil {
		s = append(s, fmt.Sprintf("connection failed: %v", *e))
	}
	return strings.Join(s, "; ")
}

// v5Connect opens a paho.golang client over nc with cp; it returns the
// CONNACK and paho's error (a refusal has both). The client is closed when
// the test ends.
func v5Connect(t testing.TB, nc net.Conn, cp *paho.Connect) (*v5, *paho.Connack, error) {
	c := &v5{nc: nc, msgs: make(chan *paho.Publish, 8192), disc: make(chan *paho.Disconnect, 1), errs: make(chan error, 1), id: cp.ClientID}
	c.c = paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case c.msgs <- pr.Packet:
				default:
				}
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			c.gotDisc.CompareAndSwap(0, int32(d.ReasonCode)+1)
			select {
			case c.disc <- d:
			default:
			}
		},
		OnClientError: func(err error) {
			c.failed.CompareAndSwap(nil, &err)
			select {
			case c.errs <- err:
			default:
			}
		},
		PacketTimeout: waitShort,
	})
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 60
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	ca, err := c.c.Connect(ctx, cp)
	t.Cleanup(func() {
		_ = c.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		nc.Close()
	})
	return c, ca, err
}

// mustV5 connects a v5 client over transport from src and fails the test
// unless the CONNACK is a success.
func mustV5(t testing.TB, p *proc, transport, src string, cp *paho.Connect) (*v5, *paho.Connack) {
	t.Helper()
	start := time.Now()
	nc, err := openMQTT(p, transport, src)
	if err != nil {
		t.Fatalf("v5 %s: %v", cp.ClientID, err)
	}
	c, ca, err := v5Connect(t, nc, cp)
	if err != nil {
		t.Fatalf("v5 %s: connect: %v (CONNACK %+v)", cp.ClientID, err, ca)
	}
	c.start = start
	return c, ca
}

// v5Login is a CONNECT for id with user/password ("" user: none).
func v5Login(id, user, pass string, cleanStart bool, expiry uint32) *paho.Connect {
	cp := &paho.Connect{ClientID: id, CleanStart: cleanStart, KeepAlive: 60}
	if user != "" {
		cp.UsernameFlag, cp.Username = true, user
		cp.PasswordFlag, cp.Password = true, []byte(pass)
	}
	if expiry > 0 {
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	}
	return cp
}

// sub subscribes to filter at qos and checks the grant.
func (c *v5) sub(t testing.TB, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	sa, err := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil {
		t.Fatalf("%s: subscribe %s: %v", c.id, filter, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] != qos {
		t.Fatalf("%s: SUBACK %v for %s, want QoS %d", c.id, sa.Reasons, filter, qos)
	}
}

// publish publishes and returns the reason code (0 for QoS 0) and paho's
// error.
func (c *v5) publish(topic string, qos byte, retain bool, payload []byte) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	r, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: payload})
	if r != nil {
		return r.ReasonCode, err
	}
	return 0, err
}

// mustPub publishes and fails the test on an error or a failure code.
func (c *v5) mustPub(t testing.TB, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	rc, err := c.publish(topic, qos, retain, []byte(payload))
	if err != nil || rc >= 0x80 {
		t.Fatalf("%s: publish %s (retain %v): reason %#02x, %v", c.id, topic, retain, rc, err)
	}
}

// next returns the next PUBLISH within timeout.
func (c *v5) next(t testing.TB) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitShort):
		t.Fatalf("%s: no PUBLISH within %v", c.id, waitShort)
	}
	return nil
}

// v5Neighbour connects a paho.golang neighbour over transport from src,
// subscribed at QoS 1 to its own topic.
func v5Neighbour(t testing.TB, p *proc, transport, src, user, pass string) *neighbour {
	t.Helper()
	n := &neighbour{name: uniq("v5-" + transport + "-"), msgs: make(chan string, 1024)}
	c, _ := mustV5(t, p, transport, src, v5Login(n.name, user, pass, true, 0))
	n.connect = time.Since(c.start)
	topic := "nb/" + n.name
	c.sub(t, topic, 1)
	go func() {
		for m := range c.msgs {
			n.msgs <- string(m.Payload)
		}
	}()
	n.send = func(body string) error {
		rc, err := c.publish(topic, 1, false, []byte(body))
		if err == nil && rc >= 0x80 {
			err = fmt.Errorf("PUBACK reason %#02x", rc)
		}
		return err
	}
	return n
}

// v3 is a paho.mqtt.golang (3.1.1) client.
type v3 struct {
	c    pahomqtt.Client
	id   string
	msgs chan pahomqtt.Message
}

// v3Connect connects a paho.mqtt.golang client with clean session clean
// over transport from src; it returns the connect token (its ReturnCode is
// the CONNACK's) whatever the outcome.
func v3Connect(t testing.TB, p *proc, transport, src, id, user, pass string, clean bool) (*v3, *pahomqtt.ConnectToken) {
	t.Helper()
	c := &v3{id: id, msgs: make(chan pahomqtt.Message, 4096)}
	scheme := "tcp://" + p.MQTT
	if transport == "ws" {
		scheme = p.WSURL("/mqtt")
	}
	o := pahomqtt.NewClientOptions().
		AddBroker(scheme).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitShort).
		SetWriteTimeout(waitShort).
		SetKeepAlive(60 * time.Second).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ pahomqtt.Client, m pahomqtt.Message) {
			select {
			case c.msgs <- m:
			default:
			}
		}).
		SetCustomOpenConnectionFn(func(u *url.URL, _ pahomqtt.ClientOptions) (net.Conn, error) {
			return openMQTT(p, transport, src)
		})
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	c.c = pahomqtt.NewClient(o)
	tok := c.c.Connect()
	if !tok.WaitTimeout(waitShort) {
		t.Fatalf("paho.mqtt.golang %s: no CONNACK within %v", id, waitShort)
	}
	t.Cleanup(func() {
		if c.c.IsConnectionOpen() {
			c.c.Disconnect(100)
		}
	})
	return c, tok.(*pahomqtt.ConnectToken)
}

// mustV3 is v3Connect that fails the test unless the connect succeeded.
func mustV3(t testing.TB, p *proc, transport, src, id, user, pass string, clean bool) (*v3, *pahomqtt.ConnectToken) {
	t.Helper()
	c, tok := v3Connect(t, p, transport, src, id, user, pass, clean)
	if err := tok.Error(); err != nil {
		t.Fatalf("paho.mqtt.golang %s: connect: %v (return code %d)", id, err, tok.ReturnCode())
	}
	return c, tok
}

func v3wait(tok pahomqtt.Token) error {
	if !tok.WaitTimeout(waitShort) {
		return fmt.Errorf("not done within %v", waitShort)
	}
	return tok.Error()
}

// sub subscribes to filter at qos and checks the grant.
func (c *v3) sub(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := c.c.Subscribe(filter, qos, nil)
	if err := v3wait(tok); err != nil {
		t.Fatalf("%s: subscribe %s: %v", c.id, filter, err)
	}
	if got := tok.(*pahomqtt.SubscribeToken).Result()[filter]; got != qos {
		t.Fatalf("%s: SUBACK %#02x for %s, want %d", c.id, got, filter, qos)
	}
}

// pub publishes and waits for the flow to end.
func (c *v3) pub(t testing.TB, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	if err := v3wait(c.c.Publish(topic, qos, retain, payload)); err != nil {
		t.Fatalf("%s: publish %s: %v", c.id, topic, err)
	}
}

// next returns the next message within waitShort.
func (c *v3) next(t testing.TB) pahomqtt.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitShort):
		t.Fatalf("%s: no message within %v", c.id, waitShort)
	}
	return nil
}

// v3Neighbour connects a paho.mqtt.golang neighbour over transport from
// src, subscribed at QoS 1 to its own topic.
func v3Neighbour(t testing.TB, p *proc, transport, src, user, pass string) *neighbour {
	t.Helper()
	n := &neighbour{name: uniq("v3-" + transport + "-"), msgs: make(chan string, 1024)}
	start := time.Now()
	c, _ := mustV3(t, p, transport, src, n.name, user, pass, true)
	n.connect = time.Since(start)
	topic := "nb/" + n.name
	c.sub(t, topic, 1)
	go func() {
		for m := range c.msgs {
			n.msgs <- string(m.Payload())
		}
	}()
	n.send = func(body string) error { return v3wait(c.c.Publish(topic, 1, false, body)) }
	return n
}

// ---------------------------------------------------------------------------
// Raw MQTT packets, for what the clients will not send

// rawMQTT reads and writes MQTT packets by hand over a net.Conn.
type rawMQTT struct {
	nc net.Conn
	r  *bufio.Reader
}

func newRawMQTT(nc net.Conn) *rawMQTT { return &rawMQTT{nc: nc, r: bufio.NewReader(nc)} }

// pkt is one packet as read: first byte and body.
type pkt struct {
	b0   byte
	body []byte
}

func (p pkt) typ() byte { return p.b0 >> 4 }

func (p pkt) String() string {
	if len(p.body) > 16 {
		return fmt.Sprintf("%02x [% x …] (%d bytes)", p.b0, p.body[:16], len(p.body))
	}
	return fmt.Sprintf("%02x [% x]", p.b0, p.body)
}

func (r *rawMQTT) write(p []byte) error {
	_ = r.nc.SetWriteDeadline(time.Now().Add(waitShort))
	_, err := r.nc.Write(p)
	return err
}

// read reads one packet within timeout.
func (r *rawMQTT) read(timeout time.Duration) (pkt, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(timeout))
	defer r.nc.SetReadDeadline(time.Time{})
	b0, err := r.r.ReadByte()
	if err != nil {
		return pkt{}, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := r.r.ReadByte()
		if err != nil {
			return pkt{}, err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return pkt{}, errors.New("remaining length over 4 bytes")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return pkt{}, err
	}
	return pkt{b0, body}, nil
}

// untilClosed reads packets until the server closes the connection; a
// timeout is an error (the server did not close).
func (r *rawMQTT) untilClosed(timeout time.Duration) ([]pkt, error) {
	deadline := time.Now().Add(timeout)
	var pkts []pkt
	for {
		p, err := r.read(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return pkts, fmt.Errorf("connection still open after %v (read %v)", timeout, pkts)
			}
			return pkts, nil
		}
		pkts = append(pkts, p)
	}
}

func appendVarInt(b []byte, n int) []byte {
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

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// packet assembles a fixed header and body.
func packet(b0 byte, body []byte) []byte {
	return append(appendVarInt([]byte{b0}, len(body)), body...)
}

// connectSpec describes a CONNECT packet.
type connectSpec struct {
	level       byte // 4 (3.1.1) or 5
	id          string
	clean       bool
	user, pass  string
	props       []byte // v5 properties, encoded
	willTopic   string
	willPayload []byte
}

// connectPacket encodes s; keep alive 60.
func connectPacket(s connectSpec) []byte {
	b := appendStr(nil, "MQTT")
	flags := byte(0)
	if s.clean {
		flags |= 0x02
	}
	if s.willTopic != "" {
		flags |= 0x04
	}
	if s.user != "" {
		flags |= 0x80 | 0x40
	}
	b = append(b, s.level, flags, 0, 60)
	if s.level == 5 {
		b = append(appendVarInt(b, len(s.props)), s.props...)
	}
	b = appendStr(b, s.id)
	if s.willTopic != "" {
		if s.level == 5 {
			b = append(b, 0) // will properties
		}
		b = appendStr(b, s.willTopic)
		b = binary.BigEndian.AppendUint16(b, uint16(len(s.willPayload)))
		b = append(b, s.willPayload...)
	}
	if s.user != "" {
		b = appendStr(b, s.user)
		b = appendStr(b, s.pass)
	}
	return packet(0x10, b)
}

// userProperty encodes one v5 user property.
func userProperty(k, v string) []byte { return appendStr(appendStr([]byte{0x26}, k), v) }

// publishPacket is a QoS 0 PUBLISH (no properties on v5).
func publishPacket(level byte, topic string, payload []byte) []byte {
	b := appendStr(nil, topic)
	if level == 5 {
		b = append(b, 0)
	}
	return packet(0x30, append(b, payload...))
}

// connackCode is a CONNACK's return/reason code.
func connackCode(p pkt) (byte, error) {
	if p.typ() != 2 || len(p.body) < 2 {
		return 0, fmt.Errorf("not a CONNACK: %v", p)
	}
	return p.body[1], nil
}

// ---------------------------------------------------------------------------
// Raw STOMP frames

// rawSTOMP writes STOMP frames by hand and reads them with go-stomp's
// frame reader.
type rawSTOMP struct {
	nc net.Conn
	rd *frame.Reader
}

func newRawSTOMP(nc net.Conn) *rawSTOMP { return &rawSTOMP{nc: nc, rd: frame.NewReader(nc)} }

// encodeFrame builds a frame: headers are key, value pairs written as is.
func encodeFrame(cmd string, body []byte, headers ...string) []byte {
	var b bytes.Buffer
	b.WriteString(cmd + "\n")
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i] + ":" + headers[i+1] + "\n")
	}
	b.WriteByte('\n')
	b.Write(body)
	b.WriteByte(0)
	return b.Bytes()
}

func (r *rawSTOMP) send(cmd string, body []byte, headers ...string) error {
	_ = r.nc.SetWriteDeadline(time.Now().Add(waitShort))
	_, err := r.nc.Write(encodeFrame(cmd, body, headers...))
	return err
}

// next reads the next frame (heart-beats skipped) within timeout.
func (r *rawSTOMP) next(timeout time.Duration) (*frame.Frame, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(timeout))
	defer r.nc.SetReadDeadline(time.Time{})
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

// untilClosed reads frames until the server closes the connection; a
// timeout is an error.
func (r *rawSTOMP) untilClosed(timeout time.Duration) ([]*frame.Frame, error) {
	deadline := time.Now().Add(timeout)
	var fs []*frame.Frame
	for {
		f, err := r.next(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fs, fmt.Errorf("connection still open after %v (read %d frames)", timeout, len(fs))
			}
			return fs, nil
		}
		fs = append(fs, f)
	}
}

func frameString(f *frame.Frame) string {
	var b strings.Builder
	b.WriteString(f.Command + " {")
	for i := range f.Header.Len() {
		k, v := f.Header.GetAt(i)
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s:%q", k, v)
	}
	b.WriteString("}")
	if len(f.Body) > 0 {
		fmt.Fprintf(&b, " %q", truncate(string(f.Body), 120))
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// offlineSubscriber leaves a persistent v5 session (expiry 300 s) for id,
// subscribed to filter at QoS 1, from src, and returns once the server has
// closed the connection after DISCONNECT: from then on everything for it
// is kept offline.
func offlineSubscriber(t testing.TB, p *proc, src, id, filter string) {
	t.Helper()
	nc, err := openMQTT(p, "tcp", src)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := newRawMQTT(nc)
	props := []byte{0x11, 0, 0, 0x01, 0x2c} // Session Expiry Interval 300
	if err := r.write(connectPacket(connectSpec{level: 5, id: id, clean: true, props: props})); err != nil {
		t.Fatal(err)
	}
	if ca, err := r.read(waitShort); err != nil || ca.typ() != 2 || ca.body[1] != 0 {
		t.Fatalf("offline subscriber %s: CONNACK %v %v", id, ca, err)
	}
	if err := r.write(packet(0x82, append(appendStr([]byte{0, 1, 0}, filter), 1))); err != nil {
		t.Fatal(err)
	}
	if sa, err := r.read(waitShort); err != nil || sa.typ() != 9 || len(sa.body) != 4 || sa.body[3] != 1 {
		t.Fatalf("offline subscriber %s: SUBACK %v %v", id, sa, err)
	}
	if err := r.write([]byte{0xE0, 0x00}); err != nil {
		t.Fatal(err)
	}
	if pkts, err := r.untilClosed(waitShort); err != nil || len(pkts) != 0 {
		t.Fatalf("offline subscriber %s: after DISCONNECT %v %v", id, pkts, err)
	}
}

// sessionField returns field of client id's entry in /api/sessions (asked
// with basic auth user/pass, "" = none), and whether the entry is there.
// It walks the JSON whatever its shape: the first object whose ID is id.
func (p *proc) sessionField(t testing.TB, id, field, user, pass string) (any, bool) {
	t.Helper()
	code, body := p.apiGet(t, "/api/sessions?q="+url.QueryEscape(id), user, pass)
	if code != 200 {
		t.Fatalf("/api/sessions: HTTP %d: %s", code, truncate(body, 300))
	}
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("/api/sessions: %v: %s", err, truncate(body, 300))
	}
	var find func(v any) (map[string]any, bool)
	find = func(v any) (map[string]any, bool) {
		switch x := v.(type) {
		case map[string]any:
			if x["ID"] == id {
				return x, true
			}
			for _, e := range x {
				if m, ok := find(e); ok {
					return m, true
				}
			}
		case []any:
			for _, e := range x {
				if m, ok := find(e); ok {
					return m, true
				}
			}
		}
		return nil, false
	}
	m, ok := find(v)
	if !ok {
		return nil, false
	}
	return m[field], true
}

// logLines counts the broker's log lines containing every one of subs.
func (p *proc) logLines(subs ...string) int {
	n := 0
	for _, l := range strings.Split(p.Stderr(), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}

// checkLogged fails the test unless refusals were logged, but rate-limited:
// between 1 and max lines containing subs for the refusals counted.
func (p *proc) checkLogged(t testing.TB, refusals, max int, subs ...string) {
	t.Helper()
	n := p.logLines(subs...)
	t.Logf("%d refusals, %d log lines with %q", refusals, n, subs)
	if n == 0 || n > max {
		t.Errorf("%d refusals logged in %d lines with %q; want between 1 and %d (a rate-limited line)", refusals, n, subs, max)
	}
}

// refusedCount is the sum of the admission refusal counters in /api/stats
// (zero config: no credentials needed), and the counters themselves.
func (p *proc) refusedCount(t testing.TB) (uint64, map[string]any) {
	t.Helper()
	code, body := p.apiGet(t, "/api/stats", "", "")
	if code != 200 {
		t.Fatalf("/api/stats: HTTP %d", code)
	}
	var st struct{ Admission map[string]any }
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/stats: %v", err)
	}
	var sum uint64
	for _, k := range []string{"RefusedTotal", "RefusedPerIP", "RefusedRate", "RefusedSockets"} {
		if v, ok := st.Admission[k].(float64); ok {
			sum += uint64(v)
		}
	}
	return sum, st.Admission
}

// checkCounted fails the test unless the admission counters in /api/stats
// add up to the refusals the test saw.
func (p *proc) checkCounted(t testing.TB, refusals int) {
	t.Helper()
	sum, adm := p.refusedCount(t)
	if sum != uint64(refusals) {
		t.Errorf("admission counters %v add up to %d refusals, the clients saw %d", adm, sum, refusals)
	}
}
