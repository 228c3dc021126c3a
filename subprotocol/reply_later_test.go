package subprotocol

import (
	"testing"

	"github.com/duplexmq/duplex/broker"
)

// TestWriterReplyLater: ReplyLater takes the write side without writing;
// replies from other goroutines and deliveries meanwhile only queue; one
// FlushReplies writes them all in one pass and lets go.
func TestWriterReplyLater(t *testing.T) {
	s := newInlineSide(t)
	r, err := broker.New(broker.Config{}, nil).Open("replies", broker.SessionOptions{Protocol: "test", RemoteAddr: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r.Outbox = s.o
	passes := 0
	ctrlSeen := 0
	s.onPass = func(ctrl int) { passes++; ctrlSeen += ctrl }
	for range 3 {
		if !s.w.ReplyLater(r, []byte("ack")) {
			t.Fatal("ReplyLater refused")
		}
	}
	done := make(chan struct{})
	go func() { // another goroutine's reply and a delivery: queued only
		s.w.Reply(r, []byte("receipt"))
		_ = s.o.PushDelivery(smallDelivery())
		close(done)
	}()
	<-done
	if passes != 0 {
		t.Fatalf("%d passes before FlushReplies, want 0", passes)
	}
	if !s.w.Writing() {
		t.Fatal("ReplyLater did not hold the write side")
	}
	s.w.FlushReplies()
	if passes != 1 || ctrlSeen != 4 || s.written.Load() != 1 {
		t.Fatalf("FlushReplies: %d passes, %d replies, %d deliveries; want 1, 4, 1", passes, ctrlSeen, s.written.Load())
	}
	waitFor(t, "the write side let go", func() bool { return !s.w.Writing() })
	s.w.FlushReplies() // nothing held: no pass
	if passes != 1 {
		t.Fatalf("an empty FlushReplies passed: %d passes", passes)
	}
}
