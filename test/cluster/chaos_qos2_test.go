package cluster

// The inbound QoS 2 side of the chaos harness's MQTT 5 subscribers: what a
// conforming client keeps across its connections (its session state, MQTT
// 5 §4.1: "QoS 2 messages which have been received from the Server, but
// have not been completely acknowledged"), so that the harness counts as
// delivered only what such a client hands to its application.

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// chaosQoS2In is one client id's inbound QoS 2 state (MQTT 5 §4.3.3,
// method B of MQTT 3.1.1 §4.3.3): the packet ids it stored on receipt and
// PUBRECed, and not yet released by a PUBREL. Until the PUBREL, a PUBLISH
// with such an id is acknowledged again and not delivered [MQTT-4.3.3-10],
// DUP flag or not; after it, the same id is a new message
// [MQTT-4.3.3-12]. It outlives the client's connections and is cleared
// only when a CONNACK says the server has no session (MQTT 5 §3.2.2.1.2:
// the client discards its session state).
//
// receive is called in wire order (the connection's reader) and decides;
// take gives the decision to the handler (paho's router, in the same
// order), which records the delivery or not.
type chaosQoS2In struct {
	mu      sync.Mutex
	pending map[uint16]string // packet id -> payload, PUBRECed and not released
	verdict map[uint16][]bool // per packet id, decisions the handler has not taken yet
	// Resends acknowledged again without delivery: all, those without
	// DUP, and those whose payload was not the stored one (a new message
	// under an id still in use: a conforming client drops it, so it shows
	// as lost; samples in odd).
	resent, resentNoDup, otherPayload int
	odd                               []string
}

func newChaosQoS2In() *chaosQoS2In {
	return &chaosQoS2In{pending: map[uint16]string{}, verdict: map[uint16][]bool{}}
}

// receive decides whether a QoS 2 PUBLISH is delivered to the application
// (true) or is a resend of one it holds (false); either way the client
// answers PUBREC.
func (q *chaosQoS2In) receive(id uint16, payload string, dup bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	held, ok := q.pending[id]
	deliver := !ok
	if ok {
		q.resent++
		if !dup {
			q.resentNoDup++
		}
		if held != payload {
			q.otherPayload++
			if len(q.odd) < 5 {
				q.odd = append(q.odd, fmt.Sprintf("packet id %d held %q, resend carried %q", id, held, payload))
			}
		}
	} else {
		q.pending[id] = payload // stored before onward delivery (method B)
	}
	q.verdict[id] = append(q.verdict[id], deliver)
	return deliver
}

// take is the handler's side: the oldest decision not yet taken for
// packet id. A PUBLISH receive never saw is delivered (nothing hidden).
func (q *chaosQoS2In) take(id uint16) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	v := q.verdict[id]
	if len(v) == 0 {
		return true
	}
	if len(v) == 1 {
		delete(q.verdict, id)
	} else {
		q.verdict[id] = v[1:]
	}
	return v[0]
}

// release ends the exchange of packet id (PUBREL received): it returns
// the payload it held ("" if none).
func (q *chaosQoS2In) release(id uint16) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pending[id]
	delete(q.pending, id)
	return p
}

// reset discards the session state (CONNACK without Session Present).
func (q *chaosQoS2In) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.pending)
}

// held is how many packet ids await their PUBREL.
func (q *chaosQoS2In) held() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

func (q *chaosQoS2In) stats() (resent, noDup, other int, odd []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.resent, q.resentNoDup, q.otherPayload, append([]string(nil), q.odd...)
}

// chaosSession is paho's in-memory session state with the inbound QoS 2
// decision taken by chaosQoS2In instead of paho's own check (paho hands a
// resend without DUP to the application again, and keeps an id whose
// PUBREL came while its connection was closing). One per subscriber,
// reused by every connection of its client id.
type chaosSession struct {
	*state.State
	q   *chaosQoS2In
	rec *chaosRec

	mu         sync.Mutex
	node, conn int // of the current connection (release notes)
}

func newChaosSession(rec *chaosRec) *chaosSession {
	return &chaosSession{State: state.NewInMemory(), q: newChaosQoS2In(), rec: rec}
}

// at names the connection about to be made (node index, connection number).
func (s *chaosSession) at(node, conn int) {
	s.mu.Lock()
	s.node, s.conn = node, conn
	s.mu.Unlock()
}

func (s *chaosSession) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	if !ca.SessionPresent {
		s.q.reset()
	}
	return s.State.ConAckReceived(w, cp, ca)
}

