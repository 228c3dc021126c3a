package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

func user(name string) Identity { return Identity{Name: name} }

var anonymous = Identity{Anonymous: true}

// openAs opens id for identity who from addr.
func openAs(r *Router, id SessionID, who Identity, addr string, o SessionOptions) (*Session, error) {
	o.Protocol, o.RemoteAddr, o.Identity = "test", addr, who
	return r.Open(id, o)
}

func mustOpenAs(t testing.TB, r *Router, id SessionID, who Identity, addr string, o SessionOptions) *Session {
	t.Helper()
	s, err := openAs(r, id, who, addr, o)
	if err != nil {
		t.Fatalf("Open(%q) as %q from %s: %v", id, who.Name, addr, err)
	}
	return s
}

// openBolt opens a bbolt store at path, closed at the end of the test.
func openBolt(t *testing.T, path string) *store.Bolt {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestOwnerKey(t *testing.T) {
	for _, c := range []struct {
		id     Identity
		addr   string
		byAddr bool
		want   string
	}{
		{user("alice"), "10.0.0.1:5", true, "alice"},
		{user("@10.0.0.1"), "10.0.0.2:5", true, "@@10.0.0.1"}, // never an anonymous key
		{anonymous, "10.0.0.1:5", false, ""},
		{Identity{}, "10.0.0.1:5", false, ""},
		{anonymous, "10.0.0.1:5", true, "@10.0.0.1"},
		{anonymous, "[::ffff:10.0.0.1]:7", true, "@10.0.0.1"},
		{anonymous, "[2001:db8::1]:7", true, "@2001:db8::1"},
		{anonymous, "pipe", true, "@pipe"},
	} {
		if got := ownerKey(c.id, c.addr, c.byAddr); got != c.want {
			t.Errorf("ownerKey(%+v, %q, %v) = %q, want %q", c.id, c.addr, c.byAddr, got, c.want)
		}
	}
}

// Issue 8 item 4: another user presenting a persistent session's client
// id is refused; the owner's session, its queued messages and its
// connection are untouched, and the owner resumes it.
func TestClientIDOwnership(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	alice := mustOpenAs(t, r, "dev", user("alice"), "10.0.0.1:1", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, alice, "t")
	r.Close(alice, CloseClientClosed)
	publishQoS(t, r, "t", "m1", AtLeastOnce)

	if _, err := openAs(r, "dev", user("bob"), "10.0.0.9:1", SessionOptions{Expiry: time.Hour}); !errors.Is(err, ErrClientIDOwned) {
		t.Fatalf("bob presenting alice's id: %v, want ErrClientIDOwned", err)
	}
	if _, err := openAs(r, "dev", user("bob"), "10.0.0.9:1", SessionOptions{CleanStart: true}); !errors.Is(err, ErrClientIDOwned) {
		t.Fatalf("bob with a clean start: %v, want ErrClientIDOwned (a clean start would discard alice's session)", err)
	}
	if n := countStored(t, st, "dev"); n != 1 {
		t.Fatalf("alice's stored messages: %d, want 1", n)
	}
	if got := r.Stats().ClientIDRefused; got != 2 {
		t.Fatalf("ClientIDRefused = %d, want 2", got)
	}
	r.mu.RLock()
	same := r.sessions["dev"] == alice
	r.mu.RUnlock()
	if !same || alice.taken.Load() || alice.Subscription("t") == nil {
		t.Fatal("alice's session was touched by the refused Open")
	}

	// A connected session is not closed either.
	live := mustOpenAs(t, r, "live", user("alice"), "10.0.0.1:2", SessionOptions{})
	if _, err := openAs(r, "live", user("bob"), "10.0.0.9:2", SessionOptions{}); !errors.Is(err, ErrClientIDOwned) {
		t.Fatalf("bob presenting a connected id: %v", err)
	}
	if live.Closed() {
		t.Fatalf("alice's connection closed: %v", live.Reason())
	}

	// The owner resumes and gets her message.
	again := mustOpenAs(t, r, "dev", user("alice"), "10.0.0.2:1", SessionOptions{Expiry: time.Hour})
	if !again.Resumed() {
		t.Fatal("alice's session not resumed")
	}
	if got := deliveryBodies(collectStored(t, again, 1)); !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("alice got %q, want [m1]", got)
	}
	if si, _ := r.SessionPage("", 10, "dev"); len(si) != 1 || si[0].Owner != "alice" || si[0].User != "alice" {
		t.Fatalf("SessionPage(dev) = %+v, want owner and user alice", si)
	}
}

// Anonymous clients: in the zero configuration they share the owner "",
// so any client may resume an anonymous session (as before); with
// AnonymousOwnerByAddress only one from the same address may, and a user
// may not take it either.
func TestClientIDOwnershipAnonymous(t *testing.T) {
	r := New(Config{}, nil)
	a := mustOpenAs(t, r, "a", anonymous, "10.0.0.1:1", SessionOptions{Expiry: time.Hour})
	r.Close(a, CloseClientClosed)
	if s := mustOpenAs(t, r, "a", anonymous, "10.0.0.2:1", SessionOptions{Expiry: time.Hour}); !s.Resumed() {
		t.Fatal("zero config: another anonymous client did not resume the session")
	}

	r = New(Config{AnonymousOwnerByAddress: true}, nil)
	a = mustOpenAs(t, r, "a", anonymous, "10.0.0.1:1", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, a, "t")
	r.Close(a, CloseClientClosed)
	if _, err := openAs(r, "a", anonymous, "10.0.0.2:1", SessionOptions{Expiry: time.Hour}); !errors.Is(err, ErrClientIDOwned) {
		t.Fatalf("anonymous from another address: %v, want ErrClientIDOwned", err)
	}
	if _, err := openAs(r, "a", user("mallory"), "10.0.0.1:1", SessionOptions{Expiry: time.Hour}); !errors.Is(err, ErrClientIDOwned) {
		t.Fatalf("a user taking an anonymous session: %v, want ErrClientIDOwned", err)
	}
	if s := mustOpenAs(t, r, "a", anonymous, "10.0.0.1:2", SessionOptions{Expiry: time.Hour}); !s.Resumed() || s.Subscription("t") == nil {
		t.Fatal("anonymous from the same address (another port) did not resume its session")
	}
}

