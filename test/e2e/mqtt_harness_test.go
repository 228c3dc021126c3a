package e2e

// MQTT harness: an in-process broker speaking STOMP and MQTT over
// WebSocket (httptest) and MQTT over plain TCP (ServeTCP on 127.0.0.1:0),
// wrappers for the two Eclipse Paho Go clients (paho.golang's autopaho for
// MQTT 5, paho.mqtt.golang for 3.1.1) and a raw packet client for bad input.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/mqtt"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
	"github.com/duplexmq/duplex/web"
)

// ---------------------------------------------------------------------------
// Server

// mqttServerConfig is what a test may change before the MQTT server starts.
type mqttServerConfig struct {
	Broker broker.Config
	Stomp  dstomp.Config
	MQTT   mqtt.Config
	Web    web.Config
}

// mqttServer is one in-process broker: STOMP and MQTT over WebSocket, MQTT
// over TCP. The embedded *testServer lets the STOMP helpers (connect,
// dialWS) work against it.
type mqttServer struct {
	*testServer
	WSURL   string // ws://127.0.0.1:PORT/mqtt
	TCPAddr string // 127.0.0.1:PORT of the MQTT TCP listener
}

// startMQTTServer runs web.New(web, broker.New(broker), {stomp, mqtt})
// under httptest and gateway.ServeTCP(ln, mqtt) on a loopback listener.
// Everything is shut down (bounded) when the test ends.
func startMQTTServer(t testing.TB, configure ...func(*mqttServerConfig)) *mqttServer {
	t.Helper()
	var cfg mqttServerConfig
	for _, f := range configure {
		f(&cfg)
	}
	log := testLogger()
	cfg.Stomp.Log = log
	cfg.MQTT.Log = log
	cfg.Web.Log = log
	router := broker.New(cfg.Broker, log)
	mp := mqtt.New(cfg.MQTT)
	gw := web.New(cfg.Web, router, subprotocol.Registry{dstomp.New(cfg.Stomp), mp})
	hs := httptest.NewServer(gw)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hs.Close()
		t.Fatalf("listen: %v", err)
	}
	tcpDone := make(chan error, 1)
	go func() { tcpDone <- gw.ServeTCP(ln, mp) }()
	base := "ws" + strings.TrimPrefix(hs.URL, "http")
	s := &mqttServer{
		testServer: &testServer{
			URL:     base + "/ws",
			HTTPURL: hs.URL,
			Router:  router,
			Gateway: gw,
			HTTP:    hs,
		},
		WSURL:   base + "/mqtt",
		TCPAddr: ln.Addr().String(),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitShort)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
		select {
		case err := <-tcpDone:
			if !errors.Is(err, web.ErrServerClosed) {
				t.Errorf("ServeTCP returned %v, want ErrServerClosed", err)
			}
		case <-time.After(waitShort):
			t.Errorf("ServeTCP did not return after Shutdown")
		}
		hs.Close()
	})
	return s
}

// sessionOpen reports whether the router lists a session for client id.
func (s *mqttServer) sessionOpen(id string) bool {
	for _, si := range s.Router.Sessions() {
		if si.ID == id {
			return true
		}
	}
	return false
}

// waitSessionGone waits until the router no longer lists client id: its
// connection has ended. Only for sessions that are not persistent: the
// router keeps a persistent session listed while it is offline. (Resuming
// one needs no wait: Router.Open lets the old connection detach first.)
func (s *mqttServer) waitSessionGone(t testing.TB, id string) {
	t.Helper()
	checkFor(t, waitShort, func() error {
		if s.sessionOpen(id) {
			return fmt.Errorf("session %q still open", id)
		}
		return nil
	})
}

// uniq makes a topic or client id unique to the test.
var uniqSeq atomic.Int64

func uniq(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, uniqSeq.Add(1))
}

// ---------------------------------------------------------------------------
// paho.golang autopaho (MQTT 5)

