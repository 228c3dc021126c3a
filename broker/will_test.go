package broker

import (
	"slices"
	"testing"
	"time"
)

func willMsg(topic, body string) *Message {
	return &Message{Topic: topic, Payload: []byte(body), QoS: AtLeastOnce}
}

func pendingWills(r *Router) int {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return len(r.wills)
}

// collect drains s until want bodies have arrived (polling) and returns
// everything received.
func collect(t *testing.T, s *Session, what string, want int) []string {
	t.Helper()
	var got []string
	checkFor(t, what, func() bool {
		got = append(got, drainedBodies(s)...)
		return len(got) >= want
	})
	return got
}

// TestWillImmediate: MQTT 3.1.1 §3.1.2.5: the will is published when the
// network connection closes without a DISCONNECT; a Will Delay Interval of
// 0 (MQTT 5 §3.1.3.2.2) publishes it at once. A will with Will Retain is
// retained like any publish [MQTT-3.1.2-17].
func TestWillImmediate(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "watcher")
	topicSub(t, r, s, "k", "will/+")
	m := willMsg("will/c", "gone")
	m.Retain = true
	r.PublishWill("c", m, 0)
	if got := drainedBodies(s); !slices.Equal(got, []string{"gone"}) {
		t.Fatalf("subscriber got %q right after PublishWill(0), want [gone]", got)
	}
	if got := r.Retained("will/c"); len(got) != 1 || got[0] != m {
		t.Fatalf("retained will/c = %v, want the will", got)
	}
	if n := pendingWills(r); n != 0 {
		t.Fatalf("%d wills pending, want 0", n)
	}
}

// TestWillDelayed: MQTT 5 §3.1.3.2.2: the server delays publishing the will
// until the Will Delay Interval has passed.
func TestWillDelayed(t *testing.T) {
	const delay = 100 * time.Millisecond
	r := New(Config{}, nil)
	s := openSession(t, r, "watcher")
	topicSub(t, r, s, "k", "will/+")
	start := time.Now()
	r.PublishWill("c", willMsg("will/c", "gone"), delay)
	if got := drainedBodies(s); len(got) != 0 {
		t.Fatalf("will published at once despite a %v delay: %q", delay, got)
	}
	if n := pendingWills(r); n != 1 {
		t.Fatalf("%d wills pending, want 1", n)
	}
	got := collect(t, s, "the delayed will", 1)
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("will arrived after %v, before its delay %v", elapsed, delay)
	}
	if !slices.Equal(got, []string{"gone"}) {
		t.Fatalf("got %q, want [gone] once", got)
	}
	checkFor(t, "the will's entry to go", func() bool { return pendingWills(r) == 0 })
}

// TestWillCancelledByReconnect: MQTT 5 §3.1.3.2.2: if a new network
// connection to the session is made before the Will Delay Interval has
// passed, the server must not send the will [MQTT-3.1.3-9].
func TestWillCancelledByReconnect(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "watcher")
	topicSub(t, r, s, "k", "will/+")
	r.PublishWill("c", willMsg("will/c", "gone"), 100*time.Millisecond)
	openSession(t, r, "c") // the client reconnects within the delay
	if n := pendingWills(r); n != 0 {
		t.Fatalf("%d wills pending after the reconnect, want 0", n)
	}
	// A marker will with a much longer delay, set after: once it arrives the
	// cancelled will's timer would long have fired.
	r.PublishWill("marker", willMsg("will/marker", "marker"), 200*time.Millisecond)
	if got := collect(t, s, "the marker will", 1); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("got %q, want only [marker]: the cancelled will was published", got)
	}
	// Another id's reconnect does not cancel it.
	r.PublishWill("d", willMsg("will/d", "d"), 30*time.Millisecond)
	openSession(t, r, "not-d")
	if got := collect(t, s, "d's will", 1); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("got %q, want [d]", got)
	}
}

// TestWillReplaced: a second will for the same id (a later connection that
// also ended without DISCONNECT) replaces the pending one; only the second
// is published, once.
func TestWillReplaced(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "watcher")
	topicSub(t, r, s, "k", "will/+")
	r.PublishWill("c", willMsg("will/c", "first"), 20*time.Millisecond)
	r.PublishWill("c", willMsg("will/c", "second"), 100*time.Millisecond)
	if n := pendingWills(r); n != 1 {
		t.Fatalf("%d wills pending, want 1", n)
	}
	got := collect(t, s, "the second will", 1)
	// The first will's 20ms timer, had it survived, fired before the second's.
	if !slices.Equal(got, []string{"second"}) {
		t.Fatalf("got %q, want only [second]", got)
	}
	checkFor(t, "no will pending", func() bool { return pendingWills(r) == 0 })
	// A later marker shows nothing else is still coming.
	r.PublishWill("m", willMsg("will/m", "marker"), 30*time.Millisecond)
	if got := collect(t, s, "the marker", 1); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("got %q, want only [marker]", got)
	}
}

// TestWillDelayedFiresOnce: several wills for different ids each fire once.
func TestWillDelayedFiresOnce(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "watcher")
	topicSub(t, r, s, "k", "will/#")
	ids := []SessionID{"a", "b", "c", "d"}
	for i, id := range ids {
		r.PublishWill(id, willMsg("will/"+string(id), string(id)), time.Duration(10+5*i)*time.Millisecond)
	}
	got := collect(t, s, "four wills", len(ids))
	checkFor(t, "no will pending", func() bool { return pendingWills(r) == 0 })
	got = append(got, drainedBodies(s)...)
	slices.Sort(got) // the timers' goroutines may publish in any order
	if !sameStrings(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("got %q, want each will once", got)
	}
}
