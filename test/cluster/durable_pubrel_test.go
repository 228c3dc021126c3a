package cluster

import (
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// rawV5 is an MQTT 5 client driven packet by packet with paho's codec,
// for the QoS 2 steps a client library takes by itself: it PUBRECs only
// when told, and never sends PUBCOMP unless told.
type rawV5 struct {
	conn net.Conn
	pkts chan *packets.ControlPacket
	done chan struct{}
}

// rawWait is how long a packet may take: a resume on another node
// waits out the election of the dead node's JetStream leaders.
const rawWait = 60 * time.Second

// dialRaw connects client id to addr with a one-hour session and
// returns it with the CONNACK's Session Present.
func dialRaw(t *testing.T, addr, id string, clean bool) (*rawV5, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawV5{conn: conn, pkts: make(chan *packets.ControlPacket, 64), done: make(chan struct{})}
	t.Cleanup(func() {
		close(r.done)
		_ = conn.Close()
	})
	go func() {
		defer close(r.pkts)
		for {
			p, err := packets.ReadPacket(conn)
			if err != nil {
				return
			}
			select {
			case r.pkts <- p:
			case <-r.done:
				return
			}
		}
	}()
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	c.ClientID, c.CleanStart, c.KeepAlive = id, clean, 60
	expiry := uint32(3600)
	c.Properties.SessionExpiryInterval = &expiry
	r.write(t, cp)
	ca, ok := r.next(t).Content.(*packets.Connack)
	if !ok || ca.ReasonCode != 0 {
		t.Fatalf("%s: CONNACK expected, got %+v", id, ca)
	}
	return r, ca.SessionPresent
}

func (r *rawV5) write(t *testing.T, cp *packets.ControlPacket) {
	t.Helper()
	if _, err := cp.WriteTo(r.conn); err != nil {
		t.Fatal(err)
	}
}

// next returns the next packet from the server.
func (r *rawV5) next(t *testing.T) *packets.ControlPacket {
	t.Helper()
	select {
	case p, ok := <-r.pkts:
		if !ok {
			t.Fatal("the server closed the connection")
		}
		return p
	case <-time.After(rawWait):
		t.Fatalf("no packet from the server in %v", rawWait)
		return nil
	}
}

func (r *rawV5) subscribe(t *testing.T, filter string, qos byte) {
	t.Helper()
	cp := packets.NewControlPacket(packets.SUBSCRIBE)
	s := cp.Content.(*packets.Subscribe)
	s.PacketID = 1
	s.Subscriptions = []packets.SubOptions{{Topic: filter, QoS: qos}}
	r.write(t, cp)
	if sa, ok := r.next(t).Content.(*packets.Suback); !ok || len(sa.Reasons) != 1 || sa.Reasons[0] != qos {
		t.Fatalf("SUBACK expected, got %+v", sa)
	}
}

// ack sends PUBREC or PUBCOMP (kind) for packet id.
func (r *rawV5) ack(t *testing.T, kind byte, id uint16) {
	t.Helper()
	cp := packets.NewControlPacket(kind)
	switch a := cp.Content.(type) {
	case *packets.Pubrec:
		a.PacketID = id
	case *packets.Pubcomp:
		a.PacketID = id
	}
	r.write(t, cp)
}

// publish expects a QoS 2 PUBLISH of payload want, without DUP unless
// resent. (A resend should carry DUP [MQTT-3.3.1-1], but the node that
// resumes the session knows what the dead one sent only as far as the
// consumer's replicated state had it; a conforming client answers a
// held packet id the same either way [MQTT-4.3.3-10].)
func (r *rawV5) publish(t *testing.T, want string, resent bool) uint16 {
	t.Helper()
	p, ok := r.next(t).Content.(*packets.Publish)
	if !ok || string(p.Payload) != want || p.QoS != 2 || (p.Duplicate && !resent) {
		t.Fatalf("PUBLISH %s (QoS 2, resent %v) expected, got %v", want, resent, p)
	}
	return p.PacketID
}

// pubrels expects a PUBREL for each of ids, in any order.
func (r *rawV5) pubrels(t *testing.T, ids ...uint16) {
	t.Helper()
	want := map[uint16]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for range ids {
		p := r.next(t)
		rel, ok := p.Content.(*packets.Pubrel)
		if !ok || !want[rel.PacketID] {
			t.Fatalf("PUBREL for one of %v expected, got %v", ids, p)
		}
		delete(want, rel.PacketID)
	}
}

// TestDurableSessionQoS2ReleasedKilled: a persistent session on node 2
// receives four QoS 2 messages; it PUBRECs the first two and gets their
// PUBRELs, holding back the PUBCOMPs, and does not answer the other two.
// Node 2 is SIGKILLed. Resumed on node 3, the session gets the two
// PUBRELs again [MQTT-4.4.0-1], never the first two PUBLISHes
// [MQTT-4.3.3-6], and the other two again under their packet ids
// [MQTT-4.4.0-1]; a message published after comes once.
func TestDurableSessionQoS2ReleasedKilled(t *testing.T) {
	nodes := startEmbedded(t, "durable-rel")
	r, _ := dialRaw(t, nodes[1].mqtt, "ps-rel", true)
	r.subscribe(t, "rel/#", 2)
	sent := publishQoS(t, nodes[0].mqtt, "pub-rel", "rel/a", "m", 2, 0, 4)
	ids := make([]uint16, len(sent))
	for i, m := range sent {
		ids[i] = r.publish(t, m, false)
	}
	r.ack(t, packets.PUBREC, ids[0])
	r.ack(t, packets.PUBREC, ids[1])
	r.pubrels(t, ids[0], ids[1])
	nodes[1].p.Kill()

	r2, present := dialRaw(t, nodes[2].mqtt, "ps-rel", false)
	if !present {
		t.Fatal("resumed on node 3 without Session Present")
	}
	r2.pubrels(t, ids[0], ids[1])
	for i := 2; i < 4; i++ {
		if id := r2.publish(t, sent[i], true); id != ids[i] {
			t.Fatalf("%s again under packet id %d, was %d", sent[i], id, ids[i])
		}
	}
	r2.ack(t, packets.PUBCOMP, ids[0])
	r2.ack(t, packets.PUBCOMP, ids[1])
	r2.ack(t, packets.PUBREC, ids[2])
	r2.ack(t, packets.PUBREC, ids[3])
	r2.pubrels(t, ids[2], ids[3])
	r2.ack(t, packets.PUBCOMP, ids[2])
	r2.ack(t, packets.PUBCOMP, ids[3])

	after := publishQoS(t, nodes[0].mqtt, "pub-rel2", "rel/b", "after", 2, 0, 1)
	id := r2.publish(t, after[0], false)
	r2.ack(t, packets.PUBREC, id)
	r2.pubrels(t, id)
	r2.ack(t, packets.PUBCOMP, id)
}
