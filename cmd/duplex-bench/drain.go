package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// drainer counts, on a persistent subscriber's reader goroutine, the
// messages a resumed session delivers, checking each publisher's sequence
// numbers (body layout as in subscriber.go) for gaps and repeats.
type drainer struct {
	want     uint64
	unique   atomic.Uint64 // deliveries not seen before
	complete chan struct{} // closed once want unique deliveries came and their PUBACKs went out
	once     sync.Once

	// Owned by the reader goroutine; read after it ends.
	highest     []uint64 // per publisher index: highest sequence number seen
	dups        uint64   // sequence numbers seen again or out of order
	gaps        uint64   // sequence numbers skipped
	bad         uint64   // bodies not laid out as the generator's
	first, last int64    // UnixNano of the first and the want-th unique delivery
}

// maxDrainPubs bounds the publisher index a body may carry.
const maxDrainPubs = 1 << 16

func newDrainer(want uint64) *drainer {
	return &drainer{want: want, complete: make(chan struct{})}
}

// delivery checks and counts one message.
func (d *drainer) delivery(b []byte) {
	now := time.Now().UnixNano()
	if len(b) < minBody {
		d.bad++
		return
	}
	p := binary.LittleEndian.Uint32(b[offPub:])
	seq := binary.LittleEndian.Uint64(b[offSeq:])
	if p >= maxDrainPubs || seq == 0 {
		d.bad++
		return
	}
	for int(p) >= len(d.highest) {
		d.highest = append(d.highest, 0)
	}
	last := d.highest[p]
	switch {
	case seq <= last:
		d.dups++
		return
	case seq > last+1:
		d.gaps += seq - last - 1
	}
	d.highest[p] = seq
	n := d.unique.Add(1)
	if n == 1 {
		d.first = now
	}
	if n == d.want {
		d.last = now
	}
}

// caughtUp ends the wait once every expected message came and the reader
// has PUBACKed it, so that a DISCONNECT cannot overtake those PUBACKs.
func (d *drainer) caughtUp() {
	if d.unique.Load() >= d.want {
		d.once.Do(func() { close(d.complete) })
	}
}

func (d *drainer) confirmed(uint64) {}

func (d *drainer) other() {}

// drainSession resumes the persistent session -client-id and receives
// -msgs messages from it, PUBACKing each, then disconnects (the session
// stays, empty). It adds how long that took from the CONNECT to the last
// message, and fails when the broker has no such session, a message is
// lost or repeated, or none arrives for -timeout.
func drainSession(ctx context.Context, d *dialer, cfg *config, r *result) {
	began := time.Now()
	c, present, err := d.dialSession(ctx, cfg.clientID, false)
	if err != nil {
		r.fail("drain: subscriber %q: %v", cfg.clientID, err)
		return
	}
	if !present {
		c.close()
		r.fail("drain: the broker has no session for %q (CONNACK Session Present 0)", cfg.clientID)
		return
	}
	dr := newDrainer(uint64(cfg.msgs))
	c.caughtUp = dr.caughtUp
	var s session
	s.start(c, dr)

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	seen, progress := uint64(0), time.Now()
	var stalled error
wait:
	for {
		select {
		case <-dr.complete:
			break wait
		case <-s.done:
			break wait
		case now := <-tick.C:
			if n := dr.unique.Load(); n != seen {
				seen, progress = n, now
			} else if now.Sub(progress) >= cfg.timeout {
				stalled = fmt.Errorf("drain: no message for %s after %d of %d", cfg.timeout, n, cfg.msgs)
				break wait
			}
		}
	}
	// Whatever arrives until the DISCONNECT is confirmed also counts
	// (as extra, repeated or lost).
	confirmed := s.stop(cfg.timeout)
	got := dr.unique.Load()
	if got >= dr.want {
		took := time.Duration(dr.last - began.UnixNano())
		r.add("drained %d in %s", dr.want, fmtDur(took))
		r.add("%.0f msg/s", float64(dr.want)/took.Seconds())
		r.add("first message after %s", fmtMs(dr.first-began.UnixNano()))
		if got > dr.want {
			r.add("%d more than expected", got-dr.want)
		}
	}
	switch {
	case stalled != nil:
		r.fail("%v", stalled)
	case got < dr.want:
		if err := s.failure(); err != nil {
			r.fail("drain: connection lost after %d of %d messages: %v", got, cfg.msgs, err)
		} else {
			r.fail("drain: %d of %d messages", got, cfg.msgs)
		}
	case !confirmed:
		r.fail("drain: DISCONNECT not confirmed (the broker did not close the connection)")
	}
	if dr.gaps > 0 {
		r.fail("drain: %d messages lost (sequence gaps)", dr.gaps)
	}
	if dr.dups > 0 {
		r.fail("drain: %d messages repeated or out of order", dr.dups)
	}
	if dr.bad > 0 {
		r.fail("drain: %d messages with a body we did not send", dr.bad)
	}
}

// runDrain is the drain scenario against a running broker.
func runDrain(ctx context.Context, cfg *config, r *result) {
	d, err := newDialer(cfg, false)
	if err != nil {
		r.fail("%v", err)
		return
	}
	drainSession(ctx, d, cfg, r)
}
