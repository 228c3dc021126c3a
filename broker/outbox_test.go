package broker

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// outboxMsg is a topic message whose Size is exactly size bytes (size >= 65).
func outboxMsg(size int) *Message {
	m := &Message{Topic: "t"}
	m.Payload = make([]byte, size-m.Size())
	if m.Size() != size {
		panic(fmt.Sprintf("outboxMsg: size %d, want %d", m.Size(), size))
	}
	return m
}

func outboxDelivery(body string) Delivery {
	return Delivery{Msg: &Message{Topic: "t", Payload: []byte(body)}}
}

func deliveryBodies(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Msg.Payload)
	}
	return out
}

func ctrlStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOutboxCountLimit(t *testing.T) {
	o := NewOutbox(2, 1<<20, 10, nil)
	for i := range 2 {
		if err := o.PushDelivery(outboxDelivery(fmt.Sprint(i))); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if err := o.PushDelivery(outboxDelivery("x")); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("push past count limit = %v, want ErrSlowConsumer", err)
	}
	if n, _ := o.Pending(); n != 2 {
		t.Fatalf("Pending msgs = %d, want 2 (the refused delivery must not be queued)", n)
	}
	// Control frames are not subject to the delivery limits.
	if err := o.PushControl([]byte("RECEIPT")); err != nil {
		t.Fatalf("PushControl with a full delivery lane: %v", err)
	}
	// Draining makes room again.
	o.Drain(nil, nil)
	if err := o.PushDelivery(outboxDelivery("y")); err != nil {
		t.Fatalf("push after Drain: %v", err)
	}
}

func TestOutboxByteLimit(t *testing.T) {
	o := NewOutbox(100, 265, 10, nil)
	for i := range 2 {
		if err := o.PushDelivery(Delivery{Msg: outboxMsg(100)}); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if n, b := o.Pending(); n != 2 || b != 200 {
		t.Fatalf("Pending = %d msgs %d bytes, want 2, 200", n, b)
	}
	// 200+66 > 265: refused.
	if err := o.PushDelivery(Delivery{Msg: outboxMsg(66)}); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("push past byte limit = %v, want ErrSlowConsumer", err)
	}
	// 200+65 == 265: exactly at the limit is still accepted.
	if err := o.PushDelivery(Delivery{Msg: outboxMsg(65)}); err != nil {
		t.Fatalf("push to exactly the byte limit: %v", err)
	}
	if n, b := o.Pending(); n != 3 || b != 265 {
		t.Fatalf("Pending = %d msgs %d bytes, want 3, 265", n, b)
	}
	if err := o.PushDelivery(Delivery{Msg: outboxMsg(65)}); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("push to a full outbox = %v, want ErrSlowConsumer", err)
	}
}

func TestOutboxOversizeWhenEmpty(t *testing.T) {
	o := NewOutbox(10, 100, 10, nil)
	big := outboxMsg(1000)
	if err := o.PushDelivery(Delivery{Msg: big}); err != nil {
		t.Fatalf("an empty outbox must accept one oversize delivery: %v", err)
	}
	if n, b := o.Pending(); n != 1 || b != 1000 {
		t.Fatalf("Pending = %d msgs %d bytes, want 1, 1000", n, b)
	}
	if err := o.PushDelivery(Delivery{Msg: outboxMsg(65)}); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("push behind an oversize delivery = %v, want ErrSlowConsumer", err)
	}
	_, msgs, _ := o.Drain(nil, nil)
	if len(msgs) != 1 || msgs[0].Msg != big {
		t.Fatalf("Drain = %d deliveries, want the oversize one", len(msgs))
	}
	if n, b := o.Pending(); n != 0 || b != 0 {
		t.Fatalf("Pending after Drain = %d msgs %d bytes, want 0, 0", n, b)
	}
	if err := o.PushDelivery(Delivery{Msg: outboxMsg(1000)}); err != nil {
		t.Fatalf("oversize push after Drain: %v", err)
	}
}

func TestOutboxControlOverflow(t *testing.T) {
	o := NewOutbox(1, 1, 3, nil)
	for i := range 3 {
		if err := o.PushControl([]byte{byte('a' + i)}); err != nil {
			t.Fatalf("PushControl %d: %v", i, err)
		}
	}
	if err := o.PushControl([]byte("d")); !errors.Is(err, ErrControlOverflow) {
		t.Fatalf("PushControl past the cap = %v, want ErrControlOverflow", err)
	}
	ctrl, _, _ := o.Drain(nil, nil)
	if got := ctrlStrings(ctrl); !sameStrings(got, []string{"a", "b", "c"}) {
		t.Fatalf("Drain ctrl = %q, want [a b c]", got)
	}
	if err := o.PushControl([]byte("e")); err != nil {
		t.Fatalf("PushControl after Drain: %v", err)
	}
}

