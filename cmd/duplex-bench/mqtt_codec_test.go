package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/duplexmq/duplex/subprotocol/mqtt"
)

// serverStream is what a broker might send a generator connection, encoded
// by the project's reference codec: CONNACK, SUBACK, PUBLISHes of QoS 0
// and 1 with payloads whose remaining length takes 1, 2 and 3 bytes, and a
// PUBACK. want describes each packet as mqttSummary does.
func serverStream(t *testing.T) (stream []byte, want []string) {
	t.Helper()
	pkts := []mqtt.Packet{
		&mqtt.Connack{},
		&mqtt.Suback{PacketID: 1, ReasonCodes: []mqtt.ReasonCode{1}},
		&mqtt.Publish{Topic: "bench/0", Payload: []byte("hello")},
		&mqtt.Publish{QoS: 1, PacketID: 7, Topic: "bench/0", Payload: bytes.Repeat([]byte{'a'}, 200)},
		&mqtt.Ack{Kind: mqtt.PUBACK, PacketID: 65535},
		&mqtt.Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: bytes.Repeat([]byte{'b'}, 20000)},
		&mqtt.Publish{Topic: "empty"},
	}
	want = []string{
		"type 2 body 2",
		"type 9 id 1",
		"publish qos 0 id 0 payload 5",
		"publish qos 1 id 7 payload 200",
		"type 4 id 65535",
		"publish qos 1 id 1 payload 20000",
		"publish qos 0 id 0 payload 0",
	}
	for _, p := range pkts {
		stream = mqtt.AppendPacket(stream, p, mqtt.Version311)
	}
	return stream, want
}

// mqttSummary describes a parsed packet.
func mqttSummary(t *testing.T, pk *mqttPacket) string {
	t.Helper()
	switch pk.typ {
	case mqttPUBLISH:
		qos, id, payload, err := pk.publish()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("publish qos %d id %d payload %d", qos, id, len(payload))
	case mqttSUBACK, mqttPUBACK:
		id, _ := pk.packetID()
		return fmt.Sprintf("type %d id %d", pk.typ, id)
	}
	return fmt.Sprintf("type %d body %d", pk.typ, len(pk.body))
}

// feedMQTT parses chunks, each standing for one WebSocket message, and
// summarises every packet.
func feedMQTT(t *testing.T, chunks [][]byte) []string {
	t.Helper()
	var p mqttParser
	p.limit = 1 << 20
	var pk mqttPacket
	var out []string
	for _, c := range chunks {
		if err := p.fill(bytes.NewReader(c)); err != nil {
			t.Fatal(err)
		}
		for {
			ok, err := p.next(&pk)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			out = append(out, mqttSummary(t, &pk))
		}
	}
	if rest := len(p.buf) - p.off; rest != 0 {
		t.Fatalf("%d bytes left unparsed", rest)
	}
	return out
}

func checkPackets(t *testing.T, how string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\ngot  %q\nwant %q", how, got, want)
	}
}

func TestMQTTParserCoalesced(t *testing.T) {
	stream, want := serverStream(t)
	checkPackets(t, "one message", feedMQTT(t, [][]byte{stream}), want)
}

func TestMQTTParserSplitEverywhere(t *testing.T) {
	stream, want := serverStream(t)
	// Two messages, split at every offset: inside fixed headers, inside
	// multi-byte remaining lengths, inside topics and payloads.
	for i := 1; i < len(stream); i++ {
		if i > 400 && i < len(stream)-400 && i%997 != 0 {
			continue // the middle of the big payload: a sample suffices
		}
		got := feedMQTT(t, [][]byte{stream[:i], stream[i:]})
		checkPackets(t, fmt.Sprintf("split at %d", i), got, want)
	}
}

func TestMQTTParserByteByByteAndRandom(t *testing.T) {
	stream, want := serverStream(t)
	var bytewise [][]byte
	for i := range stream {
		bytewise = append(bytewise, stream[i:i+1])
	}
	checkPackets(t, "byte by byte", feedMQTT(t, bytewise), want)

	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var chunks [][]byte
		for rest := stream; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(300))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		checkPackets(t, "random chunks", feedMQTT(t, chunks), want)
	}
}

