package security

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// subscribeCode subscribes c to one filter at QoS 1 and returns the SUBACK
// reason code.
func (c *v5) subscribeCode(t *testing.T, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	sa, err := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa != nil && len(sa.Reasons) == 1 {
		return sa.Reasons[0]
	}
	t.Fatalf("%s: subscribe %s: SUBACK %+v, %v", c.id, filter, sa, err)
	return 0
}

// TestSubscriptionQuota: past [limits] max_subscriptions_per_session (5) a
// SUBSCRIBE gets v5 SUBACK 0x97, 3.1.1 SUBACK 0x80 (the connection stays), and
// STOMP ERROR "too many subscriptions"; past max_subscriptions (12, all
// sessions together) a new SUBSCRIBE from anyone gets 0x97, the neighbour
// subscribed before keeps receiving, and once the offender leaves the room
// is back.
func TestSubscriptionQuota(t *testing.T) {
	t.Parallel()
	t.Run("per-session", func(t *testing.T) {
		t.Parallel()
		const perSession = 5
		p := startBroker(t, fmt.Sprintf("\n[limits]\nmax_subscriptions_per_session = %d\n", perSession))
		nb := v5Neighbour(t, p, "ws", neighbourIP, "", "")
		nb.mustExchange(t, 10)
		base := uniq("subq")
		c5, _ := mustV5(t, p, "tcp", offenderIP, v5Login(uniq("subq-v5-"), "", "", true, 0))
		for i := range perSession + 2 {
			rc := c5.subscribeCode(t, fmt.Sprintf("%s/v5/%d", base, i))
			if want := byte(1); i >= perSession {
				if rc != 0x97 {
					t.Errorf("v5 subscription %d of %d allowed: SUBACK %#02x, want 0x97", i+1, perSession, rc)
				}
			} else if rc != want {
				t.Fatalf("v5 subscription %d: SUBACK %#02x", i+1, rc)
			}
		}
		c5.mustPub(t, base+"/v5/0", 1, false, "still connected")
		if m := c5.next(t); string(m.Payload) != "still connected" {
			t.Errorf("v5 client after the refusal got %q", m.Payload)
		}

		c3, _ := mustV3(t, p, "tcp", offenderIP, uniq("subq-v3-"), "", "", true)
		for i := range perSession + 1 {
			tok := c3.c.Subscribe(fmt.Sprintf("%s/v3/%d", base, i), 1, nil)
			if err := v3wait(tok); err != nil && i < perSession {
				t.Fatalf("3.1.1 subscription %d: %v", i+1, err)
			}
			got := tok.(interface{ Result() map[string]byte }).Result()[fmt.Sprintf("%s/v3/%d", base, i)]
			if i < perSession && got != 1 {
				t.Fatalf("3.1.1 subscription %d: SUBACK %#02x", i+1, got)
			}
			if i >= perSession && got != 0x80 {
				t.Errorf("3.1.1 subscription %d of %d: SUBACK %#02x, want 0x80", i+1, perSession, got)
			}
		}
		c3.pub(t, base+"/v3/0", 1, false, "still connected")
		if m := c3.next(t); string(m.Payload()) != "still connected" {
			t.Errorf("3.1.1 client after the refusal got %q", m.Payload())
		}

		nc, err := openSTOMP(p, "ws", offenderIP)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		r := newRawSTOMP(nc)
		_ = r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0")
		if f, err := r.next(waitShort); err != nil || f.Command != "CONNECTED" {
			t.Fatalf("STOMP CONNECT: %v %v", f, err)
		}
		for i := range perSession + 1 {
			_ = r.send("SUBSCRIBE", nil, "id", fmt.Sprint(i), "destination", fmt.Sprintf("/topic/%s/stomp/%d", base, i))
		}
		fs, err := r.untilClosed(waitShort)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 || fs[0].Command != "ERROR" || fs[0].Header.Get("message") != "too many subscriptions" {
			t.Errorf("STOMP subscription %d of %d: got %s, want ERROR message:too many subscriptions", perSession+1, perSession, framesString(fs))
		}
		nb.mustExchange(t, 10)
		nb.report(t)
	})

	t.Run("total", func(t *testing.T) {
		t.Parallel()
		const total = 12
		p := startBroker(t, fmt.Sprintf("\n[limits]\nmax_subscriptions = %d\n", total))
		nb := v5Neighbour(t, p, "ws", neighbourIP, "", "") // 1 subscription
		nb.mustExchange(t, 10)
		base := uniq("subt")
		off, _ := mustV5(t, p, "tcp", offenderIP, v5Login(uniq("subt-v5-"), "", "", true, 0))
		granted, refused := 0, 0
		for i := range 2 * total {
			switch rc := off.subscribeCode(t, fmt.Sprintf("%s/%d", base, i)); rc {
			case 1:
				granted++
			case 0x97:
				refused++
			default:
				t.Fatalf("subscription %d: SUBACK %#02x", i+1, rc)
			}
		}
		t.Logf("offender: %d subscriptions granted, %d refused (max_subscriptions %d, the neighbour holds 1)", granted, refused, total)
		if granted != total-1 {
			t.Errorf("offender got %d subscriptions granted; with the neighbour's 1 the total is %d, want %d", granted, granted+1, total)
		}
		nb.mustExchange(t, 10)
		// Anyone else is refused too now.
		other, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("subt-other-"), "", "", true, 0))
		if rc := other.subscribeCode(t, base+"/other"); rc != 0x97 {
			t.Errorf("a new subscription at the total cap: SUBACK %#02x, want 0x97", rc)
		}
		// The offender leaves: its subscriptions go, room is back.
		_ = off.c.Disconnect(&paho.Disconnect{})
		checkFor(t, waitShort, func() error {
			if rc := other.subscribeCode(t, base+"/other"); rc != 1 {
				return fmt.Errorf("after the offender left: SUBACK %#02x", rc)
			}
			return nil
		})
		nb.mustExchange(t, 10)
		nb.report(t)
	})
}

