package e2e

// Cross-protocol interop on one router: MQTT topic t is STOMP /topic/t.

import (
	"bytes"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"
)

func TestMQTTCrossMQTT5ToStomp(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t)
	st := connect(t, s.testServer)
	base := uniq("xp/sensors")
	exact := st.subscribe(t, "/topic/"+base+"/t1", stomp.AckAuto)
	wild := st.subscribe(t, "/topic/"+base+"/+", stomp.AckAuto)

	pub := newV5(t, s, uniq("pub"))
	payload := []byte("{\"t\":21.5}\x00\xff\xfe binary tail")
	for qos := byte(0); qos <= 2; qos++ {
		payload[len(payload)-1] = 'A' + qos
		pub.pub(t, &paho.Publish{Topic: base + "/t1", QoS: qos, Payload: payload, Properties: &paho.PublishProperties{
			ContentType:     "application/json",
			ResponseTopic:   base + "/replies",
			CorrelationData: []byte("corr-1"),
			User:            paho.UserProperties{{Key: "unit", Value: "C"}, {Key: "site", Value: "lab 7"}},
		}})
		for _, sub := range []*stomp.Subscription{exact, wild} {
			m := recv(t, sub, waitShort)
			h := m.Header
			if !bytes.Equal(m.Body, payload) {
				t.Errorf("QoS %d %s: body %q, want %q", qos, sub.Destination(), m.Body, payload)
			}
			for k, want := range map[string]string{
				"destination":    "/topic/" + base + "/t1",
				"content-type":   "application/json",
				"unit":           "C",
				"site":           "lab 7",
				"reply-to":       "/topic/" + base + "/replies",
				"correlation-id": "corr-1",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("QoS %d %s: header %s = %q, want %q (headers %s)", qos, sub.Destination(), k, got, want, headerString(h))
				}
			}
		}
	}
}

func TestMQTTCrossStompToMQTT5(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t)
	base := uniq("xp/cmd")
	sub := newV5(t, s, uniq("sub"))
	sub.sub(t, base+"/#", 1)
	sub2 := newV5(t, s, uniq("sub0"))
	sub2.sub(t, base+"/heat", 0)

	st := connect(t, s.testServer)
	body := []byte("on\x00\x01\x02")
	if err := st.Send("/topic/"+base+"/heat", "application/octet-stream", body,
		stomp.SendOpt.Header("mode", "eco"),
		stomp.SendOpt.Header("prio", "high"),
		stomp.SendOpt.Header("reply-to", "/topic/"+base+"/replies"),
		stomp.SendOpt.Header("correlation-id", "abc-123"),
		stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("STOMP SEND: %v", err)
	}
	p := sub.next(t, waitShort)
	if p.Topic != base+"/heat" || !bytes.Equal(p.Payload, body) {
		t.Fatalf("MQTT got %q %q, want %q %q", p.Topic, p.Payload, base+"/heat", body)
	}
	if p.QoS != 1 {
		t.Errorf("STOMP message to a QoS 1 subscription arrived at QoS %d, want 1", p.QoS)
	}
	pp := p.Properties
	if pp == nil {
		t.Fatalf("no properties")
	}
	if pp.ContentType != "application/octet-stream" {
		t.Errorf("content type %q", pp.ContentType)
	}
	if pp.User.Get("mode") != "eco" || pp.User.Get("prio") != "high" {
		t.Errorf("user properties %s, want mode=eco prio=high", userProps(pp.User))
	}
	for _, u := range pp.User {
		switch u.Key {
		case "destination", "content-type", "content-length", "receipt", "reply-to", "correlation-id", "message-id", "subscription":
			t.Errorf("STOMP frame header %s leaked into user properties: %s", u.Key, userProps(pp.User))
		}
	}
	if pp.ResponseTopic != base+"/replies" {
		t.Errorf("response topic %q, want %q (from reply-to /topic/…)", pp.ResponseTopic, base+"/replies")
	}
	if string(pp.CorrelationData) != "abc-123" {
		t.Errorf("correlation data %q, want abc-123", pp.CorrelationData)
	}
	if q := sub2.expect(t, base+"/heat", string(body)); q.QoS != 0 {
		t.Errorf("QoS 0 subscription got QoS %d", q.QoS)
	}

	// MQTT 5 answers on the response topic; STOMP gets it on reply-to.
	replies := st.subscribe(t, "/topic/"+base+"/replies", stomp.AckAuto)
	sub.pub(t, &paho.Publish{Topic: pp.ResponseTopic, QoS: 1, Payload: []byte("done"),
		Properties: &paho.PublishProperties{CorrelationData: pp.CorrelationData}})
	m := recvBody(t, replies, "done")
	if got := m.Header.Get("correlation-id"); got != "abc-123" {
		t.Errorf("reply correlation-id %q, want abc-123", got)
	}
	// The subscriber's own reply also matched its base/# subscription.
	sub.expect(t, base+"/replies", "done")
}

func TestMQTTCross311AndStomp(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t)
	base := uniq("xp/v3")
	st := connect(t, s.testServer)
	stSub := st.subscribe(t, "/topic/"+base+"/up", stomp.AckAuto)
	for _, tr := range v3Transports {
		t.Run(tr.name, func(t *testing.T) {
			c := newV3(t, s, tr, uniq("v3x"), true)
			c.sub(t, base+"/down", 1)
			c.pub(t, base+"/up", 1, false, []byte("from 3.1.1 "+tr.name+"\x00"))
			recvBody(t, stSub, "from 3.1.1 "+tr.name+"\x00")
			if err := st.Send("/topic/"+base+"/down", "text/plain", []byte("to "+tr.name), stomp.SendOpt.Header("x", "y"), stomp.SendOpt.Receipt); err != nil {
				t.Fatalf("STOMP SEND: %v", err)
			}
			if m := c.expect(t, base+"/down", "to "+tr.name); m.qos != 1 {
				t.Errorf("3.1.1 QoS 1 subscription got QoS %d", m.qos)
			}
		})
	}
}
