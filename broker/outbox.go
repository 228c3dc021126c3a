package broker

import "sync"

// Outbox is a connection's bounded outbound queue (nats ipQueue): a mutex,
// two slices and a notify channel of capacity 1. Any goroutine pushes; only
// the connection's write loop drains. Pushing never blocks.
//
// It has two lanes. The control lane carries encoded protocol replies
// (receipts, acks, pongs, errors); it is never subject to the slow-consumer
// policy, only to a generous count cap whose overflow means abuse. The
// delivery lane carries messages and is bounded by count and bytes; past
// either limit PushDelivery returns ErrSlowConsumer and the router applies
// Config.SlowConsumer.
//
// Lock order: Outbox.mu is a leaf (see doc.go).
type Outbox struct {
	mu       sync.Mutex
	ctrl     [][]byte
	msgs     []Delivery
	bytes    int
	maxMsgs  int
	maxBytes int
	maxCtrl  int
	closed   bool
	notify   chan struct{}
	wake     func() // optional; called after every signal
}

// NewOutbox returns an outbox with the given limits. wake, if not nil, is
// called (outside the lock) after every push and on Close, besides the
// Notify signal; it must not block.
func NewOutbox(maxMsgs, maxBytes, maxCtrl int, wake func()) *Outbox {
	return &Outbox{maxMsgs: maxMsgs, maxBytes: maxBytes, maxCtrl: maxCtrl, notify: make(chan struct{}, 1), wake: wake}
}

// Notify is signalled (non-blocking, coalesced) whenever something is pushed
// or the outbox is closed.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

func (o *Outbox) signal() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
	if o.wake != nil {
		o.wake()
	}
}

// Signal wakes the consumer without pushing anything, for work of its own
// (a heart-beat that is due).
func (o *Outbox) Signal() { o.signal() }

// Empty reports that nothing is queued and the outbox is open.
func (o *Outbox) Empty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ctrl) == 0 && len(o.msgs) == 0 && !o.closed
}

// PushControl queues encoded bytes on the control lane.
func (o *Outbox) PushControl(b []byte) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrSessionClosed
	}
	if len(o.ctrl) >= o.maxCtrl {
		o.mu.Unlock()
		return ErrControlOverflow
	}
	o.ctrl = append(o.ctrl, b)
	o.mu.Unlock()
	o.signal()
	return nil
}

// PushDelivery queues d on the delivery lane, or returns ErrSlowConsumer
// when the lane is at its count or byte limit. An empty lane always accepts
// one delivery, so a message larger than the byte limit still gets through
// to a subscriber that keeps up.
func (o *Outbox) PushDelivery(d Delivery) error {
	size := d.Msg.Size()
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrSessionClosed
	}
	if len(o.msgs) > 0 && (len(o.msgs) >= o.maxMsgs || o.bytes+size > o.maxBytes) {
		o.mu.Unlock()
		return ErrSlowConsumer
	}
	o.msgs = append(o.msgs, d)
	o.bytes += size
	o.mu.Unlock()
	o.signal()
	return nil
}

// Drain hands everything queued to the write loop. It swaps buffers: the
// caller passes in its spent slices (emptied with clear, so they hold no
// references) and gets the queued ones back, so steady state allocates
// nothing. closed reports that Close was called; what was queued before is
// still returned.
func (o *Outbox) Drain(ctrl [][]byte, msgs []Delivery) (outCtrl [][]byte, outMsgs []Delivery, closed bool) {
	o.mu.Lock()
	outCtrl, o.ctrl = o.ctrl, ctrl[:0]
	outMsgs, o.msgs = o.msgs, msgs[:0]
	o.bytes = 0
	closed = o.closed
	o.mu.Unlock()
	return outCtrl, outMsgs, closed
}

// Pending reports the deliveries and bytes waiting.
func (o *Outbox) Pending() (msgs, bytes int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.msgs), o.bytes
}

// Close refuses further pushes and wakes the write loop. Idempotent.
func (o *Outbox) Close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.signal()
}
