package main

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// Body layout of every benchmark message (little endian), padded with 'x'
// to -size bytes.
const (
	offTime = 0  // int64 UnixNano send time
	offPub  = 8  // uint32 publisher index
	offSeq  = 12 // uint64 per-publisher sequence number, from 1
)

// counter is an atomic counter on its own cache line, read by a publisher
// goroutine while a subscriber goroutine writes it.
type counter struct {
	atomic.Uint64
	_ [56]byte
}

// subscriber receives one topic's messages, measures latency in the
// measurement window and tracks, per publisher, the highest sequence number
// seen, which is what the publisher's flow control reads.
type subscriber struct {
	session
	idx        int
	dest       string // topic subscribed to
	size       int
	chunk      uint64          // wake the publisher every chunk messages
	highest    []counter       // per publisher: highest sequence number seen
	wake       []chan struct{} // per publisher: its wake channel, nil if it does not feed us
	start, end int64           // measurement window, UnixNano

	// Owned by the reader goroutine; read after it ends.
	hist      histogram
	delivered int64  // deliveries received in the window
	total     uint64 // deliveries received
	gaps      uint64 // sequence numbers skipped (lost messages)
	dups      uint64 // sequence numbers seen again or out of order
	bad       uint64 // messages with a body we did not send
	others    uint64 // frames and packets other than messages
}

// newSubscriber makes subscriber idx for pubs publishers; feeds lists the
// publishers whose topic it listens on.
func newSubscriber(idx, size, pubs int, feeds []*publisher, chunk uint64) *subscriber {
	s := &subscriber{
		idx:     idx,
		size:    size,
		chunk:   chunk,
		highest: make([]counter, pubs),
		wake:    make([]chan struct{}, pubs),
	}
	for _, p := range feeds {
		s.wake[p.idx] = p.wake
	}
	return s
}

// other counts, on the reader goroutine, a frame or packet that is not a
// message.
func (s *subscriber) other() { s.others++ }

// confirmed ignores confirmations: subscribers publish nothing.
func (s *subscriber) confirmed(uint64) {}

// delivery processes one message body on the reader goroutine.
func (s *subscriber) delivery(b []byte) {
	now := time.Now().UnixNano()
	if len(b) != s.size {
		s.bad++
		return
	}
	p := binary.LittleEndian.Uint32(b[offPub:])
	if int(p) >= len(s.wake) || s.wake[p] == nil {
		s.bad++
		return
	}
	s.total++
	if now >= s.start && now < s.end {
		s.delivered++
		s.hist.record(now - int64(binary.LittleEndian.Uint64(b[offTime:])))
	}
	seq := binary.LittleEndian.Uint64(b[offSeq:])
	last := s.highest[p].Load()
	switch {
	case seq == last+1:
	case seq <= last:
		s.dups++
		return
	default:
		s.gaps += seq - last - 1
	}
	s.highest[p].Store(seq)
	if seq/s.chunk != last/s.chunk {
		select {
		case s.wake[p] <- struct{}{}:
		default:
		}
	}
}
