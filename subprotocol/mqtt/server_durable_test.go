package mqtt

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/store"
)

// persistentV5 makes a v5 CONNECT ask for a session that outlives it.
func persistentV5(p *Connect) { p.Properties.SessionExpiry = 300 }

// offlineSubscriber connects a persistent v5 session id, subscribes it to
// filter at qos and hangs up: from now on the broker stores its messages.
func offlineSubscriber(t *testing.T, r *broker.Router, id string, qos byte, filter string) {
	t.Helper()
	c := dial(t, r, Config{}, Version5)
	c.mustConnect(id, false, persistentV5)
	c.subscribe(1, qos, filter)
	c.ft.HangUp()
	c.waitClosed()
}

// restartRouter stops r (if any) and returns a router restored from st, as
// a broker restart does.
func restartRouter(t *testing.T, r *broker.Router, st store.Store, cfg broker.Config) *broker.Router {
	t.Helper()
	if r != nil {
		r.Stop()
	}
	cfg.Store = st
	nr := broker.New(cfg, nil)
	if _, err := nr.Restore(); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(nr.Stop)
	return nr
}

// A persistent session's in-flight and offline state survives a broker
// restart: unacknowledged PUBLISHes come back with DUP and their original
// packet ids, a PUBREC'd QoS 2 message comes back as PUBREL only
// [MQTT-4.4.0-1], offline QoS 1/2 messages follow (without DUP: never
// sent [MQTT-3.3.1-1]), QoS 0 ones do not.
func TestDurableSessionAcrossRestart(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			st := store.NewMemory()
			r := restartRouter(t, nil, st, broker.Config{})
			persistent := persistentV5
			c := dial(t, r, Config{}, level)
			c.mustConnect("dev", false, persistent)
			c.subscribe(1, 2, "q/#")
			pub := func(r *broker.Router, i int, qos broker.QoS) {
				t.Helper()
				if err := r.Publish(context.Background(), nil, &broker.Message{Topic: "q/x", QoS: qos, Payload: []byte(fmt.Sprint(i))}); err != nil {
					t.Fatal(err)
				}
			}
			pub(r, 1, 1) // acked
			pub(r, 2, 1) // left unacked
			pub(r, 3, 2) // PUBREC'd: PUBREL stage
			pub(r, 4, 2) // left unacked
			checkFor(t, "4 deliveries", func() bool { return len(c.publishes()) == 4 })
			ps := c.publishes()
			c.send(&Ack{Kind: PUBACK, PacketID: ps[0].PacketID})
			c.send(&Ack{Kind: PUBREC, PacketID: ps[2].PacketID})
			c.next(PUBREL)
			c.ft.HangUp()
			c.waitClosed()
			pub(r, 5, 1) // offline: stored
			pub(r, 6, 0) // QoS 0 offline: not kept
			pub(r, 7, 2)

			r = restartRouter(t, r, st, broker.Config{})
			c2 := dial(t, r, Config{}, level)
			if ack := c2.mustConnect("dev", false, persistent); !ack.SessionPresent {
				t.Fatal("session not present after a restart [MQTT-3.2.2-2]")
			}
			checkFor(t, "resent and stored", func() bool { return len(c2.publishes()) == 4 && c2.count(PUBREL) == 1 })
			var order []string
			for _, p := range c2.packets()[1:] {
				switch p := p.(type) {
				case *Publish:
					order = append(order, fmt.Sprintf("%s/%d/%v", p.Payload, p.QoS, p.Dup))
				case *Ack:
					order = append(order, fmt.Sprintf("%v/%d", p.Kind, p.PacketID))
				}
			}
			want := []string{fmt.Sprintf("PUBREL/%d", ps[2].PacketID), "2/1/true", "4/2/true", "5/1/false", "7/2/false"}
			if fmt.Sprint(order) != fmt.Sprint(want) {
				t.Errorf("after restart: %v, want %v", order, want)
			}
			got := c2.publishes()
			if got[0].PacketID != ps[1].PacketID || got[1].PacketID != ps[3].PacketID {
				t.Errorf("resent ids %d, %d; want the original %d, %d", got[0].PacketID, got[1].PacketID, ps[1].PacketID, ps[3].PacketID)
			}
			// Settle everything; nothing is left on disk.
			c2.send(&Ack{Kind: PUBCOMP, PacketID: ps[2].PacketID})
			c2.send(&Ack{Kind: PUBACK, PacketID: got[0].PacketID})
			c2.send(&Ack{Kind: PUBACK, PacketID: got[2].PacketID})
			for _, p := range []*Publish{got[1], got[3]} {
				c2.send(&Ack{Kind: PUBREC, PacketID: p.PacketID})
				c2.send(&Ack{Kind: PUBCOMP, PacketID: p.PacketID})
			}
			checkFor(t, "all settled", func() bool {
				n, _, _ := st.Count("dev")
				marks, _ := st.Marks("dev")
				return n == 0 && len(marks) == 0
			})
		})
	}
}

