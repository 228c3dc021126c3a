package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/duplexmq/duplex/internal/testutil"
)

// Inbound QoS 2 exactly once across a node's death [MQTT-4.3.3-10]: a
// publisher with a persistent session (paho.golang, its session state
// kept across connections) publishes at QoS 2 on node 1, whose answers
// stop reaching it, or whose PUBREL never arrives; node 1 is SIGKILLed;
// the publisher resumes its session on node 2 and paho completes the
// flow there, as MQTT asks of a client with session state.

// cutConn is a client's connection that a test cuts at one point of the
// QoS 2 flow, as a node's death would: once muted, the broker's answers
// are dropped (its PUBREC never reaches the client); with dropRel, the
// client's PUBREL and everything after it never reach the broker.
type cutConn struct {
	net.Conn
	muted   atomic.Bool
	dropRel bool
	relCut  chan struct{} // closed when the PUBREL was dropped
	cut     atomic.Bool
}

func (c *cutConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if err != nil {
			if c.muted.Load() {
				n = 0
			}
			return n, err
		}
		if !c.muted.Load() {
			return n, nil
		}
	}
}

// Write drops, with dropRel, the PUBREL (fixed header 0x62: paho writes a
// packet's fixed header as a write of its own) and all that follows.
func (c *cutConn) Write(b []byte) (int, error) {
	if c.dropRel && len(b) > 0 && b[0] == 0x62 && c.cut.CompareAndSwap(false, true) {
		close(c.relCut)
	}
	if c.cut.Load() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// q2inRig is three nodes, a persistent subscriber on node 3 (its copies
// come from the cluster store), a live clean one on node 2 (copies
// forwarded live, and the node the publisher moves to), and the
// publisher's session state.
type q2inRig struct {
	nodes []*node
	topic string
	dur   *durableSub
	live  *v5Client
	sess  *state.State
}

func newQ2inRig(t *testing.T, name string) *q2inRig {
	base := fmt.Sprintf("%s/%d", name, time.Now().UnixNano())
	g := &q2inRig{nodes: startEmbedded(t, name), topic: base + "/x", sess: state.NewInMemory()}
	g.dur = connectDurable(t, g.nodes[2].mqtt, name+"-dur", true, false)
	g.dur.sub(t, base+"/#", 2)
	g.live = newV5(t, g.nodes[1].mqtt, name+"-live")
	g.live.sub(t, base+"/#")
	return g
}

// connect connects the publisher (session expiry one hour) over c.
func (g *q2inRig) connect(t *testing.T, c net.Conn, clean bool) (*paho.Client, bool) {
	t.Helper()
	const id = "q2in-pub"
	expiry := uint32(3600)
	cli := paho.NewClient(paho.ClientConfig{ClientID: id, Conn: c, Session: g.sess, PacketTimeout: 3 * wait})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ca, err := cli.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 300,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatalf("publisher connect to %s: %v", c.RemoteAddr(), err)
	}
	t.Cleanup(func() { _ = cli.Disconnect(&paho.Disconnect{}) })
	return cli, ca.SessionPresent
}

// publishCut connects the publisher to node 1 over cc, subscribes it
// (the subscription gives the session its record in the cluster, from
// which it resumes on another node), publishes payload at QoS 2 in the
// background and waits until both subscribers have it: node 1 stored it
// and forwarded it. Then node 1 is SIGKILLed. The first Publish call's
// outcome comes on the channel.
func (g *q2inRig) publishCut(t *testing.T, cc *cutConn, payload string, mute bool) <-chan *paho.PublishResponse {
	t.Helper()
	c1, _ := g.connect(t, cc, true)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c1.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: g.topic + "/own", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	cc.muted.Store(mute)
	first := make(chan *paho.PublishResponse, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
		defer cancel()
		pr, err := c1.Publish(ctx, &paho.Publish{Topic: g.topic, QoS: 2, Payload: []byte(payload)})
		if err != nil {
			pr = nil
		}
		first <- pr
	}()
	waitPayload(t, g.live.inbox, "live subscriber on node 2", payload)
	g.dur.waitFor(t, "persistent subscriber on node 3", []string{payload})
	if cc.dropRel {
		select {
		case <-cc.relCut:
		case <-time.After(wait):
			t.Fatal("the publisher sent no PUBREL")
		}
	}
	g.nodes[0].p.Kill()
	select {
	case <-c1.Done():
	case <-time.After(wait):
		t.Fatal("the publisher's client did not see its connection end")
	}
	select {
	case pr := <-first:
		t.Fatalf("the first Publish ended before node 2 completed it: %+v", pr)
	default:
	}
	return first
}

