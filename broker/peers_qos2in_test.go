package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// fakeInbound is a fakeDurable that keeps inbound QoS 2 records
// (InboundPeers) and retained messages (RetainPeers) in memory, and counts
// what it forwards.
type fakeInbound struct {
	fakeDurable
	recs      map[string]string // key.id → "p" / "s"
	revs      map[string]uint64
	rev       uint64
	forwarded []string
	retained  map[string]bool // StoreRetained's dedup names
	moved     bool            // StoredInbound answers ErrInboundMoved
	names     []string        // DurablePublish's dedup names
}

func (f *fakeInbound) DurablePublish(m *Message, dedup string) error {
	f.mu.Lock()
	f.names = append(f.names, dedup)
	f.mu.Unlock()
	return f.fakeDurable.DurablePublish(m, dedup)
}

func (f *fakeInbound) lastName() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.names[len(f.names)-1]
}

func (f *fakeInbound) Forward(m *Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forwarded = append(f.forwarded, string(m.Payload))
}

func (f *fakeInbound) HoldInbound(key string, id uint16, dup bool, _ time.Duration) (InboundHold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recs == nil {
		f.recs, f.revs = map[string]string{}, map[string]uint64{}
	}
	k := fmt.Sprintf("%s.%d", key, id)
	if dup {
		switch f.recs[k] {
		case "s":
			return InboundHold{Done: true, Rev: f.revs[k]}, nil
		case "p":
			return InboundHold{Dedup: fmt.Sprintf("q2.%s.%d", k, f.revs[k]), Rev: f.revs[k]}, nil
		}
	}
	f.rev++
	f.recs[k], f.revs[k] = "p", f.rev
	return InboundHold{Dedup: fmt.Sprintf("q2.%s.%d", k, f.rev), Rev: f.rev}, nil
}

func (f *fakeInbound) StoredInbound(key string, id uint16, h InboundHold, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.moved {
		return ErrInboundMoved
	}
	k := fmt.Sprintf("%s.%d", key, id)
	f.rev++
	f.recs[k], f.revs[k] = "s", f.rev
	return nil
}

func (f *fakeInbound) ReleaseInbound(key string, id uint16, check bool) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fmt.Sprintf("%s.%d", key, id)
	held := check && f.recs[k] != ""
	delete(f.recs, k)
	return held, nil
}

func (f *fakeInbound) StoreRetained(m *Message, dedup string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retained == nil {
		f.retained = map[string]bool{}
	}
	if dedup != "" && f.retained[dedup] {
		return true, nil
	}
	f.retained[dedup] = true
	return false, nil
}

func (f *fakeInbound) record(key string, id uint16) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recs[fmt.Sprintf("%s.%d", key, id)]
}

func (f *fakeInbound) counts() (stored, forwarded int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.published), len(f.forwarded)
}

// publishQoS2 is one QoS 2 PUBLISH of from under id through PublishBatch.
func publishQoS2(t *testing.T, r *Router, from *Session, topic, body string, id uint16, dup, retain bool) {
	t.Helper()
	reqs := []PublishReq{{Msg: &Message{Topic: topic, Payload: []byte(body), QoS: ExactlyOnce, Retain: retain},
		QoS2: true, PacketID: id, Dup: dup}}
	r.PublishBatch(from, reqs)
	if reqs[0].Err != nil {
		t.Fatalf("publish %s under %d: %v", body, id, reqs[0].Err)
	}
}

