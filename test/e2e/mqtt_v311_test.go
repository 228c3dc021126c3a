package e2e

// MQTT 3.1.1 interop with paho.mqtt.golang (the Eclipse Paho 3.1.1 client),
// over WebSocket (ws://…/mqtt, subprotocol mqtt) and plain TCP (ServeTCP).

import (
	"bytes"
	"fmt"
	"testing"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
)

// forEachV3Transport runs f as a subtest per transport, on one server.
func forEachV3Transport(t *testing.T, f func(t *testing.T, s *mqttServer, tr v3Transport)) {
	t.Parallel()
	s := startMQTTServer(t)
	for _, tr := range v3Transports {
		t.Run(tr.name, func(t *testing.T) { f(t, s, tr) })
	}
}

func TestMQTT311QoSRoundTrip(t *testing.T) {
	forEachV3Transport(t, func(t *testing.T, s *mqttServer, tr v3Transport) {
		sub := newV3(t, s, tr, uniq("sub"), true)
		pub := newV3(t, s, tr, uniq("pub"), true)
		topic := uniq("v3rt/" + tr.name + "/")
		sub.sub(t, topic+"/q2", 2)
		sub.sub(t, topic+"/q1", 1)
		sub.sub(t, topic+"/q0", 0)
		for qos := byte(0); qos <= 2; qos++ {
			payload := []byte(fmt.Sprintf("qos%d\x00\xff", qos))
			pub.pub(t, topic+"/q2", qos, false, payload)
			m := sub.next(t)
			if m.topic != topic+"/q2" || !bytes.Equal(m.payload, payload) || m.qos != qos || m.retained || m.dup {
				t.Errorf("QoS %d: got %+v", qos, m)
			}
		}
		for _, c := range []struct {
			filter     string
			pubQoS, to byte
		}{{"/q1", 2, 1}, {"/q0", 2, 0}, {"/q0", 1, 0}} {
			payload := fmt.Sprintf("%d->%d", c.pubQoS, c.to)
			pub.pub(t, topic+c.filter, c.pubQoS, false, []byte(payload))
			if m := sub.expect(t, topic+c.filter, payload); m.qos != c.to {
				t.Errorf("QoS %d publish to a QoS %d subscription arrived at QoS %d", c.pubQoS, c.to, m.qos)
			}
		}
		// A wildcard subscription and a second, overlapping one: 3.1.1
		// allows one or two copies [MQTT-3.3.5-1]; at least one arrives.
		w := newV3(t, s, tr, uniq("wild"), true)
		w.sub(t, topic+"/#", 1)
		pub.pub(t, topic+"/deep/er", 1, false, []byte("deep"))
		w.expect(t, topic+"/deep/er", "deep")
	})
}

func TestMQTT311Retained(t *testing.T) {
	forEachV3Transport(t, func(t *testing.T, s *mqttServer, tr v3Transport) {
		pub := newV3(t, s, tr, uniq("pub"), true)
		topic := uniq("v3ret/")
		pub.pub(t, topic, 1, true, []byte("r1"))
		a := newV3(t, s, tr, uniq("a"), true)
		a.sub(t, topic, 1)
		if m := a.expect(t, topic, "r1"); !m.retained {
			t.Errorf("retained message on subscribe without RETAIN")
		}
		pub.pub(t, topic, 2, true, []byte("r2"))
		if m := a.expect(t, topic, "r2"); m.retained {
			t.Errorf("live delivery has RETAIN set [MQTT-3.3.1-9]")
		}
		b := newV3(t, s, tr, uniq("b"), true)
		b.sub(t, topic, 2)
		if m := b.expect(t, topic, "r2"); !m.retained || m.qos != 2 {
			t.Errorf("replaced retained: retain %v QoS %d, want true 2", m.retained, m.qos)
		}
		mk := b.expectOnlyMarker(t, pub, topic)
		a.expect(t, topic, mk)
		// Clear.
		pub.pub(t, topic, 0, true, nil)
		a.expect(t, topic, "")
		c := newV3(t, s, tr, uniq("c"), true)
		c.sub(t, topic, 1)
		c.expectOnlyMarker(t, pub, topic)
	})
}