// An unowned session ("": written before owners existed, or created by an
// anonymous client of the zero configuration) is claimed by the first
// owner that resumes it.
func TestClientIDUnownedClaimed(t *testing.T) {
	r := New(Config{}, nil)
	a := mustOpenAs(t, r, "dev", anonymous, "10.0.0.1:1", SessionOptions{Expiry: time.Hour})
	r.Close(a, CloseClientClosed)
	b := mustOpenAs(t, r, "dev", user("bob"), "10.0.0.1:1", SessionOptions{Expiry: time.Hour})
	if !b.Resumed() {
		t.Fatal("bob did not resume the unowned session")
	}
	r.Close(b, CloseClientClosed)
	if _, err := openAs(r, "dev", anonymous, "10.0.0.1:1", SessionOptions{Expiry: time.Hour}); !errors.Is(err, ErrClientIDOwned) {
		t.Fatalf("anonymous after bob claimed it: %v, want ErrClientIDOwned", err)
	}
	if st := r.Stats(); st.PersistentSessions != 1 {
		t.Fatalf("PersistentSessions = %d, want 1", st.PersistentSessions)
	}
}

// The owner is in the session record: after a restart (bbolt) another user
// is still refused and the owner resumes.
func TestClientIDOwnerSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "duplex.db")
	st := openBolt(t, path)
	r, _ := restart(t, nil, st, Config{})
	s := mustOpenAs(t, r, "dev", user("alice"), "10.0.0.1:1", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, s, "t")
	r.Close(s, CloseClientClosed)
	publishQoS(t, r, "t", "m1", AtLeastOnce)
	r.Stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openBolt(t, path)
	r, stats := restart(t, nil, st, Config{})
	if stats.Sessions != 1 {
		t.Fatalf("restored %+v, want 1 session", stats)
	}
	if si, _ := r.SessionPage("", 10, ""); len(si) != 1 || si[0].Owner != "alice" || si[0].User != "alice" || si[0].Online {
		t.Fatalf("restored session info %+v, want alice's, offline", si)
	}
	if _, err := openAs(r, "dev", user("bob"), "10.0.0.9:1", SessionOptions{Expiry: time.Hour}); !errors.Is(err, ErrClientIDOwned) {
		t.Fatalf("bob after restart: %v, want ErrClientIDOwned", err)
	}
	if n := countStored(t, st, "dev"); n != 1 {
		t.Fatalf("stored after bob's attempt: %d, want 1", n)
	}
	a := mustOpenAs(t, r, "dev", user("alice"), "10.0.0.2:1", SessionOptions{Expiry: time.Hour})
	if got := deliveryBodies(collectStored(t, a, 1)); !a.Resumed() || !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("alice after restart: resumed %v, got %q", a.Resumed(), got)
	}
}

// Issue 8 item 8: MaxSessionsPerUser counts an owner's persistent
// sessions, online and offline; resuming is always allowed; the count
// follows expiry, Session Expiry 0, clean start and restore.
func TestSessionQuotaPerUser(t *testing.T) {
	st := store.NewMemory()
	cfg := Config{MaxSessionsPerUser: 2}
	r, _ := restart(t, nil, st, cfg)
	persistent := SessionOptions{Expiry: time.Hour}
	p1 := mustOpenAs(t, r, "p1", user("alice"), "a:1", persistent)
	p2 := mustOpenAs(t, r, "p2", user("alice"), "a:1", persistent)
	r.Close(p2, CloseClientClosed) // offline still counts
	if _, err := openAs(r, "p3", user("alice"), "a:1", persistent); !errors.Is(err, ErrSessionQuota) {
		t.Fatalf("third persistent session: %v, want ErrSessionQuota", err)
	}
	if got := r.Stats().SessionQuotaRefused; got != 1 {
		t.Fatalf("SessionQuotaRefused = %d, want 1", got)
	}
	// Others are not limited by alice's count; sessions that end with their
	// connection are not counted.
	mustOpenAs(t, r, "b1", user("bob"), "b:1", persistent)
	mustOpenAs(t, r, "e1", user("alice"), "a:1", SessionOptions{})
	// Resuming (also with a clean start) is allowed at the limit.
	p2 = mustOpenAs(t, r, "p2", user("alice"), "a:1", persistent)
	if !p2.Resumed() {
		t.Fatal("p2 not resumed")
	}
	p2 = mustOpenAs(t, r, "p2", user("alice"), "a:1", SessionOptions{Expiry: time.Hour, CleanStart: true})
	// Ending p2 for good (MQTT 5 DISCONNECT with Session Expiry 0) frees a slot.
	p2.SetExpiry(0)
	r.Close(p2, CloseClientClosed)
	p3 := mustOpenAs(t, r, "p3", user("alice"), "a:1", persistent)
	// A persistent id reconnecting as a non-persistent session frees its slot.
	mustOpenAs(t, r, "p3", user("alice"), "a:1", SessionOptions{CleanStart: true})
	_ = p3
	p4 := mustOpenAs(t, r, "p4", user("alice"), "a:1", SessionOptions{Expiry: 20 * time.Millisecond})
	if _, err := openAs(r, "p5", user("alice"), "a:1", persistent); !errors.Is(err, ErrSessionQuota) {
		t.Fatalf("p5 while p1 and p4 live: %v, want ErrSessionQuota", err)
	}
	// Expiry frees it.
	r.Close(p4, CloseClientClosed)
	checkFor(t, "p4 expired", func() bool { _, err := openAs(r, "p5", user("alice"), "a:1", persistent); return err == nil })
	if got := r.ownerCount("alice"); got != 2 {
		t.Fatalf("alice counted %d, want 2 (p1, p5)", got)
	}
	// A restart restores the count.
	r.Close(p1, CloseClientClosed)
	r, _ = restart(t, r, st, cfg)
	if got := r.ownerCount("alice"); got != 2 {
		t.Fatalf("after restart alice counted %d, want 2", got)
	}
	if _, err := openAs(r, "p6", user("alice"), "a:1", persistent); !errors.Is(err, ErrSessionQuota) {
		t.Fatalf("after restart: %v, want ErrSessionQuota", err)
	}
	if s := mustOpenAs(t, r, "p1", user("alice"), "a:1", persistent); !s.Resumed() {
		t.Fatal("p1 not resumed after restart")
	}
}

