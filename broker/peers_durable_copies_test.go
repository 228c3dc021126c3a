package broker

import (
	"fmt"
	"testing"
)

// TestDropClusterCopies: of a state handed over by another node, a
// cluster-durable session drops the QoS 1/2 messages of its cluster
// subscriptions (the cluster store delivers them again) and keeps the
// retained ones, a share group's, QoS 0 ones and the PUBRELs owed.
func TestDropClusterCopies(t *testing.T) {
	msg := func(topic string, qos QoS) *Message { return &Message{Topic: topic, QoS: qos, Payload: []byte(topic)} }
	st := &SessionState{
		Subs: []SubSpec{{Key: "a/#", Filter: "a/#", QoS: 2}, {Key: "$share/g/b", Filter: "b", Group: "g", QoS: 1}, {Key: "z", Filter: "z", QoS: 0}},
		Pending: []MovedDelivery{
			{Msg: msg("a/x", 2), QoS: 2},                 // the cluster has it
			{Msg: msg("b", 1), QoS: 1},                   // a share group's
			{Msg: msg("a/r", 1), QoS: 1, Retained: true}, // sent on SUBSCRIBE
			{Msg: msg("z", 0), QoS: 0},
		},
		Queue: []MovedDelivery{{Msg: msg("a/q", 2), SubKey: "a/#", QoS: 2}},
		Flights: []MovedFlight{
			{ID: 1, Released: true},
			{ID: 2, D: MovedDelivery{Msg: msg("a/f", 2), SubKey: "a/#", QoS: 2}},
			{ID: 3, D: MovedDelivery{Msg: msg("b", 1), SubKey: "$share/g/b", QoS: 1}},
		},
	}
	dropClusterCopies(st)
	var got []string
	for _, md := range st.Pending {
		got = append(got, md.Msg.Topic)
	}
	if fmt.Sprint(got) != "[b a/r z]" || len(st.Queue) != 0 {
		t.Fatalf("pending %v, queue %d", got, len(st.Queue))
	}
	if len(st.Flights) != 2 || st.Flights[0].ID != 1 || st.Flights[1].ID != 3 {
		t.Fatalf("flights %+v", st.Flights)
	}
}