// v5Client is an autopaho connection manager that does not reconnect, with
// every received PUBLISH on msgs.
type v5Client struct {
	t       testing.TB
	id      string
	cm      *autopaho.ConnectionManager
	connack *paho.Connack
	msgs    chan *paho.Publish
	// serverDisc receives the server's DISCONNECT, if any.
	serverDisc chan *paho.Disconnect
	// down is closed when the connection has gone down.
	down     chan struct{}
	overflow atomic.Int64 // messages dropped because msgs was full
	// Topic aliases the server sent (MQTT 5 §3.3.2.3.4), resolved in next
	// because paho.golang v0.23 does not resolve inbound aliases itself.
	aliases     map[uint16]string
	aliasedOnly int // PUBLISHes that arrived as an alias with an empty topic
}

// v5Options tune newV5.
type v5Options struct {
	url string // default the server's ws:// /mqtt URL
	cfg func(*autopaho.ClientConfig)
}

func v5URL(u string) func(*v5Options) { return func(o *v5Options) { o.url = u } }
func v5Cfg(f func(*autopaho.ClientConfig)) func(*v5Options) {
	return func(o *v5Options) { o.cfg = f }
}

// newV5 connects an autopaho client with client id id (clean start, no
// session expiry unless cfg changes it) and waits for CONNACK.
func newV5(t testing.TB, s *mqttServer, id string, opts ...func(*v5Options)) *v5Client {
	t.Helper()
	o := v5Options{url: s.WSURL}
	for _, f := range opts {
		f(&o)
	}
	u, err := url.Parse(o.url)
	if err != nil {
		t.Fatalf("url %q: %v", o.url, err)
	}
	c := &v5Client{
		t:          t,
		id:         id,
		msgs:       make(chan *paho.Publish, 8192),
		serverDisc: make(chan *paho.Disconnect, 1),
		down:       make(chan struct{}),
	}
	up := make(chan *paho.Connack, 1)
	var downOnce sync.Once
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                waitShort,
		ReconnectBackoff:              autopaho.NewConstantBackoff(time.Second),
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ca *paho.Connack) {
			select {
			case up <- ca:
			default:
			}
		},
		// Never reconnect: every test controls its connections.
		OnConnectionDown: func() bool {
			downOnce.Do(func() { close(c.down) })
			return false
		},
		ClientConfig: paho.ClientConfig{
			ClientID: id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					select {
					case c.msgs <- pr.Packet:
					default:
						c.overflow.Add(1)
					}
					return true, nil
				},
			},
			OnServerDisconnect: func(d *paho.Disconnect) {
				select {
				case c.serverDisc <- d:
				default:
				}
			},
			PacketTimeout: waitShort,
		},
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("autopaho %s: %v", id, err)
	}
	c.cm = cm
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer dcancel()
		_ = cm.Disconnect(dctx)
		cancel()
	})
	select {
	case c.connack = <-up:
	case <-time.After(waitShort):
		cancel()
		t.Fatalf("autopaho %s: no CONNACK within %v", id, waitShort)
	}
	return c
}

// sub subscribes to one filter at qos (more options through so) and checks
// the SUBACK grants it.
func (c *v5Client) sub(t testing.TB, filter string, qos byte) {
	t.Helper()
	c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
}

// subscribe sends s and checks every reason code is a granted QoS.
func (c *v5Client) subscribe(t testing.TB, s *paho.Subscribe) *paho.Suback {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	sa, err := c.cm.Subscribe(ctx, s)
	if err != nil {
		t.Fatalf("%s: subscribe %v: %v", c.id, s.Subscriptions, err)
	}
	if len(sa.Reasons) != len(s.Subscriptions) {
		t.Fatalf("%s: SUBACK has %d reason codes for %d filters", c.id, len(sa.Reasons), len(s.Subscriptions))
	}
	for i, rc := range sa.Reasons {
		if rc != s.Subscriptions[i].QoS {
			t.Fatalf("%s: SUBACK reason %#02x for %q, want granted QoS %d", c.id, rc, s.Subscriptions[i].Topic, s.Subscriptions[i].QoS)
		}
	}
	return sa
}

// pub publishes p and fails the test on error (QoS 1/2: a failed ack).
func (c *v5Client) pub(t testing.TB, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	r, err := c.cm.Publish(ctx, p)
	if err != nil {
		t.Fatalf("%s: publish %s QoS %d: %v", c.id, p.Topic, p.QoS, err)
	}
	if r != nil && r.ReasonCode >= 0x80 {
		t.Fatalf("%s: publish %s: reason %#02x", c.id, p.Topic, r.ReasonCode)
	}
	return r
}

