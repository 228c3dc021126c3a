package broker

import (
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// fakeDurable is a DurablePeers in memory: what broker/cluster does with
// JetStream, without it.
type fakeDurable struct {
	mu        sync.Mutex
	published []*Message
	records   map[string]*SessionRecord
	deliver   map[string]func(PeerDelivery) bool
	detached  int
}

func (f *fakeDurable) Interest(string, bool)                     {}
func (f *fakeDurable) Forward(*Message)                          {}
func (f *fakeDurable) Hold(string, bool)                         {}
func (f *fakeDurable) Claim(SessionClaim) (*SessionState, error) { return nil, nil }
func (f *fakeDurable) DurableOn() bool                           { return true }

func (f *fakeDurable) DurablePublish(m *Message, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, m)
	return nil
}

func (f *fakeDurable) SaveSession(key string, rec *SessionRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.records == nil {
		f.records = map[string]*SessionRecord{}
	}
	f.records[key] = rec
	return nil
}

func (f *fakeDurable) LoadSession(key string) (*SessionRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records[key], nil
}

func (f *fakeDurable) DeleteSession(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.records, key)
}

func (f *fakeDurable) AttachSession(key string, deliver func(PeerDelivery) bool) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deliver == nil {
		f.deliver = map[string]func(PeerDelivery) bool{}
	}
	f.deliver[key] = deliver
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.detached++
	}
}

func (f *fakeDurable) handTo(key string) func(PeerDelivery) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deliver[key]
}

// fakeHandle is a PeerMsg that counts its acks.
type fakeHandle struct{ acks, naks int }

func (h *fakeHandle) Ack()              { h.acks++ }
func (h *fakeHandle) Nak(time.Duration) { h.naks++ }
func (h *fakeHandle) Term()             {}
func (h *fakeHandle) Delivered() uint64 { return 1 }

// TestDurableSingleNodeUntouched: without Peers, or with Peers that keep
// no sessions, a persistent session has no cluster link and its QoS 1
// messages are stored and delivered here as before.
func TestDurableSingleNodeUntouched(t *testing.T) {
	for _, cfg := range []Config{{Store: store.NewMemory()}, {Store: store.NewMemory(), Peers: &twoNodes{}}} {
		r := New(cfg, nil)
		if _, err := r.Restore(); err != nil {
			t.Fatal(err)
		}
		p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
		if p.clusterDurable() != nil || r.durablePeers() != nil {
			t.Fatal("a cluster link without a DurablePeers")
		}
		mqttSub(t, r, p, "x/+")
		publishQoS(t, r, "x/a", "one", AtLeastOnce)
		if got := drainedBodies(p); len(got) != 1 || got[0] != "one" {
			t.Fatalf("delivered %v", got)
		}
		r.Stop()
	}
}

// TestDurablePeersSession: a persistent session with a DurablePeers has
// its subscriptions recorded there, its QoS 1 messages come from the
// cluster (stored there on publish, skipped by local routing) and are
// acknowledged there when the client acknowledges them; QoS 0 stays
// local; another node resumes it from its record.
func TestDurablePeersSession(t *testing.T) {
	f := &fakeDurable{}
	r := New(Config{Store: store.NewMemory(), Peers: f}, nil)
	if _, err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Minute})
	cj := p.clusterDurable()
	if cj == nil {
		t.Fatal("no cluster link")
	}
	mqttSub(t, r, p, "x/+")
	if rec := f.records[cj.key]; rec == nil || len(rec.Subs) != 1 || rec.Subs[0].Filter != "x/+" {
		t.Fatalf("record %+v", f.records[cj.key])
	}
	publishQoS(t, r, "x/a", "q1", AtLeastOnce)
	publishQoS(t, r, "x/a", "q0", AtMostOnce)
	if len(f.published) != 1 || string(f.published[0].Payload) != "q1" {
		t.Fatalf("stored in the cluster: %d", len(f.published))
	}
	if got := drainedBodies(p); len(got) != 1 || got[0] != "q0" {
		t.Fatalf("delivered locally %v, want only the QoS 0 one", got)
	}
	h := &fakeHandle{}
	if !f.handTo(cj.key)(PeerDelivery{Msg: f.published[0], SubKey: "x/+", Seq: 7, H: h}) {
		t.Fatal("not taken")
	}
	ds := drained(p)
	if len(ds) != 1 || ds[0].Seq != 7 || ds[0].QoS != AtLeastOnce {
		t.Fatalf("deliveries %+v", ds)
	}
	r.Ack(ds[0])
	if h.acks != 1 {
		t.Fatalf("acks %d", h.acks)
	}
	r.Close(p, CloseClientClosed)
	if f.detached != 1 {
		t.Fatalf("detached %d times", f.detached)
	}

	// Another node, whose claim nobody answers, resumes from the record.
	r2 := New(Config{Store: store.NewMemory(), Peers: f}, nil)
	if _, err := r2.Restore(); err != nil {
		t.Fatal(err)
	}
	defer r2.Stop()
	q := openOpts(t, r2, "p", SessionOptions{Expiry: time.Minute})
	if !q.Resumed() || q.Subscription("x/+") == nil {
		t.Fatal("not resumed from the record")
	}
	// A clean start ends it everywhere [MQTT-3.1.2-4].
	r2.Close(q, CloseClientClosed)
	openOpts(t, r2, "p", SessionOptions{CleanStart: true})
	if f.records[cj.key] != nil {
		t.Fatal("record kept after a clean start")
	}
}
