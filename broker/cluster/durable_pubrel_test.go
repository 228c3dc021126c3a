package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// TestRelSetEntries: the release record's bookkeeping: a completed
// entry goes once the ack floor passes it, an open one stays; a record
// merged from another writer keeps a completion known here.
func TestRelSetEntries(t *testing.T) {
	rs := newRelSet(nil, "c", 0)
	rs.mu.Lock()
	for _, x := range []relEntry{{Seq: 10, ID: 11}, {Seq: 12, ID: 13}, {Seq: 14, ID: 15}} {
		rs.putLocked(x)
	}
	rs.mu.Unlock()
	if !rs.done(11) || rs.done(11) || rs.done(99) {
		t.Fatal("done: want true once for an open id, false otherwise")
	}
	if got := sortedIDs(rs.openIDs()); fmt.Sprint(got) != "[13 15]" {
		t.Fatalf("open ids %v", got)
	}
	rs.floor = 12
	rs.done(13)
	b, _ := rs.body()
	if !rs.has(14) || rs.has(10) || rs.has(12) {
		t.Fatalf("after the floor passed 10 and 12 (completed): %s", b)
	}
	// Another writer's record still has 14 open; our completion stays.
	rs.done(15)
	rs.merge([]byte(`[{"s":14,"i":15},{"s":16,"i":17}]`), 7)
	if got := sortedIDs(rs.openIDs()); fmt.Sprint(got) != "[17]" || rs.rev != 7 {
		t.Fatalf("after the merge: open %v, revision %d", got, rs.rev)
	}
}

func sortedIDs(ids []uint16) []uint16 {
	slices.Sort(ids)
	return ids
}

// TestDurableQoS2Release: QoS 2 deliveries released on node 3 (the
// record written, then acked) never reach the session again, even when
// its consumer goes back below them (a reset to the start: what an ack
// the consumer's leader dropped and the next attach's reset do); the
// node that resumes the session reads their packet ids for the PUBRELs
// it owes, and a PUBCOMP takes one out at the next write.
func TestDurableQoS2Release(t *testing.T) {
	nodes := startDurableTrio(t, "rel")
	rec := &broker.SessionRecord{Owner: "o", Expiry: time.Hour, Subs: []broker.SubSpec{{Key: "q/+", Filter: "q/+", QoS: 2}}}
	if err := nodes[0].SaveSession("k2", rec); err != nil {
		t.Fatal(err)
	}
	// A second session on the same filter never acknowledges: the
	// interest stream keeps every message, so a reset could bring back
	// what k2 acknowledged.
	if err := nodes[0].SaveSession("k3", rec); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var seen []broker.PeerDelivery
	deliver := func(pd broker.PeerDelivery) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, pd)
		return true
	}
	payloads := func(from int) string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, pd := range seen[min(from, len(seen)):] {
			out = append(out, string(pd.Msg.Payload))
		}
		return strings.Join(out, ",")
	}
	waitFor := func(from int, want string) []broker.PeerDelivery {
		t.Helper()
		testutil.EventuallyErr(t, 30*time.Second, func() error {
			if got := payloads(from); got != want {
				return fmt.Errorf("deliveries %q, want %q", got, want)
			}
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		return append([]broker.PeerDelivery(nil), seen[from:]...)
	}
	publish := func(body string) {
		t.Helper()
		if err := nodes[0].DurablePublish(&broker.Message{Topic: "q/a", Payload: []byte(body), QoS: 2}, ""); err != nil {
			t.Fatal(err)
		}
	}

	detach := nodes[2].AttachSession("k2", deliver)
	for _, b := range []string{"a", "b", "c"} {
		publish(b)
	}
	got := waitFor(0, "a,b,c")
	recorded, err := nodes[2].ReleaseQoS2("k2", []broker.PeerMsg{got[0].H, got[1].H}, []uint16{11, 12})
	if err != nil || !slices.Equal(recorded, []bool{true, true}) {
		t.Fatalf("release: %v %v", recorded, err)
	}
	detach() // c was never acknowledged

	// Back to the consumer's start, below a and b.
	name := consumerName("k2", "q/+")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := nodes[0].dur.st.Consumer(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].dur.st.ResetConsumerToSequence(ctx, name, c.CachedInfo().Config.OptStartSeq); err != nil {
		t.Fatal(err)
	}

	if ids := sortedIDs(nodes[1].ReleasedQoS2("k2", rec)); fmt.Sprint(ids) != "[11 12]" {
		t.Fatalf("PUBRELs owed on node 2: %v, want [11 12]", ids)
	}
	from := len(waitFor(0, "a,b,c"))
	detach = nodes[1].AttachSession("k2", deliver)
	defer detach()
	publish("d")
	// c comes again (never acknowledged), then d; a and b never.
	again := waitFor(from, "c,d")
	if again[0].Seq != got[2].Seq {
		t.Fatalf("c again: seq %d, was %d", again[0].Seq, got[2].Seq)
	}

	// The client completes 11 (PUBCOMP) and takes c (PUBREC): the record
	// written for c drops 11.
	nodes[1].CompletedQoS2("k2", 11)
	if _, err := nodes[1].ReleaseQoS2("k2", []broker.PeerMsg{again[0].H}, []uint16{13}); err != nil {
		t.Fatal(err)
	}
	if ids := sortedIDs(nodes[2].ReleasedQoS2("k2", rec)); fmt.Sprint(ids) != "[12 13]" {
		t.Fatalf("PUBRELs owed after PUBCOMP 11: %v, want [12 13]", ids)
	}

	nodes[1].DeleteSession("k2")
	if b, rev, err := nodes[2].relGet(ctx, relKey(name)); err != nil || rev != 0 {
		t.Fatalf("record of the ended session: %s rev %d %v", b, rev, err)
	}
}
