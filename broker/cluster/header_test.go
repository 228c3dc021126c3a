package cluster

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/duplexmq/duplex/broker"
)

// TestMessageRoundTrip: every field a node carries survives the headers,
// including values NATS headers could not hold raw (CR, LF, colons,
// leading spaces, empty strings) and user properties in order with
// duplicates.
func TestMessageRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	o := origin{node: esc("c1@127.0.0.1:4248"), boot: "abcd"}
	for _, m := range []*broker.Message{
		{Topic: "a/b", Payload: []byte("x")},
		{Topic: "a//b/", Payload: []byte{}, Retain: true},
		{
			Topic: "$SYS/x.y/*", Payload: []byte("\x00\r\n"), ContentType: "text/plain; charset=utf-8",
			ResponseTopic: "reply/+/é", ReplyTo: "/queue/r", CorrelationData: []byte{0, '\r', '\n', 0xff},
			PayloadFormat: 1, QoS: 2, Retain: true, From: "client 1", Origin: "mqtt",
			Props:   []broker.Property{{Key: "k", Value: "v1"}, {Key: "", Value: ""}, {Key: "k", Value: "v2"}, {Key: " a:b ", Value: "\r\n"}, {Key: "k", Value: "v1"}},
			Expires: now.Add(1500 * time.Millisecond),
		},
		{Topic: strings.Repeat("long/", 1000), Payload: []byte("y"), CorrelationData: []byte{}},
	} {
		nm := encodeMsg(testSubjects, o, 7, m, now)
		// Through the wire form of the headers, as a receiver sees them.
		wire := &nats.Msg{Subject: nm.Subject, Header: nm.Header, Data: nm.Data}
		hdr := headerBytes(t, wire)
		h, err := nats.DecodeHeadersMsg(hdr)
		if err != nil {
			t.Fatalf("%.20q: headers do not decode: %v", m.Topic, err)
		}
		got, from, seq, err := decodeMsg(testSubjects, &nats.Msg{Subject: nm.Subject, Header: h, Data: nm.Data}, now)
		if err != nil {
			t.Fatalf("%.20q: %v", m.Topic, err)
		}
		if from != o.node+"."+o.boot || seq != 7 {
			t.Errorf("origin %q seq %d", from, seq)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
	if nm := encodeMsg(testSubjects, o, 1, &broker.Message{Topic: "a", Expires: now.Add(-time.Second)}, now); nm != nil {
		t.Errorf("an expired message is encoded")
	}
}

// headerBytes is the header block nats.go writes for m.
func headerBytes(t testing.TB, m *nats.Msg) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") || strings.TrimSpace(v) != v {
				t.Fatalf("header %s value %q would not survive", k, v)
			}
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// FuzzDecodeMsg: whatever a foreign publisher puts on the cluster's
// subjects, decoding fails cleanly or gives a message that encodes to
// the same headers.
func FuzzDecodeMsg(f *testing.F) {
	o := origin{node: "n", boot: "b"}
	nm := encodeMsg(testSubjects, o, 3, &broker.Message{Topic: "a/b", QoS: 1, ContentType: "c",
		Props: []broker.Property{{Key: "k", Value: "v"}}}, time.Unix(0, 0))
	f.Add(nm.Subject, nm.Header.Get(hdrMeta), "k.v", "")
	f.Add(testSubjects.Long, "n.b.1.0.0.0.0.*.*.*.%.*.*", "", "a.%.b")
	f.Fuzz(func(t *testing.T, subject, meta, prop, topic string) {
		h := nats.Header{hdrMeta: {meta}, hdrProp: {prop}, hdrTopic: {topic}}
		m, from, seq, err := decodeMsg(testSubjects, &nats.Msg{Subject: subject, Header: h}, time.Unix(0, 0))
		if err != nil {
			return
		}
		node, boot, _ := strings.Cut(from, ".")
		again := encodeMsg(testSubjects, origin{node: node, boot: boot}, seq, m, time.Unix(0, 0))
		if again == nil {
			t.Fatalf("decoded %+v does not encode", m)
		}
		m2, _, _, err := decodeMsg(testSubjects, again, time.Unix(0, 0))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", m, m2, err)
		}
	})
}