// resume connects the publisher to node 2, waits for the first Publish
// call to complete there and returns the client.
func (g *q2inRig) resume(t *testing.T, first <-chan *paho.PublishResponse) *paho.Client {
	t.Helper()
	nc, err := net.Dial("tcp", g.nodes[1].mqtt)
	if err != nil {
		t.Fatal(err)
	}
	c2, present := g.connect(t, nc, false)
	if !present {
		t.Fatal("the publisher's session did not resume on node 2 (Session Present 0)")
	}
	select {
	case pr := <-first:
		if pr == nil || pr.ReasonCode != 0 {
			t.Fatalf("the first Publish, completed on node 2: %+v, want PUBCOMP Success", pr)
		}
	case <-time.After(3 * wait):
		t.Fatal("node 2 did not complete the first Publish")
	}
	return c2
}

// once publishes "after" from c2 on node 2 and checks that each
// subscriber got payload exactly once. "after" is published after the
// resend was handled, on the node that handled it, so a second copy
// would come before it to both subscribers (the live one through node
// 2's routing, the persistent one through the cluster store's order).
func (g *q2inRig) once(t *testing.T, c2 *paho.Client, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait) // streams node 1 led elect new leaders
	defer cancel()
	if _, err := c2.Publish(ctx, &paho.Publish{Topic: g.topic, QoS: 2, Payload: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	g.dur.waitFor(t, "persistent subscriber on node 3", []string{payload, "after"})
	waitPayload(t, g.live.inbox, "live subscriber on node 2", "after")
	if n := g.live.countPayload(payload); n != 1 {
		t.Errorf("live subscriber on node 2 got %q %d times, want once", payload, n)
	}
	got, n := g.dur.received(), 0
	for _, p := range got {
		if p == payload {
			n++
		}
	}
	if n != 1 {
		t.Errorf("persistent subscriber on node 3 got %v: %q %d times, want once", got, payload, n)
	}
}

// TestClusterQoS2ResendOtherNode: node 1's PUBREC never reaches the
// publisher; on node 2 paho resends the PUBLISH, DUP set, under the same
// packet id [MQTT-3.3.1-1]; node 2 finds the id held in the cluster and
// answers PUBREC without publishing [MQTT-4.3.3-10]; PUBREL and PUBCOMP
// complete the first Publish call; neither subscriber gets it twice.
func TestClusterQoS2ResendOtherNode(t *testing.T) {
	g := newQ2inRig(t, "q2in")
	nc, err := net.Dial("tcp", g.nodes[0].mqtt)
	if err != nil {
		t.Fatal(err)
	}
	first := g.publishCut(t, &cutConn{Conn: nc}, "once", true)
	g.once(t, g.resume(t, first), "once")
}

// TestClusterQoS2PubrelOtherNode: node 1's PUBREC reaches the publisher
// but its PUBREL never reaches node 1; on node 2 paho resends the PUBREL
// [MQTT-4.4.0-1]; node 2's connection does not know the id but the
// cluster holds it, so it is released and PUBCOMP is Success (not 0x92,
// Packet Identifier not found) [MQTT-4.3.3-11]; the message was
// published once, and the next PUBLISH (a new one, possibly under the
// same id) is delivered [MQTT-4.3.3-12].
func TestClusterQoS2PubrelOtherNode(t *testing.T) {
	g := newQ2inRig(t, "q2rel")
	nc, err := net.Dial("tcp", g.nodes[0].mqtt)
	if err != nil {
		t.Fatal(err)
	}
	first := g.publishCut(t, &cutConn{Conn: nc, dropRel: true, relCut: make(chan struct{})}, "released", false)
	g.once(t, g.resume(t, first), "released")
}

// waitPayload waits until in has a message with payload p.
func waitPayload(t *testing.T, in *inbox, who, p string) {
	t.Helper()
	testutil.EventuallyErr(t, wait, func() error {
		if in.countPayload(p) == 0 {
			return fmt.Errorf("%s: no %q yet", who, p)
		}
		return nil
	})
}

// countConn counts the PUBCOMP packets the broker sends on a connection
// (MQTT fixed header type 7), parsing the byte stream as it is read.
type countConn struct {
	net.Conn
	mu    sync.Mutex
	buf   []byte
	comps int
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, b[:n]...)
	for {
		// Fixed header: type and flags, then the remaining length
		// (variable byte integer, MQTT 5 §1.5.5).
		size, shift, i := 0, 0, 1
		for ; i < len(c.buf) && i <= 4; i++ {
			size |= int(c.buf[i]&0x7f) << shift
			shift += 7
			if c.buf[i]&0x80 == 0 {
				break
			}
		}
		if i >= len(c.buf) || len(c.buf) < i+1+size {
			return n, err
		}
		if c.buf[0]>>4 == 7 {
			c.comps++
		}
		c.buf = c.buf[i+1+size:]
	}
}