func TestMQTT311WillOnAbruptClose(t *testing.T) {
	forEachV3Transport(t, func(t *testing.T, s *mqttServer, tr v3Transport) {
		watcher := newV3(t, s, tr, uniq("watch"), true)
		willTopic := uniq("v3will/")
		watcher.sub(t, willTopic+"/#", 1)

		dies := newV3(t, s, tr, uniq("dies"), true, func(o *pahomqtt.ClientOptions) {
			o.SetBinaryWill(willTopic+"/abrupt", []byte("gone\x00"), 1, false)
		})
		dies.breakConn()
		dies.expectLost(t)
		if m := watcher.expect(t, willTopic+"/abrupt", "gone\x00"); m.qos != 1 || m.retained {
			t.Errorf("will: QoS %d retained %v, want 1 false", m.qos, m.retained)
		}

		// A retained will.
		r := newV3(t, s, tr, uniq("dies-r"), true, func(o *pahomqtt.ClientOptions) {
			o.SetWill(willTopic+"/retained", "offline", 1, true)
		})
		r.breakConn()
		watcher.expect(t, willTopic+"/retained", "offline")
		late := newV3(t, s, tr, uniq("late"), true)
		late.sub(t, willTopic+"/retained", 1)
		if m := late.expect(t, willTopic+"/retained", "offline"); !m.retained {
			t.Errorf("retained will arrived without RETAIN")
		}

		// A DISCONNECT discards the will [MQTT-3.1.2-10].
		id := uniq("polite")
		p := newV3(t, s, tr, id, true, func(o *pahomqtt.ClientOptions) {
			o.SetWill(willTopic+"/polite", "should not", 1, false)
		})
		p.c.Disconnect(250)
		s.waitSessionGone(t, id)
		watcher.expectOnlyMarker(t, watcher, willTopic+"/polite")
	})
}

func TestMQTT311SessionResume(t *testing.T) {
	forEachV3Transport(t, func(t *testing.T, s *mqttServer, tr v3Transport) {
		pub := newV3(t, s, tr, uniq("pub"), true)
		id := uniq("v3persist")
		topic := uniq("v3sess/")
		c := newV3(t, s, tr, id, false)
		c.sub(t, topic+"/#", 2)
		// Break the connection and wait until the client noticed; the
		// resuming connection below takes the session over only after
		// the old one is detached (Router.Open), so nothing is lost.
		c.breakConn()
		c.expectLost(t)

		want := []struct {
			qos     byte
			payload string
		}{{1, "one"}, {2, "two"}, {1, "three"}}
		for _, m := range want {
			pub.pub(t, topic+"/x", m.qos, false, []byte(m.payload))
		}
		r := newV3(t, s, tr, id, false)
		if !r.c.IsConnected() {
			t.Fatal("not connected")
		}
		for _, m := range want {
			got := r.next(t)
			if got.topic != topic+"/x" || string(got.payload) != m.payload || got.qos != m.qos {
				t.Fatalf("resume: got %q %q QoS %d, want %q QoS %d", got.topic, got.payload, got.qos, m.payload, m.qos)
			}
		}
		// The subscription is still there.
		pub.pub(t, topic+"/y", 1, false, []byte("live"))
		r.expect(t, topic+"/y", "live")

		// Clean session 1 discards it.
		r.c.Disconnect(250)
		fresh := newV3(t, s, tr, id, true)
		pub.pub(t, topic+"/x", 1, false, []byte("lost"))
		fresh.sub(t, topic+"/z", 1)
		fresh.expectOnlyMarker(t, pub, topic+"/z")
	})
}

func TestMQTT311Takeover(t *testing.T) {
	forEachV3Transport(t, func(t *testing.T, s *mqttServer, tr v3Transport) {
		pub := newV3(t, s, tr, uniq("pub"), true)
		id := uniq("v3twin")
		topic := uniq("v3take/")
		a := newV3(t, s, tr, id, false)
		a.sub(t, topic, 1)
		b := newV3(t, s, tr, id, false)
		// 3.1.1 has no DISCONNECT from the server: the old connection is
		// just closed [MQTT-3.1.4-2].
		a.expectLost(t)
		pub.pub(t, topic, 1, false, []byte("to-b"))
		b.expect(t, topic, "to-b")
		if n := len(a.msgs); n != 0 {
			t.Errorf("old connection received %d messages", n)
		}
	})
}

// TestMQTT31 connects paho.mqtt.golang as MQTT 3.1 (protocol level 3,
// "MQIsdp") over TCP, where no subprotocol is needed.
func TestMQTT31OverTCP(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t)
	tcp := v3Transports[1]
	v31 := func(o *pahomqtt.ClientOptions) { o.SetProtocolVersion(3) }
	sub := newV3(t, s, tcp, uniq("s31"), true, v31)
	pub := newV3(t, s, tcp, uniq("p31"), true, v31)
	topic := uniq("v31/")
	sub.sub(t, topic, 2)
	for qos := byte(0); qos <= 2; qos++ {
		pub.pub(t, topic, qos, false, []byte{qos, 0xff})
		if m := sub.next(t); !bytes.Equal(m.payload, []byte{qos, 0xff}) || m.qos != qos {
			t.Errorf("3.1 QoS %d: got %+v", qos, m)
		}
	}
}
