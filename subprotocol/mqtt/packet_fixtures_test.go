package mqtt

import (
	"bytes"
	"reflect"
	"testing"
)

// b concatenates fixture parts: an int is one byte, a string or []byte its
// bytes. Fixtures list one field per line with its comment, so each byte of
// a packet can be checked against the spec.
func b(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			out = append(out, byte(v))
		case string:
			out = append(out, v...)
		case []byte:
			out = append(out, v...)
		default:
			panic("b: unsupported part")
		}
	}
	return out
}

// fixture is one valid packet: its bytes and its decoded form.
type fixture struct {
	name       string
	v          byte // protocol version of the connection
	raw        []byte
	p          Packet
	decodeOnly bool // raw decodes to p but AppendPacket writes other bytes
}

// readVersion is the version to pass to ReadPacket: 0 for a CONNECT.
func (f fixture) readVersion() byte {
	if _, ok := f.p.(*Connect); ok {
		return 0
	}
	return f.v
}

// fixtures holds valid packets of every type in each version.
var fixtures = []fixture{
	// CONNECT
	{name: "3.1.1 CONNECT, MQTT.js defaults", v: Version311, raw: b(
		0x10, 27, // CONNECT, remaining length 27
		0, 4, "MQTT", // protocol name
		4,     // protocol level 4 (3.1.1)
		0x02,  // connect flags: clean session
		0, 60, // keep alive 60 s
		0, 15, "mqttjs_3f2a1b9c", // client identifier
	), p: &Connect{ProtocolLevel: 4, CleanStart: true, KeepAlive: 60, ClientID: "mqttjs_3f2a1b9c"}},
	{name: "3.1 CONNECT with will and credentials", v: Version31, raw: b(
		0x10, 48, // CONNECT, remaining length 48
		0, 6, "MQIsdp", // protocol name
		3,     // protocol level 3 (3.1)
		0xCE,  // connect flags: user name, password, will QoS 1, will, clean session
		0, 30, // keep alive 30 s
		0, 5, "dev01", // client identifier
		0, 6, "status", // will topic
		0, 7, "offline", // will message
		0, 4, "user", // user name
		0, 4, "pass", // password
	), p: &Connect{ProtocolLevel: 3, CleanStart: true, KeepAlive: 30, ClientID: "dev01",
		Will:        &Will{Topic: "status", Payload: []byte("offline"), QoS: 1},
		HasUsername: true, Username: "user", HasPassword: true, Password: []byte("pass")}},
	{name: "3.1.1 CONNECT, persistent session, retained QoS 2 will, user name only", v: Version311, raw: b(
		0x10, 24, // CONNECT, remaining length 24
		0, 4, "MQTT", // protocol name
		4,    // protocol level 4
		0xB4, // connect flags: user name, will retain, will QoS 2, will
		0, 0, // keep alive off
		0, 2, "c1", // client identifier
		0, 3, "a/b", // will topic
		0, 0, // will message, empty
		0, 1, "u", // user name
	), p: &Connect{ProtocolLevel: 4, ClientID: "c1", Will: &Will{Topic: "a/b", QoS: 2, Retain: true},
		HasUsername: true, Username: "u"}},
	{name: "3.1.1 CONNECT, empty client identifier", v: Version311, raw: b(
		0x10, 12, // CONNECT, remaining length 12
		0, 4, "MQTT", // protocol name
		4,     // protocol level 4
		0x02,  // connect flags: clean session
		0, 60, // keep alive 60 s
		0, 0, // client identifier, empty
	), p: &Connect{ProtocolLevel: 4, CleanStart: true, KeepAlive: 60}},
	{name: "5.0 CONNECT with properties and will", v: Version5, raw: b(
		0x10, 0x8C, 0x01, // CONNECT, remaining length 140
		0, 4, "MQTT", // protocol name
		5,     // protocol level 5
		0xCE,  // connect flags: user name, password, will QoS 1, will, clean start
		0, 10, // keep alive 10 s
		41,                 // property length
		0x11, 0, 0, 14, 16, // session expiry interval 3600
		0x15, 0, 5, "SCRAM", // authentication method
		0x16, 0, 3, 1, 2, 3, // authentication data
		0x17, 0, // request problem information 0
		0x19, 1, // request response information 1
		0x21, 0, 20, // receive maximum 20
		0x22, 0, 10, // topic alias maximum 10
		0x26, 0, 1, "k", 0, 1, "v", // user property k=v
		0x27, 0, 1, 0, 0, // maximum packet size 65536
		0, 8, "client-5", // client identifier
		46,      // will property length
		0x01, 1, // payload format indicator: UTF-8
		0x02, 0, 0, 0, 60, // message expiry interval 60
		0x03, 0, 10, "text/plain", // content type
		0x08, 0, 6, "resp/1", // response topic
		0x09, 0, 2, "id", // correlation data
		0x18, 0, 0, 0, 5, // will delay interval 5
		0x26, 0, 1, "w", 0, 1, "1", // user property w=1
		0, 9, "last/will", // will topic
		0, 3, "bye", // will payload
		0, 5, "alice", // user name
		0, 6, "secret", // password
	), p: &Connect{ProtocolLevel: 5, CleanStart: true, KeepAlive: 10,
		Properties: Properties{SessionExpiry: 3600, HasSessionExpiry: true, AuthMethod: "SCRAM", AuthData: []byte{1, 2, 3},
			HasRequestProblemInfo: true, RequestResponseInfo: true, ReceiveMaximum: 20,
			TopicAliasMaximum: 10, User: []UserProperty{{"k", "v"}}, MaximumPacketSize: 65536},
		ClientID: "client-5",
		Will: &Will{Properties: Properties{PayloadFormat: 1, MessageExpiry: 60, HasMessageExpiry: true,
			ContentType: "text/plain", ResponseTopic: "resp/1", CorrelationData: []byte("id"), WillDelay: 5,
			User: []UserProperty{{"w", "1"}}}, Topic: "last/will", Payload: []byte("bye"), QoS: 1},
		HasUsername: true, Username: "alice", HasPassword: true, Password: []byte("secret")}},
	{name: "5.0 CONNECT, password without user name", v: Version5, raw: b(
		0x10, 17, // CONNECT, remaining length 17
		0, 4, "MQTT", // protocol name
		5,    // protocol level 5
		0x42, // connect flags: password, clean start
		0, 0, // keep alive off
		0,    // property length
		0, 0, // client identifier, empty
		0, 2, "pw", // password
	), p: &Connect{ProtocolLevel: 5, CleanStart: true, HasPassword: true, Password: []byte("pw")}},

	// CONNACK
	{name: "3.1 CONNACK accepted", v: Version31, raw: b(
		0x20, 2, // CONNACK, remaining length 2
		0, // reserved
		0, // return code: accepted
	), p: &Connack{}},
	{name: "3.1.1 CONNACK session present", v: Version311, raw: b(
		0x20, 2, // CONNACK, remaining length 2
		1, // acknowledge flags: session present
		0, // return code: accepted
	), p: &Connack{SessionPresent: true}},
	{name: "3.1.1 CONNACK not authorized", v: Version311, raw: b(
		0x20, 2, // CONNACK, remaining length 2
		0, // acknowledge flags
		5, // return code: not authorized
	), p: &Connack{ReasonCode: Code3NotAuthorized}},
	{name: "5.0 CONNACK with properties", v: Version5, raw: b(
		0x20, 68, // CONNACK, remaining length 68
		0,                  // acknowledge flags
		0,                  // reason code: success
		65,                 // property length
		0x11, 0, 0, 0, 120, // session expiry interval 120
		0x12, 0, 6, "auto-1", // assigned client identifier
		0x13, 0, 0, // server keep alive 0
		0x1A, 0, 5, "resp/", // response information
		0x1F, 0, 2, "ok", // reason string
		0x21, 0, 100, // receive maximum 100
		0x22, 0, 16, // topic alias maximum 16
		0x24, 1, // maximum QoS 1
		0x25, 0, // retain available 0
		0x26, 0, 3, "srv", 0, 6, "duplex", // user property srv=duplex
		0x27, 0, 0x11, 0, 0, // maximum packet size 1,114,112
		0x28, 0, // wildcard subscription available 0
		0x29, 0, // subscription identifiers available 0
		0x2A, 1, // shared subscription available 1
	), p: &Connack{Properties: Properties{SessionExpiry: 120, HasSessionExpiry: true, AssignedClientID: "auto-1",
		HasServerKeepAlive: true, ResponseInfo: "resp/", ReasonString: "ok", ReceiveMaximum: 100,
		TopicAliasMaximum: 16, HasMaximumQoS: true, MaximumQoS: 1, HasRetainAvailable: true,
		User: []UserProperty{{"srv", "duplex"}}, MaximumPacketSize: DefaultMaxPacketSize,
		HasWildcardSubAvailable: true, HasSubIDAvailable: true, HasSharedSubAvailable: true,
		SharedSubAvailable: true}}},
	{name: "5.0 CONNACK use another server", v: Version5, raw: b(
		0x20, 24, // CONNACK, remaining length 24
		0,                         // acknowledge flags
		0x9C,                      // reason code: use another server
		21,                        // property length
		0x1C, 0, 10, "other:1883", // server reference
		0x1F, 0, 5, "moved", // reason string
	), p: &Connack{ReasonCode: CodeUseAnotherServer,
		Properties: Properties{ServerReference: "other:1883", ReasonString: "moved"}}},

	// PUBLISH
	{name: "3.1.1 PUBLISH QoS 0", v: Version311, raw: b(
		0x30, 10, // PUBLISH QoS 0, remaining length 10
		0, 3, "a/b", // topic name
		"hello", // payload
	), p: &Publish{Topic: "a/b", Payload: []byte("hello")}},
	{name: "3.1.1 PUBLISH QoS 1, DUP, RETAIN", v: Version311, raw: b(
		0x3B, 6, // PUBLISH DUP QoS 1 RETAIN, remaining length 6
		0, 1, "t", // topic name
		0, 7, // packet identifier 7
		"x", // payload
	), p: &Publish{Dup: true, QoS: 1, Retain: true, Topic: "t", PacketID: 7, Payload: []byte("x")}},
	{name: "3.1 PUBLISH QoS 2, empty payload", v: Version31, raw: b(
		0x34, 5, // PUBLISH QoS 2, remaining length 5
		0, 1, "t", // topic name
		1, 0, // packet identifier 256
	), p: &Publish{QoS: 2, Topic: "t", PacketID: 256}},
	{name: "5.0 PUBLISH QoS 1 with properties", v: Version5, raw: b(
		0x32, 73, // PUBLISH QoS 1, remaining length 73
		0, 12, "sensors/temp", // topic name
		0, 1, // packet identifier 1
		52,      // property length
		0x01, 1, // payload format indicator: UTF-8
		0x02, 0, 0, 1, 0, // message expiry interval 256
		0x03, 0, 16, "application/json", // content type
		0x08, 0, 3, "r/1", // response topic
		0x09, 0, 2, 0xAB, 0xCD, // correlation data
		0x0B, 1, // subscription identifier 1
		0x0B, 0xC8, 0x01, // subscription identifier 200
		0x23, 0, 3, // topic alias 3
		0x26, 0, 1, "a", 0, 1, "b", // user property a=b
		"21.5", // payload
	), p: &Publish{QoS: 1, Topic: "sensors/temp", PacketID: 1, Properties: Properties{
		PayloadFormat: 1, MessageExpiry: 256, HasMessageExpiry: true, ContentType: "application/json",
		ResponseTopic: "r/1", CorrelationData: []byte{0xAB, 0xCD}, SubscriptionIdentifier: []uint32{1, 200},
		TopicAlias: 3, User: []UserProperty{{"a", "b"}}}, Payload: []byte("21.5")}},
	{name: "5.0 PUBLISH, empty topic name with topic alias", v: Version5, raw: b(
		0x30, 7, // PUBLISH QoS 0, remaining length 7
		0, 0, // topic name, empty
		3,          // property length
		0x23, 0, 3, // topic alias 3
		"x", // payload
	), p: &Publish{Properties: Properties{TopicAlias: 3}, Payload: []byte("x")}},
	{name: "5.0 PUBLISH QoS 0 RETAIN, no properties, empty payload", v: Version5, raw: b(
		0x31, 4, // PUBLISH QoS 0 RETAIN, remaining length 4
		0, 1, "a", // topic name
		0, // property length
	), p: &Publish{Retain: true, Topic: "a"}},

	// PUBACK, PUBREC, PUBREL, PUBCOMP
	{name: "3.1.1 PUBACK", v: Version311, raw: b(
		0x40, 2, // PUBACK, remaining length 2
		0, 7, // packet identifier 7
	), p: &Ack{Kind: PUBACK, PacketID: 7}},
	{name: "3.1.1 PUBREC", v: Version311, raw: b(
		0x50, 2, // PUBREC, remaining length 2
		0, 8, // packet identifier 8
	), p: &Ack{Kind: PUBREC, PacketID: 8}},
	{name: "3.1.1 PUBREL", v: Version311, raw: b(
		0x62, 2, // PUBREL with reserved flags 0010, remaining length 2
		0, 8, // packet identifier 8
	), p: &Ack{Kind: PUBREL, PacketID: 8}},
	{name: "3.1.1 PUBCOMP", v: Version311, raw: b(
		0x70, 2, // PUBCOMP, remaining length 2
		0, 8, // packet identifier 8
	), p: &Ack{Kind: PUBCOMP, PacketID: 8}},
	{name: "3.1 PUBREL", v: Version31, raw: b(
		0x62, 2, // PUBREL, remaining length 2
		1, 0, // packet identifier 256
	), p: &Ack{Kind: PUBREL, PacketID: 256}},
	{name: "5.0 PUBACK, short form", v: Version5, raw: b(
		0x40, 2, // PUBACK, remaining length 2: success, no properties
		0, 9, // packet identifier 9
	), p: &Ack{Kind: PUBACK, PacketID: 9}},
	{name: "5.0 PUBACK no matching subscribers", v: Version5, raw: b(
		0x40, 3, // PUBACK, remaining length 3: no properties
		0, 9, // packet identifier 9
		0x10, // reason code: no matching subscribers
	), p: &Ack{Kind: PUBACK, PacketID: 9, ReasonCode: CodeNoMatchingSubscribers}},
	{name: "5.0 PUBREC quota exceeded with reason string", v: Version5, raw: b(
		0x50, 11, // PUBREC, remaining length 11
		0, 9, // packet identifier 9
		0x97,               // reason code: quota exceeded
		7,                  // property length
		0x1F, 0, 4, "busy", // reason string
	), p: &Ack{Kind: PUBREC, PacketID: 9, ReasonCode: CodeQuotaExceeded, Properties: Properties{ReasonString: "busy"}}},
	{name: "5.0 PUBREL packet identifier not found", v: Version5, raw: b(
		0x62, 3, // PUBREL, remaining length 3
		0, 9, // packet identifier 9
		0x92, // reason code: packet identifier not found
	), p: &Ack{Kind: PUBREL, PacketID: 9, ReasonCode: CodePacketIdentifierNotFound}},
	{name: "5.0 PUBCOMP, short form", v: Version5, raw: b(
		0x70, 2, // PUBCOMP, remaining length 2
		0, 9, // packet identifier 9
	), p: &Ack{Kind: PUBCOMP, PacketID: 9}},
	{name: "5.0 PUBACK, success with an empty property set", v: Version5, decodeOnly: true, raw: b(
		0x40, 4, // PUBACK, remaining length 4
		0, 9, // packet identifier 9
		0, // reason code: success
		0, // property length
	), p: &Ack{Kind: PUBACK, PacketID: 9}},

	// SUBSCRIBE
	{name: "3.1.1 SUBSCRIBE two filters", v: Version311, raw: b(
		0x82, 14, // SUBSCRIBE with reserved flags 0010, remaining length 14
		0, 10, // packet identifier 10
		0, 3, "a/+", // topic filter
		1,           // requested QoS 1
		0, 3, "b/#", // topic filter
		2, // requested QoS 2
	), p: &Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/+", QoS: 1}, {Filter: "b/#", QoS: 2}}}},
	{name: "3.1 SUBSCRIBE", v: Version31, raw: b(
		0x82, 6, // SUBSCRIBE, remaining length 6
		0, 1, // packet identifier 1
		0, 1, "x", // topic filter
		0, // requested QoS 0
	), p: &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "x"}}}},
	{name: "5.0 SUBSCRIBE with options and subscription identifier", v: Version5, raw: b(
		0x82, 38, // SUBSCRIBE, remaining length 38
		0, 11, // packet identifier 11
		10,               // property length
		0x0B, 0x80, 0x01, // subscription identifier 128
		0x26, 0, 1, "k", 0, 1, "v", // user property k=v
		0, 12, "$share/g/s/+", // topic filter, shared
		0x29,            // options: retain handling 2, retain as published, QoS 1
		0, 7, "local/#", // topic filter
		0x14, // options: retain handling 1, no local, QoS 0
	), p: &Subscribe{PacketID: 11,
		Properties: Properties{SubscriptionIdentifier: []uint32{128}, User: []UserProperty{{"k", "v"}}},
		Subscriptions: []Subscription{
			{Filter: "$share/g/s/+", QoS: 1, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "local/#", NoLocal: true, RetainHandling: 1},
		}}},

	// SUBACK
	{name: "3.1.1 SUBACK", v: Version311, raw: b(
		0x90, 5, // SUBACK, remaining length 5
		0, 10, // packet identifier 10
		0, 1, 0x80, // return codes: QoS 0, QoS 1, failure
	), p: &Suback{PacketID: 10, ReasonCodes: []ReasonCode{0, 1, 0x80}}},
	{name: "5.0 SUBACK with reason string", v: Version5, raw: b(
		0x90, 11, // SUBACK, remaining length 11
		0, 11, // packet identifier 11
		5,                // property length
		0x1F, 0, 2, "no", // reason string
		0x02, 0x87, 0x9E, // reason codes: granted QoS 2, not authorized, shared subscriptions not supported
	), p: &Suback{PacketID: 11, Properties: Properties{ReasonString: "no"},
		ReasonCodes: []ReasonCode{CodeGrantedQoS2, CodeNotAuthorized, CodeSharedSubsNotSupported}}},

	// UNSUBSCRIBE
	{name: "3.1.1 UNSUBSCRIBE", v: Version311, raw: b(
		0xA2, 19, // UNSUBSCRIBE with reserved flags 0010, remaining length 19
		0, 12, // packet identifier 12
		0, 3, "a/+", // topic filter
		0, 10, "$share/g/x", // topic filter, shared
	), p: &Unsubscribe{PacketID: 12, Filters: []string{"a/+", "$share/g/x"}}},
	{name: "5.0 UNSUBSCRIBE with user property", v: Version5, raw: b(
		0xA2, 13, // UNSUBSCRIBE, remaining length 13
		0, 13, // packet identifier 13
		7,                          // property length
		0x26, 0, 1, "k", 0, 1, "v", // user property k=v
		0, 1, "a", // topic filter
	), p: &Unsubscribe{PacketID: 13, Properties: Properties{User: []UserProperty{{"k", "v"}}}, Filters: []string{"a"}}},

	// UNSUBACK
	{name: "3.1.1 UNSUBACK", v: Version311, raw: b(
		0xB0, 2, // UNSUBACK, remaining length 2
		0, 12, // packet identifier 12
	), p: &Unsuback{PacketID: 12}},
	{name: "5.0 UNSUBACK", v: Version5, raw: b(
		0xB0, 9, // UNSUBACK, remaining length 9
		0, 13, // packet identifier 13
		4,               // property length
		0x1F, 0, 1, "x", // reason string
		0x00, 0x11, // reason codes: success, no subscription existed
	), p: &Unsuback{PacketID: 13, Properties: Properties{ReasonString: "x"},
		ReasonCodes: []ReasonCode{CodeSuccess, CodeNoSubscriptionExisted}}},

	// PINGREQ, PINGRESP
	{name: "3.1.1 PINGREQ", v: Version311, raw: b(0xC0, 0), p: &Pingreq{}},   // PINGREQ, remaining length 0
	{name: "3.1.1 PINGRESP", v: Version311, raw: b(0xD0, 0), p: &Pingresp{}}, // PINGRESP, remaining length 0
	{name: "3.1 PINGREQ", v: Version31, raw: b(0xC0, 0), p: &Pingreq{}},      // PINGREQ, remaining length 0
	{name: "5.0 PINGREQ", v: Version5, raw: b(0xC0, 0), p: &Pingreq{}},       // PINGREQ, remaining length 0
	{name: "5.0 PINGRESP", v: Version5, raw: b(0xD0, 0), p: &Pingresp{}},     // PINGRESP, remaining length 0

	// DISCONNECT
	{name: "3.1.1 DISCONNECT", v: Version311, raw: b(0xE0, 0), p: &Disconnect{}}, // DISCONNECT, remaining length 0
	{name: "3.1 DISCONNECT", v: Version31, raw: b(0xE0, 0), p: &Disconnect{}},    // DISCONNECT, remaining length 0
	{name: "5.0 DISCONNECT, short form", v: Version5, raw: b(
		0xE0, 0, // DISCONNECT, remaining length 0: normal disconnection, no properties
	), p: &Disconnect{}},
	{name: "5.0 DISCONNECT with will message", v: Version5, raw: b(
		0xE0, 1, // DISCONNECT, remaining length 1
		0x04, // reason code: disconnect with will message
	), p: &Disconnect{ReasonCode: CodeDisconnectWithWill}},
	{name: "5.0 DISCONNECT server moved with properties", v: Version5, raw: b(
		0xE0, 22, // DISCONNECT, remaining length 22
		0x9D,              // reason code: server moved
		20,                // property length
		0x11, 0, 0, 0, 30, // session expiry interval 30
		0x1C, 0, 6, "b:1883", // server reference
		0x1F, 0, 3, "bye", // reason string
	), p: &Disconnect{ReasonCode: CodeServerMoved,
		Properties: Properties{SessionExpiry: 30, HasSessionExpiry: true, ServerReference: "b:1883", ReasonString: "bye"}}},

	// AUTH
	{name: "5.0 AUTH, short form", v: Version5, raw: b(
		0xF0, 0, // AUTH, remaining length 0: success, no properties
	), p: &Auth{}},
	{name: "5.0 AUTH continue", v: Version5, raw: b(
		0xF0, 15, // AUTH, remaining length 15
		0x18,                // reason code: continue authentication
		13,                  // property length
		0x15, 0, 5, "SCRAM", // authentication method
		0x16, 0, 2, 1, 2, // authentication data
	), p: &Auth{ReasonCode: CodeContinueAuthentication,
		Properties: Properties{AuthMethod: "SCRAM", AuthData: []byte{1, 2}}}},
	{name: "5.0 AUTH re-authenticate with reason string", v: Version5, raw: b(
		0xF0, 10, // AUTH, remaining length 10
		0x19,            // reason code: re-authenticate
		8,               // property length
		0x15, 0, 1, "X", // authentication method
		0x1F, 0, 1, "r", // reason string
	), p: &Auth{ReasonCode: CodeReAuthenticate, Properties: Properties{AuthMethod: "X", ReasonString: "r"}}},
}

