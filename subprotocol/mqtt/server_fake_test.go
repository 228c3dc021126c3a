package mqtt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// checkFor polls cond until it holds or a deadline passes.
func checkFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// inMsg is one message the client sends.
type inMsg struct {
	binary bool
	data   []byte
}

// fakeTransport is an in-memory subprotocol.Transport (a copy of the STOMP
// tests' one, with frame types and read deadlines). The test pushes inbound
// messages with send and reads what the server wrote with messages; Close
// and Abort are recorded and end the inbound side.
type fakeTransport struct {
	in        chan inMsg
	closed    chan struct{} // closed by Close or Abort
	closeOnce sync.Once
	hungUp    chan struct{} // the client went away
	hangOnce  sync.Once

	mu           sync.Mutex
	out          [][]byte
	binaryOut    bool // every message written was binary
	closeCalls   int
	closeCode    int
	aborted      bool
	readDeadline time.Time
	gate         chan struct{} // when set, writes wait for it to close
}

var _ subprotocol.Transport = (*fakeTransport)(nil)

var fakeAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 41883}

func newFakeTransport() *fakeTransport {
	return &fakeTransport{
		in:        make(chan inMsg, 1024),
		closed:    make(chan struct{}),
		hungUp:    make(chan struct{}),
		binaryOut: true,
	}
}

// NextReader returns queued inbound messages in order, then io.EOF once the
// transport is closed or the client hung up; past the read deadline it
// fails with os.ErrDeadlineExceeded.
func (f *fakeTransport) NextReader() (bool, io.Reader, error) {
	select {
	case <-f.closed:
		return false, nil, net.ErrClosed
	default:
	}
	select {
	case m := <-f.in:
		return m.binary, bytes.NewReader(m.data), nil
	default:
	}
	f.mu.Lock()
	dl := f.readDeadline
	f.mu.Unlock()
	var timeout <-chan time.Time
	if !dl.IsZero() {
		tm := time.NewTimer(time.Until(dl))
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case m := <-f.in:
		return m.binary, bytes.NewReader(m.data), nil
	case <-f.closed:
		return false, nil, net.ErrClosed
	case <-f.hungUp:
		return false, nil, io.EOF
	case <-timeout:
		return false, nil, os.ErrDeadlineExceeded
	}
}

func (f *fakeTransport) WriteMessage(binary bool, p []byte) error {
	select {
	case <-f.closed:
		return net.ErrClosed
	default:
	}
	f.mu.Lock()
	if gate := f.gate; gate != nil {
		f.mu.Unlock()
		select {
		case <-gate:
		case <-f.closed:
			return net.ErrClosed
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	f.out = append(f.out, bytes.Clone(p))
	f.binaryOut = f.binaryOut && binary
	return nil
}

func (f *fakeTransport) Ping() error { return nil }

func (f *fakeTransport) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	f.readDeadline = t
	f.mu.Unlock()
	return nil
}

func (f *fakeTransport) SetWriteDeadline(time.Time) error { return nil }

func (f *fakeTransport) Close(code int, reason string) error {
	f.mu.Lock()
	if f.closeCalls == 0 && !f.aborted {
		f.closeCode = code
	}
	f.closeCalls++
	f.mu.Unlock()
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeTransport) Abort() {
	f.mu.Lock()
	f.aborted = true
	f.mu.Unlock()
	f.closeOnce.Do(func() { close(f.closed) })
}

func (f *fakeTransport) InterruptWrite(time.Time) {}
func (f *fakeTransport) RemoteAddr() net.Addr     { return fakeAddr }
func (f *fakeTransport) Subprotocol() string      { return "mqtt" }

// hangUp makes NextReader return io.EOF once the queued messages are read.
func (f *fakeTransport) hangUp() { f.hangOnce.Do(func() { close(f.hungUp) }) }

func (f *fakeTransport) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// closeState reports how the server ended the connection.
func (f *fakeTransport) closeState() (code int, aborted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closeCode, f.aborted
}

func (f *fakeTransport) written() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.out...)
}

// client runs one server connection over a fakeTransport and speaks raw
// packets to it.
type client struct {
	t       *testing.T
	ft      *fakeTransport
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
	c := &client{t: t, ft: newFakeTransport(), r: r, version: version, done: make(chan struct{})}
	p := New(cfg)
	go func() {
		defer close(c.done)
		c.err = p.Serve(context.Background(), c.ft, r)
	}()
	t.Cleanup(func() {
		c.ft.hangUp()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after the client hung up")
		}
		if !c.ft.isClosed() {
			t.Errorf("Serve returned without closing the transport")
		}
	})
	return c
}

// send encodes p in the client's version and sends it as one binary message.
func (c *client) send(p Packet) { c.sendRaw(AppendPacket(nil, p, c.version)) }

func (c *client) sendRaw(b []byte) { c.ft.in <- inMsg{binary: true, data: b} }

func (c *client) sendText(b []byte) { c.ft.in <- inMsg{binary: false, data: b} }

// packets decodes everything the server wrote, as one stream.
func (c *client) packets() []Packet {
	c.t.Helper()
	rd := NewReader(bytes.NewReader(bytes.Join(c.ft.written(), nil)))
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
	rd := NewReader(bytes.NewReader(bytes.Join(c.ft.written(), nil)))
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
	checkFor(c.t, "transport closed", c.ft.isClosed)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.t.Fatal("Serve did not return")
	}
	code, _ := c.ft.closeState()
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
