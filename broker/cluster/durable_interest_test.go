package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// TestDurableInterestMirror: the mirror of the durable consumers' filters
// matches topics as MQTT does, counts consumers per filter, stores
// everything while a consumer's filter is unknown, and keeps a consumer
// the stream's list leaves out.
func TestDurableInterestMirror(t *testing.T) {
	var x durableInterest
	t0 := time.Unix(100, 0)
	check := func(want map[string]bool) {
		t.Helper()
		for topic, w := range want {
			if got := x.wants(topic); got != w {
				t.Errorf("wants(%q) = %v, want %v", topic, got, w)
			}
		}
	}
	check(map[string]bool{"a/b": false, "": false})

	if x.learn("c1", "a/+", t0, false) {
		t.Fatal("a new consumer reported as announced")
	}
	check(map[string]bool{"a/b": true, "a/": true, "a": false, "a/b/c": false, "b/a": false})
	// Announced: the first announcement reports false (tell the others),
	// the same consumer again true (they know it).
	if x.learn("c2", "a/+", t0, true) || !x.learn("c2", "a/+", t0, true) || !x.learn("c2", "a/+", t0, false) {
		t.Fatal("announced consumer: wrong hadTold")
	}
	// Made again under the same name (deleted and re-created): new.
	if x.learn("c2", "a/+", t0.Add(time.Second), true) {
		t.Fatal("a re-created consumer reported as announced")
	}
	// [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a
	// '$' topic.
	x.learn("c3", "#", t0, true)
	check(map[string]bool{"$SYS/x": false, "x/y/z": true, "a/b": true})

	// A consumer whose filter is unknown: everything is stored.
	x.markUnknown("u1")
	check(map[string]bool{"$SYS/x": true})
	x.learn("u1", "$SYS/#", t0, false)
	check(map[string]bool{"$SYS/x": true, "$other": false})

	// Relists: names unknown come back as missing; c4 learned after the
	// relist began is not counted; nothing leaves the mirror, however
	// often the list leaves it out (durable_interest.go).
	g := x.begin()
	x.learn("c4", "late/#", t0, true)
	missing := x.end(g, map[string]bool{"c1": true, "c2": true, "n1": true})
	if !slices.Equal(missing, []string{"n1"}) {
		t.Fatalf("missing %v, want [n1]", missing)
	}
	for range 3 {
		x.end(x.begin(), map[string]bool{"c1": true})
	}
	check(map[string]bool{"x/y/z": true, "$SYS/x": true, "late": true, "a/b": true})
	x.mu.Lock()
	c3misses := x.byName["c3"].misses
	x.mu.Unlock()
	if c3misses != 4 {
		t.Fatalf("c3 missed %d relists, want 4", c3misses)
	}

	// Routes changed (a relist is due) or missing (a node unreachable):
	// everything is stored until they are settled.
	x = durableInterest{}
	x.learn("c5", "s/+", t0, true)
	for _, set := range []func(bool){x.setStale, x.setDegraded} {
		set(true)
		check(map[string]bool{"s/1": true, "other": true})
		set(false)
		check(map[string]bool{"s/1": true, "other": false})
	}
	x.setStale(true)
	x.setDegraded(true)
	x.setStale(false)
	check(map[string]bool{"other": true})
	// Relists while not calm count no misses.
	x.end(x.begin(), nil)
	x.mu.Lock()
	misses := x.byName["c5"].misses
	x.mu.Unlock()
	x.setDegraded(false)
	check(map[string]bool{"other": false, "s/1": true})
	if misses != 0 {
		t.Fatalf("a relist while degraded counted %d misses", misses)
	}
}

// TestDurableInterestBound: the mirror does not grow past interestMax
// entries; past it the node stores everything.
func TestDurableInterestBound(t *testing.T) {
	defer func(m int) { interestMax = m }(interestMax)
	interestMax = 2
	var x durableInterest
	t0 := time.Unix(1, 0)
	x.learn("a", "a", t0, true)
	x.learn("b", "b", t0, true)
	if x.wants("c") {
		t.Fatal("wants a topic no consumer has")
	}
	x.learn("c", "c", t0, true)
	x.markUnknown("d")
	if !x.wants("z") || len(x.byName) != 2 {
		t.Fatalf("past the bound: wants(z) %v, %d entries", x.wants("z"), len(x.byName))
	}
	// A relist listing more consumers than fit keeps it overflowing.
	x.end(x.begin(), map[string]bool{"a": true, "b": true, "c": true})
	if !x.wants("z") {
		t.Fatal("a relist of 3 consumers cleared the overflow of a mirror of 2")
	}
}

// TestRouteKey: the relist loop's view of the route peers does not
// depend on the map's order.
func TestRouteKey(t *testing.T) {
	a := routeKey(map[string]bool{"n2": true, "n1": true, "n3": true})
	b := routeKey(map[string]bool{"n3": true, "n1": true, "n2": true})
	if a != b || a != "n1\nn2\nn3" || routeKey(nil) != "" {
		t.Fatalf("routeKey: %q %q", a, b)
	}
}