// TestReadPacketFixtures decodes every fixture and compares the result.
func TestReadPacketFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(f.raw))
			p, err := r.ReadPacket(f.readVersion())
			if err != nil {
				t.Fatalf("ReadPacket: %v", err)
			}
			if !equalPackets(p, f.p) {
				t.Fatalf("ReadPacket:\n got %#v\nwant %#v", p, f.p)
			}
			if p.Type() != PacketType(f.raw[0]>>4) {
				t.Errorf("Type() = %v, want %v", p.Type(), PacketType(f.raw[0]>>4))
			}
		})
	}
}

// TestAppendPacketFixtures encodes every fixture and compares the bytes, and
// checks PacketSize against them.
func TestAppendPacketFixtures(t *testing.T) {
	for _, f := range fixtures {
		if f.decodeOnly {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			got := AppendPacket(nil, f.p, f.v)
			if !bytes.Equal(got, f.raw) {
				t.Fatalf("AppendPacket:\n got % x\nwant % x", got, f.raw)
			}
			if n := PacketSize(f.p, f.v); n != len(f.raw) {
				t.Errorf("PacketSize = %d, want %d", n, len(f.raw))
			}
			// Appending keeps what dst holds.
			got = AppendPacket([]byte("prefix"), f.p, f.v)
			if !bytes.Equal(got[6:], f.raw) || string(got[:6]) != "prefix" {
				t.Errorf("AppendPacket onto a prefix: % x", got)
			}
		})
	}
}

// equalPackets reports whether two packets have equal fields.
func equalPackets(a, b Packet) bool { return reflect.DeepEqual(a, b) }
