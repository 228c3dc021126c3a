package broker

import (
	"slices"
	"testing"
)

// TestOutboxLimitDrain: under a LimitDrain limit, Drain takes the control
// frames and then the deliveries that fit, in order, leaves the rest
// queued (counted in Pending), and clears the limit.
func TestOutboxLimitDrain(t *testing.T) {
	o := NewOutbox(100, 1<<20, 10, nil)
	for _, body := range []string{"a", "b", "c"} {
		if err := o.PushDelivery(outboxDelivery(body)); err != nil {
			t.Fatal(err)
		}
	}
	size := outboxDelivery("a").Msg.Size()
	if o.LimitDrain(2 * size) {
		t.Fatal("LimitDrain accepted more queued bytes than its limit")
	}
	if !o.LimitDrain(3 * size) {
		t.Fatal("LimitDrain refused what fits")
	}
	_ = o.PushDelivery(outboxDelivery("d")) // pushed after the check: stays
	_, msgs, _ := o.Drain(nil, nil)
	if got := deliveryBodies(msgs); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("limited drain took %v, want [a b c]", got)
	}
	if n, b := o.Pending(); n != 1 || b != size {
		t.Fatalf("Pending after the limited drain: %d msgs %d bytes, want 1, %d", n, b, size)
	}
	_ = o.PushDelivery(outboxDelivery("e"))
	_, msgs, _ = o.Drain(nil, nil) // the limit was for one drain only
	if got := deliveryBodies(msgs); !slices.Equal(got, []string{"d", "e"}) {
		t.Fatalf("next drain took %v, want [d e]", got)
	}
	if err := o.PushControl([]byte("ack")); err != nil {
		t.Fatal(err)
	}
	if o.LimitDrain(1 << 10) {
		t.Error("LimitDrain accepted with a control frame queued")
	}
	o.Close()
	_, _, _ = o.Drain(nil, nil)
	if o.LimitDrain(1 << 10) {
		t.Error("LimitDrain accepted on a closed outbox")
	}
}

// TestOutboxPushQuiet: pushQuiet does not signal, and reports the push
// that made the delivery lane non-empty; Flush signals.
func TestOutboxPushQuiet(t *testing.T) {
	o := NewOutbox(100, 1<<20, 10, nil)
	first, err := o.pushQuiet(outboxDelivery("a"))
	if err != nil || !first {
		t.Fatalf("first push: first=%v err=%v", first, err)
	}
	if first, _ := o.pushQuiet(outboxDelivery("b")); first {
		t.Error("second push reported first")
	}
	select {
	case <-o.Notify():
		t.Fatal("pushQuiet signalled")
	default:
	}
	o.Flush(true) // no flusher: signals
	select {
	case <-o.Notify():
	default:
		t.Fatal("Flush did not signal")
	}
	_, _, _ = o.Drain(nil, nil)
	if first, _ := o.pushQuiet(outboxDelivery("c")); !first {
		t.Error("push after a drain did not report first")
	}
}
