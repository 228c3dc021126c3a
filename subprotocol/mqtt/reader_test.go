package mqtt

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadPacketErrors checks that every invalid packet fails with the
// reason code the spec asks for, naming the check.
func TestReadPacketErrors(t *testing.T) {
	v4, v5 := Version311, Version5
	connect := func(level int, name string, flags int, rest ...any) []byte {
		body := b(0, len(name), name, level, flags, 0, 60)
		body = append(body, b(rest...)...)
		return append(b(0x10, len(body)), body...)
	}
	tests := []struct {
		name   string
		v      byte
		raw    []byte
		code   ReasonCode
		reason string // substring of Error.Reason
	}{
		// Fixed header and Remaining Length.
		{"reserved packet type 0", v4, b(0x00, 0), CodeMalformedPacket, "reserved packet type"},
		{"first packet is not CONNECT", 0, b(0xC0, 0), CodeProtocolError, "[MQTT-3.1.0-1]"},
		{"second CONNECT", v4, fixtures[0].raw, CodeProtocolError, "[MQTT-3.1.0-2]"},
		{"AUTH in 3.1.1", v4, b(0xF0, 0), CodeMalformedPacket, "AUTH"},
		{"CONNECT flags 0001", 0, b(0x11, 0), CodeMalformedPacket, "[MQTT-2.2.2-1]"},
		{"PUBACK flags 0001", v4, b(0x41, 2, 0, 1), CodeMalformedPacket, "[MQTT-2.2.2-1]"},
		{"PUBREL flags 0000", v4, b(0x60, 2, 0, 1), CodeMalformedPacket, "[MQTT-2.2.2-1]"},
		{"SUBSCRIBE flags 0000", v5, b(0x80, 7, 0, 1, 0, 0, 1, "a", 0), CodeMalformedPacket, "[MQTT-2.2.2-1]"},
		{"UNSUBSCRIBE flags 0011", v4, b(0xA3, 5, 0, 1, 0, 1, "a"), CodeMalformedPacket, "[MQTT-2.2.2-1]"},
		{"PINGREQ flags 1000", v5, b(0xC8, 0), CodeMalformedPacket, "[MQTT-2.2.2-1]"},
		{"DISCONNECT flags 0010", v5, b(0xE2, 0), CodeMalformedPacket, "[MQTT-2.2.2-1]"},
		{"remaining length of 5 bytes", v4, b(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F), CodeMalformedPacket, "longer than 4 bytes"},
		{"remaining length not minimal", v4, b(0xC0, 0x80, 0x00), CodeMalformedPacket, "[MQTT-1.5.5-1]"},
		{"remaining length over the maximum", v4, b(0x30, 0xFF, 0xFF, 0xFF, 0x7F), CodePacketTooLarge, "maximum packet size"},

		// PUBLISH.
		{"PUBLISH QoS 3", v4, b(0x36, 5, 0, 1, "a", 0, 1), CodeMalformedPacket, "[MQTT-3.3.1-4]"},
		{"PUBLISH QoS 0 with DUP", v4, b(0x38, 3, 0, 1, "a"), CodeMalformedPacket, "[MQTT-3.3.1-2]"},
		{"PUBLISH QoS 1 packet identifier 0", v4, b(0x32, 5, 0, 1, "a", 0, 0), CodeProtocolError, "[MQTT-2.3.1-1]"},
		{"PUBLISH QoS 2 packet identifier 0", v5, b(0x34, 6, 0, 1, "a", 0, 0, 0), CodeProtocolError, "[MQTT-2.3.1-1]"},
		{"PUBLISH QoS 1 without packet identifier", v4, b(0x32, 4, 0, 1, "a", 0), CodeMalformedPacket, "too short"},
		{"PUBLISH topic with '+'", v4, b(0x30, 5, 0, 3, "a/+"), CodeTopicNameInvalid, "[MQTT-3.3.2-2]"},
		{"PUBLISH topic with '#'", v5, b(0x30, 4, 0, 1, "#", 0), CodeTopicNameInvalid, "[MQTT-3.3.2-2]"},
		{"PUBLISH empty topic in 3.1.1", v4, b(0x30, 2, 0, 0), CodeTopicNameInvalid, "[MQTT-4.7.3-1]"},
		{"PUBLISH empty topic without alias in 5.0", v5, b(0x30, 3, 0, 0, 0), CodeProtocolError, "topic alias"},
		{"PUBLISH topic alias 0", v5, b(0x30, 7, 0, 1, "a", 3, 0x23, 0, 0), CodeTopicAliasInvalid, "[MQTT-3.3.2-8]"},
		{"PUBLISH topic not UTF-8", v4, b(0x30, 4, 0, 2, 0xC3, 0x28), CodeMalformedPacket, "[MQTT-1.5.4-1]"},
		{"PUBLISH topic with a surrogate", v4, b(0x30, 5, 0, 3, 0xED, 0xA0, 0x80), CodeMalformedPacket, "[MQTT-1.5.4-1]"},
		{"PUBLISH topic with U+0000", v4, b(0x30, 5, 0, 3, "a", 0, "b"), CodeMalformedPacket, "[MQTT-1.5.4-2]"},
		{"PUBLISH topic overlong encoding", v4, b(0x30, 4, 0, 2, 0xC0, 0x80), CodeMalformedPacket, "[MQTT-1.5.4-1]"},
		{"PUBLISH topic longer than the packet", v4, b(0x30, 3, 0, 5, "a"), CodeMalformedPacket, "past the end"},
		{"PUBLISH without topic length", v4, b(0x30, 1, 0), CodeMalformedPacket, "too short"},

		// Properties.
		{"property not allowed in PUBLISH", v5, b(0x30, 9, 0, 1, "a", 5, 0x11, 0, 0, 0, 1), CodeMalformedPacket, "not allowed in PUBLISH"},
		{"unknown property identifier", v5, b(0x30, 6, 0, 1, "a", 2, 0x05, 0), CodeMalformedPacket, "unknown property"},
		{"property identifier with continuation bit", v5, b(0x30, 6, 0, 1, "a", 2, 0x81, 0x01), CodeMalformedPacket, "unknown property"},
		{"content type twice", v5, b(0x30, 12, 0, 1, "a", 8, 0x03, 0, 1, "x", 0x03, 0, 1, "y"), CodeProtocolError, "more than once"},
		{"topic alias twice", v5, b(0x30, 10, 0, 1, "a", 6, 0x23, 0, 1, 0x23, 0, 2), CodeProtocolError, "more than once"},
		{"payload format 2", v5, b(0x30, 6, 0, 1, "a", 2, 0x01, 2), CodeProtocolError, "payload format"},
		{"property length past the end", v5, b(0x30, 4, 0, 1, "a", 5), CodeMalformedPacket, "property length"},
		{"property value past the end", v5, b(0x30, 7, 0, 1, "a", 3, 0x02, 0, 0), CodeMalformedPacket, "too short"},
		{"response topic with wildcard", v5, b(0x30, 9, 0, 1, "a", 5, 0x08, 0, 2, "a#"), CodeTopicNameInvalid, "wildcard"},
		{"user property without value", v5, b(0x30, 8, 0, 1, "a", 4, 0x26, 0, 1, "k"), CodeMalformedPacket, "too short"},
		{"user property not UTF-8", v5, b(0x30, 11, 0, 1, "a", 7, 0x26, 0, 1, 0xFF, 0, 1, "v"), CodeMalformedPacket, "UTF-8"},
		{"subscription identifier 0", v5, b(0x82, 8, 0, 1, 2, 0x0B, 0, 0, 1, "a", 0), CodeProtocolError, "subscription identifier 0"},
		{"subscription identifier twice in SUBSCRIBE", v5, b(0x82, 10, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, "a", 0), CodeProtocolError, "more than once"},
		{"subscription identifier of 5 bytes", v5, b(0x82, 12, 0, 1, 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0, 1, "a", 0), CodeMalformedPacket, "longer than 4 bytes"},
		{"reason string in PUBLISH", v5, b(0x30, 8, 0, 1, "a", 4, 0x1F, 0, 1, "x"), CodeMalformedPacket, "not allowed"},
		{"will delay in CONNECT properties", 0, connect(5, "MQTT", 0x02, 5, 0x18, 0, 0, 0, 1, 0, 0), CodeMalformedPacket, "not allowed in CONNECT"},
		{"session expiry in will properties", 0, connect(5, "MQTT", 0x06, 0, 0, 0, 5, 0x11, 0, 0, 0, 1, 0, 1, "t", 0, 0), CodeMalformedPacket, "not allowed in will properties"},
		{"receive maximum 0", 0, connect(5, "MQTT", 0x02, 3, 0x21, 0, 0, 0, 0), CodeProtocolError, "receive maximum 0"},
		{"maximum packet size 0", 0, connect(5, "MQTT", 0x02, 5, 0x27, 0, 0, 0, 0, 0, 0), CodeProtocolError, "maximum packet size 0"},
		{"request problem information 2", 0, connect(5, "MQTT", 0x02, 2, 0x17, 2, 0, 0), CodeProtocolError, "not 0 or 1"},
		{"request response information twice", 0, connect(5, "MQTT", 0x02, 4, 0x19, 1, 0x19, 1, 0, 0), CodeProtocolError, "more than once"},
		{"authentication data without method", 0, connect(5, "MQTT", 0x02, 4, 0x16, 0, 1, 9, 0, 0), CodeProtocolError, "authentication method"},
		{"maximum QoS 2 in CONNACK", v5, b(0x20, 5, 0, 0, 2, 0x24, 2), CodeProtocolError, "maximum QoS"},
		{"retain available 2 in CONNACK", v5, b(0x20, 5, 0, 0, 2, 0x25, 2), CodeProtocolError, "not 0 or 1"},

		// CONNECT.
		{"unknown protocol name", 0, connect(4, "MQTX", 0x02, 0, 0), CodeUnsupportedProtocolVersion, "[MQTT-3.1.2-1]"},
		{"protocol level 6", 0, connect(6, "MQTT", 0x02, 0, 0), CodeUnsupportedProtocolVersion, "[MQTT-3.1.2-2]"},
		{"MQTT with level 3", 0, connect(3, "MQTT", 0x02, 0, 0), CodeUnsupportedProtocolVersion, "[MQTT-3.1.2-2]"},
		{"MQIsdp with level 4", 0, connect(4, "MQIsdp", 0x02, 0, 0), CodeUnsupportedProtocolVersion, "[MQTT-3.1.2-2]"},
		{"CONNECT reserved flag", 0, connect(4, "MQTT", 0x03, 0, 0), CodeMalformedPacket, "[MQTT-3.1.2-3]"},
		{"CONNECT reserved flag in 5.0", 0, connect(5, "MQTT", 0x01, 0, 0, 0), CodeMalformedPacket, "[MQTT-3.1.2-3]"},
		{"will QoS without will", 0, connect(4, "MQTT", 0x0A, 0, 0), CodeMalformedPacket, "[MQTT-3.1.2-11]"},
		{"will retain without will", 0, connect(5, "MQTT", 0x22, 0, 0, 0), CodeMalformedPacket, "[MQTT-3.1.2-11]"},
		{"will QoS 3", 0, connect(4, "MQTT", 0x1E, 0, 0, 0, 1, "t", 0, 0), CodeMalformedPacket, "[MQTT-3.1.2-14]"},
		{"password without user name in 3.1.1", 0, connect(4, "MQTT", 0x42, 0, 0, 0, 1, "p"), CodeMalformedPacket, "[MQTT-3.1.2-22]"},
		{"password without user name in 3.1", 0, connect(3, "MQIsdp", 0x42, 0, 1, "c", 0, 1, "p"), CodeMalformedPacket, "[MQTT-3.1.2-22]"},
		{"3.1 empty client identifier", 0, connect(3, "MQIsdp", 0x02, 0, 0), CodeClientIdentifierNotValid, "1 to 23"},
		{"3.1 client identifier of 24 characters", 0, connect(3, "MQIsdp", 0x02, 0, 24, strings.Repeat("x", 24)), CodeClientIdentifierNotValid, "1 to 23"},
		{"client identifier not UTF-8", 0, connect(4, "MQTT", 0x02, 0, 1, 0x80), CodeMalformedPacket, "UTF-8"},
		{"will topic with wildcard", 0, connect(4, "MQTT", 0x06, 0, 0, 0, 1, "+", 0, 0), CodeTopicNameInvalid, "[MQTT-3.3.2-2]"},
		{"will topic empty", 0, connect(4, "MQTT", 0x06, 0, 0, 0, 0, 0, 0), CodeTopicNameInvalid, "[MQTT-4.7.3-1]"},
		{"will payload missing", 0, connect(4, "MQTT", 0x06, 0, 0, 0, 1, "t"), CodeMalformedPacket, "will payload"},
		{"user name missing", 0, connect(4, "MQTT", 0x82, 0, 0), CodeMalformedPacket, "user name"},
		{"CONNECT trailing bytes", 0, connect(4, "MQTT", 0x02, 0, 0, 0xFF), CodeMalformedPacket, "beyond its last field"},
		{"CONNECT cut after the level", 0, b(0x10, 7, 0, 4, "MQTT", 4), CodeMalformedPacket, "connect flags"},
		{"CONNECT empty", 0, b(0x10, 0), CodeMalformedPacket, "protocol name"},

		// CONNACK.
		{"CONNACK reserved flags", v4, b(0x20, 2, 2, 0), CodeMalformedPacket, "[MQTT-3.2.2-1]"},
		{"CONNACK session present with failure", v4, b(0x20, 2, 1, 5), CodeProtocolError, "[MQTT-3.2.2-4]"},
		{"3.1.1 CONNACK return code 6", v4, b(0x20, 2, 0, 6), CodeProtocolError, "reserved CONNACK return code"},
		{"5.0 CONNACK reason code 0x01", v5, b(0x20, 3, 0, 1, 0), CodeProtocolError, "CONNACK reason code"},
		{"3.1.1 CONNACK too long", v4, b(0x20, 3, 0, 0, 0), CodeMalformedPacket, "beyond its last field"},

		// Acknowledgements.
		{"PUBACK packet identifier 0", v4, b(0x40, 2, 0, 0), CodeProtocolError, "[MQTT-2.3.1-1]"},
		{"3.1.1 PUBACK with a reason code", v4, b(0x40, 3, 0, 1, 0), CodeMalformedPacket, "beyond its last field"},
		{"5.0 PUBACK reason code 0x92", v5, b(0x40, 3, 0, 1, 0x92), CodeProtocolError, "PUBACK reason code"},
		{"5.0 PUBREL reason code 0x10", v5, b(0x62, 3, 0, 1, 0x10), CodeProtocolError, "PUBREL reason code"},
		{"5.0 PUBCOMP trailing byte", v5, b(0x70, 5, 0, 1, 0, 0, 0), CodeMalformedPacket, "beyond its last field"},
		{"PUBREC too short", v4, b(0x50, 1, 0), CodeMalformedPacket, "too short"},

		// SUBSCRIBE.
		{"SUBSCRIBE without filters", v4, b(0x82, 2, 0, 1), CodeProtocolError, "[MQTT-3.8.3-3]"},
		{"5.0 SUBSCRIBE without filters", v5, b(0x82, 3, 0, 1, 0), CodeProtocolError, "[MQTT-3.8.3-3]"},
		{"SUBSCRIBE packet identifier 0", v4, b(0x82, 6, 0, 0, 0, 1, "a", 0), CodeProtocolError, "[MQTT-2.3.1-1]"},
		{"SUBSCRIBE QoS 3", v4, b(0x82, 6, 0, 1, 0, 1, "a", 3), CodeMalformedPacket, "QoS 3"},
		{"SUBSCRIBE QoS 3 in 5.0", v5, b(0x82, 7, 0, 1, 0, 0, 1, "a", 3), CodeMalformedPacket, "QoS 3"},
		{"3.1.1 SUBSCRIBE reserved option bits", v4, b(0x82, 6, 0, 1, 0, 1, "a", 0x04), CodeMalformedPacket, "[MQTT-3.8.3-4]"},
		{"5.0 SUBSCRIBE reserved option bits", v5, b(0x82, 7, 0, 1, 0, 0, 1, "a", 0x40), CodeMalformedPacket, "[MQTT-3.8.3-5]"},
		{"5.0 SUBSCRIBE retain handling 3", v5, b(0x82, 7, 0, 1, 0, 0, 1, "a", 0x30), CodeProtocolError, "retain handling 3"},
		{"SUBSCRIBE options missing", v4, b(0x82, 5, 0, 1, 0, 1, "a"), CodeMalformedPacket, "subscription options"},
		{"SUBSCRIBE empty filter", v4, b(0x82, 5, 0, 1, 0, 0, 0), CodeTopicFilterInvalid, "[MQTT-4.7.3-1]"},
		{"SUBSCRIBE filter a/b+", v4, sub(4, "a/b+"), CodeTopicFilterInvalid, "[MQTT-4.7.1-3]"},
		{"SUBSCRIBE filter a/#/b", v4, sub(4, "a/#/b"), CodeTopicFilterInvalid, "[MQTT-4.7.1-2]"},
		{"SUBSCRIBE filter a#", v4, sub(4, "a#"), CodeTopicFilterInvalid, "[MQTT-4.7.1-2]"},
		{"SUBSCRIBE filter +a", v5, sub(5, "+a"), CodeTopicFilterInvalid, "[MQTT-4.7.1-3]"},
		{"SUBSCRIBE filter with U+0000", v4, sub(4, "a\x00"), CodeMalformedPacket, "[MQTT-1.5.4-2]"},
		{"SUBSCRIBE $share without filter", v4, sub(4, "$share/g"), CodeTopicFilterInvalid, "[MQTT-4.8.2-1]"},
		{"SUBSCRIBE $share empty name", v5, sub(5, "$share//a"), CodeTopicFilterInvalid, "[MQTT-4.8.2-1]"},
		{"SUBSCRIBE $share name with +", v5, sub(5, "$share/g+/a"), CodeTopicFilterInvalid, "[MQTT-4.8.2-1]"},
		{"SUBSCRIBE $share name with #", v4, sub(4, "$share/#/a"), CodeTopicFilterInvalid, "[MQTT-4.8.2-1]"},
		{"SUBSCRIBE $share empty filter", v5, sub(5, "$share/g/"), CodeTopicFilterInvalid, "[MQTT-4.8.2-2]"},
		{"SUBSCRIBE $share bad filter", v4, sub(4, "$share/g/a#"), CodeTopicFilterInvalid, "[MQTT-4.7.1-2]"},
		{"SUBSCRIBE no local on a shared subscription", v5, b(0x82, 16, 0, 1, 0, 0, 10, "$share/g/a", 0x04), CodeProtocolError, "[MQTT-3.8.3-4]"},

		// UNSUBSCRIBE.
		{"UNSUBSCRIBE without filters", v4, b(0xA2, 2, 0, 1), CodeProtocolError, "[MQTT-3.10.3-2]"},
		{"UNSUBSCRIBE packet identifier 0", v5, b(0xA2, 6, 0, 0, 0, 0, 1, "a"), CodeProtocolError, "[MQTT-2.3.1-1]"},
		{"UNSUBSCRIBE invalid filter", v4, b(0xA2, 6, 0, 1, 0, 2, "a+"), CodeTopicFilterInvalid, "[MQTT-4.7.1-3]"},
		{"UNSUBSCRIBE filter cut short", v4, b(0xA2, 5, 0, 1, 0, 2, "a"), CodeMalformedPacket, "past the end"},

		// SUBACK, UNSUBACK.
		{"3.1.1 SUBACK code 0x87", v4, b(0x90, 3, 0, 1, 0x87), CodeProtocolError, "[MQTT-3.9.3-2]"},
		{"5.0 SUBACK code 0x03", v5, b(0x90, 4, 0, 1, 0, 3), CodeProtocolError, "SUBACK reason code"},
		{"5.0 UNSUBACK code 0x01", v5, b(0xB0, 4, 0, 1, 0, 1), CodeProtocolError, "UNSUBACK reason code"},
		{"3.1.1 UNSUBACK with a code", v4, b(0xB0, 3, 0, 1, 0), CodeMalformedPacket, "beyond its last field"},

		// PINGREQ, DISCONNECT, AUTH.
		{"PINGREQ with a body", v4, b(0xC0, 1, 0), CodeMalformedPacket, "beyond its last field"},
		{"3.1.1 DISCONNECT with a body", v4, b(0xE0, 1, 0), CodeMalformedPacket, "beyond its last field"},
		{"5.0 DISCONNECT reason code 0x01", v5, b(0xE0, 1, 0x01), CodeProtocolError, "DISCONNECT reason code"},
		{"5.0 DISCONNECT topic alias property", v5, b(0xE0, 5, 0, 3, 0x23, 0, 1), CodeMalformedPacket, "not allowed in DISCONNECT"},
		{"5.0 AUTH reason code 0x87", v5, b(0xF0, 1, 0x87), CodeProtocolError, "AUTH reason code"},
		{"5.0 AUTH without method", v5, b(0xF0, 1, 0x18), CodeProtocolError, "authentication method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewReader(bytes.NewReader(tt.raw)).ReadPacket(tt.v)
			var e Error
			if !errors.As(err, &e) {
				t.Fatalf("ReadPacket = %#v, %v; want an Error", p, err)
			}
			if e.Code != tt.code || !strings.Contains(e.Reason, tt.reason) {
				t.Fatalf("ReadPacket error = %v (0x%02x); want 0x%02x with %q", err, byte(e.Code), byte(tt.code), tt.reason)
			}
			if _, partial := p.(*Connect); p != nil && !partial {
				t.Errorf("ReadPacket returned %#v with the error", p)
			}
		})
	}
}

