package mqtt

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol/stomp"
	"github.com/duplexmq/duplex/subprotocol/transporttest"
)

// stompClient runs a STOMP connection on the same router, over the same
// fake transport, speaking raw frames.
type stompClient struct {
	t  *testing.T
	ft *transporttest.Fake
}

func dialStomp(t *testing.T, r *broker.Router) *stompClient {
	s := &stompClient{t: t, ft: newFake("v12.stomp")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = stomp.New(stomp.Config{}).Serve(context.Background(), s.ft, r)
	}()
	t.Cleanup(func() {
		s.ft.HangUp()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("STOMP Serve did not return")
		}
	})
	return s
}

func (s *stompClient) send(frame string) { s.ft.Send(false, []byte(frame)) }

// waitFor waits until the server's output contains want.
func (s *stompClient) waitFor(want string) {
	s.t.Helper()
	checkFor(s.t, "STOMP "+want, func() bool { return bytes.Contains(bytes.Join(s.ft.Written(), nil), []byte(want)) })
}

// TestCrossProtocol sends an MQTT PUBLISH to a STOMP subscriber and a STOMP
// SEND to an MQTT subscriber through one router (ARCHITECTURE §3.3: STOMP
// /topic/<t> is MQTT <t>).
func TestCrossProtocol(t *testing.T) {
	r := newRouter(broker.Config{})
	st := dialStomp(t, r)
	st.send("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")
	st.waitFor("CONNECTED")
	st.send("SUBSCRIBE\nid:1\ndestination:/topic/sensors/+\nreceipt:r1\n\n\x00")
	st.waitFor("receipt-id:r1")

	m := dial(t, r, Config{}, Version5)
	m.mustConnect("mq", true, nil)
	m.subscribe(1, 1, "cmd/#")

	m.send(&Publish{Topic: "sensors/t1", QoS: 1, PacketID: 1, Payload: []byte("21.5"),
		Properties: Properties{ContentType: "text/plain", User: []UserProperty{{"unit", "C"}}}})
	m.next(PUBACK)
	st.waitFor("destination:/topic/sensors/t1")
	st.waitFor("21.5")
	st.waitFor("unit:C")

	st.send("SEND\ndestination:/topic/cmd/heat\ncontent-type:text/plain\nmode:eco\n\non\x00")
	p := m.next(PUBLISH).(*Publish)
	if p.Topic != "cmd/heat" || string(p.Payload) != "on" || p.QoS != 1 || p.Properties.ContentType != "text/plain" {
		t.Errorf("MQTT got %+v", p)
	}
	found := false
	for _, u := range p.Properties.User {
		found = found || u == UserProperty{"mode", "eco"}
	}
	if !found {
		t.Errorf("user properties %v, want mode=eco from the STOMP header", p.Properties.User)
	}
}

// TestCrossProtocolHeaderCap: an MQTT 5 PUBLISH with thousands of user
// properties reaches a STOMP subscriber with at most the default 64 user
// headers (issue 8), and the publisher's own MQTT subscribers get them all.
func TestCrossProtocolHeaderCap(t *testing.T) {
	r := newRouter(broker.Config{})
	st := dialStomp(t, r)
	st.send("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")
	st.waitFor("CONNECTED")
	st.send("SUBSCRIBE\nid:1\ndestination:/topic/many\nreceipt:r1\n\n\x00")
	st.waitFor("receipt-id:r1")

	p := dial(t, r, Config{}, Version5)
	p.mustConnect("many", true, nil)
	p.subscribe(1, 0, "many")
	user := make([]UserProperty, 5000)
	for i := range user {
		user[i] = UserProperty{Key: "k", Value: "v"}
	}
	p.send(&Publish{Topic: "many", Payload: []byte("end-of-body"), Properties: Properties{User: user}})
	st.waitFor("end-of-body")
	if n := bytes.Count(bytes.Join(st.ft.Written(), nil), []byte("k:v\n")); n != stomp.DefaultMaxOutboundHeaders {
		t.Errorf("STOMP MESSAGE carries %d user headers, want %d", n, stomp.DefaultMaxOutboundHeaders)
	}
	if m := p.next(PUBLISH).(*Publish); len(m.Properties.User) != len(user) {
		t.Errorf("the MQTT subscriber got %d user properties, want all %d", len(m.Properties.User), len(user))
	}
}
