package cluster

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/duplexmq/duplex/broker"
)

// BenchmarkEncodeDecode is the per-message cost the cluster encoding adds
// on the sending and the receiving node (headers built, then parsed from
// their wire form), for a typical MQTT 5 message.
func BenchmarkEncodeDecode(b *testing.B) {
	m := &broker.Message{Topic: "sensors/building-7/floor-3/temp", Payload: make([]byte, 256), QoS: 1,
		ContentType: "application/json", From: "client-42", Origin: "mqtt",
		Props: []broker.Property{{Key: "unit", Value: "C"}}}
	o := origin{node: esc("c@127.0.0.1:6222"), boot: "abcd"}
	now := time.Now()
	var hdr []byte
	{
		nm := encodeMsg(testSubjects, o, 1, m, now)
		hdr = headerBytes(b, nm)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		nm := encodeMsg(testSubjects, o, uint64(i), m, now)
		h, err := nats.DecodeHeadersMsg(hdr)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := decodeMsg(testSubjects, &nats.Msg{Subject: nm.Subject, Header: h, Data: nm.Data}, now); err != nil {
			b.Fatal(err)
		}
	}
}