// An inbound QoS 2 PUBLISH resent after a restart (the client did not see
// PUBCOMP) is acknowledged, not routed again [MQTT-4.3.3-10]; after PUBREL
// the id is free for a new message.
func TestDurableInboundQoS2AcrossRestart(t *testing.T) {
	st := store.NewMemory()
	r := restartRouter(t, nil, st, broker.Config{})
	persistent := persistentV5
	sub := dial(t, r, Config{}, Version5)
	sub.mustConnect("sub", false, persistent)
	sub.subscribe(1, 2, "in")
	pub := dial(t, r, Config{}, Version5)
	pub.mustConnect("pub", false, persistent)
	pub.send(&Publish{QoS: 2, PacketID: 9, Topic: "in", Payload: []byte("once")})
	pub.next(PUBREC)
	pub.ft.HangUp()
	pub.waitClosed()
	sub.ft.HangUp()
	sub.waitClosed()

	r = restartRouter(t, r, st, broker.Config{})
	pub2 := dial(t, r, Config{}, Version5)
	pub2.mustConnect("pub", false, persistent)
	pub2.send(&Publish{QoS: 2, PacketID: 9, Dup: true, Topic: "in", Payload: []byte("once")})
	pub2.next(PUBREC)
	pub2.send(&Ack{Kind: PUBREL, PacketID: 9})
	if c := pub2.next(PUBCOMP).(*Ack); c.ReasonCode != CodeSuccess {
		t.Fatalf("PUBCOMP reason %v, want success (the id was known)", c.ReasonCode)
	}
	pub2.send(&Publish{QoS: 2, PacketID: 9, Topic: "in", Payload: []byte("next")}) // id reused
	pub2.next(PUBREC)

	sub2 := dial(t, r, Config{}, Version5)
	sub2.mustConnect("sub", false, persistent)
	checkFor(t, "two messages", func() bool { return len(sub2.publishes()) == 2 })
	if got := sub2.publishes(); string(got[0].Payload) != "once" || string(got[1].Payload) != "next" {
		t.Fatalf("subscriber got %q, %q; want once, next", got[0].Payload, got[1].Payload)
	}
}

// A persistent subscriber's full stored queue is that subscriber's loss:
// the publisher, whose message reached everyone else, gets a success
// PUBACK in v5 (a code >= 0x80 makes clients resend) and is not
// disconnected in 3.1.1 (issue 8; test/security TestSessionQueueQuota).
func TestDurableQuotaExceeded(t *testing.T) {
	st := store.NewMemory()
	r := restartRouter(t, nil, st, broker.Config{MaxOfflineMsgs: 1})
	offlineSubscriber(t, r, "sub", 1, "t")
	p5 := dial(t, r, Config{}, Version5)
	p5.mustConnect("p5", true, nil)
	p5.send(&Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("1")})
	if a := p5.next(PUBACK).(*Ack); a.ReasonCode != CodeSuccess {
		t.Fatalf("first PUBACK %v", a.ReasonCode)
	}
	p5.send(&Publish{QoS: 1, PacketID: 2, Topic: "t", Payload: []byte("2")})
	if a := p5.next(PUBACK).(*Ack); a.ReasonCode != CodeSuccess {
		t.Fatalf("second PUBACK %v, want success: the subscriber's full queue is not the publisher's failure", a.ReasonCode)
	}
	p3 := dial(t, r, Config{}, Version311)
	p3.mustConnect("p3", true, nil)
	p3.send(&Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("3")})
	p3.next(PUBACK)
	if p3.ft.Closed() {
		t.Fatal("3.1.1 publisher disconnected for a subscriber's full queue")
	}
}