func (c *countConn) pubcomps() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.comps
}

// TestClusterQoS2ResendOtherNodeV3: TestClusterQoS2ResendOtherNode with
// an MQTT 3.1.1 publisher, paho.mqtt.golang with clean session 0 and
// both nodes in its server list: node 1's PUBREC is lost, node 1 is
// SIGKILLed, paho reconnects to node 2 by itself and resends the PUBLISH
// with DUP set [MQTT-3.3.1-1]; node 2 completes it without publishing it
// again [MQTT-4.3.3-10] (two PUBCOMPs on the new connection: the resend
// and the next message), and each subscriber has it once.
func TestClusterQoS2ResendOtherNodeV3(t *testing.T) {
	g := newQ2inRig(t, "q2v3")
	var cut atomic.Pointer[cutConn]
	var second atomic.Pointer[countConn]
	o := pahomqtt.NewClientOptions().AddBroker("tcp://" + g.nodes[0].mqtt).AddBroker("tcp://" + g.nodes[1].mqtt).
		SetClientID("q2v3-pub").SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(true).
		SetConnectRetry(false).SetMaxReconnectInterval(500 * time.Millisecond).SetKeepAlive(300 * time.Second).
		SetOrderMatters(true).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ pahomqtt.ClientOptions) (net.Conn, error) {
			nc, err := net.Dial("tcp", uri.Host)
			if err != nil {
				return nil, err
			}
			if uri.Host == g.nodes[0].mqtt {
				c := &cutConn{Conn: nc}
				cut.Store(c)
				return c, nil
			}
			c := &countConn{Conn: nc}
			second.Store(c)
			return c, nil
		})
	c := pahomqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	// A subscription gives the session its record in the cluster.
	if tok := c.Subscribe(g.topic+"/own", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	cut.Load().muted.Store(true)
	c.Publish(g.topic, 2, false, "once")
	waitPayload(t, g.live.inbox, "live subscriber on node 2", "once")
	g.dur.waitFor(t, "persistent subscriber on node 3", []string{"once"})
	g.nodes[0].p.Kill()

	testutil.EventuallyErr(t, 3*wait, func() error {
		if second.Load() == nil || !c.IsConnectionOpen() {
			return errors.New("the publisher is not connected to node 2 yet")
		}
		return nil
	})
	if tok := c.Publish(g.topic, 2, false, "after"); !tok.WaitTimeout(3*wait) || tok.Error() != nil {
		t.Fatalf("publish after: %v", tok.Error())
	}
	testutil.EventuallyErr(t, 3*wait, func() error {
		if n := second.Load().pubcomps(); n < 2 {
			return fmt.Errorf("%d PUBCOMPs from node 2, want 2 (the resend and the next message)", n)
		}
		return nil
	})
	// paho may send "after" before or after the resend; "last", sent
	// once both are complete, comes after any second copy.
	if tok := c.Publish(g.topic, 2, false, "last"); !tok.WaitTimeout(3*wait) || tok.Error() != nil {
		t.Fatalf("publish last: %v", tok.Error())
	}
	testutil.EventuallyErr(t, wait, func() error {
		if !slices.Contains(g.dur.received(), "last") {
			return errors.New("persistent subscriber on node 3: no last yet")
		}
		return nil
	})
	waitPayload(t, g.live.inbox, "live subscriber on node 2", "last")
	if n := g.live.countPayload("once"); n != 1 {
		t.Errorf("live subscriber on node 2 got \"once\" %d times, want once", n)
	}
	got, n := g.dur.received(), 0
	for _, p := range got {
		if p == "once" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("persistent subscriber on node 3 got %v: \"once\" %d times, want once", got, n)
	}
}