// pubs publishes a plain message.
func (c *v5Client) pubs(t testing.TB, topic string, qos byte, payload string) {
	t.Helper()
	c.pub(t, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
}

// next returns the next received PUBLISH within timeout.
func (c *v5Client) next(t testing.TB, timeout time.Duration) *paho.Publish {
	t.Helper()
	select {
	case p := <-c.msgs:
		if p.Properties != nil && p.Properties.TopicAlias != nil {
			a := *p.Properties.TopicAlias
			if p.Topic != "" {
				if c.aliases == nil {
					c.aliases = make(map[uint16]string)
				}
				c.aliases[a] = p.Topic
			} else if topic, ok := c.aliases[a]; ok {
				p.Topic = topic
				c.aliasedOnly++
			} else {
				t.Fatalf("%s: PUBLISH with unknown topic alias %d and no topic", c.id, a)
			}
		}
		return p
	case <-time.After(timeout):
		t.Fatalf("%s: no PUBLISH within %v (dropped %d)", c.id, timeout, c.overflow.Load())
	}
	return nil
}

// expect receives the next PUBLISH and checks its topic and payload.
func (c *v5Client) expect(t testing.TB, topic, payload string) *paho.Publish {
	t.Helper()
	p := c.next(t, waitShort)
	if p.Topic != topic || string(p.Payload) != payload {
		t.Fatalf("%s: got PUBLISH %q %q, want %q %q", c.id, p.Topic, trunc(p.Payload), topic, payload)
	}
	return p
}

// expectOnlyMarker proves the absence of messages: pubber publishes a fresh
// marker to topic (QoS 1, so it is routed once Publish returns) and the
// next message c receives must be that marker. Because one subscription's
// deliveries are in order, anything routed to c before the marker would
// arrive first.
func (c *v5Client) expectOnlyMarker(t testing.TB, pubber *v5Client, topic string) string {
	t.Helper()
	marker := uniq("marker-")
	pubber.pubs(t, topic, 1, marker)
	p := c.next(t, waitShort)
	if p.Topic != topic || string(p.Payload) != marker {
		t.Fatalf("%s: got PUBLISH %q %q (retain %v), want only the marker %q on %q", c.id, p.Topic, trunc(p.Payload), p.Retain, marker, topic)
	}
	return marker
}

// terminate closes the network connection without DISCONNECT (a crashed
// client) and waits for the client to notice.
func (c *v5Client) terminate(t testing.TB) {
	t.Helper()
	c.cm.TerminateConnectionForTest()
	select {
	case <-c.down:
	case <-time.After(waitShort):
		t.Fatalf("%s: connection not down within %v", c.id, waitShort)
	}
}

// disconnect sends DISCONNECT (reason 0) and waits for the manager to stop.
func (c *v5Client) disconnect(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	if err := c.cm.Disconnect(ctx); err != nil {
		t.Fatalf("%s: disconnect: %v", c.id, err)
	}
}

func trunc(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", b[:64], len(b))
	}
	return string(b)
}

func userProps(u paho.UserProperties) string {
	var b strings.Builder
	for i, p := range u {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%s", p.Key, p.Value)
	}
	return "[" + b.String() + "]"
}

// ---------------------------------------------------------------------------
// paho.mqtt.golang (MQTT 3.1.1)

// v3Msg is one message a paho.mqtt.golang client received.
type v3Msg struct {
	topic    string
	payload  []byte
	qos      byte
	retained bool
	dup      bool
}

// v3Client is a paho.mqtt.golang client that does not reconnect. Every
// message (through subscriptions or the default handler) lands on msgs.
type v3Client struct {
	id   string
	c    pahomqtt.Client
	msgs chan v3Msg
	lost chan error // ConnectionLostHandler

	connMu sync.Mutex
	conn   *crashConn // the network connection, to break it
}

// errSimulatedCrash is what a broken crashConn reports. paho.mqtt.golang
// ignores "use of closed network connection" read errors (it assumes it
// closed the connection itself), so a plain Close would never reach its
// connection-lost handler.
var errSimulatedCrash = errors.New("e2e: simulated network failure")

