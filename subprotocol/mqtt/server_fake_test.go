package mqtt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/subprotocol/transporttest"
)

// checkFor polls cond until it holds or 5 s pass.
func checkFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, cond)
}

// newFake returns the transport the MQTT tests use: reads fail once the
// server closed it (as a real socket's would) and read deadlines are
// enforced, for the keep-alive tests.
func newFake(subprotocol string) *transporttest.Fake {
	f := transporttest.New(subprotocol)
	f.ClosedErr = net.ErrClosed
	f.EnforceReadDeadline = true
	return f
}

// client runs one server connection over a transporttest.Fake and speaks raw
// packets to it.
type client struct {
	t       *testing.T
	ft      *transporttest.Fake
	r       *broker.Router
	version byte // for encoding and decoding after CONNECT
	done    chan struct{}
	err     error // Serve's result, once done is closed
	seen    int   // packets already returned by next
}

// newRouter returns a router for one test.
func newRouter(bcfg broker.Config) *broker.Router { return broker.New(bcfg, nil) }

// dial starts a server connection on r.
func dial(t *testing.T, r *broker.Router, cfg Config, version byte) *client {
	t.Helper()
	return dialOn(t, New(cfg), r, version, nil)
}

// dialOn starts a connection of p on r; prepare, when set, sees the
// transport before Serve does (to set its Peer).
func dialOn(t *testing.T, p *Protocol, r *broker.Router, version byte, prepare func(*transporttest.Fake)) *client {
	t.Helper()
	c := &client{t: t, ft: newFake("mqtt"), r: r, version: version, done: make(chan struct{})}
	if prepare != nil {
		prepare(c.ft)
	}
	go func() {
		defer close(c.done)
		c.err = p.Serve(context.Background(), c.ft, r)
	}()
	t.Cleanup(func() {
		c.ft.HangUp()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after the client hung up")
		}
		if !c.ft.Closed() {
			t.Errorf("Serve returned without closing the transport")
		}
	})
	return c
}

// send encodes p in the client's version and sends it as one binary message.
func (c *client) send(p Packet) { c.sendRaw(AppendPacket(nil, p, c.version)) }

func (c *client) sendRaw(b []byte) { c.ft.Send(true, b) }

func (c *client) sendText(b []byte) { c.ft.Send(false, b) }

// packets decodes everything the server wrote, as one stream.
func (c *client) packets() []Packet {
	c.t.Helper()
	rd := NewReader(bytes.NewReader(bytes.Join(c.ft.Written(), nil)))
	rd.MaxPacketSize = 1 << 28
	var out []Packet
	for {
		p, err := rd.ReadPacket(c.version)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			c.t.Fatalf("server output does not decode as version %d after %d packets: %v", c.version, len(out), err)
		}
		out = append(out, p)
	}
}

// waitN waits until n packets match and returns them.
func (c *client) waitN(what string, n int, match func(Packet) bool) []Packet {
	c.t.Helper()
	var got []Packet
	checkFor(c.t, what, func() bool {
		got = got[:0]
		for _, p := range c.packets() {
			if match(p) {
				got = append(got, p)
			}
		}
		return len(got) >= n
	})
	return got
}

// waitType waits for the first packet of type t after the ones already
// consumed by waitType, and consumes it.
func (c *client) next(t PacketType) Packet {
	c.t.Helper()
	var got Packet
	checkFor(c.t, "next "+t.String(), func() bool {
		ps := c.packets()
		for i := c.seen; i < len(ps); i++ {
			if ps[i].Type() == t {
				got = ps[i]
				c.seen = i + 1
				return true
			}
		}
		return false
	})
	return got
}

// count returns the number of packets of type t written so far.
func (c *client) count(t PacketType) int {
	n := 0
	for _, p := range c.packets() {
		if p.Type() == t {
			n++
		}
	}
	return n
}

// publishesNoFail is publishes for other goroutines than the test's: it
// stops at the first packet that does not decode instead of failing.
func (c *client) publishesNoFail() []*Publish {
	rd := NewReader(bytes.NewReader(bytes.Join(c.ft.Written(), nil)))
	rd.MaxPacketSize = 1 << 28
	var out []*Publish
	for {
		p, err := rd.ReadPacket(c.version)
		if err != nil {
			return out
		}
		if pp, ok := p.(*Publish); ok {
			out = append(out, pp)
		}
	}
}

// publishes returns the PUBLISH packets written so far.
func (c *client) publishes() []*Publish {
	var out []*Publish
	for _, p := range c.packets() {
		if pp, ok := p.(*Publish); ok {
			out = append(out, pp)
		}
	}
	return out
}

// connect sends CONNECT (modified by mod) and waits for CONNACK.
func (c *client) connect(id string, clean bool, mod func(*Connect)) *Connack {
	c.t.Helper()
	p := &Connect{ProtocolLevel: c.version, CleanStart: clean, ClientID: id}
	if mod != nil {
		mod(p)
	}
	c.sendRaw(AppendPacket(nil, p, p.ProtocolLevel))
	return c.next(CONNACK).(*Connack)
}

// mustConnect connects and fails the test unless CONNACK is a success.
func (c *client) mustConnect(id string, clean bool, mod func(*Connect)) *Connack {
	c.t.Helper()
	ack := c.connect(id, clean, mod)
	if ack.ReasonCode != CodeSuccess {
		c.t.Fatalf("CONNACK reason %v, want success", ack.ReasonCode)
	}
	return ack
}

// subscribe subscribes to filters with QoS qos and waits for the SUBACK.
func (c *client) subscribe(id uint16, qos byte, filters ...string) *Suback {
	c.t.Helper()
	p := &Subscribe{PacketID: id}
	for _, f := range filters {
		p.Subscriptions = append(p.Subscriptions, Subscription{Filter: f, QoS: qos})
	}
	return c.subscribePacket(p)
}

func (c *client) subscribePacket(p *Subscribe) *Suback {
	c.t.Helper()
	c.send(p)
	s := c.next(SUBACK).(*Suback)
	if s.PacketID != p.PacketID {
		c.t.Fatalf("SUBACK id %d, want %d", s.PacketID, p.PacketID)
	}
	return s
}

// waitClosed waits for the server to close the transport and Serve to
// return, and returns the close code.
func (c *client) waitClosed() int {
	c.t.Helper()
	checkFor(c.t, "transport closed", c.ft.Closed)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.t.Fatal("Serve did not return")
	}
	code, _, _ := c.ft.CloseState()
	return code
}

// lastDisconnect returns the last DISCONNECT the server wrote, or nil.
func (c *client) lastDisconnect() *Disconnect {
	var d *Disconnect
	for _, p := range c.packets() {
		if x, ok := p.(*Disconnect); ok {
			d = x
		}
	}
	return d
}
