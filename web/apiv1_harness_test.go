package web

// The /api/v1 tests' harness: a real router with a bbolt store in
// t.TempDir(), a gateway under httptest (the API) with STOMP and MQTT over
// plain TCP (ServeTCP), go-stomp and paho.golang (MQTT 5) clients.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/store"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/mqtt"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
)

// v1Wait bounds every wait of the /api/v1 tests.
const v1Wait = 10 * time.Second

type v1Server struct {
	t         *testing.T
	gw        *Server
	router    *broker.Router
	st        *store.Bolt
	hs        *httptest.Server
	stompAddr string
	mqttAddr  string
}

// startV1 runs a broker with a bbolt store; cfg may change the web
// configuration (Store and Version are set first).
func startV1(t *testing.T, cfg ...func(*Config)) *v1Server {
	t.Helper()
	return startV1Broker(t, nil, cfg...)
}

// startV1Broker is startV1 with bcfg changing the router's configuration.
func startV1Broker(t *testing.T, bcfg func(*broker.Config), cfg ...func(*Config)) *v1Server {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "duplex.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bc := broker.Config{Store: st}
	if bcfg != nil {
		bcfg(&bc)
	}
	router := broker.New(bc, nil)
	if _, err := router.Restore(); err != nil {
		t.Fatal(err)
	}
	wcfg := Config{Store: st, Version: "1.2.3-test"}
	for _, f := range cfg {
		f(&wcfg)
	}
	sp, mp := dstomp.New(dstomp.Config{}), mqtt.New(mqtt.Config{})
	gw := New(wcfg, router, subprotocol.Registry{sp, mp})
	hs := httptest.NewServer(gw)
	s := &v1Server{t: t, gw: gw, router: router, st: st, hs: hs}
	var done []chan error
	for _, p := range []subprotocol.Protocol{sp, mp} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if p == sp {
			s.stompAddr = ln.Addr().String()
		} else {
			s.mqttAddr = ln.Addr().String()
		}
		ch := make(chan error, 1)
		go func() { ch <- gw.ServeTCP(ln, p) }()
		done = append(done, ch)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), v1Wait)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		for _, ch := range done {
			select {
			case <-ch:
			case <-time.After(v1Wait):
				t.Errorf("ServeTCP did not return after Shutdown")
			}
		}
		if err := st.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return s
}

// do sends an API request: body (if not "") as JSON. It returns the
// status and the body, and checks that the answer is JSON.
func (s *v1Server) do(method, path, body string) (int, []byte) {
	s.t.Helper()
	code, b, ct := s.send(method, path, body, nil)
	if code != http.StatusMethodNotAllowed && ct != "application/json" {
		s.t.Errorf("%s %s: Content-Type %q (%d %s)", method, path, ct, code, b)
	}
	return code, b
}

// doRaw is do with set applied to the request (credentials), without
// the JSON check.
func (s *v1Server) doRaw(method, path, body string, set func(*http.Request)) (int, []byte) {
	s.t.Helper()
	code, b, _ := s.send(method, path, body, set)
	return code, b
}

func (s *v1Server) send(method, path, body string, set func(*http.Request)) (int, []byte, string) {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.hs.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Content-Type")
}

// get fetches path and decodes its 200 answer into v.
func (s *v1Server) get(path string, v any) {
	s.t.Helper()
	code, b := s.do("GET", path, "")
	if code != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		s.t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// action sends method path body and wants status want; it returns the
// body.
func (s *v1Server) action(method, path, body string, want int) []byte {
	s.t.Helper()
	code, b := s.do(method, path, body)
	if code != want {
		s.t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, code, b, want)
	}
	return b
}

// wantError checks that method path body answers status with an
// APIError body.
func (s *v1Server) wantError(method, path, body string, status int) {
	s.t.Helper()
	code, b := s.do(method, path, body)
	if code != status {
		s.t.Errorf("%s %s %.80s: %d %s, want %d", method, path, body, code, b, status)
		return
	}
	var e APIError
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		s.t.Errorf("%s %s: error body %q (%v)", method, path, b, err)
	}
}

// walk follows the pages of a list endpoint (path has its own query,
// limit is added) and returns every item; it fails on a page larger
// than limit or more pages than items+1.
func v1Walk[T any](s *v1Server, path string, limit int) []T {
	s.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var all []T
	cursor := ""
	for pages := 0; ; pages++ {
		var p Page[T]
		s.get(fmt.Sprintf("%s%slimit=%d&cursor=%s", path, sep, limit, url.QueryEscape(cursor)), &p)
		if p.Items == nil {
			s.t.Fatalf("%s: items null", path)
		}
		if len(p.Items) > limit {
			s.t.Fatalf("%s: page of %d, limit %d", path, len(p.Items), limit)
		}
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all
		}
		if pages > len(all)+1 {
			s.t.Fatalf("%s: pages without end", path)
		}
		cursor = p.NextCursor
	}
}