func TestMQTTParserMalformed(t *testing.T) {
	cases := map[string][]byte{
		"5-byte remaining length": {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
		"over the limit":          {0x30, 0x80, 0x80, 0x80, 0x01},
	}
	for name, in := range cases {
		var p mqttParser
		p.limit = 1 << 20
		if err := p.fill(bytes.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		var pk mqttPacket
		if _, err := p.next(&pk); !errors.Is(err, errMalformedPacket) {
			t.Errorf("%s: got %v, want errMalformedPacket", name, err)
		}
	}
	short := mqttPacket{typ: mqttPUBLISH, flags: 0x02, body: []byte{0, 9, 'a'}}
	if _, _, _, err := short.publish(); err == nil {
		t.Error("PUBLISH shorter than its topic: no error")
	}
}

// TestMQTTEncoders decodes the generator's packets with the project's
// reference codec.
func TestMQTTEncoders(t *testing.T) {
	body := bytes.Repeat([]byte{'x'}, 300)
	var b []byte
	b = appendMQTTConnect(b, "dxb1-1")
	b = appendMQTTSubscribe(b, 3, "bench/1", 1)
	b = appendMQTTPublish(b, mqttPublishPrefix("bench/1", 1, len(body)), 1, mqttPacketID(65536), body)
	b = appendMQTTPublish(b, mqttPublishPrefix("bench/2", 0, len(body)), 0, 0, body)
	b = appendMQTTPuback(b, 513)
	b = appendMQTTDisconnect(b)

	r := mqtt.NewReader(bytes.NewReader(b))
	read := func(v byte) mqtt.Packet {
		t.Helper()
		p, err := r.ReadPacket(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, ok := read(0).(*mqtt.Connect)
	if !ok || c.ProtocolLevel != mqtt.Version311 || !c.CleanStart || c.KeepAlive != mqttKeepAlive || c.ClientID != "dxb1-1" {
		t.Fatalf("CONNECT: %+v", c)
	}
	s, ok := read(mqtt.Version311).(*mqtt.Subscribe)
	if !ok || s.PacketID != 3 || len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "bench/1" || s.Subscriptions[0].QoS != 1 {
		t.Fatalf("SUBSCRIBE: %+v", s)
	}
	p1, ok := read(mqtt.Version311).(*mqtt.Publish)
	if !ok || p1.QoS != 1 || p1.PacketID != 1 || p1.Topic != "bench/1" || !bytes.Equal(p1.Payload, body) {
		t.Fatalf("PUBLISH QoS 1: %+v", p1)
	}
	p0, ok := read(mqtt.Version311).(*mqtt.Publish)
	if !ok || p0.QoS != 0 || p0.PacketID != 0 || p0.Topic != "bench/2" || !bytes.Equal(p0.Payload, body) {
		t.Fatalf("PUBLISH QoS 0: %+v", p0)
	}
	if a, ok := read(mqtt.Version311).(*mqtt.Ack); !ok || a.Kind != mqtt.PUBACK || a.PacketID != 513 {
		t.Fatalf("PUBACK: %+v", a)
	}
	if _, ok := read(mqtt.Version311).(*mqtt.Disconnect); !ok {
		t.Fatal("DISCONNECT expected")
	}
}

func TestMQTTPacketID(t *testing.T) {
	for seq, want := range map[uint64]uint16{1: 1, 65535: 65535, 65536: 1, 131070: 65535, 131071: 1} {
		if got := mqttPacketID(seq); got != want {
			t.Errorf("mqttPacketID(%d) = %d, want %d", seq, got, want)
		}
	}
}

// TestMQTTParserNoAllocs checks that parsing a steady stream of deliveries
// does not allocate once the buffer has grown.
func TestMQTTParserNoAllocs(t *testing.T) {
	body := bytes.Repeat([]byte{'x'}, 64)
	var msg []byte
	for range 10 {
		msg = appendMQTTPublish(msg, mqttPublishPrefix("bench/0", 1, len(body)), 1, 9, body)
	}
	var p mqttParser
	p.limit = 1 << 20
	var pk mqttPacket
	rd := bytes.NewReader(msg)
	allocs := testing.AllocsPerRun(100, func() {
		rd.Reset(msg)
		if err := p.fill(rd); err != nil {
			t.Fatal(err)
		}
		for {
			ok, err := p.next(&pk)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if _, _, _, err := pk.publish(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per message of 10 PUBLISHes, want 0", allocs)
	}
}

// TestMQTTConnectWithLogin: -user and -password go into the CONNECT's user
// name and password fields [MQTT-3.1.2-18..21].
func TestMQTTConnectWithLogin(t *testing.T) {
	b := appendMQTTConnectSession(nil, "dxb1-2", false, "bench", "s3cret")
	p, err := mqtt.NewReader(bytes.NewReader(b)).ReadPacket(0)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.(*mqtt.Connect)
	if !ok || c.CleanStart || c.ClientID != "dxb1-2" || c.Username != "bench" || string(c.Password) != "s3cret" {
		t.Fatalf("CONNECT: %+v", p)
	}
}