// The anonymous pool of the zero configuration is not limited; anonymous
// clients counted by address are.
func TestSessionQuotaAnonymous(t *testing.T) {
	r := New(Config{MaxSessionsPerUser: 1}, nil)
	for i := range 3 {
		mustOpenAs(t, r, SessionID(fmt.Sprint("z", i)), anonymous, "10.0.0.1:1", SessionOptions{Expiry: time.Hour})
	}
	r = New(Config{MaxSessionsPerUser: 1, AnonymousOwnerByAddress: true}, nil)
	mustOpenAs(t, r, "a1", anonymous, "10.0.0.1:1", SessionOptions{Expiry: time.Hour})
	if _, err := openAs(r, "a2", anonymous, "10.0.0.1:2", SessionOptions{Expiry: time.Hour}); !errors.Is(err, ErrSessionQuota) {
		t.Fatalf("second session from one address: %v, want ErrSessionQuota", err)
	}
	mustOpenAs(t, r, "a2", anonymous, "10.0.0.2:1", SessionOptions{Expiry: time.Hour})
}

// ownerCount reads an owner's persistent-session count.
func (r *Router) ownerCount(owner string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.owners[owner]
}

// countingHandler counts log records at or above Warn.
type countingHandler struct {
	mu    sync.Mutex
	lines []string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.lines = append(h.lines, rec.Message)
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// Issue 8 item 8: retained messages per user (count and bytes). Past a
// quota the message is still delivered, not retained, Publish returns
// ErrRetainedQuota, the refusal is counted and logged at most once per
// interval; replacing moves the accounting and clearing frees it.
func TestRetainedQuotaPerUser(t *testing.T) {
	h := &countingHandler{}
	r := New(Config{MaxRetainedPerUser: 2, MaxRetainedBytesPerUser: 10}, slog.New(h))
	alice := mustOpenAs(t, r, "alice-1", user("alice"), "a:1", SessionOptions{})
	alice2 := mustOpenAs(t, r, "alice-2", user("alice"), "a:2", SessionOptions{})
	bob := mustOpenAs(t, r, "bob-1", user("bob"), "b:1", SessionOptions{})
	sub := openSession(t, r, "sub")
	topicSub(t, r, sub, "k", "#")
	pub := func(from *Session, topic, body string) error {
		return r.Publish(context.Background(), from, &Message{Topic: topic, Payload: []byte(body), Retain: true})
	}
	if err := pub(alice, "a/1", "1111"); err != nil {
		t.Fatal(err)
	}
	if err := pub(alice2, "a/2", "2222"); err != nil { // same user, another connection
		t.Fatal(err)
	}
	for range 100 {
		if err := pub(alice, "a/3", "3"); !errors.Is(err, ErrRetainedQuota) {
			t.Fatalf("third retained topic: %v, want ErrRetainedQuota", err)
		}
	}
	if got := drainedBodies(sub); len(got) != 102 {
		t.Fatalf("subscriber got %d messages, want 102 (refused ones are still routed)", len(got))
	}
	if got := retainedTopics(r.Retained("#")); !slices.Equal(got, []string{"a/1", "a/2"}) {
		t.Fatalf("retained %q, want [a/1 a/2]", got)
	}
	st := r.Stats()
	if st.RetainedRefused != 100 || st.Retained != 2 || st.RetainedBytes != 8 {
		t.Fatalf("Stats: refused %d retained %d bytes %d, want 100, 2, 8", st.RetainedRefused, st.Retained, st.RetainedBytes)
	}
	if n := h.count("retained message quota"); n != 1 {
		t.Fatalf("%d log lines for 100 refusals, want 1 (rate-limited)", n)
	}
	// Bob has his own quota, and may replace alice's topic: it moves to him.
	if err := pub(bob, "a/1", "b"); err != nil {
		t.Fatalf("bob replacing a/1: %v", err)
	}
	if n, b := r.retained.Usage("alice"); n != 1 || b != 4 {
		t.Fatalf("alice's usage after bob took a/1: %d msgs %d bytes, want 1, 4", n, b)
	}
	if err := pub(alice, "a/3", "333333"); err != nil {
		t.Fatalf("alice after a slot moved away: %v", err)
	}
	// Bytes: alice holds a/2 (4) and a/3 (6); a 7-byte a/3 makes 11 > 10.
	if err := pub(alice, "a/3", "3333333"); !errors.Is(err, ErrRetainedQuota) {
		t.Fatalf("4+7 bytes past 10: %v, want ErrRetainedQuota", err)
	}
	// The refused replacement cleared the topic: no stale value.
	if got := retainedTopics(r.Retained("a/3")); len(got) != 0 {
		t.Fatalf("a/3 still retained %q after a refused replacement", got)
	}
	// An empty payload clears and frees.
	if err := pub(alice, "a/2", ""); err != nil {
		t.Fatal(err)
	}
	if n, b := r.retained.Usage("alice"); n != 0 || b != 0 {
		t.Fatalf("alice's usage after clearing: %d msgs %d bytes, want 0, 0", n, b)
	}
	if err := pub(alice, "a/4", "1234567890"); err != nil {
		t.Fatalf("after freeing: %v", err)
	}
}

// Totals (MaxRetained, MaxRetainedBytes) hold across owners; anonymous
// publishers of the zero configuration count per client id.
func TestRetainedQuotaTotalsAndAnonymous(t *testing.T) {
	r := New(Config{MaxRetainedBytes: 10, MaxRetainedPerUser: 1}, nil)
	a := mustOpenAs(t, r, "a", anonymous, "x:1", SessionOptions{})
	b := mustOpenAs(t, r, "b", anonymous, "x:1", SessionOptions{})
	c := mustOpenAs(t, r, "c", anonymous, "x:1", SessionOptions{})
	pub := func(from *Session, topic, body string) error {
		return r.Publish(context.Background(), from, &Message{Topic: topic, Payload: []byte(body), Retain: true})
	}
	if err := pub(a, "t/a", "12345"); err != nil {
		t.Fatal(err)
	}
	if err := pub(b, "t/b", "12345"); err != nil {
		t.Fatalf("another anonymous client id has its own quota: %v", err)
	}
	if err := pub(a, "t/a2", "1"); !errors.Is(err, ErrRetainedQuota) {
		t.Fatalf("anonymous a's second topic: %v, want ErrRetainedQuota", err)
	}
	if err := pub(c, "t/c", "1"); !errors.Is(err, ErrRetainedQuota) {
		t.Fatalf("past MaxRetainedBytes: %v, want ErrRetainedQuota", err)
	}
	// The broker's own messages (no session) count only in the totals.
	if err := r.Publish(context.Background(), nil, &Message{Topic: "t/a", Payload: []byte("1"), Retain: true}); err != nil {
		t.Fatalf("broker replacing a smaller message: %v", err)
	}
	if n, _ := r.retained.Usage("@client:a"); n != 0 {
		t.Fatalf("a's usage after the broker replaced its message: %d", n)
	}
}

// A will counts against its session's owner.
func TestRetainedQuotaWill(t *testing.T) {
	r := New(Config{MaxRetainedPerUser: 1}, nil)
	mustOpenAs(t, r, "x", user("alice"), "a:1", SessionOptions{})
	if err := r.Publish(context.Background(), r.sessions["x"], &Message{Topic: "w/0", Payload: []byte("x"), Retain: true}); err != nil {
		t.Fatal(err)
	}
	will := &Message{Topic: "w/1", Payload: []byte("gone"), Retain: true}
	s := mustOpenAs(t, r, "y", user("alice"), "a:1", SessionOptions{Will: will})
	r.Close(s, CloseTransportError)
	r.PublishWill(s.ID, will, 0)
	if got := retainedTopics(r.Retained("w/#")); !slices.Equal(got, []string{"w/0"}) {
		t.Fatalf("retained %q: the will was retained past alice's quota", got)
	}
	if got := r.Stats().RetainedRefused; got != 1 {
		t.Fatalf("RetainedRefused = %d, want 1", got)
	}
}

// A retained publish refused by a quota is still stored for durable
// subscribers and reported after the commit (as ErrQuotaExceeded is), by
// Publish and by PublishBatch; the retained owner survives a restart.
func TestRetainedQuotaDurable(t *testing.T) {
	st := store.NewMemory()
	cfg := Config{MaxRetainedPerUser: 1}
	r, _ := restart(t, nil, st, cfg)
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "r/#")
	r.Close(p, CloseClientClosed)
	alice := mustOpenAs(t, r, "alice", user("alice"), "a:1", SessionOptions{})
	msg := func(topic string) *Message {
		return &Message{Topic: topic, Payload: []byte(topic), Retain: true, QoS: AtLeastOnce}
	}
	if err := r.Publish(context.Background(), alice, msg("r/1")); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(context.Background(), alice, msg("r/2")); !errors.Is(err, ErrRetainedQuota) || errors.Is(err, ErrStore) {
		t.Fatalf("Publish past the quota: %v, want ErrRetainedQuota only", err)
	}
	reqs := []PublishReq{{Msg: msg("r/3")}, {Msg: msg("r/1")}}
	r.PublishBatch(alice, reqs)
	if !errors.Is(reqs[0].Err, ErrRetainedQuota) || reqs[1].Err != nil {
		t.Fatalf("PublishBatch: %v, %v; want ErrRetainedQuota, nil", reqs[0].Err, reqs[1].Err)
	}
	if n := countStored(t, st, "p"); n != 4 {
		t.Fatalf("stored for the offline subscriber: %d, want 4 (refused retains are still routed)", n)
	}
	r, _ = restart(t, r, st, cfg)
	if n, _ := r.retained.Usage("alice"); n != 1 {
		t.Fatalf("alice's retained count after restart: %d, want 1", n)
	}
	alice = mustOpenAs(t, r, "alice", user("alice"), "a:1", SessionOptions{})
	if err := r.Publish(context.Background(), alice, msg("r/4")); !errors.Is(err, ErrRetainedQuota) {
		t.Fatalf("after restart: %v, want ErrRetainedQuota", err)
	}
}

