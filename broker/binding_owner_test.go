package broker

import (
	"errors"
	"slices"
	"testing"

	"github.com/duplexmq/duplex/store"
)

// openAs opens a clean session for user (Identity.Name) from remote.
func openUser(t *testing.T, r *Router, id SessionID, user string) *Session {
	t.Helper()
	s, err := r.Open(id, SessionOptions{Protocol: "stomp", RemoteAddr: "192.0.2.1:1000", Identity: Identity{Name: user}})
	if err != nil {
		t.Fatalf("Open(%q) as %q: %v", id, user, err)
	}
	return s
}

// TestDurableNamesScopedByOwner: two users' durable subscriptions with the
// same name are two subscriptions (issue 8: user b must neither read user
// a's stored messages nor rebind a's subscription), and each survives a
// restart under its owner. Unbind by one owner leaves the other's.
func TestDurableNamesScopedByOwner(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{AnonymousOwnerByAddress: true})
	a := openUser(t, r, "a1", "alice")
	durableSub(t, r, a, "secret/x", "sub-0")
	r.Close(a, CloseClientClosed)
	publishQoS(t, r, "secret/x", "for alice", AtLeastOnce)

	b := openUser(t, r, "b1", "bob")
	durableSub(t, r, b, "public/x", "sub-0")
	publishQoS(t, r, "public/x", "for bob", AtLeastOnce)
	if got := drainedBodies(b); !slices.Equal(got, []string{"for bob"}) {
		t.Fatalf("bob's durable sub-0 got %q, want only his own message", got)
	}
	r.Close(b, CloseClientClosed)

	r, stats := restart(t, r, st, Config{AnonymousOwnerByAddress: true})
	if stats.Subs != 2 {
		t.Fatalf("restore: %d durable subscriptions, want 2 (one per owner)", stats.Subs)
	}
	a = openUser(t, r, "a2", "alice")
	durableSub(t, r, a, "secret/x", "sub-0")
	if got := drainedBodies(a); !slices.Equal(got, []string{"for alice"}) {
		t.Fatalf("alice's durable sub-0 after bob used the name and a restart: %q", got)
	}
	b = openUser(t, r, "b2", "bob")
	if err := r.Unbind(b, "sub-0"); err != nil {
		t.Fatal(err)
	}
	publishQoS(t, r, "secret/x", "still alice's", AtLeastOnce)
	if got := drainedBodies(a); !slices.Equal(got, []string{"still alice's"}) {
		t.Fatalf("alice's subscription after bob unbound his: %q", got)
	}
}

// TestDurableSubscriptionQuota: a user's durable subscriptions count
// against MaxSessionsPerUser (they keep messages for ever, like a
// persistent session); another user has its own count, and deleting one
// frees a place.
func TestDurableSubscriptionQuota(t *testing.T) {
	r := New(Config{MaxSessionsPerUser: 2}, nil)
	a := openUser(t, r, "a", "alice")
	sub := func(s *Session, name string) error {
		return r.SubscribeDurable(s, &Subscription{SubSpec: SubSpec{Key: name, Filter: "t/" + name, Ack: AckClientIndividual}}, name)
	}
	for _, name := range []string{"d1", "d2"} {
		if err := sub(a, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := sub(a, "d3"); !errors.Is(err, ErrSessionQuota) {
		t.Fatalf("third durable subscription: %v, want ErrSessionQuota", err)
	}
	b := openUser(t, r, "b", "bob")
	if err := sub(b, "d1"); err != nil {
		t.Fatalf("bob's first durable subscription: %v", err)
	}
	if err := r.Unsubscribe(a, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Unbind(a, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := sub(a, "d3"); err != nil {
		t.Fatalf("after deleting one: %v", err)
	}
}
