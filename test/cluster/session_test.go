package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// TestClusterSessions: a client id is unique in the cluster (issue 11
// Build 3). Three embedded nodes; each case connects an id to one node and
// then to another.
func TestClusterSessions(t *testing.T) {
	t.Parallel()
	nodes := startEmbedded(t, "sess")
	sessionSuite(t, nodes)
}

// TestClusterSessionsExternalNATS: the same with three nodes on one
// external NATS server (run in the test process).
func TestClusterSessionsExternalNATS(t *testing.T) {
	t.Parallel()
	nodes := startExternal(t, "sessx", server.Options{MaxPayload: 8 << 20})
	sessionSuite(t, nodes)
}

func sessionSuite(t *testing.T, nodes []*node) {
	base := fmt.Sprintf("s%d", time.Now().UnixNano())
	t.Run("TakeoverV5", func(t *testing.T) { takeoverV5(t, nodes, base) })
	t.Run("TakeoverV3", func(t *testing.T) { takeoverV3(t, nodes, base) })
	t.Run("PersistentMoves", func(t *testing.T) { persistentMoves(t, nodes, base) })
	t.Run("InflightMoves", func(t *testing.T) { inflightMoves(t, nodes, base) })
	t.Run("StompClientID", func(t *testing.T) { stompClientID(t, nodes, base) })
	t.Run("DelayedWillCancelled", func(t *testing.T) { delayedWill(t, nodes, base) })
	t.Run("WillOnce", func(t *testing.T) { willOnce(t, nodes, base) })
}

// v5conn is a paho.golang client with the packets a test looks at.
type v5conn struct {
	*inbox
	c       *paho.Client
	conn    net.Conn
	ack     *paho.Connack
	dmu     sync.Mutex
	discon  *paho.Disconnect // the server's DISCONNECT
	dropped bool             // the connection ended
}

func dialV5(t *testing.T, addr string, cp *paho.Connect) *v5conn {
	t.Helper()
	return dialV5Acks(t, addr, cp, false)
}

// dialV5Acks is dialV5; with manualAck the client never acknowledges a
// message, so the broker keeps them in flight.
func dialV5Acks(t *testing.T, addr string, cp *paho.Connect, manualAck bool) *v5conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &v5conn{inbox: &inbox{}, conn: conn}
	c.c = paho.NewClient(paho.ClientConfig{Conn: conn, EnableManualAcknowledgment: manualAck,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.add(msg{topic: pr.Packet.Topic, payload: string(pr.Packet.Payload)})
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			c.dmu.Lock()
			c.discon = d
			c.dmu.Unlock()
		},
		OnClientError: func(error) {
			c.dmu.Lock()
			c.dropped = true
			c.dmu.Unlock()
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	if c.ack, err = c.c.Connect(ctx, cp); err != nil {
		t.Fatalf("MQTT 5 connect %s: %v", cp.ClientID, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return c
}

func (c *v5conn) serverDisconnect() *paho.Disconnect {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	return c.discon
}

func (c *v5conn) sub(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("MQTT 5 subscribe %s: %v", filter, err)
	}
}

func (c *v5conn) pub(t *testing.T, topic, payload string) {
	t.Helper()
	c.pubQoS(t, topic, payload, 1)
}

func (c *v5conn) pubQoS(t *testing.T, topic, payload string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)}); err != nil {
		t.Fatalf("MQTT 5 publish %s: %v", topic, err)
	}
}

// claimed reports whether holder answered a claim for key: it logs the
// answer before the claiming node's Open returns, so this is known once
// the claiming connection is accepted.
func claimed(holder *node, key string) bool {
	for _, line := range strings.Split(holder.p.Stderr(), "\n") {
		if strings.Contains(line, "session taken over by another node") && strings.Contains(line, "key="+key+" ") {
			return true
		}
	}
	return false
}

// takeOver connects (dial) until holder has answered the claim for key. A
// node subscribes to an id's claims when the id opens there, and that
// subscription reaches the other NATS servers a moment later: a claim
// made before then finds no holder (documented in broker/cluster
// session.go), and the test connects again.
func takeOver(t *testing.T, holder *node, key string, dial func() (undo func())) {
	t.Helper()
	testutil.EventuallyErr(t, wait, func() error {
		undo := dial()
		if claimed(holder, key) {
			return nil
		}
		undo()
		return errors.New("the claim did not reach the holder yet")
	})
}