// Issue 8 item 8: MaxSubscriptions bounds all sessions' subscriptions and
// the count follows unsubscribe, close, takeover and restore.
func TestMaxSubscriptions(t *testing.T) {
	st := store.NewMemory()
	cfg := Config{MaxSubscriptions: 3}
	r, _ := restart(t, nil, st, cfg)
	a := openSession(t, r, "a")
	topicSub(t, r, a, "1", "x/1")
	topicSub(t, r, a, "2", "x/2")
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "y/1")
	if err := r.Subscribe(a, &Subscription{SubSpec: SubSpec{Key: "3", Filter: "x/3"}}); !errors.Is(err, ErrTooManySubs) {
		t.Fatalf("fourth subscription: %v, want ErrTooManySubs", err)
	}
	if _, _, err := r.SubscribeReplace(p, &Subscription{SubSpec: SubSpec{Key: "y/2", Filter: "y/2"}}); !errors.Is(err, ErrTooManySubs) {
		t.Fatalf("fourth (MQTT): %v, want ErrTooManySubs", err)
	}
	// Replacing a subscription with the same key is not a new one.
	mqttSub(t, r, p, "y/1")
	if err := r.Unsubscribe(a, "1"); err != nil {
		t.Fatal(err)
	}
	topicSub(t, r, a, "3", "x/3")
	r.Close(a, CloseClientClosed) // frees 2
	b := openSession(t, r, "b")
	topicSub(t, r, b, "1", "z/1")
	r.Close(p, CloseClientClosed) // offline: still counts
	if got := r.Stats().AllSubscriptions; got != 2 {
		t.Fatalf("AllSubscriptions = %d, want 2", got)
	}
	p = openOpts(t, r, "p", SessionOptions{Expiry: time.Hour}) // resumed: moved, not counted twice
	if got := r.Stats().AllSubscriptions; got != 2 || p.Subscription("y/1") == nil {
		t.Fatalf("after resume AllSubscriptions = %d, want 2 (subscription moved)", got)
	}
	r.Close(p, CloseClientClosed)
	r, _ = restart(t, r, st, cfg)
	if got := r.Stats().AllSubscriptions; got != 1 {
		t.Fatalf("after restart AllSubscriptions = %d, want 1 (p's)", got)
	}
	p = openOpts(t, r, "p", SessionOptions{Expiry: time.Hour, CleanStart: true}) // dropped
	if got := r.Stats().AllSubscriptions; got != 0 {
		t.Fatalf("after clean start AllSubscriptions = %d, want 0", got)
	}
	q := openSession(t, r, "q")
	for i := range 3 {
		topicSub(t, r, q, fmt.Sprint(i), "q/1")
	}
	if err := r.Subscribe(q, &Subscription{SubSpec: SubSpec{Key: "c", Queue: "work"}}); !errors.Is(err, ErrTooManySubs) {
		t.Fatalf("queue consumer past the limit: %v, want ErrTooManySubs", err)
	}
}

