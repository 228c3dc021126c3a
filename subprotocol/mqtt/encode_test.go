package mqtt

import (
	"bytes"
	"testing"
)

// TestAppendPacketV3 checks what AppendPacket leaves out or maps for MQTT
// 3.x clients.
func TestAppendPacketV3(t *testing.T) {
	props := Properties{ReasonString: "why", User: []UserProperty{{"k", "v"}}, SessionExpiry: 9, HasSessionExpiry: true}
	tests := []struct {
		name string
		p    Packet
		v    byte
		want []byte
	}{
		{"CONNACK 0x84 becomes 0x01", &Connack{ReasonCode: CodeUnsupportedProtocolVersion, Properties: props}, Version311, b(0x20, 2, 0, 1)},
		{"CONNACK 0x85 becomes 0x02", &Connack{ReasonCode: CodeClientIdentifierNotValid}, Version31, b(0x20, 2, 0, 2)},
		{"CONNACK 0x88 becomes 0x03", &Connack{ReasonCode: CodeServerUnavailable}, Version311, b(0x20, 2, 0, 3)},
		{"CONNACK 0x89 becomes 0x03", &Connack{ReasonCode: CodeServerBusy}, Version311, b(0x20, 2, 0, 3)},
		{"CONNACK 0x86 becomes 0x04", &Connack{ReasonCode: CodeBadUsernameOrPassword}, Version311, b(0x20, 2, 0, 4)},
		{"CONNACK 0x87 becomes 0x05", &Connack{ReasonCode: CodeNotAuthorized}, Version311, b(0x20, 2, 0, 5)},
		{"CONNACK 0x8A becomes 0x05", &Connack{ReasonCode: CodeBanned}, Version311, b(0x20, 2, 0, 5)},
		{"CONNACK 3.x code passes", &Connack{ReasonCode: Code3IdentifierRejected}, Version311, b(0x20, 2, 0, 2)},
		{"3.1 CONNACK has no session present", &Connack{SessionPresent: true}, Version31, b(0x20, 2, 0, 0)},
		{"SUBACK failures become 0x80", &Suback{PacketID: 1, Properties: props, ReasonCodes: []ReasonCode{CodeGrantedQoS1, CodeNotAuthorized, CodeSharedSubsNotSupported}}, Version311, b(0x90, 5, 0, 1, 1, 0x80, 0x80)},
		{"UNSUBACK drops codes", &Unsuback{PacketID: 2, Properties: props, ReasonCodes: []ReasonCode{CodeNoSubscriptionExisted}}, Version311, b(0xB0, 2, 0, 2)},
		{"PUBACK drops code and properties", &Ack{Kind: PUBACK, PacketID: 3, ReasonCode: CodeQuotaExceeded, Properties: props}, Version311, b(0x40, 2, 0, 3)},
		{"PUBREL keeps its flags", &Ack{Kind: PUBREL, PacketID: 3, ReasonCode: CodePacketIdentifierNotFound}, Version31, b(0x62, 2, 0, 3)},
		{"DISCONNECT drops code", &Disconnect{ReasonCode: CodeServerShuttingDown, Properties: props}, Version311, b(0xE0, 0)},
		{"PUBLISH drops properties", &Publish{Topic: "a", Properties: Properties{ContentType: "x", TopicAlias: 2}, Payload: []byte("p")}, Version311, b(0x30, 4, 0, 1, "a", "p")},
		{"SUBSCRIBE drops v5 options", &Subscribe{PacketID: 1, Properties: props, Subscriptions: []Subscription{{Filter: "a", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}, Version311, b(0x82, 6, 0, 1, 0, 1, "a", 2)},
		{"CONNECT level 0 takes v", &Connect{ClientID: "c"}, Version311, b(0x10, 13, 0, 4, "MQTT", 4, 0, 0, 0, 0, 1, "c")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendPacket(nil, tt.p, tt.v)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("AppendPacket = % x, want % x", got, tt.want)
			}
			if n := PacketSize(tt.p, tt.v); n != len(got) {
				t.Errorf("PacketSize = %d, want %d", n, len(got))
			}
		})
	}
}

