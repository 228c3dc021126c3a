package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// pair connects a subscriber and a publisher on one router.
func pair(t *testing.T, level byte, cfg Config) (r *broker.Router, sub, pub *client) {
	t.Helper()
	r = newRouter(broker.Config{})
	sub = dial(t, r, cfg, level)
	sub.mustConnect("sub", true, nil)
	pub = dial(t, r, cfg, level)
	pub.mustConnect("pub", true, nil)
	return r, sub, pub
}

func TestQoSInbound(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			_, sub, pub := pair(t, level, Config{})
			sub.subscribe(1, 2, "a/+")
			pub.send(&Publish{Topic: "a/0", Payload: []byte("q0")})
			pub.send(&Publish{Topic: "a/1", QoS: 1, PacketID: 10, Payload: []byte("q1")})
			if a := pub.next(PUBACK).(*Ack); a.PacketID != 10 || a.ReasonCode != CodeSuccess {
				t.Errorf("PUBACK %+v", a)
			}
			// QoS 2: PUBREC; a duplicate before PUBREL is acknowledged but
			// not published again [MQTT-4.3.3-10].
			pub.send(&Publish{Topic: "a/2", QoS: 2, PacketID: 11, Payload: []byte("q2")})
			if a := pub.next(PUBREC).(*Ack); a.PacketID != 11 {
				t.Errorf("PUBREC %+v", a)
			}
			pub.send(&Publish{Topic: "a/2", QoS: 2, PacketID: 11, Dup: true, Payload: []byte("q2")})
			pub.next(PUBREC)
			pub.send(&Ack{Kind: PUBREL, PacketID: 11})
			if a := pub.next(PUBCOMP).(*Ack); a.PacketID != 11 {
				t.Errorf("PUBCOMP %+v", a)
			}
			// After PUBCOMP the id is free: a new PUBLISH with it is new.
			pub.send(&Publish{Topic: "a/2", QoS: 2, PacketID: 11, Payload: []byte("again")})
			pub.next(PUBREC)
			pub.send(&Ack{Kind: PUBREL, PacketID: 11})
			pub.next(PUBCOMP)

			// Deliveries keep their order, so once "again" is here a
			// repeated publication would be too.
			sub.waitN("again", 1, func(p Packet) bool { return p.Type() == PUBLISH && string(p.(*Publish).Payload) == "again" })
			got := sub.waitN("4 messages", 4, func(p Packet) bool { return p.Type() == PUBLISH })
			want := []struct {
				payload string
				qos     byte
			}{{"q0", 0}, {"q1", 1}, {"q2", 2}, {"again", 2}}
			for i, w := range want {
				p := got[i].(*Publish)
				if string(p.Payload) != w.payload || p.QoS != w.qos || p.Retain || p.Dup {
					t.Errorf("message %d = %+v, want %q QoS %d", i, p, w.payload, w.qos)
				}
				if (p.QoS > 0) != (p.PacketID != 0) {
					t.Errorf("message %d packet id %d with QoS %d", i, p.PacketID, p.QoS)
				}
			}
			if n := len(sub.publishes()); n != 4 {
				t.Errorf("%d messages, want 4: a duplicate QoS 2 PUBLISH was published again", n)
			}
		})
	}
}

func TestPubrelUnknownID(t *testing.T) {
	_, _, pub := pair(t, Version5, Config{})
	pub.send(&Ack{Kind: PUBREL, PacketID: 99})
	if a := pub.next(PUBCOMP).(*Ack); a.PacketID != 99 || a.ReasonCode != CodePacketIdentifierNotFound {
		t.Errorf("PUBCOMP %+v, want 0x92", a)
	}
}

