package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

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
	mu sync.Mutex
	// notify is Notify's channel, made on the first Notify call (the
	// protocols use wake, and an idle connection would keep 96 B for
	// nothing); notified remembers a signal sent before it existed. They
	// and wake sit next to mu: a push touches them all, on one cache line.
	notify   atomic.Pointer[chan struct{}]
	notified atomic.Bool
	wake     func() // optional; called after every signal
	ctrl     [][]byte
	msgs     []Delivery
	bytes    int
	maxMsgs  int
	maxBytes int
	maxCtrl  int
	closed   bool
	limit    int // > 0: the next Drain takes at most this many bytes (LimitDrain)
	// The moving average of the time between pushQuiet calls,
	// nanoseconds, sampled every gapSample pushes (quiet counts them,
	// under mu), and the time of the last sample (sampleGap).
	avgGap     atomic.Int64
	quiet      uint32
	lastSample atomic.Int64
	flusher    atomic.Value // InlineFlusher, optional (SetFlusher)
}

// NewOutbox returns an outbox with the given limits. wake, if not nil, is
// called (outside the lock) after every push and on Close, besides the
// Notify signal; it must not block.
func NewOutbox(maxMsgs, maxBytes, maxCtrl int, wake func()) *Outbox {
	o := &Outbox{maxMsgs: maxMsgs, maxBytes: maxBytes, maxCtrl: maxCtrl, wake: wake}
	o.avgGap.Store(int64(gapCap))
	return o
}

// Notify is signalled (non-blocking, coalesced) whenever something is pushed
// or the outbox is closed. A signal sent before the first Notify call is
// waiting in the channel it returns.
func (o *Outbox) Notify() <-chan struct{} {
	if p := o.notify.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{}, 1)
	if !o.notify.CompareAndSwap(nil, &ch) {
		return *o.notify.Load()
	}
	if o.notified.Swap(false) {
		notifyOne(ch)
	}
	return ch
}

func (o *Outbox) signal() {
	if p := o.notify.Load(); p != nil {
		notifyOne(*p)
	} else {
		// Before Notify made the channel: remember it, unless Notify
		// made it meanwhile and may have looked already.
		o.notified.Store(true)
		if p := o.notify.Load(); p != nil && o.notified.Swap(false) {
			notifyOne(*p)
		}
	}
	if o.wake != nil {
		o.wake()
	}
}

// notifyOne signals ch (capacity 1) without blocking; signals coalesce.
func notifyOne(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
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
	_, err := o.push(d, false)
	if err == nil {
		o.signal()
	}
	return err
}

// pushQuiet is PushDelivery without the signal: first reports that the
// delivery lane was empty, and then the caller must call Flush once it has
// pushed what it has for this outbox (route.go: once per publish). A push
// onto a lane that was not empty needs no signal of its own: the one that
// made it non-empty is sent, or owed, and the drain that follows takes
// both (or a drain came between, and then this push was the first).
func (o *Outbox) pushQuiet(d Delivery) (first bool, err error) { return o.push(d, true) }

// InlineGap is the average time between a subscriber's deliveries below
// which Flush does not let a publisher write to it inline. A subscriber
// that receives more often (more than about 11,000 a second: flat-out
// throughput, or many publishers) is left to its write goroutine, which
// coalesces the deliveries into fewer, larger writes in parallel with the
// publishers. One that receives less often, a few thousand a second even
// when they come in small bursts (clients pace on millisecond timers), is
// written inline: one write(2) per flush instead of waking a goroutine
// for each (a futex call and two context switches, more than the write).
var InlineGap = 90 * time.Microsecond

// gapCap caps one gap in the average, gapSample is how many deliveries
// one clock read spans (sampleGap), and gapWeight is how slowly the
// average moves (each gap moves it 1/gapWeight of the way), so that it is
// the mean gap over the last hundred or so deliveries whether they come
// evenly or in bursts: 5,000 a second in bursts of five a millisecond
// apart averages about 200 µs (inline), while 16,000 a second in bursts of
// thirty every 2 ms averages about 60 µs (coalesced; a short average of
// the last few gaps let every burst start with inline writes and doubled
// the write calls of STOMP 10->10). A flood after a pause pulls it below
// InlineGap within about 200 deliveries.
const (
	gapCap    = 2 * time.Millisecond
	gapSample = 16
	gapWeight = 64
)

func (o *Outbox) push(d Delivery, quiet bool) (first bool, err error) {
	size := d.Msg.Size()
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false, ErrSessionClosed
	}
	first = len(o.msgs) == 0
	if !first && (len(o.msgs) >= o.maxMsgs || o.bytes+size > o.maxBytes) {
		o.mu.Unlock()
		return false, ErrSlowConsumer
	}
	o.msgs = append(o.msgs, d)
	o.bytes += size
	sample := false
	if quiet {
		o.quiet++
		sample = o.quiet%gapSample == 0
	}
	o.mu.Unlock()
	if sample {
		o.sampleGap()
	}
	return first, nil
}

