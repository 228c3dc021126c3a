package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/transporttest"
)

// An operator's Router.Disconnect ends an MQTT 5 session with DISCONNECT
// 0x98 Administrative action (MQTT 5 §3.14.2.1) and close code 1008.
func TestAdminDisconnectV5(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("c", true, nil)
	if err := r.Disconnect("c"); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if code := c.waitClosed(); code != subprotocol.ClosePolicy {
		t.Errorf("close code %d, want 1008", code)
	}
	if d := c.lastDisconnect(); d == nil || d.ReasonCode != CodeAdministrativeAction {
		t.Errorf("DISCONNECT %+v, want 0x98", d)
	}
}

// MQTT 3.1.1 has no server DISCONNECT: the connection just closes, and a
// persistent session stays.
func TestAdminDisconnectV311(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dial(t, r, Config{}, Version311)
	c.mustConnect("c", false, nil)
	if err := r.Disconnect("c"); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if code := c.waitClosed(); code != subprotocol.ClosePolicy {
		t.Errorf("close code %d, want 1008", code)
	}
	if n := c.count(DISCONNECT); n != 0 {
		t.Errorf("%d DISCONNECT packets sent to a 3.1.1 client", n)
	}
	if ci, _, ok := r.Client("c"); !ok || ci.Online {
		t.Errorf("after Disconnect: Client %+v found %v, want kept offline", ci, ok)
	}
}

// The admin API's gauges: transport and keep-alive from CONNECT, bytes as
// on the wire both ways (CONNECT included, packets split or coalesced in
// WebSocket messages), and the QoS 1/2 deliveries not yet acknowledged.
func TestSessionGauges(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dialOn(t, New(Config{}), r, Version5, func(ft *transporttest.Fake) { ft.PeerInfo.Transport = "wss" })
	in := 0
	send := func(p Packet) {
		b := AppendPacket(nil, p, c.version)
		in += len(b)
		c.sendRaw(b)
	}
	send(&Connect{ProtocolLevel: Version5, CleanStart: true, ClientID: "g", KeepAlive: 25})
	c.next(CONNACK)
	info := func() broker.ClientInfo {
		ci, _, ok := r.Client("g")
		if !ok {
			t.Fatal("Client(g) not found")
		}
		return ci
	}
	written := func() (n int) {
		for _, b := range c.ft.Written() {
			n += len(b)
		}
		return n
	}
	if ci := info(); ci.Transport != "wss" || ci.KeepAlive != 25*time.Second {
		t.Errorf("Transport %q KeepAlive %v, want wss 25s", ci.Transport, ci.KeepAlive)
	}
	send(&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "t/#", QoS: 2}}})
	c.next(SUBACK)
	for i, qos := range []byte{1, 1, 2, 0} {
		m := &broker.Message{Topic: "t/x", QoS: broker.QoS(qos), Payload: []byte{byte(i)}}
		if err := r.Publish(context.Background(), nil, m); err != nil {
			t.Fatal(err)
		}
	}
	ps := c.waitN("4 PUBLISH", 4, func(p Packet) bool { return p.Type() == PUBLISH })
	checkFor(t, "3 in flight", func() bool { return info().Inflight == 3 })
	// Two packets in one WebSocket message, one packet split over two.
	ack1 := AppendPacket(nil, &Ack{Kind: PUBACK, PacketID: ps[0].(*Publish).PacketID}, c.version)
	rec := AppendPacket(nil, &Ack{Kind: PUBREC, PacketID: ps[2].(*Publish).PacketID}, c.version)
	ping := AppendPacket(nil, &Pingreq{}, c.version)
	c.sendRaw(append(append([]byte(nil), ack1...), rec[:1]...))
	c.sendRaw(rec[1:])
	c.sendRaw(ping)
	in += len(ack1) + len(rec) + len(ping)
	c.next(PUBREL)
	c.next(PINGRESP)
	checkFor(t, "2 in flight (PUBACK; QoS 2 awaiting PUBCOMP)", func() bool { return info().Inflight == 2 })
	send(&Ack{Kind: PUBCOMP, PacketID: ps[2].(*Publish).PacketID})
	send(&Ack{Kind: PUBACK, PacketID: ps[1].(*Publish).PacketID})
	checkFor(t, "none in flight", func() bool { return info().Inflight == 0 })
	checkFor(t, "bytes in", func() bool { return info().BytesIn == uint64(in) })
	checkFor(t, "bytes out", func() bool { return info().BytesOut == uint64(written()) })
	if err := r.Disconnect("g"); err != nil {
		t.Fatal(err)
	}
	c.waitClosed()
	if d := c.lastDisconnect(); d == nil || d.ReasonCode != CodeAdministrativeAction {
		t.Errorf("DISCONNECT %+v, want 0x98", d)
	}
}
