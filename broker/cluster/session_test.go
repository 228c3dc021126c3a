package cluster

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// TestSessionStateWire: a session's state survives its trip between nodes
// field for field, with a message's expiry as the time left.
func TestSessionStateWire(t *testing.T) {
	now := time.Now()
	m := &broker.Message{Topic: "a/b", Payload: []byte{0, 0xff, 'x'}, ContentType: "ct", ResponseTopic: "r/t",
		CorrelationData: []byte{}, PayloadFormat: 1, QoS: broker.AtLeastOnce, From: "pub", Origin: "mqtt",
		Props: []broker.Property{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}, Expires: now.Add(90 * time.Second)}
	st := &broker.SessionState{
		Subs: []broker.SubSpec{{Key: "a/+", Filter: "a/+", QoS: broker.AtLeastOnce, NoLocal: true, SubID: 7},
			{Key: "$share/g/a/#", Filter: "a/#", Group: "g", QoS: broker.ExactlyOnce}},
		Flights:    []broker.MovedFlight{{ID: 3, D: broker.MovedDelivery{Msg: m, SubKey: "a/+", QoS: 1, Retained: true}}, {ID: 4, Released: true}},
		Queue:      []broker.MovedDelivery{{Msg: m, SubKey: "a/+", QoS: 1}},
		InboundIDs: []uint16{9},
		NextID:     5,
		Pending:    []broker.MovedDelivery{{Msg: m, QoS: 1, Redelivered: true}},
	}
	b, err := json.Marshal(toWire(st, now))
	if err != nil {
		t.Fatal(err)
	}
	var w wireState
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	got := w.state(now)
	for _, d := range []*broker.MovedDelivery{&got.Flights[0].D, &got.Queue[0], &got.Pending[0]} {
		if d.Msg.Expires.Sub(m.Expires).Abs() > time.Millisecond {
			t.Fatalf("expiry %v, want %v", d.Msg.Expires, m.Expires)
		}
		d.Msg.Expires = m.Expires
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, st)
	}
}