// TestOutboundHeaderCap: a message crossing from one protocol to the other
// carries at most [limits] max_outbound_headers (8) user headers/properties:
// a v5 PUBLISH with 100 user properties reaches a STOMP subscriber with 8 of
// them, a STOMP SEND with 50 custom headers reaches a v5 subscriber with 8
// user properties; within MQTT all 100 go through. Neighbours exchange
// messages throughout.
func TestOutboundHeaderCap(t *testing.T) {
	t.Parallel()
	const maxHeaders = 8
	p := startBroker(t, fmt.Sprintf("\n[limits]\nmax_outbound_headers = %d\n", maxHeaders))
	nb := stompNeighbour(t, p, "tcp", neighbourIP, "", "")
	nb.mustExchange(t, 10)
	topic := uniq("hdr/t")

	// STOMP subscriber, v5 subscriber.
	snc, err := openSTOMP(p, "ws", "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := stompConnect(t, snc, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ssub, err := sc.Subscribe("/topic/"+topic, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Send("/topic/$sec/barrier", "text/plain", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	vsub, _ := mustV5(t, p, "tcp", "", v5Login(uniq("hdr-sub-"), "", "", true, 0))
	vsub.sub(t, topic, 1)

	// MQTT → STOMP and MQTT → MQTT.
	vpub, _ := mustV5(t, p, "tcp", offenderIP, v5Login(uniq("hdr-pub-"), "", "", true, 0))
	var props paho.UserProperties
	for i := range 100 {
		props = append(props, paho.UserProperty{Key: fmt.Sprintf("k%d", i), Value: "v"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	if _, err := vpub.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("from mqtt"), Properties: &paho.PublishProperties{User: props}}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ssub.C:
		if m.Err != nil {
			t.Fatal(m.Err)
		}
		n := 0
		for i := range m.Header.Len() {
			if k, _ := m.Header.GetAt(i); len(k) > 1 && k[0] == 'k' && strings.Trim(k[1:], "0123456789") == "" {
				n++
			}
		}
		t.Logf("v5 PUBLISH with 100 user properties reached STOMP with %d of them (%d headers in all)", n, m.Header.Len())
		if n != maxHeaders {
			t.Errorf("STOMP subscriber got %d of the 100 user properties as headers, want %d", n, maxHeaders)
		}
	case <-time.After(waitShort):
		t.Fatal("STOMP subscriber: no MESSAGE")
	}
	if m := vsub.next(t); m.Properties == nil || len(m.Properties.User) != 100 {
		n := 0
		if m.Properties != nil {
			n = len(m.Properties.User)
		}
		t.Errorf("v5 subscriber got %d of the 100 user properties, want all (no protocol crossing)", n)
	}

	// STOMP → MQTT.
	var opts []func(*frame.Frame) error
	for i := range 50 {
		k := fmt.Sprintf("h%d", i)
		opts = append(opts, stomp.SendOpt.Header(k, "v"))
	}
	if err := sc.Send("/topic/"+topic, "text/plain", []byte("from stomp"), opts...); err != nil {
		t.Fatal(err)
	}
	m := vsub.next(t)
	n := 0
	if m.Properties != nil {
		for _, u := range m.Properties.User {
			if len(u.Key) > 1 && u.Key[0] == 'h' && strings.Trim(u.Key[1:], "0123456789") == "" {
				n++
			}
		}
	}
	t.Logf("STOMP SEND with 50 custom headers reached v5 with %d of them as user properties", n)
	if n != maxHeaders {
		t.Errorf("v5 subscriber got %d of the 50 custom headers as user properties, want %d", n, maxHeaders)
	}
	nb.mustExchange(t, 10)
	nb.report(t)
}