func (s *chaosSession) PacketReceived(recv *packets.ControlPacket, pubChan chan<- *packets.Publish) error {
	switch p := recv.Content.(type) {
	case *packets.Publish:
		if p.QoS != 2 {
			break
		}
		if p.PacketID == 0 {
			return fmt.Errorf("received QoS 2 PUBLISH with packet id 0")
		}
		// Every QoS 2 PUBLISH goes to the router, which acknowledges it
		// (PUBREC) after the handler, in order [MQTT-4.6.0-3]; the
		// handler delivers it or not as receive decided.
		s.q.receive(p.PacketID, string(p.Payload), p.Duplicate)
		pubChan <- p
		return nil
	case *packets.Pubrel:
		if payload := s.q.release(p.PacketID); payload != "" {
			s.mu.Lock()
			node, conn := s.node, s.conn
			s.mu.Unlock()
			s.rec.released(payload, fmt.Sprintf("node %d, connection %d, packet id %d", node+1, conn, p.PacketID))
		}
	}
	return s.State.PacketReceived(recv, pubChan)
}

// TestChaosQoS2In: the accounting alone. A resend of a held packet id is
// not delivered, with DUP or without; after the PUBREL the id is a new
// message (the harness then counts its payload as a duplicate); a CONNACK
// without a session clears what was held.
func TestChaosQoS2In(t *testing.T) {
	q := newChaosQoS2In()
	steps := []struct {
		id      uint16
		payload string
		dup     bool
		want    bool
	}{
		{5, "a", false, true},  // new
		{5, "a", true, false},  // resend before PUBREL
		{5, "a", false, false}, // resend without DUP: still held [MQTT-4.3.3-10]
		{6, "b", false, true},  // another id
		{6, "c", true, false},  // another payload under a held id: not delivered
	}
	for i, s := range steps {
		if got := q.receive(s.id, s.payload, s.dup); got != s.want {
			t.Fatalf("step %d: receive(%d, %q, dup %v) = %v, want %v", i, s.id, s.payload, s.dup, got, s.want)
		}
	}
	// The handler takes the decisions per id in arrival order.
	for i, want := range []bool{true, false, false} {
		if got := q.take(5); got != want {
			t.Fatalf("take(5) #%d = %v, want %v", i, got, want)
		}
	}
	if !q.take(6) || q.take(6) {
		t.Fatal("take(6): want true then false")
	}
	if !q.take(9) {
		t.Fatal("take of an id receive never saw: want delivered")
	}
	if n, noDup, other, odd := q.stats(); n != 3 || noDup != 1 || other != 1 || len(odd) != 1 {
		t.Fatalf("stats: %d resent, %d without DUP, %d another payload (%q); want 3, 1, 1", n, noDup, other, odd)
	}
	if p := q.release(5); p != "a" {
		t.Fatalf("release(5) = %q, want a", p)
	}
	if p := q.release(5); p != "" {
		t.Fatalf("second release(5) = %q, want none", p)
	}
	if !q.receive(5, "a", true) || !q.take(5) {
		t.Fatal("id 5 after its PUBREL: want a new message [MQTT-4.3.3-12]")
	}
	if q.held() != 2 {
		t.Fatalf("held %d, want 2 (5 and 6)", q.held())
	}
	q.reset()
	if q.held() != 0 || !q.receive(6, "b", true) {
		t.Fatal("after reset: want nothing held and id 6 new")
	}
}

// TestChaosMQTTSubQoS2 drives a chaosMQTTSub through two connections to a
// scripted MQTT 5 server and checks what the harness counts: a resend of
// an id the client PUBRECed and had no PUBREL for (with and without DUP,
// on the next connection) is acknowledged and not delivered; a resend
// after the PUBREL, and the same message under a new id, are delivered and
// counted as duplicates, with their packet ids and the PUBREL's place.
func TestChaosMQTTSubQoS2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const wait = 30 * time.Second
	script := make(chan error, 1)
	go func() {
		script <- chaosScript(ln, wait)
	}()
	addr := ln.Addr().String()
	book := &chaosBook{mqtt: []string{addr, addr, addr}}
	s := startChaosMQTTSub(book, 0, "qos2-sub", "t", 2)
	t.Cleanup(s.halt)
	select {
	case err := <-script:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * wait):
		t.Fatal("script did not finish")
	}
	var got []string
	for _, d := range s.rec.snapshot() {
		got = append(got, fmt.Sprintf("%s conn %d id %d dup %v", d.payload, d.conn, d.pid, d.dup))
	}
	want := []string{"q-p1-0 conn 1 id 5 dup false", "q-p1-1 conn 2 id 6 dup false", "q-p1-0 conn 2 id 5 dup true", "q-p1-1 conn 2 id 7 dup false"}
	if !slices.Equal(got, want) {
		t.Fatalf("deliveries:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if n, noDup, other, _ := s.session.q.stats(); n != 2 || noDup != 1 || other != 0 {
		t.Fatalf("resends acknowledged again: %d (%d without DUP, %d another payload), want 2 (1, 0)", n, noDup, other)
	}
	l := &chaosPubLog{name: "q-p1"}
	l.result(0, nil, 1)
	l.result(1, nil, 1)
	k := &chaosKind{name: "q", exactlyOnce: true, pubs: []*chaosPubLog{l}, recs: []*chaosRec{s.rec}, lost: func() int { return 0 }}
	res := k.check()
	if res.lost != 0 || res.dups != 2 {
		t.Fatalf("check: %d lost, %d dups (%s), want 0 and 2", res.lost, res.dups, res.dupSample)
	}
	if !strings.Contains(res.dupList[0], "q-p1-0 again (node 2, connection 2, packet id 5, DUP; first: node 1, connection 1, packet id 5); PUBRELs before it: node 2, connection 2, packet id 5") {
		t.Fatalf("duplicate described as %q", res.dupList[0])
	}
	t.Logf("duplicates: %s", strings.Join(res.dupList, " | "))
}