func TestOutboxClose(t *testing.T) {
	o := NewOutbox(10, 1<<20, 10, nil)
	if err := o.PushControl([]byte("c1")); err != nil {
		t.Fatal(err)
	}
	if err := o.PushDelivery(outboxDelivery("d1")); err != nil {
		t.Fatal(err)
	}
	<-o.Notify() // consume the push signal
	o.Close()
	select {
	case <-o.Notify():
	default:
		t.Fatal("Close did not signal Notify")
	}
	o.Close() // idempotent
	if err := o.PushControl([]byte("c2")); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("PushControl after Close = %v, want ErrSessionClosed", err)
	}
	if err := o.PushDelivery(outboxDelivery("d2")); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("PushDelivery after Close = %v, want ErrSessionClosed", err)
	}
	ctrl, msgs, closed := o.Drain(nil, nil)
	if !closed {
		t.Error("Drain after Close: closed = false")
	}
	if got := ctrlStrings(ctrl); !sameStrings(got, []string{"c1"}) {
		t.Errorf("Drain after Close: ctrl = %q, want what was queued before Close", got)
	}
	if got := deliveryBodies(msgs); !sameStrings(got, []string{"d1"}) {
		t.Errorf("Drain after Close: msgs = %q, want what was queued before Close", got)
	}
	if _, _, closed := o.Drain(nil, nil); !closed {
		t.Error("second Drain after Close: closed = false")
	}
}

func TestOutboxDrainSwapsInOrder(t *testing.T) {
	o := NewOutbox(100, 1<<20, 100, nil)
	if ctrl, msgs, closed := o.Drain(nil, nil); len(ctrl) != 0 || len(msgs) != 0 || closed {
		t.Fatalf("Drain of an empty outbox = %d, %d, %v", len(ctrl), len(msgs), closed)
	}
	for i := range 5 {
		if err := o.PushControl([]byte(fmt.Sprint("c", i))); err != nil {
			t.Fatal(err)
		}
		if err := o.PushDelivery(outboxDelivery(fmt.Sprint("d", i))); err != nil {
			t.Fatal(err)
		}
	}
	spentCtrl := make([][]byte, 0, 8)
	spentMsgs := make([]Delivery, 0, 8)
	ctrl, msgs, closed := o.Drain(spentCtrl, spentMsgs)
	if closed {
		t.Fatal("Drain: closed = true on an open outbox")
	}
	if got := ctrlStrings(ctrl); !sameStrings(got, []string{"c0", "c1", "c2", "c3", "c4"}) {
		t.Fatalf("Drain ctrl = %q, want c0..c4 in order", got)
	}
	if got := deliveryBodies(msgs); !sameStrings(got, []string{"d0", "d1", "d2", "d3", "d4"}) {
		t.Fatalf("Drain msgs = %q, want d0..d4 in order", got)
	}
	if n, b := o.Pending(); n != 0 || b != 0 {
		t.Fatalf("Pending after Drain = %d msgs %d bytes, want 0, 0", n, b)
	}

	// The outbox now fills the slices it was handed.
	if err := o.PushControl([]byte("c5")); err != nil {
		t.Fatal(err)
	}
	if err := o.PushDelivery(outboxDelivery("d5")); err != nil {
		t.Fatal(err)
	}
	clear(ctrl)
	clear(msgs)
	ctrl2, msgs2, _ := o.Drain(ctrl, msgs)
	if got := ctrlStrings(ctrl2); !sameStrings(got, []string{"c5"}) {
		t.Fatalf("second Drain ctrl = %q, want [c5]", got)
	}
	if got := deliveryBodies(msgs2); !sameStrings(got, []string{"d5"}) {
		t.Fatalf("second Drain msgs = %q, want [d5]", got)
	}
	if &ctrl2[0] != &spentCtrl[:1][0] {
		t.Error("Drain did not reuse the control slice handed to the previous Drain")
	}
	if &msgs2[0] != &spentMsgs[:1][0] {
		t.Error("Drain did not reuse the delivery slice handed to the previous Drain")
	}
}

func TestOutboxNotifyCoalesces(t *testing.T) {
	o := NewOutbox(100, 1<<20, 100, nil)
	select {
	case <-o.Notify():
		t.Fatal("Notify signalled before any push")
	default:
	}
	for i := range 3 {
		if err := o.PushControl([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := o.PushDelivery(outboxDelivery("x")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-o.Notify():
	default:
		t.Fatal("Notify not signalled after pushes")
	}
	select {
	case <-o.Notify():
		t.Fatal("Notify signalled twice for pushes made before the first receive")
	default:
	}
	if err := o.PushControl([]byte("again")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.Notify():
	default:
		t.Fatal("Notify not signalled for a push after the previous signal was consumed")
	}
}

// TestOutboxConcurrent pushes from several goroutines while one drains on
// Notify: nothing is lost and the last push is never left unsignalled.
func TestOutboxConcurrent(t *testing.T) {
	const pushers, each = 4, 2000
	o := NewOutbox(pushers*each, 1<<30, pushers*each, nil)
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var err error
				if i%2 == 0 {
					err = o.PushControl([]byte{byte(p)})
				} else {
					err = o.PushDelivery(outboxDelivery("x"))
				}
				if err != nil {
					t.Errorf("push: %v", err)
					return
				}
			}
		}()
	}
	got := 0
	var ctrl [][]byte
	var msgs []Delivery
	deadline := time.After(10 * time.Second)
	for got < pushers*each {
		select {
		case <-o.Notify():
		case <-deadline:
			t.Fatalf("drained %d of %d items; a signal was lost", got, pushers*each)
		}
		ctrl, msgs, _ = o.Drain(ctrl, msgs)
		got += len(ctrl) + len(msgs)
		clear(ctrl)
		clear(msgs)
	}
	wg.Wait()
	if got != pushers*each {
		t.Fatalf("drained %d items, want %d", got, pushers*each)
	}
}