// gatedStore holds every commit until the test lets it through.
type gatedStore struct {
	*store.Memory
	entered chan int // batches in a CommitAll that is waiting
	release chan struct{}
}

func (g *gatedStore) CommitAll(bs []*store.Batch) ([][]uint64, error) {
	g.entered <- len(bs)
	<-g.release
	return g.Memory.CommitAll(bs)
}

func (g *gatedStore) Commit(b *store.Batch) ([]uint64, error) {
	out, err := g.CommitAll([]*store.Batch{b})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Pipelined QoS 1 publishes are acknowledged only after their commit, in
// order [MQTT-4.6.0-2], and those that queue up during a commit share the
// next one.
func TestDurablePipelinedPublishes(t *testing.T) {
	g := &gatedStore{Memory: store.NewMemory(), entered: make(chan int, 16), release: make(chan struct{})}
	r := broker.New(broker.Config{Store: g}, nil)
	if _, err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(g.release) // let the router's last writes through
		go func() {
			for range g.entered {
			}
		}()
		r.Stop()
	})
	offlineSubscriber(t, r, "sub", 1, "t")

	pub := dial(t, r, Config{}, Version5)
	pub.mustConnect("pub", true, nil)
	pub.send(&Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("1")})
	if n := <-g.entered; n != 1 {
		t.Fatalf("first commit has %d batches, want 1", n)
	}
	// While it waits, nine more arrive; none may be acknowledged yet.
	for i := 2; i <= 10; i++ {
		pub.send(&Publish{QoS: 1, PacketID: uint16(i), Topic: "t", Payload: []byte(fmt.Sprint(i))})
	}
	pub.send(&Pingreq{}) // read loop barrier: the nine are queued behind the commit
	pub.next(PINGRESP)
	if n := pub.count(PUBACK); n != 0 {
		t.Fatalf("%d PUBACKs before the commit finished", n)
	}
	g.release <- struct{}{}
	if n := <-g.entered; n != 9 {
		t.Fatalf("second commit has %d batches, want the 9 that queued up", n)
	}
	g.release <- struct{}{}
	acks := pub.waitN("10 PUBACKs", 10, func(p Packet) bool { a, ok := p.(*Ack); return ok && a.Kind == PUBACK })
	for i, p := range acks {
		if a := p.(*Ack); a.PacketID != uint16(i+1) || a.ReasonCode != CodeSuccess {
			t.Fatalf("PUBACK %d: id %d reason %v, want id %d success", i, a.PacketID, a.ReasonCode, i+1)
		}
	}
	if n, _, _ := g.Count("sub"); n != 10 {
		t.Fatalf("stored for the subscriber: %d, want 10", n)
	}
}

// Messages stored while a persistent session was offline go out without
// DUP on their first delivery [MQTT-3.3.1-1]; only what a connection wrote
// before comes back with DUP.
func TestDurableFirstDeliveryNotDup(t *testing.T) {
	st := store.NewMemory()
	r := restartRouter(t, nil, st, broker.Config{})
	persistent := persistentV5
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("dev", false, persistent)
	c.subscribe(1, 1, "t")
	if err := r.Publish(context.Background(), nil, &broker.Message{Topic: "t", QoS: 1, Payload: []byte("sent")}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "first delivery", func() bool { return len(c.publishes()) == 1 })
	c.ft.HangUp() // never acknowledged
	c.waitClosed()
	if err := r.Publish(context.Background(), nil, &broker.Message{Topic: "t", QoS: 1, Payload: []byte("offline")}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, r *broker.Router) {
		t.Helper()
		c2 := dial(t, r, Config{}, Version5)
		c2.mustConnect("dev", false, persistent)
		checkFor(t, "two deliveries", func() bool { return len(c2.publishes()) == 2 })
		got := c2.publishes()
		if string(got[0].Payload) != "sent" || !got[0].Dup || string(got[1].Payload) != "offline" || got[1].Dup {
			t.Fatalf("%s: %q dup=%v, %q dup=%v; want sent with DUP, offline without", when, got[0].Payload, got[0].Dup, got[1].Payload, got[1].Dup)
		}
		c2.ft.HangUp()
		c2.waitClosed()
	}
	// After a restart too: the session was offline, so its record says
	// what its last connection wrote.
	check("after a restart", restartRouter(t, r, st, broker.Config{}))
}

