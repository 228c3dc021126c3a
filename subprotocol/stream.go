package subprotocol

import (
	"errors"
	"io"
)

// ErrTextFrame is returned by a BinaryOnly Stream when a text message
// arrives.
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
	cur        io.Reader
}

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