func TestConfigDefaultsIssue8(t *testing.T) {
	c := New(Config{}, nil).Config()
	if c.MaxOfflineBytes != 64<<20 || c.MaxSubscriptions != 1_000_000 || c.MaxSessionsPerUser != 1000 ||
		c.MaxRetained != 100000 || c.MaxRetainedBytes != 256<<20 || c.MaxRetainedPerUser != 1000 ||
		c.MaxRetainedBytesPerUser != 16<<20 || c.AnonymousOwnerByAddress {
		t.Fatalf("defaults: %+v", c)
	}
	if c := New(Config{MaxOfflineBytes: -1}, nil).Config(); c.MaxOfflineBytes != -1 {
		t.Fatalf("MaxOfflineBytes -1 (no limit) became %d", c.MaxOfflineBytes)
	}
	// Negative quotas are no limit.
	r := New(Config{MaxRetained: -1, MaxRetainedPerUser: -1, MaxRetainedBytes: -1, MaxRetainedBytesPerUser: -1,
		MaxSubscriptions: -1, MaxSessionsPerUser: -1}, nil)
	s := mustOpenAs(t, r, "s", user("alice"), "a:1", SessionOptions{})
	for i := range 1100 {
		if err := r.Publish(context.Background(), s, &Message{Topic: fmt.Sprint("r/", i), Payload: []byte("x"), Retain: true}); err != nil {
			t.Fatalf("retained %d with no limits: %v", i, err)
		}
		mustOpenAs(t, r, SessionID(fmt.Sprint("p", i)), user("alice"), "a:1", SessionOptions{Expiry: time.Hour})
	}
}

// ruleAuthorizer is a fake ACL: allowed when one of its topic patterns
// matches, checked in order, as a 20-rule ACL would be; it counts its
// calls and has a generation.
type ruleAuthorizer struct {
	rules []string
	deny  string // a pattern denied for everyone
	calls atomic.Int64
	gen   atomic.Uint64
}

func newRuleAuthorizer(n int, allow string) *ruleAuthorizer {
	a := &ruleAuthorizer{}
	for i := range n - 1 {
		a.rules = append(a.rules, fmt.Sprintf("other/%d/+/#", i))
	}
	a.rules = append(a.rules, allow)
	return a
}