// TestNotStoredHeader: a message the durable stream did not keep says so
// to the other nodes; one it kept does not.
func TestNotStoredHeader(t *testing.T) {
	subs := NewSubjects("h")
	for _, not := range []bool{false, true} {
		m := &broker.Message{Topic: "a/b", Payload: []byte("x"), QoS: 1}
		m.SetNotInCluster(not)
		nm := encodeMsg(subs, origin{node: "n", boot: "b"}, 1, m, time.Now())
		got, _, _, err := decodeMsg(subs, nm, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got.NotInCluster() != not {
			t.Fatalf("NotInCluster %v after the round trip, want %v (headers %v)", got.NotInCluster(), not, nm.Header)
		}
	}
}

// startDurableTrio starts three embedded nodes with JetStream and waits
// until they are ready.
func startDurableTrio(t *testing.T, name string) []*Node {
	t.Helper()
	dir := t.TempDir()
	listen := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	nodes := make([]*Node, 3)
	for i := range nodes {
		var peers []string
		for j, l := range listen {
			if j != i {
				peers = append(peers, l)
			}
		}
		var err error
		if nodes[i], err = New(Config{Name: name, Listen: listen[i], Peers: peers, StoreDir: filepath.Join(dir, fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		if err := nodes[i].Start(&fakeRouter{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nodes[i].Close)
	}
	testutil.EventuallyErr(t, 60*time.Second, func() error {
		if err := errorsJoin(nodes[0].Ready(), nodes[1].Ready(), nodes[2].Ready()); err != nil {
			return err
		}
		// Every route up and compared with the stream since: no node
		// stores everything for want of a route.
		for i, n := range nodes {
			routes := routeKey(n.routedPeers())
			if n.PeersRouted() != 2 || n.dur.in.settledRoutes() != routes || n.dur.in.mode.Load() == interestAll {
				return fmt.Errorf("node %d: %d route peers, mirror mode %d", i+1, n.PeersRouted(), n.dur.in.mode.Load())
			}
		}
		return nil
	})
	return nodes
}

// TestDurableInterestJetStream: with no consumer, a QoS 1 publish skips
// the durable stream and is marked so; once SaveSession (or SaveBinding)
// has returned on one node, every other node stores the messages its
// filter matches, and only those; a node's relist finds the filters from
// the consumers alone, and keeps a deleted session's.
func TestDurableInterestJetStream(t *testing.T) {
	nodes := startDurableTrio(t, "di")
	lastSeq := func() uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		info, err := nodes[0].dur.st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	publish := func(n *Node, topic string) (stored bool) {
		t.Helper()
		before := lastSeq()
		m := &broker.Message{Topic: topic, Payload: []byte("p"), QoS: 1}
		if err := n.DurablePublish(m, ""); err != nil {
			t.Fatal(err)
		}
		// The stream's last sequence counts every message it took, also
		// one the interest retention dropped at once.
		after := lastSeq()
		if m.NotInCluster() == (after != before) {
			t.Fatalf("%s: NotInCluster %v, stream sequence %d -> %d", topic, m.NotInCluster(), before, after)
		}
		return after != before
	}
	for i, n := range nodes {
		if publish(n, "x/y") {
			t.Fatalf("node %d stored a message no consumer wants", i+1)
		}
	}

	rec := &broker.SessionRecord{Owner: "o", Expiry: time.Hour, Subs: []broker.SubSpec{{Key: "x/+", Filter: "x/+", QoS: 1}}}
	if err := nodes[0].SaveSession("k1", rec); err != nil {
		t.Fatal(err)
	}
	// No wait: SaveSession returned once the other nodes had the filter.
	for i, n := range nodes {
		if !publish(n, "x/y") {
			t.Fatalf("node %d did not store a message for the new subscription", i+1)
		}
		if publish(n, "y/x") {
			t.Fatalf("node %d stored a message no consumer wants", i+1)
		}
	}
	if err := nodes[1].SaveBinding("dq", "b/#"); err != nil {
		t.Fatal(err)
	}
	if !publish(nodes[2], "b") || !publish(nodes[0], "b/c/d") {
		t.Fatal("a message for the durable subscription not stored")
	}

	// From the consumers alone (a node that starts, or missed the
	// announcements).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var fresh durableInterest
	if err := nodes[2].relistInto(ctx, &fresh); err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{"x/y": true, "b/c": true, "y/x": false, "x/y/z": false} {
		if fresh.wants(topic) != want {
			t.Errorf("relisted mirror: wants(%q) = %v", topic, !want)
		}
	}

	// A deleted session's filter stays (over-storing, never under).
	nodes[0].DeleteSession("k1")
	if err := nodes[2].relistInto(ctx, &nodes[2].dur.in); err != nil {
		t.Fatal(err)
	}
	if !nodes[2].dur.in.wants("x/y") || !nodes[2].dur.in.wants("b/c") {
		t.Fatal("a filter left the mirror")
	}
}

// TestDurableInterestSilentNode: a node that does not answer an
// announcement does not hold the SUBSCRIBE for ever: SaveSession returns
// after interestRounds, the announcer does not count the consumer as
// announced (its next attach announces it again), the node that answered
// has the filter, and the silent one has it once it answers.
func TestDurableInterestSilentNode(t *testing.T) {
	nodes := startDurableTrio(t, "dis")
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	if err := nodes[2].HandleAdmin(interestKind, func(req []byte) []byte {
		<-release
		return nodes[2].answerInterest(req)
	}); err != nil {
		t.Fatal(err)
	}
	rec := &broker.SessionRecord{Owner: "o", Expiry: time.Hour, Subs: []broker.SubSpec{{Key: "z/+", Filter: "z/+", QoS: 1}}}
	if err := nodes[0].SaveSession("k2", rec); err != nil {
		t.Fatal(err)
	}
	if !nodes[1].dur.in.wants("z/1") {
		t.Fatal("node 2 answered without the filter in its mirror")
	}
	x := &nodes[0].dur.in
	for name := range durableSubs("k2", rec) {
		x.mu.Lock()
		e := x.byName[name]
		told := e != nil && e.told
		x.mu.Unlock()
		if e == nil || told {
			t.Fatalf("announcer's entry %+v: want known, not told", e)
		}
	}
	free()
	testutil.EventuallyErr(t, 30*time.Second, func() error {
		if !nodes[2].dur.in.wants("z/1") {
			return fmt.Errorf("node 3 has not learned the filter")
		}
		return nil
	})
}
