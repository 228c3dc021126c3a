package mqtt

import (
	"context"
	"fmt"
	"testing"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

func TestPersistentSessionResume(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			r := newRouter(broker.Config{})
			persistent := func(p *Connect) { p.Properties.SessionExpiry = 300 }
			c := dial(t, r, Config{}, level)
			if ack := c.mustConnect("dev", false, persistent); ack.SessionPresent {
				t.Error("session present on the first connection")
			}
			c.subscribe(1, 2, "q/#")
			pub := func(i int, qos broker.QoS) {
				_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "q/x", QoS: qos, Payload: []byte(fmt.Sprint(i))})
			}
			pub(1, 1) // acked
			pub(2, 1) // left unacked
			pub(3, 2) // PUBREC'd: PUBREL stage
			pub(4, 2) // left unacked
			checkFor(t, "4 deliveries", func() bool { return len(c.publishes()) == 4 })
			ps := c.publishes()
			c.send(&Ack{Kind: PUBACK, PacketID: ps[0].PacketID})
			c.send(&Ack{Kind: PUBREC, PacketID: ps[2].PacketID})
			c.next(PUBREL)
			c.ft.HangUp()
			c.waitClosed()

			pub(5, 1) // while offline: kept [MQTT-3.1.2-5]
			pub(6, 0) // QoS 0 while offline: not kept
			pub(7, 2)

			c2 := dial(t, r, Config{}, level)
			ack := c2.mustConnect("dev", false, persistent)
			if !ack.SessionPresent {
				t.Fatal("session not present on resume [MQTT-3.2.2-2]")
			}
			// Resent first, with their ids: PUBLISH 2 (DUP), PUBREL 3,
			// PUBLISH 4 (DUP) [MQTT-4.4.0-1], then the queued 5 and 7.
			checkFor(t, "resent and queued", func() bool { return len(c2.publishes()) == 4 && c2.count(PUBREL) == 1 })
			all := c2.packets()
			if _, ok := all[0].(*Connack); !ok {
				t.Fatalf("first packet %T", all[0])
			}
			var order []string
			for _, p := range all[1:] {
				switch p := p.(type) {
				case *Publish:
					order = append(order, fmt.Sprintf("%s/%d/%v", p.Payload, p.QoS, p.Dup))
				case *Ack:
					order = append(order, fmt.Sprintf("%v/%d", p.Kind, p.PacketID))
				}
			}
			want := []string{"2/1/true", fmt.Sprintf("PUBREL/%d", ps[2].PacketID), "4/2/true", "5/1/false", "7/2/false"}
			if fmt.Sprint(order) != fmt.Sprint(want) {
				t.Errorf("after resume: %v, want %v", order, want)
			}
			got := c2.publishes()
			if got[0].PacketID != ps[1].PacketID || got[1].PacketID != ps[3].PacketID {
				t.Errorf("resent ids %d, %d; want the original %d, %d", got[0].PacketID, got[1].PacketID, ps[1].PacketID, ps[3].PacketID)
			}
			// The subscription survived: new messages still arrive.
			pub(8, 1)
			checkFor(t, "live after resume", func() bool { return len(c2.publishes()) == 5 })

			// A clean start discards the session [MQTT-3.1.2-4].
			c2.send(&Disconnect{})
			c2.waitClosed()
			c3 := dial(t, r, Config{}, level)
			if ack := c3.mustConnect("dev", true, nil); ack.SessionPresent {
				t.Error("session present with a clean start")
			}
			pub(9, 1)
			c3.send(&Pingreq{})
			c3.next(PINGRESP)
			if n := len(c3.publishes()); n != 0 {
				t.Errorf("%d deliveries after a clean start", n)
			}
		})
	}
}

func TestInboundQoS2SurvivesReconnect(t *testing.T) {
	r := newRouter(broker.Config{})
	sub := dial(t, r, Config{}, Version311)
	sub.mustConnect("sub", true, nil)
	sub.subscribe(1, 2, "e")
	c := dial(t, r, Config{}, Version311)
	c.mustConnect("pub", false, nil)
	c.send(&Publish{Topic: "e", QoS: 2, PacketID: 7, Payload: []byte("once")})
	c.next(PUBREC)
	c.ft.HangUp()
	c.waitClosed()
	c2 := dial(t, r, Config{}, Version311)
	c2.mustConnect("pub", false, nil)
	// The client resends the PUBLISH it had no PUBREC for... or, as
	// here, with DUP after losing the PUBREC: still not published twice.
	c2.send(&Publish{Topic: "e", QoS: 2, PacketID: 7, Dup: true, Payload: []byte("once")})
	c2.next(PUBREC)
	c2.send(&Ack{Kind: PUBREL, PacketID: 7})
	c2.next(PUBCOMP)
	c2.send(&Publish{Topic: "e", Payload: []byte("marker")})
	sub.waitN("marker", 1, func(p Packet) bool { return p.Type() == PUBLISH && string(p.(*Publish).Payload) == "marker" })
	if n := len(sub.publishes()); n != 2 {
		t.Errorf("%d deliveries, want once + marker [MQTT-4.3.3-10]", n)
	}
}