func TestQoSOutbound(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			_, sub, pub := pair(t, level, Config{})
			if s := sub.subscribe(1, 1, "x"); s.ReasonCodes[0] != CodeGrantedQoS1 {
				t.Errorf("SUBACK %v", s.ReasonCodes)
			}
			if s := sub.subscribe(2, 2, "y"); s.ReasonCodes[0] != CodeGrantedQoS2 {
				t.Errorf("SUBACK %v", s.ReasonCodes)
			}
			// QoS is min(message, subscription).
			pub.send(&Publish{Topic: "x", QoS: 2, PacketID: 1, Payload: []byte("x")})
			pub.send(&Publish{Topic: "y", QoS: 2, PacketID: 2, Payload: []byte("y")})
			x := sub.next(PUBLISH).(*Publish)
			if x.QoS != 1 || x.PacketID == 0 {
				t.Errorf("x delivered %+v, want QoS 1", x)
			}
			y := sub.next(PUBLISH).(*Publish)
			if y.QoS != 2 || y.PacketID == 0 || y.PacketID == x.PacketID {
				t.Errorf("y delivered %+v, want QoS 2 with its own id", y)
			}
			sub.send(&Ack{Kind: PUBACK, PacketID: x.PacketID})
			sub.send(&Ack{Kind: PUBREC, PacketID: y.PacketID})
			if rel := sub.next(PUBREL).(*Ack); rel.PacketID != y.PacketID {
				t.Errorf("PUBREL %+v", rel)
			}
			sub.send(&Ack{Kind: PUBCOMP, PacketID: y.PacketID})
			c := serverConn(t, sub)
			checkFor(t, "inflight empty", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.out.inflight() == 0
			})
		})
	}
}

// serverConn finds the server side of a client through the router: only
// for white-box checks.
func serverConn(t *testing.T, cl *client) *conn {
	t.Helper()
	var found *conn
	checkFor(t, "server conn", func() bool {
		connsMu.Lock()
		defer connsMu.Unlock()
		found = conns[cl.ft]
		return found != nil
	})
	return found
}

func TestRetained(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			r, sub, pub := pair(t, level, Config{})
			pub.send(&Publish{Topic: "r/1", Retain: true, Payload: []byte("one")})
			pub.send(&Publish{Topic: "r/1", Retain: true, QoS: 1, PacketID: 1, Payload: []byte("one-b")}) // replaces
			pub.send(&Publish{Topic: "r/2", Retain: true, QoS: 1, PacketID: 2, Payload: []byte("two")})
			pub.send(&Publish{Topic: "r/2", Retain: true, QoS: 1, PacketID: 3}) // clears [MQTT-3.3.1-10]
			pub.waitN("PUBACK 3", 1, func(p Packet) bool { return p.Type() == PUBACK && p.(*Ack).PacketID == 3 })
			if n := len(r.Retained("r/#")); n != 1 {
				t.Fatalf("%d retained, want 1", n)
			}
			sub.subscribe(1, 1, "r/#")
			m := sub.next(PUBLISH).(*Publish)
			if string(m.Payload) != "one-b" || !m.Retain || m.QoS != 1 {
				t.Errorf("retained delivery %+v, want one-b with RETAIN [MQTT-3.3.1-8]", m)
			}
			// A live message published with RETAIN reaches an existing
			// subscriber without it [MQTT-3.3.1-9].
			pub.send(&Publish{Topic: "r/3", Retain: true, Payload: []byte("live")})
			if m := sub.next(PUBLISH).(*Publish); string(m.Payload) != "live" || m.Retain {
				t.Errorf("live delivery %+v, want RETAIN 0", m)
			}
		})
	}
}

func TestRetainHandling(t *testing.T) {
	r, sub, _ := pair(t, Version5, Config{})
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "h", Payload: []byte("kept"), Retain: true})
	subscribe := func(id uint16, rh byte, rap bool) {
		sub.subscribePacket(&Subscribe{PacketID: id, Subscriptions: []Subscription{{Filter: "h", QoS: 0, RetainHandling: rh, RetainAsPublished: rap}}})
	}
	subscribe(1, 1, false) // new: sent
	subscribe(2, 1, false) // existed: not sent
	subscribe(3, 2, false) // never
	subscribe(4, 0, true)  // always
	// Retain As Published keeps the flag on live messages [MQTT-3.3.1-13].
	// The live message queues behind the retained ones, so it also marks
	// the end of them.
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "h", Payload: []byte("live"), Retain: true})
	sub.waitN("live", 1, func(p Packet) bool { return p.Type() == PUBLISH && string(p.(*Publish).Payload) == "live" })
	ps := sub.publishes()
	if len(ps) != 3 {
		t.Fatalf("%d deliveries, want 2 retained (handling 1 new, 0) and the live one", len(ps))
	}
	for _, m := range ps[:2] {
		if string(m.Payload) != "kept" || !m.Retain {
			t.Errorf("retained delivery %+v", m)
		}
	}
	if m := ps[2]; !m.Retain {
		t.Errorf("live delivery with Retain As Published has RETAIN 0")
	}
}

