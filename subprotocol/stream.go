package subprotocol

import "io"

// Stream reads a Transport's messages as one byte stream, for protocols
// whose frames may span or share transport messages [MQTT-6.0.0-2]. It is
// used by the read loop only. TextFrames counts text messages seen, for
// protocols that must refuse them [MQTT-6.0.0-1].
type Stream struct {
	T          Transport
	cur        io.Reader
	TextFrames int
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
