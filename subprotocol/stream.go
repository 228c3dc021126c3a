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
	N   int64
	cur io.Reader
}

// ConsumedBy returns the bytes of the stream that a reader buffering
// buffered of them has handed on: N less what is still in its buffer.
func (s *Stream) ConsumedBy(buffered int) int64 { return s.N - int64(buffered) }

// Read implements io.Reader over successive transport messages.
func (s *Stream) Read(p []byte) (int, error) {
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