// TestInboundQoS2Cluster: a cluster-durable session's QoS 2 PUBLISH is
// held in the cluster, stored, marked stored, then forwarded and
// delivered; a resend (DUP) of a stored one is acknowledged only
// [MQTT-4.3.3-10]; a resend of a pending one (its node died before the
// mark) is stored under the same name and handed on; one another node
// took over is not handed on here; PUBREL releases the id, reported held
// for a connection that did not know it; a PUBLISH without DUP is new.
func TestInboundQoS2Cluster(t *testing.T) {
	f := &fakeInbound{}
	r := New(Config{Store: store.NewMemory(), Peers: f}, nil)
	if _, err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	pub := openOpts(t, r, "pub", SessionOptions{Expiry: time.Minute})
	cj := pub.clusterDurable()
	if cj == nil {
		t.Fatal("no cluster link")
	}
	live := openSession(t, r, "live")
	mqttSub(t, r, live, "q/#")

	publishQoS2(t, r, pub, "q/a", "one", 5, false, false)
	if rec := f.record(cj.key, 5); rec != "s" {
		t.Fatalf("record %q after the publish, want s", rec)
	}
	if st, fw := f.counts(); st != 1 || fw != 1 {
		t.Fatalf("stored %d, forwarded %d; want 1, 1", st, fw)
	}
	// The resend is acknowledged, and goes nowhere.
	publishQoS2(t, r, pub, "q/a", "one", 5, true, false)
	if st, fw := f.counts(); st != 1 || fw != 1 {
		t.Fatalf("after the resend: stored %d, forwarded %d; want 1, 1", st, fw)
	}
	if got := drainedBodies(live); len(got) != 1 || got[0] != "one" {
		t.Fatalf("delivered %v, want [one]", got)
	}

	// Its node died between the hold and the mark: the resend is
	// stored again under the hold's name, and handed on once.
	died, err := f.HoldInbound(cj.key, 6, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	publishQoS2(t, r, pub, "q/a", "two", 6, true, false)
	if st, fw := f.counts(); st != 2 || fw != 2 {
		t.Fatalf("pending resend: stored %d, forwarded %d; want 2, 2", st, fw)
	}
	if name := f.lastName(); name != died.Dedup || name == "" {
		t.Fatalf("pending resend stored as %q, want the hold's %q", name, died.Dedup)
	}
	if got := drainedBodies(live); len(got) != 1 || got[0] != "two" {
		t.Fatalf("delivered %v, want [two]", got)
	}

	// Another node took the resend over: stored here (under the same
	// name, kept once), neither forwarded nor delivered here.
	if _, err := f.HoldInbound(cj.key, 7, false, 0); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.moved = true
	f.mu.Unlock()
	publishQoS2(t, r, pub, "q/a", "three", 7, true, false)
	if _, fw := f.counts(); fw != 2 {
		t.Fatalf("moved resend forwarded: %d, want 2", fw)
	}
	if got := drainedBodies(live); len(got) != 0 {
		t.Fatalf("moved resend delivered %v", got)
	}
	f.mu.Lock()
	f.moved = false
	f.mu.Unlock()

	// PUBREL on a connection that does not know id 5 (it went through
	// a node that died): the cluster held it.
	if held, err := r.ReleaseInboundID(pub, 5, false); err != nil || !held {
		t.Fatalf("release of an id the cluster held: %v %v", held, err)
	}
	if held, err := r.ReleaseInboundID(pub, 5, false); err != nil || held {
		t.Fatalf("second release: %v %v, want not held", held, err)
	}
	// Released, id 5 stands for a new message, DUP or not.
	publishQoS2(t, r, pub, "q/a", "four", 5, false, false)
	if got := drainedBodies(live); len(got) != 1 || got[0] != "four" {
		t.Fatalf("new message under a released id: delivered %v", got)
	}

	// A retained resend whose first copy reached the retained store:
	// every node had it from there; acknowledged only.
	if _, err := f.HoldInbound(cj.key, 8, false, 0); err != nil {
		t.Fatal(err)
	}
	h, _ := f.HoldInbound(cj.key, 8, true, 0)
	if _, err := f.StoreRetained(&Message{}, h.Dedup+".r"); err != nil {
		t.Fatal(err)
	}
	_, fw := f.counts()
	publishQoS2(t, r, pub, "q/r", "five", 8, true, true)
	if _, fw2 := f.counts(); fw2 != fw {
		t.Fatal("retained resend forwarded")
	}
	if got := drainedBodies(live); len(got) != 0 {
		t.Fatalf("retained resend delivered %v", got)
	}
	if rec := f.record(cj.key, 8); rec != "s" {
		t.Fatalf("retained resend record %q, want s", rec)
	}
}

// TestInboundQoS2NotClusterDurable: a session that is not cluster-durable
// (no expiry) holds nothing in the cluster; its DUP resend is published
// as before (the connection's own ids decide, subprotocol/mqtt).
func TestInboundQoS2NotClusterDurable(t *testing.T) {
	f := &fakeInbound{}
	r := New(Config{Store: store.NewMemory(), Peers: f}, nil)
	if _, err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	pub := openOpts(t, r, "pub", SessionOptions{})
	publishQoS2(t, r, pub, "q/a", "one", 5, false, false)
	publishQoS2(t, r, pub, "q/a", "one", 5, true, false)
	if f.record(clusterKey("pub"), 5) != "" {
		t.Fatal("a record for a session that is not cluster-durable")
	}
	if _, fw := f.counts(); fw != 2 {
		t.Fatalf("forwarded %d, want 2", fw)
	}
}