// crashConn is a net.Conn that can fail like a dropped network.
type crashConn struct {
	net.Conn
	broken atomic.Bool
}

func (c *crashConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.broken.Load() {
		err = errSimulatedCrash
	}
	return n, err
}

func (c *crashConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && c.broken.Load() {
		err = errSimulatedCrash
	}
	return n, err
}

// crash closes the connection without DISCONNECT or close frame.
func (c *crashConn) crash() {
	c.broken.Store(true)
	_ = c.Conn.Close()
}

// v3Transport says how a paho.mqtt.golang client reaches the server.
type v3Transport struct {
	name string
	url  func(s *mqttServer) string
}

var v3Transports = []v3Transport{
	{"ws", func(s *mqttServer) string { return s.WSURL }},
	{"tcp", func(s *mqttServer) string { return "tcp://" + s.TCPAddr }},
}

// newV3 connects a paho.mqtt.golang 3.1.1 client with clean session clean.
// configure may change the options (a will, say) before connecting.
func newV3(t testing.TB, s *mqttServer, tr v3Transport, id string, clean bool, configure ...func(*pahomqtt.ClientOptions)) *v3Client {
	t.Helper()
	c := &v3Client{id: id, msgs: make(chan v3Msg, 4096), lost: make(chan error, 1)}
	handler := func(_ pahomqtt.Client, m pahomqtt.Message) {
		select {
		case c.msgs <- v3Msg{m.Topic(), m.Payload(), m.Qos(), m.Retained(), m.Duplicate()}:
		default:
		}
	}
	o := pahomqtt.NewClientOptions().
		AddBroker(tr.url(s)).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitShort).
		SetWriteTimeout(waitShort).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).
		SetDefaultPublishHandler(handler).
		SetConnectionLostHandler(func(_ pahomqtt.Client, err error) {
			select {
			case c.lost <- err:
			default:
			}
		}).
		// Open the connection ourselves, to be able to break it.
		SetCustomOpenConnectionFn(func(u *url.URL, _ pahomqtt.ClientOptions) (net.Conn, error) {
			var nc net.Conn
			var err error
			switch u.Scheme {
			case "ws":
				nc, err = pahomqtt.NewWebsocket(u.String(), nil, waitShort, nil, nil)
			default:
				nc, err = net.DialTimeout("tcp", u.Host, waitShort)
			}
			if err != nil {
				return nil, err
			}
			cc := &crashConn{Conn: nc}
			c.connMu.Lock()
			c.conn = cc
			c.connMu.Unlock()
			return cc, nil
		})
	for _, f := range configure {
		f(o)
	}
	c.c = pahomqtt.NewClient(o)
	tok := c.c.Connect()
	if !tok.WaitTimeout(waitShort) {
		t.Fatalf("paho.mqtt.golang %s: no CONNACK within %v", id, waitShort)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho.mqtt.golang %s: connect: %v", id, err)
	}
	t.Cleanup(func() {
		if c.c.IsConnectionOpen() {
			c.c.Disconnect(100)
		}
		c.breakConn()
	})
	return c
}

// wait waits for a token, failing the test on timeout or error.
func v3wait(t testing.TB, what string, tok pahomqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitShort) {
		t.Fatalf("%s: not done within %v", what, waitShort)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sub subscribes to filter at qos; messages go to msgs.
func (c *v3Client) sub(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := c.c.Subscribe(filter, qos, nil) // nil: the default handler
	v3wait(t, c.id+": subscribe "+filter, tok)
	st := tok.(*pahomqtt.SubscribeToken)
	if got := st.Result()[filter]; got != qos {
		t.Fatalf("%s: SUBACK granted %#02x for %q, want %d", c.id, got, filter, qos)
	}
}

// pub publishes and waits for the flow to complete (PUBACK / PUBCOMP).
func (c *v3Client) pub(t testing.TB, topic string, qos byte, retained bool, payload []byte) {
	t.Helper()
	v3wait(t, fmt.Sprintf("%s: publish %s QoS %d", c.id, topic, qos), c.c.Publish(topic, qos, retained, payload))
}

func (c *v3Client) next(t testing.TB) v3Msg {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitShort):
		t.Fatalf("%s: no message within %v", c.id, waitShort)
	}
	return v3Msg{}
}