func TestWill(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level byte
		end   func(c *client)
		want  bool
	}{
		{"3.1.1 abrupt close", Version311, func(c *client) { c.ft.HangUp() }, true},
		{"3.1.1 DISCONNECT", Version311, func(c *client) { c.send(&Disconnect{}) }, false},
		{"v5 abrupt close", Version5, func(c *client) { c.ft.HangUp() }, true},
		{"v5 DISCONNECT", Version5, func(c *client) { c.send(&Disconnect{}) }, false},
		{"v5 DISCONNECT 0x04", Version5, func(c *client) { c.send(&Disconnect{ReasonCode: CodeDisconnectWithWill}) }, true},
		{"v5 DISCONNECT 0x80", Version5, func(c *client) { c.send(&Disconnect{ReasonCode: CodeUnspecifiedError}) }, true},
		{"v5 protocol error", Version5, func(c *client) { c.sendRaw([]byte{0x36, 0}) }, true}, // QoS 3 PUBLISH
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(broker.Config{})
			w := dial(t, r, Config{}, tc.level)
			w.mustConnect("watcher", true, nil)
			w.subscribe(1, 1, "status/#")
			c := dial(t, r, Config{}, tc.level)
			c.mustConnect("dev", true, func(p *Connect) {
				p.Will = &Will{Topic: "status/dev", Payload: []byte("offline"), QoS: 1, Retain: true}
			})
			tc.end(c)
			c.waitClosed()
			// A marker published after the close proves the will would
			// have arrived before it.
			_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "status/marker", Payload: []byte("m")})
			w.waitN("marker", 1, func(p Packet) bool { return p.Type() == PUBLISH && p.(*Publish).Topic == "status/marker" })
			var will *Publish
			for _, p := range w.publishes() {
				if p.Topic == "status/dev" {
					will = p
				}
			}
			if (will != nil) != tc.want {
				t.Fatalf("will published = %v, want %v", will != nil, tc.want)
			}
			if will != nil {
				if string(will.Payload) != "offline" || will.QoS != 1 {
					t.Errorf("will %+v", will)
				}
				if len(r.Retained("status/dev")) != 1 {
					t.Error("will with RETAIN not retained")
				}
			}
		})
	}
}

func TestWillDelayCancelledByReconnect(t *testing.T) {
	r := newRouter(broker.Config{})
	w := dial(t, r, Config{}, Version5)
	w.mustConnect("watcher", true, nil)
	w.subscribe(1, 0, "status/#")
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("dev", false, func(p *Connect) {
		p.Properties.SessionExpiry = 60
		p.Will = &Will{Topic: "status/dev", Payload: []byte("offline"), Properties: Properties{WillDelay: 60}}
	})
	c.ft.HangUp()
	c.waitClosed()
	c2 := dial(t, r, Config{}, Version5)
	if ack := c2.mustConnect("dev", false, func(p *Connect) { p.Properties.SessionExpiry = 60 }); !ack.SessionPresent {
		t.Error("session not present")
	}
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "status/marker"})
	w.waitN("marker", 1, func(p Packet) bool { return p.Type() == PUBLISH })
	for _, p := range w.publishes() {
		if p.Topic == "status/dev" {
			t.Error("delayed will published although the client came back [MQTT-3.1.3-9]")
		}
	}
}

func TestSharedSubscriptionRoundRobin(t *testing.T) {
	r := newRouter(broker.Config{})
	a := dial(t, r, Config{}, Version5)
	a.mustConnect("a", true, nil)
	b := dial(t, r, Config{}, Version311)
	b.mustConnect("b", true, nil)
	a.subscribe(1, 1, "$share/g/jobs/+")
	b.subscribe(1, 1, "$share/g/jobs/+")
	pub := dial(t, r, Config{}, Version5)
	pub.mustConnect("p", true, nil)
	for i := range 4 {
		pub.send(&Publish{Topic: "jobs/x", QoS: 1, PacketID: uint16(i + 1), Payload: []byte{byte('0' + i)}})
	}
	checkFor(t, "4 jobs", func() bool { return len(a.publishes())+len(b.publishes()) == 4 })
	if na, nb := len(a.publishes()), len(b.publishes()); na != 2 || nb != 2 {
		t.Errorf("a got %d, b got %d; want 2 each", na, nb)
	}
	if m := a.publishes()[0]; m.Topic != "jobs/x" {
		t.Errorf("shared delivery topic %q", m.Topic)
	}
}