func TestTakeover(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			r := newRouter(broker.Config{})
			old := dial(t, r, Config{}, level)
			old.mustConnect("same", false, func(p *Connect) { p.Properties.SessionExpiry = 60 })
			old.subscribe(1, 1, "t")
			_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "t", QoS: 1, Payload: []byte("unacked")})
			old.next(PUBLISH)

			nw := dial(t, r, Config{}, level)
			ack := nw.mustConnect("same", false, func(p *Connect) { p.Properties.SessionExpiry = 60 })
			if !ack.SessionPresent {
				t.Error("session not present after takeover")
			}
			code := old.waitClosed()
			if code != subprotocol.ClosePolicy {
				t.Errorf("old connection close code %d", code)
			}
			if level == Version5 {
				if d := old.lastDisconnect(); d == nil || d.ReasonCode != CodeSessionTakenOver {
					t.Errorf("old connection DISCONNECT %+v, want 0x8E [MQTT-3.1.4-3]", d)
				}
			}
			// The unacknowledged message moves to the new connection.
			m := nw.next(PUBLISH).(*Publish)
			if string(m.Payload) != "unacked" || !m.Dup {
				t.Errorf("resent %+v", m)
			}
			if n := r.Stats().Sessions; n != 1 {
				t.Errorf("%d sessions", n)
			}
		})
	}
}

func TestSessionExpiryFromZeroIsProtocolError(t *testing.T) {
	c := dial(t, newRouter(broker.Config{}), Config{}, Version5)
	c.mustConnect("c", true, nil)
	c.send(&Disconnect{Properties: Properties{SessionExpiry: 10}})
	if d := c.next(DISCONNECT).(*Disconnect); d.ReasonCode != CodeProtocolError {
		t.Errorf("DISCONNECT %v, want 0x82 [MQTT-3.14.2-2]", d.ReasonCode)
	}
	c.waitClosed()
}

func TestDisconnectChangesExpiry(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("c", false, func(p *Connect) { p.Properties.SessionExpiry = 60 })
	c.subscribe(1, 1, "x")
	c.send(&Disconnect{Properties: Properties{SessionExpiry: 120}})
	if code := c.waitClosed(); code != subprotocol.CloseNormal {
		t.Errorf("close code %d", code)
	}
	c2 := dial(t, r, Config{}, Version5)
	if ack := c2.mustConnect("c", false, func(p *Connect) { p.Properties.SessionExpiry = 60 }); !ack.SessionPresent {
		t.Error("session not kept")
	}
}

// TestDisconnectExpiryZeroEndsSession: an explicit Session Expiry Interval
// of 0 in DISCONNECT ends the session with the connection, unlike an absent
// one, which keeps the CONNECT value (MQTT 5 §3.14.2.2.2).
func TestDisconnectExpiryZeroEndsSession(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("c", false, func(p *Connect) { p.Properties.SessionExpiry = 60 })
	c.subscribe(1, 1, "x")
	c.send(&Disconnect{Properties: Properties{SessionExpiry: 0, HasSessionExpiry: true}})
	c.waitClosed()
	c2 := dial(t, r, Config{}, Version5)
	if ack := c2.mustConnect("c", false, func(p *Connect) { p.Properties.SessionExpiry = 60 }); ack.SessionPresent {
		t.Error("session kept after DISCONNECT set its expiry to 0")
	}
}

func TestSlowConsumer(t *testing.T) {
	r := newRouter(broker.Config{MaxPendingMsgs: 4})
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("slow", true, func(p *Connect) { p.Properties.ReceiveMaximum = 1 })
	c.subscribe(1, 1, "s")
	for range 20 {
		_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "s", QoS: 1, Payload: []byte("x")})
	}
	if code := c.waitClosed(); code != subprotocol.ClosePolicy {
		t.Errorf("close code %d, want 1008", code)
	}
	if d := c.lastDisconnect(); d == nil || d.ReasonCode != CodeQuotaExceeded {
		t.Errorf("DISCONNECT %+v, want 0x97", d)
	}
}

func TestShutdown(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("c", true, nil)
	_ = r.Shutdown(context.Background())
	if code := c.waitClosed(); code != subprotocol.CloseGoingAway {
		t.Errorf("close code %d", code)
	}
	if d := c.lastDisconnect(); d == nil || d.ReasonCode != CodeServerShuttingDown {
		t.Errorf("DISCONNECT %+v, want 0x8B", d)
	}
}

// A shared-subscription message that a member leaving for good did not
// acknowledge goes to another member of the group (MQTT 5 §4.8.2).
func TestSharedSubscriptionRedistributesOnLeave(t *testing.T) {
	r := newRouter(broker.Config{})
	a := dial(t, r, Config{}, Version5)
	a.mustConnect("a", true, nil)
	a.subscribe(1, 1, "$share/g/jobs")
	b := dial(t, r, Config{}, Version5)
	b.mustConnect("b", true, nil)
	b.subscribe(1, 1, "$share/g/jobs")
	for i := 0; i < 4; i++ {
		if err := r.Publish(context.Background(), nil, &broker.Message{Topic: "jobs", QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, "round robin", func() bool { return len(a.publishes())+len(b.publishes()) == 4 })
	held := len(a.publishes())
	if held == 0 {
		t.Fatal("round robin gave a nothing")
	}
	a.send(&Disconnect{}) // never acknowledged what it got
	a.waitClosed()
	checkFor(t, "a's messages at b", func() bool { return len(b.publishes()) == 4 })
	seen := map[string]bool{}
	for _, p := range b.publishes() {
		seen[string(p.Payload)] = true
	}
	if len(seen) != 4 {
		t.Fatalf("b has %v, want all four", seen)
	}
}