// chaosScript is the server side of TestChaosMQTTSubQoS2: the first
// connection delivers id 5 and ends before its PUBREL; the second resumes
// the session and resends.
func chaosScript(ln net.Listener, wait time.Duration) error {
	accept := func(present bool) (net.Conn, error) {
		c, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(wait))
		cp, err := chaosExpect(c, packets.CONNECT)
		if err != nil {
			c.Close()
			return nil, err
		}
		if cs := cp.Content.(*packets.Connect).CleanStart; cs == present {
			c.Close()
			return nil, fmt.Errorf("CONNECT with Clean Start %v, want %v", cs, !present)
		}
		_, err = (&packets.Connack{SessionPresent: present}).WriteTo(c)
		return c, err
	}
	pub := func(c net.Conn, id uint16, payload string, dup bool) error {
		p := &packets.Publish{QoS: 2, PacketID: id, Topic: "t", Payload: []byte(payload), Duplicate: dup}
		if _, err := p.WriteTo(c); err != nil {
			return err
		}
		r, err := chaosExpect(c, packets.PUBREC)
		if err == nil && r.PacketID() != id {
			err = fmt.Errorf("PUBREC for %d, want %d", r.PacketID(), id)
		}
		return err
	}
	rel := func(c net.Conn, id uint16) error {
		if _, err := (&packets.Pubrel{PacketID: id}).WriteTo(c); err != nil {
			return err
		}
		r, err := chaosExpect(c, packets.PUBCOMP)
		if err == nil && r.PacketID() != id {
			err = fmt.Errorf("PUBCOMP for %d, want %d", r.PacketID(), id)
		}
		return err
	}

	c, err := accept(false)
	if err != nil {
		return fmt.Errorf("connection 1: %w", err)
	}
	sp, err := chaosExpect(c, packets.SUBSCRIBE)
	if err == nil {
		_, err = (&packets.Suback{PacketID: sp.PacketID(), Reasons: []byte{2}}).WriteTo(c)
	}
	if err == nil {
		err = pub(c, 5, "q-p1-0", false)
	}
	c.Close() // the node dies before PUBREL 5
	if err != nil {
		return fmt.Errorf("connection 1: %w", err)
	}

	c, err = accept(true)
	if err != nil {
		return fmt.Errorf("connection 2: %w", err)
	}
	defer c.Close()
	for i, step := range []func() error{
		func() error { return pub(c, 5, "q-p1-0", true) },  // held: not delivered
		func() error { return pub(c, 6, "q-p1-1", false) }, // new
		func() error { return pub(c, 6, "q-p1-1", false) }, // held, no DUP: not delivered
		func() error { return rel(c, 5) },
		func() error { return pub(c, 5, "q-p1-0", true) },  // after PUBREL: delivered again (a duplicate)
		func() error { return pub(c, 7, "q-p1-1", false) }, // a new id for a delivered message: a duplicate
		func() error { return rel(c, 5) },
		func() error { return rel(c, 6) },
		func() error { return rel(c, 7) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("connection 2, step %d: %w", i+1, err)
		}
	}
	return nil
}

// chaosExpect reads the next packet other than PINGREQ (answered) and
// checks its type.
func chaosExpect(c net.Conn, typ byte) (*packets.ControlPacket, error) {
	for {
		p, err := packets.ReadPacket(c)
		if err != nil {
			return nil, err
		}
		if p.Type == packets.PINGREQ {
			if _, err := packets.NewControlPacket(packets.PINGRESP).WriteTo(c); err != nil {
				return nil, err
			}
			continue
		}
		if p.Type != typ {
			return nil, fmt.Errorf("got packet type %d (%v), want %d", p.Type, p.Content, typ)
		}
		return p, nil
	}
}
