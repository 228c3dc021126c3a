package mqtt

import (
	"bytes"
	"unicode/utf8"
)

// Codec primitives: the data representations of MQTT 5 §1.5 (identical in
// 3.1.1 §1.5), decoded from a packet body already in memory and appended to
// a caller's slice. Nothing here does I/O.

// maxVarint is the largest Variable Byte Integer, four bytes of seven bits
// (MQTT 5 §1.5.5): also the largest Remaining Length, 268,435,455.
const maxVarint = 1<<28 - 1

// cursor reads the data types of MQTT 5 §1.5 from one packet body. Every
// method fails with a Malformed Packet error when the body is too short.
// Byte slices it returns alias buf.
type cursor struct {
	buf []byte
	pos int
}

// left returns the number of unread bytes.
func (c *cursor) left() int { return len(c.buf) - c.pos }

// readByte reads one byte.
func (c *cursor) readByte(what string) (byte, error) {
	if c.pos >= len(c.buf) {
		return 0, malformed(what + ": packet too short")
	}
	b := c.buf[c.pos]
	c.pos++
	return b, nil
}

// readUint16 reads a Two Byte Integer, big-endian (MQTT 5 §1.5.2).
func (c *cursor) readUint16(what string) (uint16, error) {
	if c.left() < 2 {
		return 0, malformed(what + ": packet too short")
	}
	v := uint16(c.buf[c.pos])<<8 | uint16(c.buf[c.pos+1])
	c.pos += 2
	return v, nil
}

// readUint32 reads a Four Byte Integer, big-endian (MQTT 5 §1.5.3).
func (c *cursor) readUint32(what string) (uint32, error) {
	if c.left() < 4 {
		return 0, malformed(what + ": packet too short")
	}
	b := c.buf[c.pos : c.pos+4]
	c.pos += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// readVarint reads a Variable Byte Integer (MQTT 5 §1.5.5): at most four
// bytes, minimally encoded [MQTT-1.5.5-1].
func (c *cursor) readVarint(what string) (uint32, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if c.pos >= len(c.buf) {
			return 0, malformed(what + ": packet too short")
		}
		b := c.buf[c.pos]
		c.pos++
		if i > 0 && b == 0 {
			return 0, malformed(what + ": variable byte integer not minimally encoded [MQTT-1.5.5-1]")
		}
		v |= uint32(b&0x7F) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, malformed(what + ": variable byte integer longer than 4 bytes")
}

// readBinary reads Binary Data: a Two Byte Integer length and that many
// bytes (MQTT 5 §1.5.6). The result aliases the body, with its capacity cut
// to its length; it is nil when the length is 0.
func (c *cursor) readBinary(what string) ([]byte, error) {
	n, err := c.readUint16(what)
	if err != nil {
		return nil, err
	}
	if c.left() < int(n) {
		return nil, malformed(what + ": length runs past the end of the packet")
	}
	if n == 0 {
		return nil, nil
	}
	b := c.buf[c.pos : c.pos+int(n) : c.pos+int(n)]
	c.pos += int(n)
	return b, nil
}

// readString reads a UTF-8 Encoded String (MQTT 5 §1.5.4) and checks it
// with validUTF8.
func (c *cursor) readString(what string) (string, error) {
	b, err := c.readBinary(what)
	if err != nil {
		return "", err
	}
	if err := validUTF8(b, what); err != nil {
		return "", err
	}
	return string(b), nil
}

// validUTF8 checks the rules for UTF-8 Encoded Strings: well-formed UTF-8
// with no surrogate code points [MQTT-1.5.4-1] (utf8.Valid rejects
// U+D800..U+DFFF) and no U+0000 [MQTT-1.5.4-2] (MQTT 3.1.1 [MQTT-1.5.3-1]
// and [MQTT-1.5.3-2]). Either failure makes the packet malformed.
func validUTF8(b []byte, what string) error {
	if bytes.IndexByte(b, 0) >= 0 {
		return malformed(what + ": string contains U+0000 [MQTT-1.5.4-2]")
	}
	if !utf8.Valid(b) {
		return malformed(what + ": string is not well-formed UTF-8 [MQTT-1.5.4-1]")
	}
	return nil
}

// varintLen returns the encoded length of v, a Variable Byte Integer.
func varintLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

// appendVarint appends v as a Variable Byte Integer (MQTT 5 §1.5.5). v must
// not exceed maxVarint.
func appendVarint(dst []byte, v int) []byte {
	for {
		b := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(dst, b)
		}
		dst = append(dst, b|0x80)
	}
}

// appendUint16 appends a Two Byte Integer.
func appendUint16(dst []byte, v uint16) []byte {
	return append(dst, byte(v>>8), byte(v))
}

// appendUint32 appends a Four Byte Integer.
func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendString appends a UTF-8 Encoded String or Binary Data: a Two Byte
// Integer length, then the bytes. Longer values are cut at 65,535 bytes;
// callers that build packets from client input have already bounded them.
func appendString(dst []byte, s string) []byte {
	if len(s) > 0xFFFF {
		s = s[:0xFFFF]
	}
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendBinary appends Binary Data (MQTT 5 §1.5.6), like appendString.
func appendBinary(dst []byte, b []byte) []byte {
	if len(b) > 0xFFFF {
		b = b[:0xFFFF]
	}
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// stringLen returns the encoded size of a string or binary field.
func stringLen(n int) int {
	return 2 + min(n, 0xFFFF)
}