// sub returns a SUBSCRIBE for version v with one filter at QoS 0.
func sub(v byte, filter string) []byte {
	body := b(0, 1) // packet identifier 1
	if v >= Version5 {
		body = append(body, 0) // property length
	}
	body = append(body, b(0, len(filter), filter, 0)...)
	return append(b(0x82, len(body)), body...)
}

// TestReadPacketConnectPartial checks that a CONNECT failing after its
// protocol level comes back with the level, so that the server can answer
// in the client's version.
func TestReadPacketConnectPartial(t *testing.T) {
	raw := b(0x10, 10, 0, 4, "MQTT", 6, 0x02, 0, 60) // level 6, unsupported
	p, err := NewReader(bytes.NewReader(raw)).ReadPacket(0)
	if !errors.Is(err, ErrUnsupportedProtocolVersion) {
		t.Fatalf("err = %v, want ErrUnsupportedProtocolVersion", err)
	}
	if c, ok := p.(*Connect); !ok || c.ProtocolLevel != 6 {
		t.Fatalf("p = %#v, want a *Connect with level 6", p)
	}

	raw = b(0x10, 13, 0, 4, "MQTT", 5, 0x02, 0, 60, 2, 0x21, 0) // v5, property cut short
	p, err = NewReader(bytes.NewReader(raw)).ReadPacket(0)
	if !errors.Is(err, ErrMalformedPacket) {
		t.Fatalf("err = %v, want ErrMalformedPacket", err)
	}
	if c, ok := p.(*Connect); !ok || c.ProtocolLevel != Version5 {
		t.Fatalf("p = %#v, want a *Connect with level 5", p)
	}

	p, err = NewReader(bytes.NewReader(b(0x10, 2, 0, 9))).ReadPacket(0) // name cut short
	if p != nil || !errors.Is(err, ErrMalformedPacket) {
		t.Fatalf("ReadPacket = %#v, %v; want nil and ErrMalformedPacket", p, err)
	}
}

