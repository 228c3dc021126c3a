package stomp

import (
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// kaCheck verifies k's heap order and every entry's kaPos.
func kaCheck(t *testing.T, k *kaHeap) {
	t.Helper()
	for i, e := range k.h {
		if int(e.c.kaPos) != i+1 {
			t.Fatalf("entry %d: kaPos %d", i, e.c.kaPos)
		}
		if i > 0 && k.h[(i-1)/2].due > e.due {
			t.Fatalf("entry %d due before its parent", i)
		}
	}
}

// The heap's bookkeeping: schedule orders by due time, stop takes a
// connection out for good (a later schedule is ignored), a scheduled
// connection is not scheduled twice, and fire leaves what is not due.
func TestKeepaliveHeap(t *testing.T) {
	var k kaHeap
	conns := make([]*conn, 20)
	for i := range conns {
		conns[i] = &conn{}
		k.schedule(conns[i], time.Hour+time.Duration(len(conns)-i)*time.Minute)
		kaCheck(t, &k)
	}
	k.schedule(conns[0], time.Hour) // scheduled already: no second entry
	if len(k.h) != len(conns) {
		t.Fatalf("%d entries, want %d", len(k.h), len(conns))
	}
	if k.h[0].c != conns[len(conns)-1] {
		t.Error("the earliest due is not at the top")
	}
	for _, i := range []int{5, 0, 19, 7} {
		k.stop(conns[i])
		kaCheck(t, &k)
		if conns[i].kaPos != kaStopped {
			t.Fatalf("conn %d: kaPos %d after stop", i, conns[i].kaPos)
		}
		k.schedule(conns[i], time.Hour)
		if conns[i].kaPos != kaStopped {
			t.Fatalf("conn %d scheduled after stop", i)
		}
	}
	if len(k.h) != len(conns)-4 {
		t.Fatalf("%d entries after 4 stops, want %d", len(k.h), len(conns)-4)
	}
	k.fire() // nothing due for an hour
	if len(k.h) != len(conns)-4 || k.armed != k.h[0].due {
		t.Fatalf("fire: %d entries, armed %d want %d", len(k.h), k.armed, k.h[0].due)
	}
	for _, c := range conns {
		k.stop(c)
	}
	if len(k.h) != 0 {
		t.Fatalf("%d entries after stopping all", len(k.h))
	}
	k.timer.Stop()
}

// Many connections share the timer: each gets its own heart-beats, and a
// connection that ended leaves the heap.
func TestKeepaliveShared(t *testing.T) {
	p := New(Config{HeartbeatMin: 10 * time.Millisecond})
	r := broker.New(broker.Config{}, nil)
	hs := make([]*harness, 5)
	for i := range hs {
		hs[i] = serveOn(t, t.Context(), p, r, nil)
		hs[i].connect("heart-beat", "0,"+[]string{"10", "20", "30", "15", "25"}[i])
	}
	for i, h := range hs {
		checkFor(t, "heart-beats on every connection", func() bool {
			n := 0
			for _, m := range h.ft.Messages() {
				if string(m.Data) == "\n" && !m.Binary {
					n++
				}
			}
			return n >= 3
		})
		if i%2 == 0 {
			h.sendFrame("DISCONNECT", nil)
			if err := h.waitDone(); err != nil {
				t.Fatalf("DISCONNECT: %v", err)
			}
		}
	}
	checkFor(t, "the ended connections left the heap", func() bool {
		keepalives.mu.Lock()
		defer keepalives.mu.Unlock()
		n := 0
		for _, e := range keepalives.h {
			for i := 0; i < len(hs); i += 2 {
				if e.c.sess != nil && e.c.t == hs[i].ft {
					n++
				}
			}
		}
		return n == 0
	})
}