// A v5 QoS 2 PUBLISH that a persistent subscriber's full queue could not
// keep completes normally (PUBREC success, PUBREL, PUBCOMP), and its packet
// id is forgotten on disk at PUBREL.
func TestDurableQoS2QuotaFreesID(t *testing.T) {
	st := store.NewMemory()
	r := restartRouter(t, nil, st, broker.Config{MaxOfflineMsgs: 1})
	persistent := persistentV5
	offlineSubscriber(t, r, "sub", 2, "t")
	pub := dial(t, r, Config{}, Version5)
	pub.mustConnect("pub", false, persistent)
	pub.send(&Publish{QoS: 2, PacketID: 5, Topic: "t", Payload: []byte("1")})
	if a := pub.next(PUBREC).(*Ack); a.ReasonCode != CodeSuccess {
		t.Fatalf("first PUBREC %v", a.ReasonCode)
	}
	pub.send(&Ack{Kind: PUBREL, PacketID: 5})
	pub.next(PUBCOMP)
	pub.send(&Publish{QoS: 2, PacketID: 6, Topic: "t", Payload: []byte("2")})
	if a := pub.next(PUBREC).(*Ack); a.ReasonCode != CodeSuccess {
		t.Fatalf("second PUBREC %v, want success", a.ReasonCode)
	}
	pub.send(&Ack{Kind: PUBREL, PacketID: 6})
	if c := pub.next(PUBCOMP).(*Ack); c.ReasonCode != CodeSuccess {
		t.Fatalf("PUBCOMP %v", c.ReasonCode)
	}
	checkFor(t, "no marks left", func() bool { m, _ := st.Marks("pub"); return len(m) == 0 })
}

// A persistent session with far more stored messages than its outbox holds
// drains to the end when the client acknowledges each PUBLISH as it comes:
// the acknowledgement that empties its queue asks for the next page
// (writeloop.go kick). Before, no writer pass followed the last
// acknowledgement of a page that the pass sending it had not counted as a
// low queue, and the drain stalled (duplex-bench's restart scenario
// stopped at 144,602 and 207,788 of 1,000,000).
func TestDurableDrainNeverStalls(t *testing.T) {
	// One P: the refill goroutine pushes a whole page before the writer
	// runs, the order that stalled on a loaded box.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	st := store.NewMemory()
	cfg := broker.Config{MaxPendingMsgs: 16, MaxOfflineMsgs: 1 << 20}
	r := restartRouter(t, nil, st, cfg)
	offlineSubscriber(t, r, "drain", 1, "t")
	const total = 1000
	reqs := make([]broker.PublishReq, total)
	for i := range reqs {
		reqs[i].Msg = &broker.Message{Topic: "t", QoS: broker.AtLeastOnce, Payload: []byte(fmt.Sprint(i))}
	}
	r.PublishBatch(nil, reqs)
	c := dial(t, r, Config{}, Version5)
	c.mustConnect("drain", false, persistentV5)
	acked := 0
	testutil.Eventually(t, 60*time.Second, "every stored message delivered", func() bool {
		ps := c.publishesNoFail()
		for ; acked < len(ps); acked++ {
			if want := fmt.Sprint(acked); string(ps[acked].Payload) != want {
				t.Fatalf("PUBLISH %d carries %q, want %q (order)", acked, ps[acked].Payload, want)
			}
			c.send(&Ack{Kind: PUBACK, PacketID: ps[acked].PacketID})
		}
		return acked == total
	})
}
