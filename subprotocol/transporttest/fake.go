// Package transporttest provides an in-memory subprotocol.Transport for
// protocol tests, in the manner of net/http/httptest: the test pushes the
// client's messages in, reads back what the server wrote, and sees how the
// server closed the connection.
package transporttest

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/duplexmq/duplex/subprotocol"
)

// Message is one WebSocket message the server wrote.
type Message struct {
	Binary bool
	Data   []byte
}

type inMsg struct {
	binary bool
	data   []byte
}

// Fake is an in-memory subprotocol.Transport. Send queues inbound messages;
// NextReader returns them in order, then ClosedErr once the server closed
// it, or io.EOF once the client hung up.
type Fake struct {
	// ClosedErr is what NextReader returns after Close or Abort (io.EOF
	// unless set).
	ClosedErr error
	// EnforceReadDeadline makes NextReader fail with
	// os.ErrDeadlineExceeded past the last SetReadDeadline.
	EnforceReadDeadline bool
	// PeerInfo is what Peer reports.
	PeerInfo subprotocol.Peer

	subprotocol string
	in          chan inMsg
	closed      chan struct{} // closed by Close or Abort
	closeOnce   sync.Once
	hungUp      chan struct{}
	hangOnce    sync.Once

	mu            sync.Mutex
	out           []Message
	closeCalls    int
	closeCode     int
	closeReason   string
	aborted       bool
	closedAfter   int // len(out) at the first Close or Abort
	readDeadlines []time.Time
	pings         int
	interrupts    []time.Time
	gate          chan struct{} // when set, writes wait for it to close
	blocked       int           // writes waiting at the gate
}

var _ subprotocol.Transport = (*Fake)(nil)

// Addr is every Fake's remote address.
var Addr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40123}

// New returns a Fake that reports the given negotiated subprotocol.
func New(subprotocol string) *Fake {
	return &Fake{
		ClosedErr:   io.EOF,
		subprotocol: subprotocol,
		in:          make(chan inMsg, 1024),
		closed:      make(chan struct{}),
		hungUp:      make(chan struct{}),
	}
}

// Send queues one inbound message.
func (f *Fake) Send(binary bool, data []byte) { f.in <- inMsg{binary, data} }

// HangUp makes NextReader return io.EOF once the queued messages are read.
func (f *Fake) HangUp() { f.hangOnce.Do(func() { close(f.hungUp) }) }

// NextReader implements subprotocol.Transport.
func (f *Fake) NextReader() (bool, io.Reader, error) {
	select {
	case <-f.closed:
		return false, nil, f.ClosedErr
	default:
	}
	select {
	case m := <-f.in:
		return m.binary, bytes.NewReader(m.data), nil
	default:
	}
	var timeout <-chan time.Time
	if f.EnforceReadDeadline {
		f.mu.Lock()
		var dl time.Time
		if n := len(f.readDeadlines); n > 0 {
			dl = f.readDeadlines[n-1]
		}
		f.mu.Unlock()
		if !dl.IsZero() {
			tm := time.NewTimer(time.Until(dl))
			defer tm.Stop()
			timeout = tm.C
		}
	}
	select {
	case m := <-f.in:
		return m.binary, bytes.NewReader(m.data), nil
	case <-f.closed:
		return false, nil, f.ClosedErr
	case <-f.hungUp:
		return false, nil, io.EOF
	case <-timeout:
		return false, nil, os.ErrDeadlineExceeded
	}
}

// WriteMessage records the message; while writes are held it waits.
func (f *Fake) WriteMessage(binary bool, p []byte) error {
	select {
	case <-f.closed:
		return net.ErrClosed
	default:
	}
	f.mu.Lock()
	if gate := f.gate; gate != nil {
		f.blocked++
		f.mu.Unlock()
		select {
		case <-gate:
		case <-f.closed:
			return net.ErrClosed
		}
		f.mu.Lock()
		f.blocked--
	}
	defer f.mu.Unlock()
	f.out = append(f.out, Message{Binary: binary, Data: bytes.Clone(p)})
	return nil
}

// HoldWrites makes writes wait until ReleaseWrites, like a client that
// stopped reading.
func (f *Fake) HoldWrites() {
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
}

// ReleaseWrites lets held writes through.
func (f *Fake) ReleaseWrites() {
	f.mu.Lock()
	close(f.gate)
	f.gate = nil
	f.mu.Unlock()
}

// BlockedWrites counts writes waiting at HoldWrites.
func (f *Fake) BlockedWrites() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked
}

// Ping records a keepalive.
func (f *Fake) Ping() error {
	f.mu.Lock()
	f.pings++
	f.mu.Unlock()
	return nil
}

// SetReadDeadline records t.
func (f *Fake) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	f.readDeadlines = append(f.readDeadlines, t)
	f.mu.Unlock()
	return nil
}

// SetWriteDeadline does nothing: writes never time out here.
func (f *Fake) SetWriteDeadline(time.Time) error { return nil }

// Close records the first close code and reason and ends the connection.
func (f *Fake) Close(code int, reason string) error {
	f.mu.Lock()
	if f.closeCalls == 0 && !f.aborted {
		f.closeCode, f.closeReason, f.closedAfter = code, reason, len(f.out)
	}
	f.closeCalls++
	f.mu.Unlock()
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// Abort records an abort and ends the connection.
func (f *Fake) Abort() {
	f.mu.Lock()
	if f.closeCalls == 0 && !f.aborted {
		f.closedAfter = len(f.out)
	}
	f.aborted = true
	f.mu.Unlock()
	f.closeOnce.Do(func() { close(f.closed) })
}

// InterruptWrite records d.
func (f *Fake) InterruptWrite(d time.Time) {
	f.mu.Lock()
	f.interrupts = append(f.interrupts, d)
	f.mu.Unlock()
}

// RemoteAddr returns Addr.
func (f *Fake) RemoteAddr() net.Addr { return Addr }

// Subprotocol returns the subprotocol given to New.
func (f *Fake) Subprotocol() string { return f.subprotocol }

// Peer returns PeerInfo (set it before Serve); Transport "ws" when unset.
func (f *Fake) Peer() subprotocol.Peer {
	p := f.PeerInfo
	if p.Transport == "" {
		p.Transport = "ws"
	}
	return p
}

// Closed reports whether Close or Abort was called.
func (f *Fake) Closed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// CloseState reports how the server ended the connection: the first close
// code, whether it aborted, and how many messages it had written by then.
func (f *Fake) CloseState() (code int, aborted bool, after int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closeCode, f.aborted, f.closedAfter
}

// Messages returns what the server wrote so far.
func (f *Fake) Messages() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.out...)
}

// Written returns the bytes of each message the server wrote so far.
func (f *Fake) Written() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]byte, len(f.out))
	for i, m := range f.out {
		out[i] = m.Data
	}
	return out
}

// AllBinary reports that every message written so far was binary.
func (f *Fake) AllBinary() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.out {
		if !m.Binary {
			return false
		}
	}
	return true
}

// ReadDeadlines returns every read deadline set, in order.
func (f *Fake) ReadDeadlines() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.readDeadlines...)
}

// Pings counts keepalives sent.
func (f *Fake) Pings() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pings
}

// Interrupts returns the deadlines InterruptWrite was called with.
func (f *Fake) Interrupts() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.interrupts...)
}