func TestTopicAliasInbound(t *testing.T) {
	_, sub, pub := pair(t, Version5, Config{TopicAliasMaximum: 4})
	sub.subscribe(1, 0, "long/topic/name")
	pub.send(&Publish{Topic: "long/topic/name", Properties: Properties{TopicAlias: 3}, Payload: []byte("1")})
	pub.send(&Publish{Properties: Properties{TopicAlias: 3}, Payload: []byte("2")})
	checkFor(t, "2 messages", func() bool { return len(sub.publishes()) == 2 })
	for _, m := range sub.publishes() {
		if m.Topic != "long/topic/name" || m.Properties.TopicAlias != 0 {
			t.Errorf("delivery %+v", m)
		}
	}
	pub.send(&Publish{Topic: "t", Properties: Properties{TopicAlias: 5}})
	if d := pub.next(DISCONNECT).(*Disconnect); d.ReasonCode != CodeTopicAliasInvalid {
		t.Errorf("DISCONNECT %v, want 0x94", d.ReasonCode)
	}
	pub.waitClosed()
}

func TestTopicAliasUnknown(t *testing.T) {
	_, _, pub := pair(t, Version5, Config{})
	pub.send(&Publish{Properties: Properties{TopicAlias: 2}, Payload: []byte("x")})
	if d := pub.next(DISCONNECT).(*Disconnect); d.ReasonCode != CodeProtocolError {
		t.Errorf("DISCONNECT %v, want 0x82", d.ReasonCode)
	}
}

func TestV5Properties(t *testing.T) {
	r, sub, pub := pair(t, Version5, Config{})
	sub.subscribePacket(&Subscribe{PacketID: 1, Properties: Properties{SubscriptionIdentifier: []uint32{42}},
		Subscriptions: []Subscription{{Filter: "req/#", QoS: 1}}})
	pub.send(&Publish{Topic: "req/1", QoS: 1, PacketID: 1, Payload: []byte(`{}`), Properties: Properties{
		ContentType: "application/json", ResponseTopic: "resp/1", CorrelationData: []byte{1, 2},
		PayloadFormat: 1, MessageExpiry: 60, HasMessageExpiry: true,
		User: []UserProperty{{"k", "v"}, {"k", "w"}},
	}})
	m := sub.next(PUBLISH).(*Publish)
	p := m.Properties
	if p.ContentType != "application/json" || p.ResponseTopic != "resp/1" || !bytes.Equal(p.CorrelationData, []byte{1, 2}) ||
		p.PayloadFormat != 1 || len(p.User) != 2 || p.User[1] != (UserProperty{"k", "w"}) {
		t.Errorf("properties %+v", p)
	}
	if !p.HasMessageExpiry || p.MessageExpiry < 58 || p.MessageExpiry > 60 {
		t.Errorf("message expiry %v %d, want about 60 [MQTT-3.3.2-6]", p.HasMessageExpiry, p.MessageExpiry)
	}
	if len(p.SubscriptionIdentifier) != 1 || p.SubscriptionIdentifier[0] != 42 {
		t.Errorf("subscription identifiers %v, want [42] [MQTT-3.3.4-3]", p.SubscriptionIdentifier)
	}
	// An expired message is not delivered [MQTT-3.3.2-5].
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "req/old", Payload: []byte("old"), Expires: time.Now().Add(-time.Second)})
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "req/new", Payload: []byte("new")})
	checkFor(t, "new", func() bool { return len(sub.publishes()) == 2 })
	if m := sub.publishes()[1]; m.Topic != "req/new" {
		t.Errorf("got %q after the expired one", m.Topic)
	}
}

func TestNoLocal(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("self", true, nil)
	c.subscribePacket(&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "chat", NoLocal: true}}})
	c.send(&Publish{Topic: "chat", QoS: 1, PacketID: 1, Payload: []byte("mine")})
	c.next(PUBACK) // published (and not delivered) before "theirs"
	other := dial(t, r, Config{}, Version5)
	other.mustConnect("other", true, nil)
	other.send(&Publish{Topic: "chat", Payload: []byte("theirs")})
	c.next(PUBLISH)
	if ps := c.publishes(); len(ps) != 1 || string(ps[0].Payload) != "theirs" {
		t.Errorf("deliveries %v, want only theirs [MQTT-3.8.3-3]", ps)
	}
}

