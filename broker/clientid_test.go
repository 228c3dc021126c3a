package broker

import (
	"context"
	"sync"
	"testing"
)

// clientIDRecorder is an Authorizer that allows everything and records the
// client ids it was asked about.
type clientIDRecorder struct {
	mu  sync.Mutex
	ids []string
}

func (a *clientIDRecorder) Allow(_ Identity, clientID string, _ Op, _ string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, clientID)
	return true
}

// TestAuthorizerSeesClientID: ACL patterns' %c match the client's own
// identifier. A STOMP session (generated id, client-id header in
// SessionOptions.ClientID) is checked under the header's value; an MQTT
// session (no ClientID) under its session id, which is the client id.
func TestAuthorizerSeesClientID(t *testing.T) {
	rec := &clientIDRecorder{}
	r := New(Config{Authorizer: rec}, nil)
	stomp, err := r.Open("", SessionOptions{Protocol: "stomp", ClientID: "device-7"})
	if err != nil {
		t.Fatal(err)
	}
	mqtt, err := r.Open("sensor-3", SessionOptions{Protocol: "mqtt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Session{stomp, mqtt} {
		rec.ids = nil
		if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "1", Filter: "a/b"}}); err != nil {
			t.Fatal(err)
		}
		if err := r.Publish(context.Background(), s, &Message{Topic: "a/b"}); err != nil {
			t.Fatal(err)
		}
		want := s.AuthClientID()
		if len(rec.ids) != 2 || rec.ids[0] != want || rec.ids[1] != want {
			t.Errorf("%s session: Authorizer saw client ids %q, want %q twice", s.Protocol, rec.ids, want)
		}
	}
	if stomp.AuthClientID() != "device-7" || mqtt.AuthClientID() != "sensor-3" {
		t.Errorf("AuthClientID: stomp %q, mqtt %q", stomp.AuthClientID(), mqtt.AuthClientID())
	}
}
