// Package cluster runs three duplex processes as one cluster (issue 11):
// with embedded NATS routes, and with one external NATS server started in
// the test process.
package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/duplexmq/duplex/internal/testutil"
)

const wait = 20 * time.Second

// node is one duplex process.
type node struct {
	p                 *testutil.Proc
	http, mqtt, stomp string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := testutil.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startNodes starts three duplex processes, node i with the flags
// clusterArgs(i), and waits until /readyz answers 200 on each.
func startNodes(t *testing.T, clusterArgs func(i int) []string) []*node {
	t.Helper()
	bin := testutil.BuildBinary(t)
	nodes := make([]*node, 3)
	for i := range nodes {
		args := append([]string{"-addr", "127.0.0.1:0", "-mqtt-tcp-addr", "127.0.0.1:0", "-stomp-tcp-addr", "127.0.0.1:0",
			"-data", filepath.Join(t.TempDir(), "data"), "-log-level", "info"}, clusterArgs(i)...)
		p := testutil.StartConfig(t, testutil.Config{Bin: bin, Args: args, Listeners: []string{"", "mqtt-tcp", "stomp-tcp"}})
		nodes[i] = &node{p: p, http: "http://" + p.Addr(""), mqtt: p.Addr("mqtt-tcp"), stomp: p.Addr("stomp-tcp")}
	}
	for i, n := range nodes {
		testutil.EventuallyErr(t, wait, func() error {
			code, body := get(n.http + "/readyz")
			if code != http.StatusOK {
				return fmt.Errorf("node %d /readyz: %d %s", i+1, code, body)
			}
			return nil
		})
	}
	return nodes
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric reads one duplex_cluster_ counter of a node's /metrics.
func (n *node) metric(t *testing.T, name string) float64 {
	t.Helper()
	code, body := get(n.http + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// msg is one message a test client received, in protocol-neutral form.
type msg struct {
	topic, payload, contentType, corr, replyTo string
	props                                      []string // "k=v", in order
	retained                                   bool
	expiry                                     *uint32 // MQTT 5 Message Expiry Interval
}

// inbox collects what a client receives.
type inbox struct {
	mu  sync.Mutex
	got []msg
}

func (b *inbox) add(m msg) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, m)
}

// wait returns the first message on topic, waiting for it.
func (b *inbox) wait(t *testing.T, who, topic string) msg {
	t.Helper()
	var found msg
	testutil.EventuallyErr(t, wait, func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, m := range b.got {
			if m.topic == topic {
				found = m
				return nil
			}
		}
		return fmt.Errorf("%s: no message on %q yet", who, topic)
	})
	return found
}

// has reports whether a message on a topic starting with prefix arrived.
func (b *inbox) has(prefix string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.got {
		if strings.HasPrefix(m.topic, prefix) {
			return true
		}
	}
	return false
}

// count is how many messages on topic arrived.
func (b *inbox) count(topic string) int {
	return b.countWhere(func(m msg) bool { return m.topic == topic })
}

// countPayload is how many messages with payload p arrived.
func (b *inbox) countPayload(p string) int {
	return b.countWhere(func(m msg) bool { return m.payload == p })
}

func (b *inbox) countWhere(match func(msg) bool) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.got {
		if match(m) {
			n++
		}
	}
	return n
}

// stompClient is a go-stomp client over TCP.
type stompClient struct {
	*inbox
	c *stomp.Conn
}

func newStomp(t *testing.T, addr string) *stompClient {
	t.Helper()
	c, err := stomp.Dial("tcp", addr, stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.HeartBeat(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect() })
	return &stompClient{inbox: &inbox{}, c: c}
}

// sub subscribes to an MQTT-form topic filter.
func (s *stompClient) sub(t *testing.T, filter string) {
	t.Helper()
	sub, err := s.c.Subscribe("/topic/"+filter, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for m := range sub.C {
			if m.Err != nil {
				return
			}
			in := msg{topic: strings.TrimPrefix(m.Destination, "/topic/"), payload: string(m.Body), contentType: m.ContentType,
				corr: m.Header.Get("correlation-id"), replyTo: m.Header.Get("reply-to")}
			for i := range m.Header.Len() {
				k, v := m.Header.GetAt(i)
				switch k {
				case "destination", "message-id", "subscription", "content-type", "content-length", "correlation-id", "reply-to", "ack":
				default:
					in.props = append(in.props, k+"="+v)
				}
			}
			s.add(in)
		}
	}()
}