func TestReceiveMaximumOutbound(t *testing.T) {
	r := newRouter(broker.Config{})
	sub := dial(t, r, Config{}, Version5)
	sub.mustConnect("sub", true, func(p *Connect) { p.Properties.ReceiveMaximum = 2 })
	sub.subscribe(1, 1, "w")
	for i := range 5 {
		_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "w", QoS: 1, Payload: []byte{byte('0' + i)}})
	}
	c := serverConn(t, sub)
	checkFor(t, "2 in flight, 3 waiting", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.out.inflight() == 2 && len(c.out.queue) == 3
	})
	if n := len(sub.publishes()); n != 2 {
		t.Fatalf("%d sent, want 2 within Receive Maximum [MQTT-3.3.4-9]", n)
	}
	sub.send(&Ack{Kind: PUBACK, PacketID: sub.publishes()[0].PacketID})
	checkFor(t, "third", func() bool { return len(sub.publishes()) == 3 })
	for _, m := range sub.publishes()[1:3] {
		sub.send(&Ack{Kind: PUBACK, PacketID: m.PacketID})
	}
	checkFor(t, "all 5", func() bool { return len(sub.publishes()) == 5 })
	for i, m := range sub.publishes() {
		if m.Payload[0] != byte('0'+i) {
			t.Errorf("message %d is %q: order lost", i, m.Payload)
		}
	}
}

func TestMaximumPacketSizeSkips(t *testing.T) {
	r := newRouter(broker.Config{})
	sub := dial(t, r, Config{}, Version5)
	sub.mustConnect("sub", true, func(p *Connect) { p.Properties.MaximumPacketSize = 64 })
	sub.subscribe(1, 1, "m")
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "m", QoS: 1, Payload: make([]byte, 100)})
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "m", QoS: 1, Payload: []byte("small")})
	m := sub.next(PUBLISH).(*Publish)
	if string(m.Payload) != "small" {
		t.Errorf("got %d bytes, want the small message only [MQTT-3.1.2-25]", len(m.Payload))
	}
	c := serverConn(t, sub)
	c.mu.Lock()
	n := c.out.inflight()
	c.mu.Unlock()
	if n != 1 {
		t.Errorf("%d in flight, want 1 (the skipped one holds no id)", n)
	}
}

func TestPublishNotAuthorized(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			r := newRouter(broker.Config{Authorizer: denyTopic("secret")})
			c := dial(t, r, Config{}, level)
			c.mustConnect("c", true, nil)
			c.send(&Publish{Topic: "secret", QoS: 1, PacketID: 5})
			if level == Version5 {
				if a := c.next(PUBACK).(*Ack); a.ReasonCode != CodeNotAuthorized {
					t.Errorf("PUBACK %v, want 0x87", a.ReasonCode)
				}
				c.send(&Publish{Topic: "secret", QoS: 2, PacketID: 6})
				if a := c.next(PUBREC).(*Ack); a.ReasonCode != CodeNotAuthorized {
					t.Errorf("PUBREC %v, want 0x87", a.ReasonCode)
				}
				if s := c.subscribe(1, 0, "secret"); s.ReasonCodes[0] != CodeNotAuthorized {
					t.Errorf("SUBACK %v, want 0x87", s.ReasonCodes)
				}
				return
			}
			// 3.1.1 cannot refuse a PUBLISH: it is acknowledged, dropped
			// and counted, and the connection is kept.
			if a := c.next(PUBACK).(*Ack); a.PacketID != 5 {
				t.Errorf("PUBACK %+v", a)
			}
			c.send(&Publish{Topic: "secret", QoS: 2, PacketID: 6})
			c.next(PUBREC)
			c.send(&Ack{Kind: PUBREL, PacketID: 6})
			if a := c.next(PUBCOMP).(*Ack); a.PacketID != 6 {
				t.Errorf("PUBCOMP %+v", a)
			}
			if s := c.subscribe(1, 0, "secret", "open"); s.ReasonCodes[0] != Code3SubackFailure || s.ReasonCodes[1] != 0 {
				t.Errorf("SUBACK %v, want 0x80, 0x00", s.ReasonCodes)
			}
			c.send(&Publish{Topic: "open", QoS: 1, PacketID: 7})
			if p := c.next(PUBLISH).(*Publish); p.Topic != "open" {
				t.Errorf("delivery %+v", p)
			}
			if c.ft.Closed() {
				t.Error("the connection was closed")
			}
		})
	}
}

type denyTopic string

func (d denyTopic) Allow(_ broker.Identity, _ string, _ broker.Op, dest string) bool {
	return dest != string(d)
}