// TestReadPacket31Lenient checks what MQTT 3.1 allows and 3.1.1 does not: a
// set reserved CONNECT flag and DUP or QoS bits on other packets.
func TestReadPacket31Lenient(t *testing.T) {
	raw := b(0x10, 15, 0, 6, "MQIsdp", 3, 0x03, 0, 60, 0, 1, "c")
	if _, err := NewReader(bytes.NewReader(raw)).ReadPacket(0); err != nil {
		t.Errorf("3.1 CONNECT with the reserved flag: %v", err)
	}
	raw = b(0x8A, 6, 0, 1, 0, 1, "x", 0) // SUBSCRIBE with DUP
	if _, err := NewReader(bytes.NewReader(raw)).ReadPacket(Version31); err != nil {
		t.Errorf("3.1 SUBSCRIBE with DUP: %v", err)
	}
}

// fixtureStream returns all valid fixtures back to back.
func fixtureStream() []byte {
	var all []byte
	for _, f := range fixtures {
		all = append(all, f.raw...)
	}
	return all
}

// TestReadPacketStreaming reads all fixtures from one stream through
// readers that return short reads and data with io.EOF
// (STYLE.md §4 item 2).
func TestReadPacketStreaming(t *testing.T) {
	readers := map[string]func(io.Reader) io.Reader{
		"plain":   func(r io.Reader) io.Reader { return r },
		"OneByte": iotest.OneByteReader,
		"Half":    iotest.HalfReader,
		"DataErr": iotest.DataErrReader,
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			r := NewReader(wrap(bytes.NewReader(fixtureStream())))
			for _, f := range fixtures {
				p, err := r.ReadPacket(f.readVersion())
				if err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				if !equalPackets(p, f.p) {
					t.Fatalf("%s:\n got %#v\nwant %#v", f.name, p, f.p)
				}
			}
			if p, err := r.ReadPacket(Version5); err != io.EOF {
				t.Fatalf("after the last packet: %#v, %v; want io.EOF", p, err)
			}
		})
	}
}

