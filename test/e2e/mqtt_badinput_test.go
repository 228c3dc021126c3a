package e2e

// Bad MQTT input, as raw bytes over WebSocket (binary messages, subprotocol
// mqtt) and TCP. A v5 client gets DISCONNECT with the reason code (MQTT 5
// §4.13) and the close; a 3.1.1 client just the close [MQTT-4.8.0-1]. Healthy
// paho clients on the same server keep working throughout.

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/subprotocol/mqtt"
)

// MQTT 5 reason codes and WebSocket close codes the cases expect.
const (
	rcMalformed        = 0x81
	rcProtocolError    = 0x82
	rcPacketTooLarge   = 0x95
	rcTopicNameInvalid = 0x90
	rcTopicAliasInvald = 0x94

	wsProtocolError = 1002
	wsUnsupported   = 1003
	wsTooBig        = 1009
)

// badCase is one bad input after a successful CONNECT (or instead of it).
type badCase struct {
	name       string
	v5Only     bool
	preConnect bool                    // sent instead of CONNECT
	input      func(level byte) []byte // raw bytes
	v5Code     byte                    // expected DISCONNECT reason (v5, after CONNECT)
	wsCode     int                     // expected WebSocket close code
}

const badMaxPacket = 1024

var badCases = []badCase{
	{
		name:   "remaining length of 5 bytes",
		input:  func(byte) []byte { return []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f} },
		v5Code: rcMalformed, wsCode: wsProtocolError,
	},
	{
		name:   "remaining length not minimal",
		input:  func(byte) []byte { return []byte{0xc0, 0x80, 0x00} },
		v5Code: rcMalformed, wsCode: wsProtocolError,
	},
	{
		name:   "SUBSCRIBE reserved flags 0000",
		input:  func(l byte) []byte { return subscribePacket(l, 0x80, "a/b") },
		v5Code: rcMalformed, wsCode: wsProtocolError,
	},
	{
		name:   "SUBSCRIBE reserved flags 0011",
		input:  func(l byte) []byte { return subscribePacket(l, 0x83, "a/b") },
		v5Code: rcMalformed, wsCode: wsProtocolError,
	},
	{
		name: "PUBREL reserved flags 0000",
		input: func(l byte) []byte {
			// A QoS 2 PUBLISH first, so the PUBREL refers to a real flow.
			return append(publishPacket(l, 0x34, "bad/q2", []byte("x")), 0x60, 0x02, 0x00, 0x01)
		},
		v5Code: rcMalformed, wsCode: wsProtocolError,
	},
	{
		name:   "wildcard + in PUBLISH topic",
		input:  func(l byte) []byte { return publishPacket(l, 0x30, "bad/+/t", []byte("x")) },
		v5Code: rcTopicNameInvalid, wsCode: wsProtocolError,
	},
	{
		name:   "wildcard # in QoS 1 PUBLISH topic",
		input:  func(l byte) []byte { return publishPacket(l, 0x32, "bad/#", []byte("x")) },
		v5Code: rcTopicNameInvalid, wsCode: wsProtocolError,
	},
	{
		name:   "PUBLISH QoS 3",
		input:  func(l byte) []byte { return publishPacket(l, 0x36, "bad/q3", []byte("x")) },
		v5Code: rcMalformed, wsCode: wsProtocolError,
	},
	{
		name:   "second CONNECT",
		input:  func(l byte) []byte { return connectPacket(l, "again") },
		v5Code: rcProtocolError, wsCode: wsProtocolError,
	},
	{
		name:   "oversize PUBLISH",
		input:  func(l byte) []byte { return publishPacket(l, 0x30, "bad/big", make([]byte, 2*badMaxPacket)) },
		v5Code: rcPacketTooLarge, wsCode: wsTooBig,
	},
	{
		name: "oversize by one byte",
		input: func(l byte) []byte {
			// The whole packet is badMaxPacket+1 bytes.
			hdr := len(publishPacket(l, 0x30, "bad/edge", nil))
			n := badMaxPacket + 1 - hdr
			p := publishPacket(l, 0x30, "bad/edge", make([]byte, n))
			if len(p) != badMaxPacket+1 { // the length field grew
				p = publishPacket(l, 0x30, "bad/edge", make([]byte, n-(len(p)-badMaxPacket-1)))
			}
			return p
		},
		v5Code: rcPacketTooLarge, wsCode: wsTooBig,
	},
	{
		name:   "topic alias 0",
		v5Only: true,
		input: func(byte) []byte {
			b := appendStr(nil, "bad/alias")
			b = append(b, 3, 0x23, 0, 0) // properties: Topic Alias 0
			return packet(0x30, append(b, 'x'))
		},
		v5Code: rcTopicAliasInvald, wsCode: wsProtocolError,
	},
	{
		name:   "unknown topic alias",
		v5Only: true,
		input: func(byte) []byte {
			b := appendStr(nil, "")
			b = append(b, 3, 0x23, 0, 5) // properties: Topic Alias 5, never set
			return packet(0x30, append(b, 'x'))
		},
		v5Code: rcProtocolError, wsCode: wsProtocolError,
	},
	{
		name:       "PINGREQ before CONNECT",
		preConnect: true,
		input:      func(byte) []byte { return []byte{0xc0, 0x00} },
		wsCode:     wsProtocolError,
	},
	{
		name:       "PUBLISH before CONNECT",
		preConnect: true,
		input:      func(l byte) []byte { return publishPacket(4, 0x30, "bad/early", []byte("x")) },
		wsCode:     wsProtocolError,
	},
}