func expiry(secs uint32) *paho.ConnectProperties {
	return &paho.ConnectProperties{SessionExpiryInterval: &secs}
}

// takeoverV5: the first connection gets DISCONNECT 0x8E Session taken over
// [MQTT-3.1.4-3] (MQTT 5 §3.14.2.1) when its id connects to another node.
func takeoverV5(t *testing.T, nodes []*node, base string) {
	id := base + "-v5"
	first := dialV5(t, nodes[0].mqtt, &paho.Connect{ClientID: id, CleanStart: true})
	takeOver(t, nodes[0], "m"+id, func() func() {
		start := time.Now()
		c := dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: id, CleanStart: true})
		t.Logf("takeover across nodes: CONNACK after %v", time.Since(start))
		return func() { _ = c.conn.Close() }
	})
	testutil.EventuallyErr(t, wait, func() error {
		d := first.serverDisconnect()
		if d == nil {
			return errors.New("first connection: no DISCONNECT yet")
		}
		if d.ReasonCode != 0x8E {
			t.Fatalf("DISCONNECT reason 0x%02x, want 0x8E", d.ReasonCode)
		}
		return nil
	})
}

// takeoverV3: an MQTT 3.1.1 connection is closed [MQTT-3.1.4-3].
func takeoverV3(t *testing.T, nodes []*node, base string) {
	id := base + "-v3"
	lost := make(chan error, 1)
	o := pahomqtt.NewClientOptions().AddBroker("tcp://" + nodes[0].mqtt).SetClientID(id).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ pahomqtt.Client, err error) { lost <- err })
	c := pahomqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	takeOver(t, nodes[0], "m"+id, func() func() {
		c := newV3(t, nodes[2].mqtt, id)
		return func() { c.c.Disconnect(0) }
	})
	select {
	case <-lost:
	case <-time.After(wait):
		t.Fatal("the first MQTT 3.1.1 connection was not closed")
	}
}

// persistentMoves: a persistent session with a subscription and QoS 1
// messages queued while offline moves from node 1 to node 2: Session
// Present, every message once, in order [MQTT-3.1.2-5] [MQTT-4.6.0-6].
func persistentMoves(t *testing.T, nodes []*node, base string) {
	id, topic := base+"-p", base+"/p/q"
	p := dialV5(t, nodes[0].mqtt, &paho.Connect{ClientID: id, CleanStart: true, Properties: expiry(300)})
	p.sub(t, topic)
	_ = p.c.Disconnect(&paho.Disconnect{})

	pub := dialV5(t, nodes[2].mqtt, &paho.Connect{ClientID: base + "-pub", CleanStart: true})
	// Node 1 wants the topic (the offline session's subscription): probe
	// until a message reaches it, then send the numbered ones.
	in0 := nodes[0].metric(t, "duplex_cluster_messages_in_total")
	const n = 20
	for i := range n {
		pub.pub(t, topic, strconv.Itoa(i))
	}
	testutil.EventuallyErr(t, wait, func() error {
		if got := nodes[0].metric(t, "duplex_cluster_messages_in_total") - in0; got < n {
			return fmt.Errorf("node 1 has %v of %d messages", got, n)
		}
		return nil
	})

	start := time.Now()
	q := dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: id, CleanStart: false, Properties: expiry(300)})
	t.Logf("persistent session moved: CONNACK after %v", time.Since(start))
	if !q.ack.SessionPresent {
		t.Fatal("Session Present 0 after the session moved nodes")
	}
	testutil.EventuallyErr(t, wait, func() error {
		if c := q.count(topic); c < n {
			return fmt.Errorf("%d of %d messages", c, n)
		}
		return nil
	})
	// A marker published after them arrives after them: nothing more of
	// the queued ones is coming.
	pub.pub(t, topic, "end")
	q.wait(t, "moved session", topic)
	testutil.EventuallyErr(t, wait, func() error {
		q.inbox.mu.Lock()
		defer q.inbox.mu.Unlock()
		if last := q.got[len(q.got)-1]; last.payload != "end" {
			return errors.New("marker not yet received")
		}
		return nil
	})
	q.inbox.mu.Lock()
	defer q.inbox.mu.Unlock()
	var got []string
	for _, m := range q.got {
		got = append(got, m.payload)
	}
	for i := range n {
		if got[i] != strconv.Itoa(i) {
			t.Fatalf("messages out of order or duplicated: %v", got)
		}
	}
	if len(got) != n+1 {
		t.Fatalf("%d messages, want %d and the marker: %v", len(got), n, got)
	}
}