// TestReadPacketTruncated checks io.ErrUnexpectedEOF inside a packet, for
// every prefix of every fixture, and that the error sticks.
func TestReadPacketTruncated(t *testing.T) {
	for _, f := range fixtures {
		for n := 1; n < len(f.raw); n++ {
			r := NewReader(bytes.NewReader(f.raw[:n]))
			if _, err := r.ReadPacket(f.readVersion()); err != io.ErrUnexpectedEOF {
				t.Fatalf("%s cut at %d: %v, want io.ErrUnexpectedEOF", f.name, n, err)
			}
			if _, err := r.ReadPacket(f.readVersion()); err != io.ErrUnexpectedEOF {
				t.Fatalf("%s cut at %d: second read %v, want the same error", f.name, n, err)
			}
		}
	}
	if _, err := NewReader(bytes.NewReader(nil)).ReadPacket(0); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

// TestReadPacketStickyError checks that after a protocol error the Reader
// does not try to resynchronise.
func TestReadPacketStickyError(t *testing.T) {
	raw := append(b(0x40, 2, 0, 0), b(0xC0, 0)...) // PUBACK id 0, then PINGREQ
	r := NewReader(bytes.NewReader(raw))
	_, err1 := r.ReadPacket(Version311)
	_, err2 := r.ReadPacket(Version311)
	if !errors.Is(err1, ErrProtocolError) || err2 != err1 {
		t.Fatalf("errors = %v, %v; want the same protocol error twice", err1, err2)
	}
}

// TestReadPacketHugeLengthDoesNotAllocate is ARCHITECTURE.md §0 item 1: a
// 5-byte PUBLISH header declaring the largest Remaining Length fails with
// Packet Too Large before anything is allocated for the body.
func TestReadPacketHugeLengthDoesNotAllocate(t *testing.T) {
	raw := b(0x30, 0xFF, 0xFF, 0xFF, 0x7F) // PUBLISH, remaining length 268,435,455
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := NewReader(bytes.NewReader(raw)).ReadPacket(Version311)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("err = %v, want ErrPacketTooLarge (0x95)", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d >= 1<<20 {
		t.Fatalf("allocated %d bytes, want < 1 MiB", d)
	}
}

// TestReadPacketMaxPacketSize checks the limit on the whole packet, fixed
// header included.
func TestReadPacketMaxPacketSize(t *testing.T) {
	pub := &Publish{Topic: "t", Payload: make([]byte, 200)}
	raw := AppendPacket(nil, pub, Version311) // 1 + 2 + 203 bytes
	for _, tc := range []struct {
		limit int
		ok    bool
	}{{len(raw), true}, {len(raw) - 1, false}, {0, true}} {
		r := NewReader(bytes.NewReader(raw))
		r.MaxPacketSize = tc.limit
		_, err := r.ReadPacket(Version311)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrPacketTooLarge)) {
			t.Errorf("limit %d: err = %v", tc.limit, err)
		}
	}
	// The default admits a 1 MiB payload.
	raw = AppendPacket(nil, &Publish{Topic: "t", Payload: make([]byte, 1<<20)}, Version5)
	if _, err := NewReader(bytes.NewReader(raw)).ReadPacket(Version5); err != nil {
		t.Errorf("1 MiB payload: %v", err)
	}
}