func (a *ruleAuthorizer) Allow(_ Identity, _ string, _ Op, dest string) bool {
	a.calls.Add(1)
	if a.deny != "" && MatchTopic(a.deny, dest) {
		return false
	}
	for _, p := range a.rules {
		if MatchTopic(p, dest) {
			return true
		}
	}
	return false
}

func (a *ruleAuthorizer) Generation() uint64 { return a.gen.Load() }

// Issue 8 item 5: publish answers are cached per session; a new
// authorizer generation drops them; denials are counted.
func TestPublishAuthCache(t *testing.T) {
	az := newRuleAuthorizer(20, "ok/#")
	r := New(Config{Authorizer: az}, nil)
	s := openSession(t, r, "s")
	for range 10 {
		publishTopic(t, r, s, "ok/1", "x")
	}
	if n := az.calls.Load(); n != 1 {
		t.Fatalf("10 publishes to one topic asked the authorizer %d times, want 1", n)
	}
	for range 3 {
		if err := r.Publish(context.Background(), s, &Message{Topic: "no/1"}); !errors.Is(err, ErrNotAuthorized) {
			t.Fatalf("denied topic: %v", err)
		}
	}
	if n := az.calls.Load(); n != 2 {
		t.Fatalf("calls after 3 denied publishes = %d, want 2 (denials cached)", n)
	}
	if got := r.Stats().PublishDenied; got != 3 {
		t.Fatalf("PublishDenied = %d, want 3", got)
	}
	// Queue sends are a separate namespace.
	if err := r.Publish(context.Background(), s, &Message{Queue: "ok/1", Payload: []byte("q")}); err != nil {
		t.Fatal(err)
	}
	if n := az.calls.Load(); n != 3 {
		t.Fatalf("calls after a queue send = %d, want 3", n)
	}
	// A reload (new generation) takes effect on the next publish.
	az.deny = "ok/1"
	az.gen.Add(1)
	if err := r.Publish(context.Background(), s, &Message{Topic: "ok/1"}); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("after the reload: %v, want ErrNotAuthorized", err)
	}
	// The cache is bounded.
	az.deny = ""
	az.gen.Add(1)
	for i := range 3 * authCacheMax {
		publishTopic(t, r, s, fmt.Sprint("ok/", i), "x")
	}
	s.auth.mu.Lock()
	n := len(s.auth.topics)
	s.auth.mu.Unlock()
	if n > authCacheMax {
		t.Fatalf("cache holds %d answers, past %d", n, authCacheMax)
	}
	// The broker itself (no session) is not checked.
	before := az.calls.Load()
	publishQoS(t, r, "no/1", "x", AtMostOnce)
	if az.calls.Load() != before {
		t.Fatal("a publish without a session asked the authorizer")
	}
}

// A cache hit does no allocation and no authorizer call.
func TestPublishAuthCacheAllocs(t *testing.T) {
	az := newRuleAuthorizer(20, "bench/+/temp")
	r := New(Config{Authorizer: az}, nil)
	s := openSession(t, r, "s")
	m := &Message{Topic: "bench/k1/temp", Payload: []byte("x")}
	ctx := context.Background()
	if err := r.Publish(ctx, s, m); err != nil {
		t.Fatal(err)
	}
	calls := az.calls.Load()
	if n := testing.AllocsPerRun(100, func() { _ = r.Publish(ctx, s, m) }); n != 0 {
		t.Fatalf("Publish with a cached answer: %v allocations, want 0", n)
	}
	if az.calls.Load() != calls {
		t.Fatal("cache hits asked the authorizer")
	}
}

// Subscribe denials are counted; a will the client may not publish
// refuses the connection.
func TestSubscribeDeniedAndWill(t *testing.T) {
	az := newRuleAuthorizer(2, "ok/#")
	r := New(Config{Authorizer: az}, nil)
	s := openSession(t, r, "s")
	if err := r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "k", Filter: "no/#"}}); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Subscribe: %v", err)
	}
	if _, _, err := r.SubscribeReplace(s, &Subscription{SubSpec: SubSpec{Key: "no/#", Filter: "no/#"}}); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("SubscribeReplace: %v", err)
	}
	if got := r.Stats().SubscribeDenied; got != 2 {
		t.Fatalf("SubscribeDenied = %d, want 2", got)
	}
	if _, err := openAs(r, "w", user("alice"), "a:1", SessionOptions{Will: &Message{Topic: "no/will"}}); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Open with a forbidden will: %v, want ErrNotAuthorized", err)
	}
	mustOpenAs(t, r, "w", user("alice"), "a:1", SessionOptions{Will: &Message{Topic: "ok/will"}})
}

