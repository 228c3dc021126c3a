package mqtt

import (
	"strings"
	"testing"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

func TestMalformedInput(t *testing.T) {
	pub := func(p *Publish) []byte { return AppendPacket(nil, p, Version5) }
	for _, tc := range []struct {
		name string
		cfg  Config
		in   [][]byte
		code ReasonCode // v5 DISCONNECT
		ws   int
	}{
		{"reserved type 0", Config{}, [][]byte{{0x00, 0x00}}, CodeMalformedPacket, subprotocol.CloseProtocolError},
		{"PUBLISH QoS 3", Config{}, [][]byte{{0x36, 0x03, 0x00, 0x01, 'a'}}, CodeMalformedPacket, subprotocol.CloseProtocolError},
		{"SUBSCRIBE bad flags", Config{}, [][]byte{{0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}}, CodeMalformedPacket, subprotocol.CloseProtocolError},
		{"remaining length too long", Config{}, [][]byte{{0x30, 0xFF, 0xFF, 0xFF, 0xFF}}, CodeMalformedPacket, subprotocol.CloseProtocolError},
		{"wildcard topic name", Config{}, [][]byte{pub(&Publish{Topic: "a/+"})}, CodeTopicNameInvalid, subprotocol.CloseProtocolError},
		{"packet too large", Config{MaxPacketSize: 100}, [][]byte{pub(&Publish{Topic: "a", Payload: make([]byte, 200)})}, CodePacketTooLarge, subprotocol.CloseTooBig},
		{"receive maximum exceeded", Config{ReceiveMaximum: 1}, [][]byte{
			pub(&Publish{Topic: "a", QoS: 2, PacketID: 1}), pub(&Publish{Topic: "a", QoS: 2, PacketID: 2}),
		}, CodeReceiveMaximumExceeded, subprotocol.ClosePolicy},
		{"CONNACK from a client", Config{}, [][]byte{AppendPacket(nil, &Connack{}, Version5)}, CodeProtocolError, subprotocol.CloseProtocolError},
		{"AUTH", Config{}, [][]byte{{0xF0, 0x00}}, CodeProtocolError, subprotocol.CloseProtocolError},
		{"no local on a shared subscription", Config{}, [][]byte{AppendPacket(nil, &Subscribe{PacketID: 1,
			Subscriptions: []Subscription{{Filter: "$share/g/a", NoLocal: true}}}, Version5)}, CodeProtocolError, subprotocol.CloseProtocolError},
		{"subscription identifier from a client", Config{}, [][]byte{pub(&Publish{Topic: "a", Properties: Properties{SubscriptionIdentifier: []uint32{1}}})},
			CodeProtocolError, subprotocol.CloseProtocolError},
		{"packet id 0", Config{}, [][]byte{{0x40, 0x02, 0x00, 0x00}}, CodeProtocolError, subprotocol.CloseProtocolError},
	} {
		for _, level := range []byte{Version311, Version5} {
			if tc.code == CodeReceiveMaximumExceeded && level != Version5 {
				continue // 3.x has no Receive Maximum
			}
			if (tc.name == "AUTH" || strings.HasPrefix(tc.name, "subscription identifier")) && level != Version5 {
				continue
			}
			t.Run(tc.name+"/"+versionNames[level], func(t *testing.T) {
				r := newRouter(broker.Config{})
				c := dial(t, r, tc.cfg, level)
				c.mustConnect("bad", true, nil)
				for _, b := range tc.in {
					c.sendRaw(b)
				}
				ws := c.waitClosed()
				if level == Version5 {
					d := c.lastDisconnect()
					if d == nil || d.ReasonCode != tc.code {
						t.Errorf("DISCONNECT %+v, want %v", d, tc.code)
					}
					if ws != tc.ws {
						t.Errorf("close code %d, want %d", ws, tc.ws)
					}
				} else if d := c.lastDisconnect(); d != nil {
					t.Errorf("3.1.1 client got a DISCONNECT")
				}
				if n := r.Stats().Sessions; n != 0 {
					t.Errorf("%d sessions left", n)
				}
			})
		}
	}
}

func TestMalformedConnectV5(t *testing.T) {
	// A v5 CONNECT with the reserved flag set: CONNACK 0x81, then close.
	b := AppendPacket(nil, &Connect{ProtocolLevel: Version5, ClientID: "x"}, Version5)
	b[2+2+4+1] |= 0x01 // fixed header (2), protocol name (2+4), level (1): the flags byte
	c := dial(t, newRouter(broker.Config{}), Config{}, Version5)
	c.sendRaw(b)
	if ack := c.next(CONNACK).(*Connack); ack.ReasonCode != CodeMalformedPacket {
		t.Errorf("CONNACK %v, want 0x81", ack.ReasonCode)
	}
	c.waitClosed()
}

func TestOneBadClientDoesNotAffectOthers(t *testing.T) {
	r, sub, pub := pair(t, Version5, Config{})
	sub.subscribe(1, 0, "ok")
	bad := dial(t, r, Config{}, Version5)
	bad.mustConnect("bad", true, nil)
	bad.sendRaw([]byte{0x00, 0x00})
	bad.waitClosed()
	pub.send(&Publish{Topic: "ok", Payload: []byte("still")})
	if m := sub.next(PUBLISH).(*Publish); string(m.Payload) != "still" {
		t.Errorf("got %+v", m)
	}
}