// v3Client is paho.mqtt.golang, MQTT 3.1.1 over TCP.
type v3Client struct {
	*inbox
	c pahomqtt.Client
}

func newV3(t *testing.T, addr, id string) *v3Client {
	t.Helper()
	c := &v3Client{inbox: &inbox{}}
	o := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ pahomqtt.Client, m pahomqtt.Message) {
			c.add(msg{topic: m.Topic(), payload: string(m.Payload()), retained: m.Retained()})
		})
	c.c = pahomqtt.NewClient(o)
	if tok := c.c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.c.Disconnect(100) })
	return c
}

func (c *v3Client) sub(t *testing.T, filter string) {
	t.Helper()
	if tok := c.c.Subscribe(filter, 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 subscribe %s: %v", filter, tok.Error())
	}
}

func (c *v3Client) pub(t *testing.T, topic, payload string, retain bool) {
	t.Helper()
	if tok := c.c.Publish(topic, 1, retain, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 publish %s: %v", topic, tok.Error())
	}
}

// v5Client is paho.golang, MQTT 5 over TCP.
type v5Client struct {
	*inbox
	c *paho.Client
}

func newV5(t *testing.T, addr, id string) *v5Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &v5Client{inbox: &inbox{}}
	c.c = paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			m := msg{topic: p.Topic, payload: string(p.Payload), retained: p.Retain}
			if pp := p.Properties; pp != nil {
				m.contentType, m.corr, m.replyTo = pp.ContentType, string(pp.CorrelationData), pp.ResponseTopic
				m.expiry = pp.MessageExpiry
				for _, u := range pp.User {
					m.props = append(m.props, u.Key+"="+u.Value)
				}
			}
			c.add(m)
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("MQTT 5 connect: %v", err)
	}
	t.Cleanup(func() { _ = c.c.Disconnect(&paho.Disconnect{}) })
	return c
}

func (c *v5Client) sub(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("MQTT 5 subscribe %s: %v", filter, err)
	}
}

func (c *v5Client) pub(t *testing.T, p *paho.Publish) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.c.Publish(ctx, p); err != nil {
		t.Fatalf("MQTT 5 publish %s: %v", p.Topic, err)
	}
}

// routedArgs returns, for three nodes named name, each node's flags for an
// embedded NATS server on its own route address with the other two as
// peers.
func routedArgs(t *testing.T, name string) func(i int) []string {
	t.Helper()
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	return func(i int) []string {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		return []string{"-cluster-name", name, "-cluster-listen", routes[i], "-cluster-peers", strings.Join(peers, ",")}
	}
}

// startEmbedded starts three nodes named name joined by their embedded
// NATS servers' routes.
func startEmbedded(t *testing.T, name string) []*node {
	t.Helper()
	return startNodes(t, routedArgs(t, name))
}

// startExternal starts one NATS server in the test process (o's fields
// over loopback defaults) and three nodes named name on it, their embedded
// servers off.
func startExternal(t *testing.T, name string, o server.Options) []*node {
	t.Helper()
	return startNodes(t, externalArgs(name, startNATS(t, o)))
}

// startNATS starts one NATS server in the test process, o's fields over
// loopback defaults, stopped at the test's end.
func startNATS(t *testing.T, o server.Options) *server.Server {
	t.Helper()
	o.Host, o.Port, o.NoSigs = "127.0.0.1", server.RANDOM_PORT, true
	ns, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(wait) {
		t.Fatal("NATS server did not start")
	}
	return ns
}

// externalArgs are the flags of a node named name on the NATS server ns.
func externalArgs(name string, ns *server.Server) func(int) []string {
	return func(int) []string {
		return []string{"-cluster-name", name, "-cluster-nats-urls", ns.ClientURL()}
	}
}
