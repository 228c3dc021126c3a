package security

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDurableSubscriptionNotShared: a STOMP durable subscription belongs to
// the user who made it. User a (ACL: secret/#) leaves a durable
// subscription on /topic/secret/a — RabbitMQ style (durable:true, named by
// its id) and ActiveMQ style (activemq.subscriptionName, no client-id) —
// and a secret is published while it is away; user b (ACL: public/#)
// subscribing to /topic/public/x under the same name must not receive that
// secret (nor rebind a's subscription), and a, back, receives it. The ACL
// speaks of topics only: a durable subscription's queue is its owner's.
func TestDurableSubscriptionNotShared(t *testing.T) {
	t.Parallel()
	p := startBroker(t, authConfig(t)+`
[[acl]]
user = "a"
access = "allow"
action = "all"
topic = "secret/#"

[[acl]]
user = "b"
access = "allow"
action = "all"
topic = "public/#"
`)
	login := func(user, pass string) *rawSTOMP {
		t.Helper()
		nc, err := openSTOMP(p, "tcp", "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		r := newRawSTOMP(nc)
		_ = r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0", "login", user, "passcode", pass)
		if f, err := r.next(waitShort); err != nil || f.Command != "CONNECTED" {
			t.Fatalf("%s: CONNECT: %v %v", user, f, err)
		}
		return r
	}
	for _, dialect := range []struct {
		name string
		hdrs func(id string) []string
	}{
		{"rabbitmq", func(id string) []string { return []string{"durable", "true", "auto-delete", "false"} }},
		{"activemq", func(id string) []string { return []string{"activemq.subscriptionName", "nightly"} }},
	} {
		t.Run(dialect.name, func(t *testing.T) {
			t.Parallel()
			id := uniq("sub-")
			secret := uniq("the secret ")
			topic := "/topic/secret/" + uniq(dialect.name)
			a := login("a", "pw-a")
			_ = a.send("SUBSCRIBE", nil, append([]string{"id", id, "destination", topic, "receipt", "s"}, dialect.hdrs(id)...)...)
			if f, err := a.next(waitShort); err != nil || f.Command != "RECEIPT" {
				t.Fatalf("a: durable SUBSCRIBE: %v %v", f, err)
			}
			_ = a.send("DISCONNECT", nil, "receipt", "d")
			if _, err := a.untilClosed(waitShort); err != nil {
				t.Fatal(err)
			}
			pub := login("a", "pw-a")
			_ = pub.send("SEND", []byte(secret), "destination", topic, "receipt", "p")
			if f, err := pub.next(waitShort); err != nil || f.Command != "RECEIPT" {
				t.Fatalf("publishing the secret: %v %v", f, err)
			}

			b := login("b", "pw-b")
			_ = b.send("SUBSCRIBE", nil, append([]string{"id", id, "destination", "/topic/public/x"}, dialect.hdrs(id)...)...)
			// b's own marker on public/x: anything b gets before it came
			// from elsewhere.
			marker := uniq("marker ")
			_ = b.send("SEND", []byte(marker), "destination", "/topic/public/x", "receipt", "m")
			deadline := time.Now().Add(waitShort)
			for time.Now().Before(deadline) {
				f, err := b.next(time.Until(deadline))
				if err != nil {
					t.Logf("b: %v", err)
					break
				}
				if f.Command == "MESSAGE" && string(f.Body) == secret {
					t.Errorf("user b, allowed public/# only, received user a's %q from %s by reusing a's durable subscription name", secret, f.Header.Get("destination"))
					break
				}
				if f.Command == "MESSAGE" && string(f.Body) == marker {
					break
				}
				if f.Command == "ERROR" {
					t.Logf("b: %s", frameString(f))
					break
				}
			}
			b.nc.Close()

			// a comes back for its message.
			a2 := login("a", "pw-a")
			_ = a2.send("SUBSCRIBE", nil, append([]string{"id", id, "destination", topic}, dialect.hdrs(id)...)...)
			f, err := a2.next(waitShort)
			if err != nil || f.Command != "MESSAGE" || string(f.Body) != secret {
				got := fmt.Sprint(err)
				if f != nil {
					got = frameString(f)
				}
				t.Errorf("a back on its durable subscription: got %s, want the message published while it was away", got)
			}
		})
	}
}

// TestDurableSubscriptionQuota: a STOMP durable subscription is persistent
// state a user leaves on the broker, as an MQTT persistent session is: each
// one stores its own copy of every message on its topic until consumed.
// With max_sessions_per_user = 2, user a's third durable subscription is
// refused (ERROR "quota exceeded"), so one user cannot make one publish be
// stored N times; user b still creates its own. (The plan names MQTT
// persistent sessions only; without such a cap a user can hold up to
// max_subscriptions, 1,000,000 by default, durable subscriptions of
// max_queue_bytes each, which never expire.)
func TestDurableSubscriptionQuota(t *testing.T) {
	t.Parallel()
	p := startBroker(t, authConfig(t)+`
[limits]
max_sessions_per_user = 2
`)
	nb := v5Neighbour(t, p, "tcp", neighbourIP, "b", "pw-b")
	nb.mustExchange(t, 10)
	topic := uniq("amp/t")
	made := func(user, pass string, n int) (int, string) {
		nc, err := openSTOMP(p, "tcp", "")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		r := newRawSTOMP(nc)
		_ = r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0", "login", user, "passcode", pass)
		if f, err := r.next(waitShort); err != nil || f.Command != "CONNECTED" {
			t.Fatalf("%s: CONNECT %v %v", user, f, err)
		}
		for i := range n {
			_ = r.send("SUBSCRIBE", nil, "id", uniq(user+"-d"), "destination", "/topic/"+topic, "durable", "true", "receipt", fmt.Sprint(i))
			f, err := r.next(waitShort)
			if err != nil {
				return i, err.Error()
			}
			if f.Command != "RECEIPT" {
				return i, frameString(f)
			}
		}
		_ = r.send("DISCONNECT", nil, "receipt", "bye")
		_, _ = r.next(waitShort)
		return n, ""
	}
	got, refusal := made("a", "pw-a", 10)
	t.Logf("user a made %d of 10 durable subscriptions; then: %s", got, refusal)
	if got != 2 || !strings.Contains(refusal, "quota exceeded") {
		t.Errorf("user a made %d durable subscriptions with max_sessions_per_user = 2 (then %q); want 2, then ERROR quota exceeded", got, refusal)
	}
	if got, refusal := made("b", "pw-b", 2); got != 2 {
		t.Errorf("user b made %d of 2 durable subscriptions: %s", got, refusal)
	}
	nb.mustExchange(t, 10)
	nb.report(t)
}