// Issue 8 item 9 (broker side): SessionPage walks sessions in id order,
// filtered, without copying them all.
func TestSessionPage(t *testing.T) {
	r := New(Config{}, nil)
	var want []string
	for i := range 250 {
		id := SessionID(fmt.Sprintf("s%03d", i))
		who := user("alice")
		if i%2 == 1 {
			who = user("bob")
		}
		s := mustOpenAs(t, r, id, who, "a:1", SessionOptions{Expiry: time.Hour})
		if i%5 == 0 {
			r.Close(s, CloseClientClosed) // offline persistent sessions are listed too
		}
		want = append(want, string(id))
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, next := r.SessionPage(cursor, 100, "")
		for _, si := range page {
			got = append(got, si.ID)
		}
		if next == "" {
			if pages != 2 {
				t.Fatalf("%d pages, want 3", pages+1)
			}
			break
		}
		cursor = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walked %d ids, want %d in order", len(got), len(want))
	}
	page, next := r.SessionPage("", 1000, "bob")
	if len(page) != 125 || next != "" || page[0].ID != "s001" || page[0].User != "bob" {
		t.Fatalf("filtered by user: %d sessions, next %q, first %+v", len(page), next, page[0])
	}
	page, next = r.SessionPage("s100", 5, "s10") // s101..s109 match
	if len(page) != 5 || page[0].ID != "s101" || page[4].ID != "s105" || next != "s105" {
		t.Fatalf("filtered by id after a cursor: %d sessions from %q, next %q", len(page), page[0].ID, next)
	}
	if page, next = r.SessionPage(next, 5, "s10"); len(page) != 4 || next != "" {
		t.Fatalf("second filtered page: %d sessions, next %q; want 4, none", len(page), next)
	}
	if page, next := r.SessionPage("", 0, "nobody"); len(page) != 0 || next != "" {
		t.Fatalf("no match: %d, %q", len(page), next)
	}
}

// SessionPage's memory does not grow with the number of sessions.
func TestSessionPageAllocs(t *testing.T) {
	allocs := func(n int) float64 {
		r := New(Config{}, nil)
		for i := range n {
			openSession(t, r, SessionID(fmt.Sprintf("s%06d", i)))
		}
		return testing.AllocsPerRun(5, func() { r.SessionPage("", 10, "") })
	}
	small, large := allocs(100), allocs(10_000)
	if large > small {
		t.Fatalf("SessionPage allocations: %v with 100 sessions, %v with 10000; want no growth", small, large)
	}
}

// BenchmarkPublishACL publishes from a session (the path that asks the
// Authorizer) to one topic with 1 and 100 subscribers, with no ACL
// (AllowAll) and with a 20-rule fake ACL whose last rule allows the topic.
func BenchmarkPublishACL(b *testing.B) {
	for _, acl := range []string{"none", "20rules"} {
		for _, n := range []int{1, 100} {
			b.Run(fmt.Sprintf("acl=%s/subs=%d", acl, n), func(b *testing.B) {
				cfg := Config{}
				if acl != "none" {
					cfg.Authorizer = newRuleAuthorizer(20, "bench/+/temp")
				}
				r := New(cfg, nil)
				pub := openSession(b, r, "pub")
				sessions := make([]*Session, n)
				for i := range sessions {
					sessions[i] = openSession(b, r, "")
					topicSub(b, r, sessions[i], "k", "bench/+/temp")
				}
				ctrl := make([][][]byte, n)
				msgs := make([][]Delivery, n)
				m := &Message{Topic: "bench/k1/temp", Payload: make([]byte, 64), QoS: AtLeastOnce}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if err := r.Publish(ctx, pub, m); err != nil {
						b.Fatal(err)
					}
					for i, s := range sessions {
						ctrl[i], msgs[i], _ = s.Outbox.Drain(ctrl[i], msgs[i])
						clear(msgs[i])
					}
				}
			})
		}
	}
}

// A resumed session keeps only the subscriptions its identity is still
// allowed (the rules may have been reloaded while it was offline).
func TestResumeReauthorizes(t *testing.T) {
	st := store.NewMemory()
	az := newRuleAuthorizer(1, "#")
	cfg := Config{Authorizer: az}
	r, _ := restart(t, nil, st, cfg)
	p := mustOpenAs(t, r, "p", user("alice"), "a:1", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "keep/#")
	mqttSub(t, r, p, "secret/#")
	r.Close(p, CloseClientClosed)
	az.deny = "secret/#"
	az.gen.Add(1)
	p = mustOpenAs(t, r, "p", user("alice"), "a:1", SessionOptions{Expiry: time.Hour})
	if p.Subscription("keep/#") == nil || p.Subscription("secret/#") != nil {
		t.Fatalf("after resume: keep %v secret %v; want only keep/#", p.Subscription("keep/#") != nil, p.Subscription("secret/#") != nil)
	}
	publishQoS(t, r, "secret/1", "s", AtLeastOnce)
	publishQoS(t, r, "keep/1", "k", AtLeastOnce)
	if got := deliveryBodies(collectStored(t, p, 1)); !slices.Equal(got, []string{"k"}) {
		t.Fatalf("resumed session got %q, want [k]", got)
	}
	if st := r.Stats(); st.AllSubscriptions != 1 || st.SubscribeDenied != 1 {
		t.Fatalf("AllSubscriptions %d SubscribeDenied %d, want 1, 1", st.AllSubscriptions, st.SubscribeDenied)
	}
	r.Close(p, CloseClientClosed)
	r, stats := restart(t, r, st, cfg)
	if stats.Subs != 1 {
		t.Fatalf("restored %d subscriptions, want 1 (the denied one left the store)", stats.Subs)
	}
}

// checkCounts verifies the router's quota counters against its sessions:
// owners counts the persistent sessions, nsubs all subscriptions.
func checkCounts(t *testing.T, r *Router) {
	t.Helper()
	r.mu.RLock()
	owners := make(map[string]int)
	var subs int64
	for _, s := range r.sessions {
		if s.counted {
			owners[s.owner]++
		}
		s.mu.Lock()
		subs += int64(s.subs.len())
		s.mu.Unlock()
	}
	got := fmt.Sprint(r.owners)
	r.mu.RUnlock()
	if want := fmt.Sprint(owners); got != want {
		t.Errorf("owners = %s, want %s", got, want)
	}
	if n := r.nsubs.Load(); n != subs {
		t.Errorf("nsubs = %d, want %d", n, subs)
	}
}