// TestReadPacketPayloadIsKept checks that a payload stays valid after the
// next packet is read: the Reader never reuses a body buffer.
func TestReadPacketPayloadIsKept(t *testing.T) {
	var raw []byte
	raw = AppendPacket(raw, &Publish{Topic: "a", Payload: []byte("first")}, Version311)
	raw = AppendPacket(raw, &Publish{Topic: "a", Payload: []byte("other")}, Version311)
	r := NewReader(bytes.NewReader(raw))
	p1, _ := r.ReadPacket(Version311)
	p2, _ := r.ReadPacket(Version311)
	if got := string(p1.(*Publish).Payload); got != "first" {
		t.Fatalf("first payload = %q after reading the second (%q)", got, p2.(*Publish).Payload)
	}
	if c := cap(p1.(*Publish).Payload); c != 5 {
		t.Errorf("payload capacity %d, want 5: appending must not reach other data", c)
	}
}

// BenchmarkReadPublish64 decodes a 3.1.1 QoS 1 PUBLISH with a 64-byte
// payload.
func BenchmarkReadPublish64(b *testing.B) {
	for _, v := range []byte{Version311, Version5} {
		b.Run("v"+string('0'+rune(v)), func(b *testing.B) {
			one := AppendPacket(nil, &Publish{QoS: 1, PacketID: 1, Topic: "sensors/room1/temp", Payload: make([]byte, 64)}, v)
			stream := bytes.Repeat(one, 1024)
			rd := bytes.NewReader(stream)
			r := NewReader(rd)
			b.SetBytes(int64(len(one)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%1024 == 0 {
					rd.Reset(stream)
				}
				if _, err := r.ReadPacket(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