// eventually polls f until it returns nil or v1Wait passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := testutil.Poll(v1Wait, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ---------------------------------------------------------------------------
// Clients

// v1MQTT is an MQTT 5 client over TCP.
type v1MQTT struct {
	t    *testing.T
	id   string
	c    *paho.Client
	msgs chan *paho.Publish
	disc chan *paho.Disconnect
	conn net.Conn
}

// mqtt connects client id with clean start and the session expiry
// interval expiry (0: not persistent).
func (s *v1Server) mqtt(id string, expiry uint32) *v1MQTT {
	s.t.Helper()
	conn, err := net.DialTimeout("tcp", s.mqttAddr, v1Wait)
	if err != nil {
		s.t.Fatal(err)
	}
	m := &v1MQTT{t: s.t, id: id, msgs: make(chan *paho.Publish, 1000), disc: make(chan *paho.Disconnect, 1), conn: conn}
	m.c = paho.NewClient(paho.ClientConfig{
		ClientID: id,
		Conn:     conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case m.msgs <- pr.Packet:
			default:
			}
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case m.disc <- d:
			default:
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), v1Wait)
	defer cancel()
	cp := &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}
	if expiry > 0 {
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	}
	if _, err := m.c.Connect(ctx, cp); err != nil {
		conn.Close()
		s.t.Fatalf("mqtt connect %s: %v", id, err)
	}
	s.t.Cleanup(m.close)
	return m
}

func (m *v1MQTT) subscribe(filter string, qos byte) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), v1Wait)
	defer cancel()
	if _, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		m.t.Fatalf("subscribe %s: %v", filter, err)
	}
}

func (m *v1MQTT) publish(topic, payload string, qos byte, retain bool) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), v1Wait)
	defer cancel()
	if _, err := m.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain}); err != nil {
		m.t.Fatalf("publish %s: %v", topic, err)
	}
}

// next waits for a message.
func (m *v1MQTT) next() *paho.Publish {
	m.t.Helper()
	select {
	case p := <-m.msgs:
		return p
	case <-time.After(v1Wait):
		m.t.Fatalf("%s: no message", m.id)
	}
	return nil
}

// close disconnects normally (once the connection is up).
func (m *v1MQTT) close() {
	_ = m.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-m.c.Done():
	case <-time.After(v1Wait):
	}
	m.conn.Close()
}

// stomp connects a STOMP client over TCP; opts add CONNECT options.
func (s *v1Server) stomp(opts ...func(*stomp.Conn) error) *stomp.Conn {
	s.t.Helper()
	opts = append([]func(*stomp.Conn) error{stomp.ConnOpt.Host("/"), stomp.ConnOpt.Logger(quietStompLog{})}, opts...)
	c, err := stomp.Dial("tcp", s.stompAddr, opts...)
	if err != nil {
		s.t.Fatalf("stomp: %v", err)
	}
	s.t.Cleanup(func() { _ = c.MustDisconnect() })
	return c
}

// v1Barrier waits for a receipt: the server handles one connection's
// frames in order, so everything before it is in place.
func v1Barrier(t *testing.T, c *stomp.Conn) {
	t.Helper()
	if err := c.Send("/topic/barrier", "", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("barrier: %v", err)
	}
}

// v1Clients lists every client (connected and offline) in id order.
func (s *v1Server) clients(query string) []Client {
	s.t.Helper()
	return v1Walk[Client](s, "/api/v1/clients"+query, MaxPageLimit)
}

// stompClientIDs lists the ids of the connected STOMP sessions.
func (s *v1Server) stompClientIDs() []string {
	var ids []string
	for _, c := range s.clients("?online=true") {
		if c.Protocol == "stomp" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// jsonBody marshals v.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// quietStompLog silences go-stomp's log (it reports every subscription
// that a disconnection ends).
type quietStompLog struct{}

func (quietStompLog) Debugf(string, ...any)   {}
func (quietStompLog) Infof(string, ...any)    {}
func (quietStompLog) Warningf(string, ...any) {}
func (quietStompLog) Errorf(string, ...any)   {}
func (quietStompLog) Debug(string)            {}
func (quietStompLog) Info(string)             {}
func (quietStompLog) Warning(string)          {}
func (quietStompLog) Error(string)            {}