// inflightMoves: QoS 1 messages written to a client and never
// acknowledged move with its session and are sent again first, with DUP,
// then those queued while it was offline [MQTT-4.4.0-1] [MQTT-4.6.0-1].
func inflightMoves(t *testing.T, nodes []*node, base string) {
	id, topic := base+"-f", base+"/f/q"
	p := dialV5Acks(t, nodes[0].mqtt, &paho.Connect{ClientID: id, CleanStart: true, Properties: expiry(300)}, true)
	p.sub(t, topic)
	pub := dialV5(t, nodes[2].mqtt, &paho.Connect{ClientID: base + "-fpub", CleanStart: true})
	const n = 10
	// Until the first arrives, node 1's interest may still be on its way.
	testutil.EventuallyErr(t, wait, func() error {
		if p.count(topic) > 0 {
			return nil
		}
		pub.pub(t, topic, "probe")
		return errors.New("no probe yet")
	})
	for i := range n / 2 {
		pub.pub(t, topic, strconv.Itoa(i))
	}
	testutil.EventuallyErr(t, wait, func() error {
		p.inbox.mu.Lock()
		defer p.inbox.mu.Unlock()
		if last := p.got[len(p.got)-1].payload; last != strconv.Itoa(n/2-1) {
			return fmt.Errorf("last received %q", last)
		}
		return nil
	})
	_ = p.conn.Close() // none acknowledged
	in0 := nodes[0].metric(t, "duplex_cluster_messages_in_total")
	for i := n / 2; i < n; i++ {
		pub.pub(t, topic, strconv.Itoa(i))
	}
	testutil.EventuallyErr(t, wait, func() error {
		if got := nodes[0].metric(t, "duplex_cluster_messages_in_total") - in0; got < n/2 {
			return fmt.Errorf("node 1 has %v of %d messages", got, n/2)
		}
		return nil
	})
	q := dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: id, CleanStart: false, Properties: expiry(300)})
	if !q.ack.SessionPresent {
		t.Fatal("Session Present 0 after the session moved nodes")
	}
	// The moved subscription's interest reaches node 3 through the routes
	// some time after the CONNACK, and delivery between nodes is at most
	// once until JetStream carries it: repeat the marker until it arrives.
	testutil.EventuallyErr(t, wait, func() error {
		q.inbox.mu.Lock()
		k := len(q.got)
		ended := k > 0 && q.got[k-1].payload == "end"
		q.inbox.mu.Unlock()
		if ended {
			return nil
		}
		pub.pub(t, topic, "end")
		return errors.New("marker not yet received")
	})
	q.inbox.mu.Lock()
	defer q.inbox.mu.Unlock()
	var got []string
	for _, m := range q.got {
		if m.payload != "probe" && m.payload != "end" {
			got = append(got, m.payload)
		}
	}
	want := []string{}
	for i := range n {
		want = append(want, strconv.Itoa(i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// stompClientID: a STOMP client-id connecting to another node closes the
// first connection with an ERROR frame.
func stompClientID(t *testing.T, nodes []*node, base string) {
	id := base + "-stomp"
	dial := func(addr string) *stomp.Conn {
		c, err := stomp.Dial("tcp", addr, stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.HeartBeat(0, 0),
			stomp.ConnOpt.Header("client-id", id))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := dial(nodes[0].stomp)
	sub, err := first.Subscribe("/topic/"+base+"/stomp", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	takeOver(t, nodes[0], "s"+id, func() func() {
		second := dial(nodes[2].stomp)
		t.Cleanup(func() { _ = second.Disconnect() })
		return func() { _ = second.Disconnect() }
	})
	select {
	case m, ok := <-sub.C:
		if ok && m.Err == nil {
			t.Fatalf("first connection got a message, not an error: %s", m.Body)
		}
		if ok {
			t.Logf("first STOMP connection: %v", m.Err)
		}
	case <-time.After(wait):
		t.Fatal("the first STOMP connection was not closed")
	}
}

// delayedWill: a session whose connection dropped with a delayed will
// resumes on another node within the delay: the will is not published
// [MQTT-3.1.3-9].
func delayedWill(t *testing.T, nodes []*node, base string) {
	id, topic := base+"-dw", base+"/will/delayed"
	var watchers []*v5conn
	for i, nd := range nodes {
		w := dialV5(t, nd.mqtt, &paho.Connect{ClientID: fmt.Sprintf("%s-dww%d", base, i), CleanStart: true})
		w.sub(t, topic)
		watchers = append(watchers, w)
	}
	delay := uint32(2)
	c := dialV5(t, nodes[0].mqtt, &paho.Connect{ClientID: id, CleanStart: true, Properties: expiry(60),
		WillMessage:    &paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte("gone")},
		WillProperties: &paho.WillProperties{WillDelayInterval: &delay}})
	_ = c.conn.Close() // no DISCONNECT: the will waits for its delay
	dropped := time.Now()
	dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: id, CleanStart: false, Properties: expiry(60)})
	if time.Since(dropped) >= 2*time.Second {
		t.Skip("the resume took longer than the will delay on this machine")
	}
	// A marker after the delay has passed on every node: the will, had
	// it been published, would be before it.
	marker := dialV5(t, nodes[0].mqtt, &paho.Connect{ClientID: base + "-dwm", CleanStart: true})
	testutil.Eventually(t, wait, "the will delay to pass", func() bool { return time.Since(dropped) > 3*time.Second })
	marker.pub(t, topic, "marker")
	for i, w := range watchers {
		testutil.EventuallyErr(t, wait, func() error {
			if w.count(topic) == 0 {
				return fmt.Errorf("watcher on node %d: no marker yet", i+1)
			}
			return nil
		})
		w.inbox.mu.Lock()
		for _, m := range w.got {
			if m.payload == "gone" {
				t.Errorf("watcher on node %d got the cancelled will", i+1)
			}
		}
		w.inbox.mu.Unlock()
	}
}

// willOnce: a will without delay is published once in the cluster, by the
// node that had the connection [MQTT-3.1.2-8].
func willOnce(t *testing.T, nodes []*node, base string) {
	topic := base + "/will/once"
	var watchers []*v5conn
	for i, nd := range nodes {
		w := dialV5(t, nd.mqtt, &paho.Connect{ClientID: fmt.Sprintf("%s-wow%d", base, i), CleanStart: true})
		w.sub(t, topic)
		watchers = append(watchers, w)
	}
	probe := dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: base + "-wop", CleanStart: true})
	// Interest reaches node 2 from every node before the will is sent.
	testutil.EventuallyErr(t, wait, func() error {
		probe.pub(t, topic, "probe")
		for i, w := range watchers {
			if w.count(topic) == 0 {
				return fmt.Errorf("node %d: no probe yet", i+1)
			}
		}
		return nil
	})
	c := dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: base + "-wo", CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte("will")}})
	_ = c.conn.Close()
	wills := func(w *v5conn) int {
		w.inbox.mu.Lock()
		defer w.inbox.mu.Unlock()
		n := 0
		for _, m := range w.got {
			if m.payload == "will" {
				n++
			}
		}
		return n
	}
	for i, w := range watchers {
		testutil.Eventually(t, wait, fmt.Sprintf("the will on node %d", i+1), func() bool { return wills(w) > 0 })
	}
	probe.pub(t, topic, "after")
	for i, w := range watchers {
		testutil.EventuallyErr(t, wait, func() error {
			w.inbox.mu.Lock()
			defer w.inbox.mu.Unlock()
			if w.got[len(w.got)-1].payload != "after" {
				return fmt.Errorf("node %d: marker not yet", i+1)
			}
			return nil
		})
		if n := wills(w); n != 1 {
			t.Errorf("node %d got the will %d times, want once", i+1, n)
		}
	}
}