func (c *v3Client) expect(t testing.TB, topic, payload string) v3Msg {
	t.Helper()
	m := c.next(t)
	if m.topic != topic || string(m.payload) != payload {
		t.Fatalf("%s: got %q %q, want %q %q", c.id, m.topic, trunc(m.payload), topic, payload)
	}
	return m
}

// expectOnlyMarker: as v5Client.expectOnlyMarker.
func (c *v3Client) expectOnlyMarker(t testing.TB, pubber *v3Client, topic string) string {
	t.Helper()
	marker := uniq("marker-")
	pubber.pub(t, topic, 1, false, []byte(marker))
	m := c.next(t)
	if m.topic != topic || string(m.payload) != marker {
		t.Fatalf("%s: got %q %q (retained %v), want only the marker %q on %q", c.id, m.topic, trunc(m.payload), m.retained, marker, topic)
	}
	return marker
}

// breakConn closes the network connection without DISCONNECT.
func (c *v3Client) breakConn() {
	c.connMu.Lock()
	nc := c.conn
	c.connMu.Unlock()
	if nc != nil {
		nc.crash()
	}
}

// expectLost waits for the connection-lost handler.
func (c *v3Client) expectLost(t testing.TB) error {
	t.Helper()
	select {
	case err := <-c.lost:
		return err
	case <-time.After(waitShort):
		t.Fatalf("%s: connection not lost within %v", c.id, waitShort)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Raw MQTT packets

// rawMQTT speaks MQTT packets by hand over a WebSocket (binary messages,
// subprotocol mqtt) or a TCP connection. Reads are bounded by a deadline.
type rawMQTT struct {
	t     testing.TB
	ws    *wsConn  // WebSocket transport, or nil
	tcp   net.Conn // TCP transport, or nil
	r     *bufio.Reader
	label string
}

// dialRawMQTT opens a raw connection over transport "ws" or "tcp".
func dialRawMQTT(t testing.TB, s *mqttServer, transport string) *rawMQTT {
	t.Helper()
	r := &rawMQTT{t: t, label: transport}
	switch transport {
	case "ws":
		r.ws = dialURL(t, s.WSURL, dialOptions{subprotocols: []string{"mqtt"}})
		if got := r.ws.ws.Subprotocol(); got != "mqtt" {
			t.Fatalf("negotiated subprotocol %q, want mqtt", got)
		}
		r.r = bufio.NewReader(r.ws)
	case "tcp":
		c, err := net.DialTimeout("tcp", s.TCPAddr, waitShort)
		if err != nil {
			t.Fatalf("dial %s: %v", s.TCPAddr, err)
		}
		r.tcp = c
		r.r = bufio.NewReader(c)
		t.Cleanup(func() { _ = c.Close() })
	default:
		t.Fatalf("transport %q", transport)
	}
	return r
}

// write sends p as is: one binary message on WebSocket.
func (r *rawMQTT) write(p []byte) {
	r.t.Helper()
	var err error
	if r.ws != nil {
		err = r.ws.writeRaw(websocket.BinaryMessage, p)
	} else {
		_ = r.tcp.SetWriteDeadline(time.Now().Add(waitShort))
		_, err = r.tcp.Write(p)
	}
	if err != nil {
		r.t.Fatalf("%s: raw write % x: %v", r.label, p, err)
	}
}

func (r *rawMQTT) setReadDeadline(d time.Time) {
	if r.ws != nil {
		_ = r.ws.ws.SetReadDeadline(d)
	} else {
		_ = r.tcp.SetReadDeadline(d)
	}
}

// rawPacket is one packet as read: first byte and body.
type rawPacket struct {
	b0   byte
	body []byte
}

func (p rawPacket) typ() byte { return p.b0 >> 4 }

func (p rawPacket) String() string {
	return fmt.Sprintf("%02x [% x]", p.b0, p.body)
}

// readPacket reads one packet (fixed header, remaining length, body).
func (r *rawMQTT) readPacket() (rawPacket, error) {
	b0, err := r.r.ReadByte()
	if err != nil {
		return rawPacket{}, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := r.r.ReadByte()
		if err != nil {
			return rawPacket{}, err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return rawPacket{}, fmt.Errorf("server sent a remaining length over 4 bytes")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return rawPacket{}, err
	}
	return rawPacket{b0, body}, nil
}

// expect reads the next packet within waitShort and checks its type.
func (r *rawMQTT) expect(typ byte) rawPacket {
	r.t.Helper()
	r.setReadDeadline(time.Now().Add(waitShort))
	defer r.setReadDeadline(time.Time{})
	p, err := r.readPacket()
	if err != nil {
		r.t.Fatalf("%s: waiting for packet type %d: %v", r.label, typ, err)
	}
	if p.typ() != typ {
		r.t.Fatalf("%s: got packet %v, want type %d", r.label, p, typ)
	}
	return p
}

// expectClosed reads until the server closes (within waitShort) and returns
// the packets read before and, on WebSocket, the close code (-1: no close
// frame). A timeout fails the test: the server did not close.
func (r *rawMQTT) expectClosed() (pkts []rawPacket, code int) {
	r.t.Helper()
	return r.expectClosedWithin(waitShort)
}

// expectClosedWithin is expectClosed with its own timeout.
func (r *rawMQTT) expectClosedWithin(timeout time.Duration) (pkts []rawPacket, code int) {
	r.t.Helper()
	r.setReadDeadline(time.Now().Add(timeout))
	defer r.setReadDeadline(time.Time{})
	for {
		p, err := r.readPacket()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("%s: connection still open after %v (read %v)", r.label, timeout, pkts)
			}
			if r.ws != nil {
				return pkts, int(r.ws.closeCode.Load())
			}
			return pkts, 0
		}
		pkts = append(pkts, p)
	}
}

// Packet builders. They encode by hand, independent of the broker's codec.

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

// connectPacket is a clean-start CONNECT for level 4 (3.1.1) or 5 with
// keep alive 60 and no properties.
func connectPacket(level byte, clientID string) []byte {
	b := appendStr(nil, "MQTT")
	b = append(b, level, 0x02, 0x00, 60)
	if level == 5 {
		b = append(b, 0) // property length
	}
	b = appendStr(b, clientID)
	return packet(0x10, b)
}

// publishPacket is a PUBLISH with the given first byte (QoS in the flags);
// packet id 1 for QoS > 0; no properties on v5.
func publishPacket(level, b0 byte, topic string, payload []byte) []byte {
	b := appendStr(nil, topic)
	if (b0>>1)&3 > 0 {
		b = append(b, 0, 1)
	}
	if level == 5 {
		b = append(b, 0)
	}
	return packet(b0, append(b, payload...))
}

// subscribePacket is a SUBSCRIBE of one filter at QoS 0 with first byte b0
// (0x82 is the valid one).
func subscribePacket(level, b0 byte, filter string) []byte {
	b := []byte{0, 1}
	if level == 5 {
		b = append(b, 0)
	}
	b = appendStr(b, filter)
	b = append(b, 0)
	return packet(b0, b)
}

// abort closes the connection without DISCONNECT or close frame.
func (r *rawMQTT) abort() {
	if r.ws != nil {
		r.ws.abort()
	} else {
		_ = r.tcp.Close()
	}
}

// willProps are v5 will properties: payload format 1, message expiry 300,
// content type text/plain, response topic, correlation data 00 01 02 and
// user property reason=crash.
func willProps(responseTopic string) []byte {
	b := []byte{0x01, 1, 0x02, 0, 0, 0x01, 0x2c}
	b = appendStr(append(b, 0x03), "text/plain")
	b = appendStr(append(b, 0x08), responseTopic)
	b = append(b, 0x09, 0, 3, 0, 1, 2)
	b = appendStr(appendStr(append(b, 0x26), "reason"), "crash")
	return b
}

// connectWithWill is a v5 clean-start CONNECT with a QoS 1 will.
func connectWithWill(clientID, topic string, payload, props []byte) []byte {
	b := appendStr(nil, "MQTT")
	b = append(b, 5, 0x02|0x04|0x08, 0x00, 60, 0)
	b = appendStr(b, clientID)
	b = append(appendVarInt(b, len(props)), props...)
	b = appendStr(b, topic)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, payload...)
	return packet(0x10, b)
}