// sampleGap moves the average gap between pushQuiet calls by the mean gap
// since the last sample, gapSample pushes ago. A clock read per push cost
// as much as the rest of the push on a virtual machine's kvm-clock (22 %
// of BenchmarkPublishFanout/subs=1). Two pushers may sample in either
// order: a negative gap counts as none, and a lost update skews a
// heuristic, nothing else.
func (o *Outbox) sampleGap() {
	now := time.Now().UnixNano()
	gap := min(max((now-o.lastSample.Swap(now))/gapSample, 0), int64(gapCap))
	avg := o.avgGap.Load()
	o.avgGap.Store(avg + (gap-avg)*gapSample/gapWeight)
}

// InlineFlusher writes what an outbox holds on the calling goroutine when
// it can do so without waiting (the connection's writer is idle and its
// socket has room), and reports whether it did (Outbox.Flush).
type InlineFlusher interface {
	FlushInline() bool
}

// SetFlusher lets Flush write on the pushing goroutine through f. It may
// be set while publishers push (a resumed session's subscriptions deliver
// at once).
func (o *Outbox) SetFlusher(f InlineFlusher) { o.flusher.Store(f) }

// Flush signals the consumer after pushQuiet, or with inline, when a
// flusher is set and the deliveries pushed with pushQuiet come no more
// often than every InlineGap on average, lets the flusher write at once
// on the calling goroutine, which must hold no broker lock (route.go calls
// it at the end of a publish, nats' flushClients). Without a write it
// signals.
func (o *Outbox) Flush(inline bool) {
	if inline && o.avgGap.Load() >= int64(InlineGap) {
		if f, _ := o.flusher.Load().(InlineFlusher); f != nil && f.FlushInline() {
			return
		}
	}
	o.signal()
}

// LimitDrain makes the next Drain take at most max bytes (encoded control
// frames and message sizes) and reports true, or reports false without
// effect when the outbox is closed, the control lane holds anything or
// more than max bytes of deliveries are queued: an inline writer uses it
// so that a pass on a publisher's goroutine writes a small, bounded amount
// whatever is pushed meanwhile. LimitDrain(0) clears the limit.
func (o *Outbox) LimitDrain(max int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if max == 0 {
		o.limit = 0
		return true
	}
	if o.closed || len(o.ctrl) > 0 || o.bytes > max {
		return false
	}
	o.limit = max
	return true
}

// Drain hands everything queued to the write loop. It swaps buffers: the
// caller passes in its spent slices (emptied with clear, so they hold no
// references) and gets the queued ones back, so steady state allocates
// nothing. closed reports that Close was called; what was queued before is
// still returned.
func (o *Outbox) Drain(ctrl [][]byte, msgs []Delivery) (outCtrl [][]byte, outMsgs []Delivery, closed bool) {
	o.mu.Lock()
	if o.limit > 0 {
		outCtrl, outMsgs = o.drainLimited(ctrl, msgs)
		closed = o.closed
		o.mu.Unlock()
		return outCtrl, outMsgs, closed
	}
	outCtrl, o.ctrl = o.ctrl, ctrl[:0]
	outMsgs, o.msgs = o.msgs, msgs[:0]
	o.bytes = 0
	closed = o.closed
	o.mu.Unlock()
	return outCtrl, outMsgs, closed
}

// drainLimited is Drain under a LimitDrain limit: it moves the control
// frames and then the deliveries that fit into the limit, in order, into
// ctrl and msgs, and leaves the rest queued. It clears the limit. Caller
// holds o.mu.
func (o *Outbox) drainLimited(ctrl [][]byte, msgs []Delivery) ([][]byte, []Delivery) {
	room := o.limit
	o.limit = 0
	nc := 0
	for nc < len(o.ctrl) && len(o.ctrl[nc]) <= room {
		room -= len(o.ctrl[nc])
		nc++
	}
	ctrl = append(ctrl[:0], o.ctrl[:nc]...)
	o.ctrl = o.ctrl[:copy(o.ctrl, o.ctrl[nc:])]
	clear(o.ctrl[len(o.ctrl) : len(o.ctrl)+nc])
	nm := 0
	if len(o.ctrl) == 0 { // control frames first, always
		for nm < len(o.msgs) {
			size := o.msgs[nm].Msg.Size()
			if size > room {
				break
			}
			room -= size
			o.bytes -= size
			nm++
		}
	}
	msgs = append(msgs[:0], o.msgs[:nm]...)
	o.msgs = o.msgs[:copy(o.msgs, o.msgs[nm:])]
	clear(o.msgs[len(o.msgs) : len(o.msgs)+nm])
	return ctrl, msgs
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
