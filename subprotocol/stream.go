package subprotocol

import (
	"errors"
	"io"
)

// ErrTextFrame is returned by a BinaryOnly Stream when a text message
// arrives; MQTT closes the connection on it (1003) [MQTT-6.0.0-1].
var ErrTextFrame = errors.New("subprotocol: text WebSocket message on a binary-only protocol")

// Stream reads a Transport's messages as one byte stream, for protocols
// whose frames may span or share transport messages [MQTT-6.0.0-2]. It is
// used by the read loop only. With BinaryOnly, a text message fails the
// read with ErrTextFrame before any of its bytes reach the decoder
// [MQTT-6.0.0-1]; TextFrames counts text messages seen either way.
type Stream struct {
	T          Transport
	BinaryOnly bool
	TextFrames int
	// N counts the bytes Read returned: what came off the wire. A protocol
	// subtracts what its bufio.Reader still buffers to get the bytes of
	// the frames it decoded (ConsumedBy).
	N int64
	// beforeWait runs before a read that may wait on the network
	// (SetBeforeWait); hooked: the transport runs it before each of its
	// own reads from the network.
	beforeWait Flusher
	hooked     bool
	cur        io.Reader
}

// InputHolder is a Transport that reads ahead: HoldsInput reports input it
// has read from the network and not yet returned, so that the next read
// will not wait. A Transport that is not one may wait on every Read.
type InputHolder interface {
	HoldsInput() bool
}

// Flusher is what a read loop flushes before it may wait: the session's
// deferred deliveries (broker.Session).
type Flusher interface {
	FlushDeferred()
}

// ReadHooker is a Transport that can flush f before each of its reads
// from the network (web: the raw TCP socket under the connection).
// HookReads reports whether it will; f nil removes it.
type ReadHooker interface {
	HookReads(f Flusher) bool
}

// SetBeforeWait makes f flush on the read loop whenever the connection's
// next read may wait on the network: before each read of the socket when
// the transport can hook them (ReadHooker), else before each Read that
// the transport cannot serve from input already read (InputHolder), and
// at MayWait. The protocols flush there what the connection's publishes
// left to flush (broker.Session.FlushDeferred): a flooding publisher's
// read of many messages then costs each of its subscribers one write or
// one wake-up, as nats-server flushes its clients after each read. f nil
// removes it; the read loop does so as it ends.
func (s *Stream) SetBeforeWait(f Flusher) {
	s.beforeWait = f
	h, ok := s.T.(ReadHooker)
	s.hooked = ok && h.HookReads(f) && f != nil
}

// MayWait flushes the SetBeforeWait Flusher unless the transport holds input
// already read. The read loop calls it before it waits without reading
// (WaitIdle) and as it ends.
func (s *Stream) MayWait() {
	if s.beforeWait == nil {
		return
	}
	if h, ok := s.T.(InputHolder); ok && h.HoldsInput() {
		return
	}
	s.beforeWait.FlushDeferred()
}

// ConsumedBy returns the bytes of the stream that a reader buffering
// buffered of them has handed on: N less what is still in its buffer.
func (s *Stream) ConsumedBy(buffered int) int64 { return s.N - int64(buffered) }

// Read implements io.Reader over successive transport messages.
func (s *Stream) Read(p []byte) (int, error) {
	if !s.hooked {
		s.MayWait()
	}
	for {
		if s.cur == nil {
			binary, r, err := s.T.NextReader()
			if err != nil {
				return 0, err
			}
			if !binary {
				s.TextFrames++
				if s.BinaryOnly {
					return 0, ErrTextFrame
				}
			}
			s.cur = r
		}
		n, err := s.cur.Read(p)
		s.N += int64(n)
		if err == io.EOF {
			s.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}