// offlineSubscriber leaves a persistent v5 session (expiry 300 s) for id,
// subscribed to filter at qos, and returns once the server has closed the
// connection after DISCONNECT: from then on nothing more is written to it,
// so everything published for it is kept offline.
func offlineSubscriber(t testing.TB, s *mqttServer, id, filter string, qos byte) {
	t.Helper()
	r := dialRawMQTT(t, s, "tcp")
	b := appendStr(nil, "MQTT")
	b = append(b, 5, 0x02, 0x00, 60, 5, 0x11, 0, 0, 0x01, 0x2c) // clean start, Session Expiry 300
	r.write(packet(0x10, appendStr(b, id)))
	if ca := r.expect(2); len(ca.body) < 2 || ca.body[1] != 0 {
		t.Fatalf("offline subscriber %s: CONNACK %v", id, ca)
	}
	sb := appendStr([]byte{0, 1, 0}, filter)
	r.write(packet(0x82, append(sb, qos)))
	if sa := r.expect(9); len(sa.body) != 4 || sa.body[3] != qos {
		t.Fatalf("offline subscriber %s: SUBACK %v, want QoS %d granted", id, sa, qos)
	}
	r.write([]byte{0xE0, 0x00}) // DISCONNECT, normal
	if pkts, _ := r.expectClosed(); len(pkts) != 0 {
		t.Fatalf("offline subscriber %s: got %v after DISCONNECT", id, pkts)
	}
}

