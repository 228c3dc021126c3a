package broker

import (
	"context"
	"testing"
)

// drainingFlusher is an InlineFlusher that writes (drains) the outbox and
// counts its calls and what each took.
type drainingFlusher struct {
	o     *Outbox
	calls []int
}

func (f *drainingFlusher) FlushInline() bool {
	_, msgs, _ := f.o.Drain(nil, nil)
	f.calls = append(f.calls, len(msgs))
	return true
}

// TestDeferredFlushes: the publishes of a session that defers its flushes
// leave the subscriber unflushed until FlushDeferred, which flushes it
// once for all of them; a session that does not defer flushes after each
// publish.
func TestDeferredFlushes(t *testing.T) {
	r := New(Config{}, nil)
	sub := openSession(t, r, "sub")
	topicSub(t, r, sub, "1", "t")
	f := &drainingFlusher{o: sub.Outbox}
	sub.Outbox.SetFlusher(f)
	notify := sub.Outbox.Notify()

	pub := openSession(t, r, "pub")
	pub.DeferFlushes()
	for _, body := range []string{"a", "b", "c"} {
		publishTopic(t, r, pub, "t", body)
	}
	select {
	case <-notify:
		t.Fatal("the subscriber was signalled before FlushDeferred")
	default:
	}
	if len(f.calls) != 0 {
		t.Fatalf("flushed %v before FlushDeferred", f.calls)
	}
	pub.FlushDeferred()
	if len(f.calls) != 1 || f.calls[0] != 3 {
		t.Fatalf("FlushDeferred flushed %v, want one flush of 3", f.calls)
	}
	pub.FlushDeferred() // nothing left
	if len(f.calls) != 1 {
		t.Fatalf("a second FlushDeferred flushed again: %v", f.calls)
	}

	now := openSession(t, r, "now")
	for _, body := range []string{"d", "e"} {
		if err := r.Publish(context.Background(), now, &Message{Topic: "t", Payload: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.calls) != 3 || f.calls[1] != 1 || f.calls[2] != 1 {
		t.Fatalf("publishes that do not defer flushed %v, want one flush each", f.calls)
	}
}
