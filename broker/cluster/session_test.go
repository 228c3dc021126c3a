package cluster

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
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

// sessionRouter is a fakeRouter that holds one session to release.
type sessionRouter struct {
	fakeRouter
	state    *broker.SessionState
	mu       sync.Mutex
	released []broker.SessionClaim
}

func (r *sessionRouter) ReleaseToPeer(c broker.SessionClaim) (*broker.SessionState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = append(r.released, c)
	return r.state, nil
}

func (r *sessionRouter) HeldKeys() []string { return []string{"mheld"} }

// TestClaimLargeState: a session's state larger than NATS's max_payload
// comes over in parts, whole and in order; a claim nobody holds ends at
// once with nothing.
func TestClaimLargeState(t *testing.T) {
	la, lb := freeAddr(t), freeAddr(t)
	a, err := New(Config{Name: "t", Listen: la, Peers: []string{lb}, MaxPayload: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Name: "t", Listen: lb, Peers: []string{la}, MaxPayload: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	st := &broker.SessionState{Subs: []broker.SubSpec{{Key: "a/#", Filter: "a/#", QoS: 1}}}
	for i := range 200 {
		st.Pending = append(st.Pending, broker.MovedDelivery{QoS: 1,
			Msg: &broker.Message{Topic: "a/b", QoS: 1, Payload: []byte(fmt.Sprintf("%04d%01000d", i, 0))}})
	}
	ra := &sessionRouter{state: st}
	if err := a.Start(ra); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if err := b.Start(&sessionRouter{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	testutil.EventuallyErr(t, 10*time.Second, func() error { return errorsJoin(a.Ready(), b.Ready()) })

	if got, err := b.Claim(broker.SessionClaim{Key: "mnobody", Resume: true}); got != nil || err != nil {
		t.Fatalf("claim of an id nobody holds: %v, %v", got, err)
	}
	var got *broker.SessionState
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		if got, err = b.Claim(broker.SessionClaim{Key: "mheld", Owner: "o", Resume: true}); err != nil || got == nil {
			return fmt.Errorf("claim: %v, %v (the holder's subscription may be on its way)", got, err)
		}
		return nil
	})
	if len(got.Pending) != len(st.Pending) {
		t.Fatalf("%d deliveries, want %d", len(got.Pending), len(st.Pending))
	}
	for i, d := range got.Pending {
		if string(d.Msg.Payload) != string(st.Pending[i].Msg.Payload) {
			t.Fatalf("delivery %d: %.8q, want %.8q", i, d.Msg.Payload, st.Pending[i].Msg.Payload)
		}
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if c := ra.released[len(ra.released)-1]; c.Key != "mheld" || c.Owner != "o" || !c.Resume || c.Wait != DefaultClaimWait/2 {
		t.Fatalf("holder was asked %+v", c)
	}
}