// TestAppendPacketFiltersProperties checks that AppendPacket writes only the
// properties a packet type allows (MQTT 5 §2.2.2.2), so a server may reuse a
// Properties value across packets.
func TestAppendPacketFiltersProperties(t *testing.T) {
	all := Properties{
		PayloadFormat: 1, MessageExpiry: 5, HasMessageExpiry: true, ContentType: "c", ResponseTopic: "r",
		CorrelationData: []byte{1}, SubscriptionIdentifier: []uint32{7}, SessionExpiry: 9, HasSessionExpiry: true, AssignedClientID: "id",
		ServerKeepAlive: 3, HasServerKeepAlive: true, AuthMethod: "m", AuthData: []byte{2}, WillDelay: 4,
		RequestProblemInfo: true, HasRequestProblemInfo: true, RequestResponseInfo: true, ResponseInfo: "ri",
		ServerReference: "sr", ReasonString: "rs", ReceiveMaximum: 10, TopicAliasMaximum: 11, TopicAlias: 12,
		MaximumQoS: 1, HasMaximumQoS: true, RetainAvailable: true, HasRetainAvailable: true,
		User: []UserProperty{{"k", "v"}}, MaximumPacketSize: 1000, WildcardSubAvailable: true,
		HasWildcardSubAvailable: true, SubIDAvailable: true, HasSubIDAvailable: true, SharedSubAvailable: true,
		HasSharedSubAvailable: true,
	}
	packets := []Packet{
		&Connect{ProtocolLevel: Version5, ClientID: "c", Properties: all, Will: &Will{Topic: "w", Properties: all}},
		&Connack{Properties: all},
		&Publish{Topic: "t", Properties: all},
		&Ack{Kind: PUBACK, PacketID: 1, Properties: all},
		&Ack{Kind: PUBREL, PacketID: 1, Properties: all},
		&Subscribe{PacketID: 1, Properties: all, Subscriptions: []Subscription{{Filter: "f"}}},
		&Suback{PacketID: 1, Properties: all, ReasonCodes: []ReasonCode{0}},
		&Unsubscribe{PacketID: 1, Properties: all, Filters: []string{"f"}},
		&Unsuback{PacketID: 1, Properties: all, ReasonCodes: []ReasonCode{0}},
		&Disconnect{Properties: all},
		&Auth{ReasonCode: CodeContinueAuthentication, Properties: all},
	}
	for _, p := range packets {
		raw := AppendPacket(nil, p, Version5)
		v := Version5
		if p.Type() == CONNECT {
			v = 0
		}
		got, err := NewReader(bytes.NewReader(raw)).ReadPacket(v)
		if err != nil {
			t.Fatalf("%v: ReadPacket of our own encoding: %v", p.Type(), err)
		}
		if n := PacketSize(p, Version5); n != len(raw) {
			t.Errorf("%v: PacketSize = %d, want %d", p.Type(), n, len(raw))
		}
		raw2 := AppendPacket(nil, got, Version5)
		if !bytes.Equal(raw, raw2) {
			t.Errorf("%v: re-encoding differs:\n% x\n% x", p.Type(), raw, raw2)
		}
	}
}

// TestAppendPacketAllocs checks that AppendPacket does not allocate when dst
// has room, and that PacketSize never does.
func TestAppendPacketAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	for _, f := range fixtures {
		n := testing.AllocsPerRun(20, func() {
			buf = AppendPacket(buf[:0], f.p, f.v)
			_ = PacketSize(f.p, f.v)
		})
		if n != 0 {
			t.Errorf("%s: %v allocations", f.name, n)
		}
	}
}

// TestAppendPacketLargeRemainingLength checks the 2-, 3- and 4-byte
// Remaining Length encodings against the decoder.
func TestAppendPacketLargeRemainingLength(t *testing.T) {
	for _, n := range []int{125, 126, 127, 16380, 16381, 2097148, 2097149} {
		p := &Publish{Topic: "t", Payload: bytes.Repeat([]byte{'x'}, n)}
		raw := AppendPacket(nil, p, Version311)
		if len(raw) != PacketSize(p, Version311) {
			t.Fatalf("payload %d: size %d, PacketSize %d", n, len(raw), PacketSize(p, Version311))
		}
		r := NewReader(bytes.NewReader(raw))
		r.MaxPacketSize = len(raw)
		got, err := r.ReadPacket(Version311)
		if err != nil || !equalPackets(got, p) {
			t.Fatalf("payload %d: %v", n, err)
		}
	}
}

// BenchmarkAppendPublish64 encodes a QoS 1 PUBLISH with a 64-byte payload
// into a reused buffer.
func BenchmarkAppendPublish64(b *testing.B) {
	for _, v := range []byte{Version311, Version5} {
		b.Run("v"+string('0'+rune(v)), func(b *testing.B) {
			p := &Publish{QoS: 1, PacketID: 1, Topic: "sensors/room1/temp", Payload: make([]byte, 64)}
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(PacketSize(p, v)))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendPacket(buf[:0], p, v)
			}
		})
	}
}