func TestUnsubscribe(t *testing.T) {
	_, sub, pub := pair(t, Version5, Config{})
	sub.subscribe(1, 0, "u", "marker")
	sub.send(&Unsubscribe{PacketID: 2, Filters: []string{"u", "never"}})
	a := sub.next(UNSUBACK).(*Unsuback)
	if a.PacketID != 2 || len(a.ReasonCodes) != 2 || a.ReasonCodes[0] != CodeSuccess || a.ReasonCodes[1] != CodeNoSubscriptionExisted {
		t.Errorf("UNSUBACK %+v", a)
	}
	pub.send(&Publish{Topic: "u"})
	pub.send(&Publish{Topic: "marker"})
	sub.next(PUBLISH)
	if ps := sub.publishes(); len(ps) != 1 || ps[0].Topic != "marker" {
		t.Errorf("deliveries %+v after UNSUBSCRIBE, want the marker only", ps)
	}
}

// TestConcurrentQoS1 runs several publishers into one acknowledging QoS 1
// subscriber with a small window, under the race detector: every message
// arrives once, each publisher's in order.
func TestConcurrentQoS1(t *testing.T) {
	r := newRouter(broker.Config{MaxPendingMsgs: 10000})
	sub := dial(t, r, Config{}, Version5)
	sub.mustConnect("sub", true, func(p *Connect) { p.Properties.ReceiveMaximum = 8 })
	sub.subscribe(1, 1, "load/+")
	const pubs, each = 4, 200
	// The subscriber acknowledges what it gets, from its own goroutine.
	stop := make(chan struct{})
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		seen := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			ps := sub.publishesNoFail()
			for _, p := range ps[seen:] {
				sub.send(&Ack{Kind: PUBACK, PacketID: p.PacketID})
			}
			seen = len(ps)
			time.Sleep(time.Millisecond)
		}
	}()
	for i := range pubs {
		p := dial(t, r, Config{}, Version311)
		p.mustConnect(fmt.Sprint("p", i), true, nil)
		go func() {
			for j := range each {
				p.send(&Publish{Topic: fmt.Sprint("load/", i), QoS: 1, PacketID: uint16(j + 1), Payload: []byte(fmt.Sprint(j))})
			}
		}()
	}
	checkFor(t, "all messages", func() bool { return len(sub.publishes()) == pubs*each })
	close(stop)
	<-acked
	next := map[string]int{}
	for _, p := range sub.publishes() {
		if want := fmt.Sprint(next[p.Topic]); string(p.Payload) != want {
			t.Fatalf("%s: got %s, want %s", p.Topic, p.Payload, want)
		}
		next[p.Topic]++
	}
}

// TestTopicAliasesOutbound: with the client's Topic Alias Maximum 2, the
// first two topics get aliases 1 and 2, sent once with the topic and then
// alone with an empty topic name; a third topic goes out in full
// (MQTT 5 §3.3.2.3.4, [MQTT-3.3.2-9]).
func TestTopicAliasesOutbound(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("aliased", true, func(p *Connect) { p.Properties.TopicAliasMaximum = 2 })
	c.subscribe(1, 0, "al/#")
	for _, topic := range []string{"al/a", "al/a", "al/b", "al/c", "al/b", "al/c"} {
		if err := r.Publish(context.Background(), nil, &broker.Message{Topic: topic, Payload: []byte(topic)}); err != nil {
			t.Fatal(err)
		}
	}
	got := c.waitN("6 PUBLISH", 6, func(p Packet) bool { return p.Type() == PUBLISH })
	want := []struct {
		topic string
		alias uint16
	}{{"al/a", 1}, {"", 1}, {"al/b", 2}, {"al/c", 0}, {"", 2}, {"al/c", 0}}
	for i, p := range got {
		pub := p.(*Publish)
		if pub.Topic != want[i].topic || pub.Properties.TopicAlias != want[i].alias {
			t.Errorf("PUBLISH %d (%s): topic %q alias %d, want %q alias %d", i, pub.Payload, pub.Topic, pub.Properties.TopicAlias, want[i].topic, want[i].alias)
		}
	}
	// A 3.1.1-style client that sets no maximum gets none.
	c2 := dial(t, r, Config{}, Version5)
	c2.mustConnect("plain", true, nil)
	c2.subscribe(1, 0, "al/#")
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "al/a", Payload: []byte("x")})
	if p := c2.next(PUBLISH).(*Publish); p.Topic != "al/a" || p.Properties.TopicAlias != 0 {
		t.Errorf("client without Topic Alias Maximum got topic %q alias %d", p.Topic, p.Properties.TopicAlias)
	}
}
