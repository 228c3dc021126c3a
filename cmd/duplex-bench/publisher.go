package main

import (
	"encoding/binary"
	"time"
)

// publisher sends messages (STOMP SEND, MQTT PUBLISH) to one topic,
// flow-controlled so that the broker's per-subscriber outbox limit is never
// reached: at most window messages are in flight to any subscriber (sent
// but not yet seen by it), and, when the broker confirms messages, at most
// window are unconfirmed (a STOMP SEND carries a receipt every chunk
// messages; MQTT QoS 1 PUBLISHes are each PUBACKed). With -rate it is also
// paced.
type publisher struct {
	session
	idx      int
	dest     string
	subs     []*subscriber // the subscribers of dest
	window   uint64
	chunk    uint64
	confirms bool          // the broker confirms messages (receipted advances)
	interval time.Duration // time between sends; 0 = unpaced
	wake     chan struct{} // signalled when credit may have grown

	receipted counter // highest sequence number confirmed

	// Owned by the run goroutine; read after it ends.
	sent     uint64        // sequence number of the last SEND
	inWindow int64         // SENDs stamped inside the measurement window
	maxStall time.Duration // longest continuous wait for credit
	writeErr error
}

// maxPaceLag is how far behind its schedule a paced publisher may fall and
// still catch up by sending back to back.
const maxPaceLag = 10 * time.Millisecond

// confirmed records, on the reader goroutine, that the broker accepted
// messages up to seq, and wakes the publisher every chunk messages.
func (p *publisher) confirmed(seq uint64) {
	last := p.receipted.Load()
	if seq <= last {
		return
	}
	p.receipted.Store(seq)
	if seq/p.chunk != last/p.chunk {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// delivery ignores messages: publishers subscribe to nothing.
func (p *publisher) delivery([]byte) {}

// other ignores other frames and packets.
func (p *publisher) other() {}

// credit returns how many more messages may be sent now.
func (p *publisher) credit() uint64 {
	low := p.sent
	if p.confirms {
		low = p.receipted.Load()
	}
	for _, s := range p.subs {
		if h := s.highest[p.idx].Load(); h < low {
			low = h
		}
	}
	if inflight := p.sent - low; inflight < p.window {
		return p.window - inflight
	}
	return 0
}

// run publishes until end. Messages stamped in [start, end) count as
// published in the measurement window.
func (p *publisher) run(start, end time.Time, size int) {
	p.c.preparePublish(p.dest, size)
	body := make([]byte, size)
	for i := minBody; i < size; i++ {
		body[i] = 'x'
	}
	binary.LittleEndian.PutUint32(body[offPub:], uint32(p.idx))
	startNs, endNs := start.UnixNano(), end.UnixNano()
	var avail uint64
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	paceStart := time.Now()
	var stalled time.Time // when the current wait for credit began
	defer func() {
		if !stalled.IsZero() {
			p.maxStall = max(p.maxStall, time.Since(stalled))
		}
	}()
	for {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		if p.interval > 0 {
			d := paceStart.Add(time.Duration(p.sent) * p.interval).Sub(now)
			if d > 0 {
				time.Sleep(min(d, end.Sub(now)))
				continue
			}
			if -d > maxPaceLag {
				// Starved (GC, a busy machine): forget the missed slots
				// rather than burst, so the rate stays steady.
				paceStart = paceStart.Add(-d - maxPaceLag)
			}
		}
		if avail == 0 {
			if avail = p.credit(); avail == 0 {
				if stalled.IsZero() {
					stalled = now
				}
				timer.Reset(min(100*time.Millisecond, end.Sub(now)))
				select {
				case <-p.wake:
				case <-timer.C:
				case <-p.done:
					return
				}
				continue
			}
			if !stalled.IsZero() {
				p.maxStall = max(p.maxStall, now.Sub(stalled))
				stalled = time.Time{}
			}
		}
		seq := p.sent + 1
		ns := now.UnixNano()
		binary.LittleEndian.PutUint64(body[offTime:], uint64(ns))
		binary.LittleEndian.PutUint64(body[offSeq:], seq)
		if err := p.c.publish(seq, body, seq%p.chunk == 0); err != nil {
			p.writeErr = err
			return
		}
		p.sent = seq
		if ns >= startNs && ns < endNs {
			p.inWindow++
		}
		avail--
	}
}