// The counters stay right under concurrent opens, takeovers, clean
// starts, subscribes, unsubscribes, closes and expiries.
func TestQuotaCountersConcurrent(t *testing.T) {
	r := New(Config{MaxSessionsPerUser: 3, MaxSubscriptions: 50}, nil)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := user(fmt.Sprint("u", w%2))
			for i := range 200 {
				id := SessionID(fmt.Sprint("c", i%5))
				o := SessionOptions{Expiry: time.Duration(i%3) * time.Hour, CleanStart: i%4 == 0}
				if i%7 == 0 {
					o.Expiry = time.Millisecond
				}
				s, err := openAs(r, id, who, "x:1", o)
				if err != nil {
					if !errors.Is(err, ErrClientIDOwned) && !errors.Is(err, ErrSessionQuota) {
						t.Errorf("Open: %v", err)
					}
					continue
				}
				_ = r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: fmt.Sprint(i % 3), Filter: "t/#"}})
				if i%2 == 0 {
					_ = r.Unsubscribe(s, fmt.Sprint((i+1)%3))
				}
				if i%5 == 0 {
					s.SetExpiry(0)
				}
				r.Close(s, CloseClientClosed)
			}
		}()
	}
	wg.Wait()
	// Let the short expiries run.
	checkFor(t, "expiries", func() bool {
		r.mu.RLock()
		defer r.mu.RUnlock()
		for _, s := range r.sessions {
			if s.Expiry() == time.Millisecond {
				return false
			}
		}
		return true
	})
	checkCounts(t, r)
}

// Expired retained messages stop counting against a quota once a refusal
// sweeps them out.
func TestRetainedQuotaExpired(t *testing.T) {
	r := New(Config{MaxRetainedPerUser: 1}, nil)
	s := mustOpenAs(t, r, "s", user("alice"), "a:1", SessionOptions{})
	exp := time.Now().Add(20 * time.Millisecond)
	if err := r.Publish(context.Background(), s, &Message{Topic: "e/1", Payload: []byte("x"), Retain: true, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(context.Background(), s, &Message{Topic: "e/2", Payload: []byte("x"), Retain: true}); !errors.Is(err, ErrRetainedQuota) {
		t.Fatalf("before the expiry: %v, want ErrRetainedQuota", err)
	}
	checkFor(t, "the expiry", func() bool { return time.Now().After(exp) })
	r.retained.mu.Lock()
	r.retained.swept = time.Time{} // the refusal above swept; allow the next one now
	r.retained.mu.Unlock()
	if err := r.Publish(context.Background(), s, &Message{Topic: "e/2", Payload: []byte("x"), Retain: true}); err != nil {
		t.Fatalf("after the expiry: %v", err)
	}
	if got := retainedTopics(r.Retained("e/#")); !slices.Equal(got, []string{"e/2"}) {
		t.Fatalf("retained %q, want [e/2]", got)
	}
	checkRetainedTrie(t, &r.retained)
}

// Random puts, replacements and clears by several owners keep the
// accounting equal to the trie's contents, and no owner past its quota.
func TestRetainedAccountingRandom(t *testing.T) {
	var rt Retained
	lim := retainLimits{total: 20, bytes: 200, perOwner: 6, bytesPerOwner: 40}
	owners := []string{"", "a", "b", "c"}
	seed := uint64(1)
	rnd := func(n int) int { // xorshift: deterministic
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	for i := range 5000 {
		topic := fmt.Sprintf("t/%d/%d", rnd(5), rnd(6))
		body := strings.Repeat("x", rnd(12))
		rt.put(&Message{Topic: topic, Payload: []byte(body)}, owners[rnd(len(owners))], lim)
		if i%100 == 0 {
			checkRetainedTrie(t, &rt)
		}
		for _, o := range owners[1:] {
			if u := rt.owners[o]; u != nil && (u.n > lim.perOwner || u.bytes > lim.bytesPerOwner) {
				t.Fatalf("owner %s past its quota: %+v", o, *u)
			}
		}
		if rt.n > lim.total || rt.bytes > lim.bytes {
			t.Fatalf("past the totals: %d msgs %d bytes", rt.n, rt.bytes)
		}
	}
	checkRetainedTrie(t, &rt)
}

// MaxSessionExpiry caps sessions restored from before the cap: a session
// that never expired gets the cap and goes once it passes.
func TestRestoreCapsExpiry(t *testing.T) {
	st := store.NewMemory()
	r, _ := restart(t, nil, st, Config{})
	p := openOpts(t, r, "forever", SessionOptions{Expiry: NeverExpire})
	r.Close(p, CloseClientClosed)
	q := openOpts(t, r, "short", SessionOptions{Expiry: time.Hour})
	r.Close(q, CloseClientClosed)
	r, _ = restart(t, r, st, Config{MaxSessionExpiry: 2 * time.Hour})
	r.mu.RLock()
	e1, e2 := r.sessions["forever"].Expiry(), r.sessions["short"].Expiry()
	r.mu.RUnlock()
	if e1 != 2*time.Hour || e2 != time.Hour {
		t.Fatalf("restored expiries %v, %v; want 2h (capped), 1h", e1, e2)
	}
	r, _ = restart(t, r, st, Config{MaxSessionExpiry: 20 * time.Millisecond})
	checkFor(t, "capped sessions expired", func() bool { return len(sessionIDs(r)) == 0 })
	if rec, _, err := st.GetSession("forever"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record of the expired session: %+v, %v", rec, err)
	}
}