func TestMQTTBadInput(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t, func(c *mqttServerConfig) { c.MQTT.MaxPacketSize = badMaxPacket })

	// Healthy clients: paho.golang over WebSocket, paho.mqtt.golang over
	// TCP, both on one topic.
	healthTopic := uniq("health/")
	h5 := newV5(t, s, uniq("healthy5"))
	h5.sub(t, healthTopic, 1)
	h3 := newV3(t, s, v3Transports[1], uniq("healthy3"), true)
	h3.sub(t, healthTopic, 1)
	rounds := 0
	healthy := func(t *testing.T) {
		t.Helper()
		rounds++
		payload := fmt.Sprintf("still here %d", rounds)
		h5.pubs(t, healthTopic, 1, payload)
		h5.expect(t, healthTopic, payload)
		h3.expect(t, healthTopic, payload)
	}

	for _, transport := range []string{"ws", "tcp"} {
		for _, level := range []byte{5, 4} {
			for _, bc := range badCases {
				if bc.v5Only && level != 5 {
					continue
				}
				if bc.preConnect && level != 5 {
					continue // the server cannot know the version yet: once per transport
				}
				name := fmt.Sprintf("%s/v%s/%s", transport, map[byte]string{4: "3.1.1", 5: "5"}[level], bc.name)
				if bc.preConnect {
					name = fmt.Sprintf("%s/%s", transport, bc.name)
				}
				t.Run(name, func(t *testing.T) {
					r := dialRawMQTT(t, s, transport)
					if !bc.preConnect {
						ca := r.connectRaw(level, uniq("bad"))
						if level == 5 {
							if v := connackProperty(ca, 0x27, 4); v == nil || binary.BigEndian.Uint32(v) != badMaxPacket {
								t.Errorf("CONNACK Maximum Packet Size %v, want %d (packet % x)", v, badMaxPacket, ca.body)
							}
						}
					}
					in := bc.input(level)
					r.write(in)
					pkts, code := r.expectClosed()
					var ackish []rawPacket // PUBREC for the PUBREL case
					var disc []rawPacket
					for _, p := range pkts {
						if p.typ() == 14 {
							disc = append(disc, p)
						} else {
							ackish = append(ackish, p)
						}
					}
					for _, p := range ackish {
						if p.typ() != 5 { // PUBREC
							t.Errorf("unexpected packet %v before the close", p)
						}
					}
					switch {
					case level == 5 && !bc.preConnect:
						if len(disc) != 1 || len(disc[0].body) < 1 {
							t.Fatalf("input % x: got %v, want one DISCONNECT %#02x then the close", head(in), pkts, bc.v5Code)
						}
						if got := disc[0].body[0]; got != bc.v5Code {
							t.Errorf("input % x: DISCONNECT reason %#02x (%s), want %#02x (%s)", head(in), got,
								mqtt.ReasonCode(got), bc.v5Code, mqtt.ReasonCode(bc.v5Code))
						}
					default:
						if len(disc) != 0 {
							t.Errorf("input % x: got DISCONNECT %v; a %s connection gets none, only the close", head(in), disc,
								map[bool]string{true: "not yet CONNECTed", false: "3.1.1"}[bc.preConnect])
						}
					}
					if transport == "ws" && code != bc.wsCode {
						t.Errorf("input % x: WebSocket close code %d, want %d", head(in), code, bc.wsCode)
					}
					healthy(t)
				})
			}
		}
	}

	// A text frame closes with 1003 [MQTT-6.0.0-1], whatever it holds. The
	// server should close at once: 2 s is plenty and keeps a failure cheap.
	const textWait = 2 * time.Second
	for _, level := range []byte{5, 4} {
		v := map[byte]string{4: "3.1.1", 5: "5"}[level]
		// A whole PUBLISH (topic "a", payload "xy") that is valid UTF-8.
		wholePublish := []byte{0x30, 5, 0, 1, 'a', 'x', 'y'}
		if level == 5 {
			wholePublish = []byte{0x30, 6, 0, 1, 'a', 0, 'x', 'y'}
		}
		for _, tc := range []struct {
			name string
			text []byte
		}{
			{"text frame", []byte("PINGREQ")}, // 'P' 'I': a PUBREC header claiming 73 bytes
			{"text frame holding a whole packet", wholePublish},
		} {
			t.Run(fmt.Sprintf("ws/v%s/%s", v, tc.name), func(t *testing.T) {
				r := dialRawMQTT(t, s, "ws")
				r.connectRaw(level, uniq("text"))
				if err := r.ws.writeRaw(websocket.TextMessage, tc.text); err != nil {
					t.Fatalf("write text: %v", err)
				}
				pkts, code := r.expectClosedWithin(textWait)
				if code != wsUnsupported {
					t.Errorf("text frame %q: close code %d, want 1003 [MQTT-6.0.0-1]", tc.text, code)
				}
				for _, p := range pkts {
					if p.typ() != 14 {
						t.Errorf("text frame: unexpected packet %v", p)
					}
				}
				healthy(t)
			})
		}
		t.Run(fmt.Sprintf("ws/v%s/text frame before CONNECT", v), func(t *testing.T) {
			r := dialRawMQTT(t, s, "ws")
			if err := r.ws.writeRaw(websocket.TextMessage, connectPacket(level, "txt")); err != nil {
				t.Fatalf("write text: %v", err)
			}
			pkts, code := r.expectClosedWithin(textWait)
			if code != wsUnsupported || len(pkts) != 0 {
				t.Errorf("text CONNECT: got %v close %d, want no CONNACK and 1003", pkts, code)
			}
			healthy(t)
		})
	}

	// A CONNECT split over many WebSocket messages, and several packets in
	// one message, are fine [MQTT-6.0.0-2].
	t.Run("ws/packets span and share messages", func(t *testing.T) {
		r := dialRawMQTT(t, s, "ws")
		c := connectPacket(5, uniq("split"))
		for i := range c {
			r.write(c[i : i+1])
		}
		r.expect(2)
		topic := uniq("split/t")
		both := append(subscribePacket(5, 0x82, topic), publishPacket(5, 0x32, topic, []byte("hello"))...)
		both = append(both, 0xc0, 0x00)
		r.write(both)
		got := map[byte]int{}
		for range 4 { // SUBACK, PUBACK, PUBLISH, PINGRESP in some order
			got[r.expect255().typ()]++
		}
		if got[9] != 1 || got[4] != 1 || got[3] != 1 || got[13] != 1 {
			t.Errorf("got packet types %v, want SUBACK, PUBACK, PUBLISH, PINGRESP", got)
		}
		healthy(t)
	})

	// A packet of exactly MaxPacketSize is accepted.
	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport+"/v5/PUBLISH of exactly the maximum packet size", func(t *testing.T) {
			r := dialRawMQTT(t, s, transport)
			r.connectRaw(5, uniq("edge"))
			hdr := len(publishPacket(5, 0x32, "edge/ok", nil))
			p := publishPacket(5, 0x32, "edge/ok", make([]byte, badMaxPacket-hdr-1))
			if len(p) != badMaxPacket {
				t.Fatalf("built %d bytes, want %d", len(p), badMaxPacket)
			}
			r.write(p)
			if ack := r.expect(4); len(ack.body) < 2 || ack.body[1] != 1 || (len(ack.body) > 2 && ack.body[2] != 0) {
				t.Errorf("PUBACK %v, want id 1 success", ack)
			}
		})
	}

	// Both healthy clients are still on their first connection.
	select {
	case <-h5.down:
		t.Errorf("healthy paho.golang client lost its connection")
	default:
	}
	if !h3.c.IsConnectionOpen() {
		t.Errorf("healthy paho.mqtt.golang client lost its connection")
	}
}

// expect255 reads the next packet of any type.
func (r *rawMQTT) expect255() rawPacket {
	r.t.Helper()
	r.setReadDeadline(time.Now().Add(waitShort))
	defer r.setReadDeadline(time.Time{})
	p, err := r.readPacket()
	if err != nil {
		r.t.Fatalf("%s: read: %v", r.label, err)
	}
	return p
}

// head is the first bytes of an input, for messages.
func head(b []byte) []byte {
	if len(b) > 24 {
		return b[:24]
	}
	return b
}