// connectRaw sends CONNECT and expects a successful CONNACK.
func (r *rawMQTT) connectRaw(level byte, clientID string) rawPacket {
	r.t.Helper()
	r.write(connectPacket(level, clientID))
	ca := r.expect(2)
	if len(ca.body) < 2 || ca.body[1] != 0 {
		r.t.Fatalf("%s: CONNACK %v, want success", r.label, ca)
	}
	return ca
}

// connackProperty returns the value bytes of a v5 CONNACK property id that
// is a fixed-size integer (n bytes), or nil.
func connackProperty(ca rawPacket, id byte, n int) []byte {
	if len(ca.body) < 3 {
		return nil
	}
	plen, i, mul := 0, 2, 1
	for ; i < len(ca.body); i++ {
		plen += int(ca.body[i]&0x7f) * mul
		mul *= 128
		if ca.body[i]&0x80 == 0 {
			i++
			break
		}
	}
	props := ca.body[i:min(len(ca.body), i+plen)]
	for j := 0; j < len(props); {
		pid := props[j]
		j++
		var size int
		switch pid {
		case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A: // byte
			size = 1
		case 0x13, 0x21, 0x22, 0x23: // two-byte integer
			size = 2
		case 0x02, 0x11, 0x18, 0x27: // four-byte integer
			size = 4
		case 0x0B: // variable byte integer
			size = 1
			for k := j; k < len(props) && props[k]&0x80 != 0; k++ {
				size++
			}
		case 0x26: // string pair
			if j+2 > len(props) {
				return nil
			}
			l1 := int(binary.BigEndian.Uint16(props[j:]))
			if j+2+l1+2 > len(props) {
				return nil
			}
			l2 := int(binary.BigEndian.Uint16(props[j+2+l1:]))
			size = 4 + l1 + l2
		default: // strings and binary data
			if j+2 > len(props) {
				return nil
			}
			size = 2 + int(binary.BigEndian.Uint16(props[j:]))
		}
		if j+size > len(props) {
			return nil
		}
		if pid == id && size == n {
			return props[j : j+size]
		}
		j += size
	}
	return nil
}

// ---------------------------------------------------------------------------
// Small helpers

type urlT = url.URL

func intp(i int) *int { return &i }

func ctxShort() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitShort)
}

func reasonsLen(ua *paho.Unsuback) int {
	if ua == nil {
		return 0
	}
	return len(ua.Reasons)
}

// sessionInfo returns the router's view of client id's open session.
func sessionInfo(s *mqttServer, id string) broker.SessionInfo {
	for _, si := range s.Router.Sessions() {
		if si.ID == id {
			return si
		}
	}
	return broker.SessionInfo{}
}
