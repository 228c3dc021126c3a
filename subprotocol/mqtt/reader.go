package mqtt

import (
	"bufio"
	"io"
)

// DefaultMaxPacketSize is the largest whole packet, fixed header included,
// that a Reader accepts unless told otherwise: a 1 MiB payload plus 64 KiB
// for topic and properties. A v5 server announces its limit to clients in
// the CONNACK Maximum Packet Size property (MQTT 5 §3.2.2.3.6).
const DefaultMaxPacketSize = 1<<20 + 64<<10

// readBufferSize is the size of the bufio.Reader that NewReader puts in
// front of a reader that is not already a *bufio.Reader.
const readBufferSize = 4096

// Reader decodes MQTT Control Packets from a byte stream, for MQTT 3.1,
// 3.1.1 and 5.0. It checks a packet's declared size against MaxPacketSize
// before allocating anything for it, then reads the body into one buffer of
// exactly that size, which it never reuses: byte slices in the returned
// packet (PUBLISH payloads, passwords, correlation data) alias that buffer
// and may be kept. A Reader is not safe for concurrent use.
type Reader struct {
	// MaxPacketSize bounds the total size of one packet, fixed header
	// included (the meaning of MQTT 5's Maximum Packet Size). Zero or
	// negative means DefaultMaxPacketSize.
	MaxPacketSize int

	br  *bufio.Reader
	err error // sticky: a failure inside a packet loses the framing
}

// NewReader returns a Reader that decodes packets from r. r is used as is
// when it is a *bufio.Reader, of any size; otherwise it is wrapped in one.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	return &Reader{br: br}
}

// ReadPacket reads and decodes the next packet. version is the protocol
// level negotiated on the connection (Version31, Version311 or Version5),
// or 0 before CONNECT: then the packet must be a CONNECT [MQTT-3.1.0-1],
// whose own protocol name and level choose its decoding, and a later
// CONNECT is a protocol error [MQTT-3.1.0-2]. ReadPacket decodes packets of
// both directions; the server rejects those a client may not send (see
// PacketType.FromClient).
//
// Every violation of the specification is reported as an Error carrying the
// MQTT 5 reason code to send (see Error). When a CONNECT fails after its
// protocol level was read, the partial *Connect comes back with the error,
// so that the server can answer in the client's version; its ProtocolLevel
// may then be an unsupported level. A packet larger than MaxPacketSize
// fails with CodePacketTooLarge before its body is read; for a CONNECT the
// partial *Connect still carries the protocol level, peeked from the
// buffered bytes, so that a v5 client can get CONNACK 0x95. At a packet
// boundary the stream's io.EOF is returned as is; inside a packet it
// becomes io.ErrUnexpectedEOF. After any error but one on the first byte
// of a packet, the Reader returns that error forever.
func (r *Reader) ReadPacket(version byte) (Packet, error) {
	if r.err != nil {
		return nil, r.err
	}
	b0, err := r.br.ReadByte()
	if err != nil {
		return nil, err
	}
	p, err := r.readPacket(b0, version)
	if err != nil {
		r.err = err
	}
	return p, err
}

func (r *Reader) readPacket(b0, version byte) (Packet, error) {
	t, flags := PacketType(b0>>4), b0&0x0F
	if err := checkFixedHeader(t, flags, version); err != nil {
		return nil, err
	}
	n, lenLen, err := r.readRemainingLength()
	if err != nil {
		return nil, err
	}
	limit := r.MaxPacketSize
	if limit <= 0 {
		limit = DefaultMaxPacketSize
	}
	// The limit covers the whole packet and is checked before allocating
	// (MQTT 5 §3.1.2.11.4, §3.2.2.3.6).
	if 1+lenLen+n > limit {
		err := Error{Code: CodePacketTooLarge, Reason: "packet exceeds the maximum packet size"}
		if t == CONNECT {
			// The server answers in the client's version (v5 CONNACK
			// 0x95, 3.x the close): its protocol level is a few bytes in.
			if level, ok := r.peekConnectLevel(); ok {
				return &Connect{ProtocolLevel: level}, err
			}
		}
		return nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return decodeBody(&cursor{buf: body}, t, flags, version)
}

// peekConnectLevel reads the protocol level of a CONNECT whose body is not
// read, without consuming or allocating: it follows the protocol name
// ("MQTT", or "MQIsdp" in 3.1) at the start of the variable header (MQTT 5
// §3.1.2.1, §3.1.2.2). ok is false when the name is neither, or the stream
// fails first.
func (r *Reader) peekConnectLevel() (level byte, ok bool) {
	b, err := r.br.Peek(2)
	if err != nil {
		return 0, false
	}
	n := int(b[0])<<8 | int(b[1])
	if n != 4 && n != 6 {
		return 0, false
	}
	if b, err = r.br.Peek(2 + n + 1); err != nil {
		return 0, false
	}
	if name := string(b[2 : 2+n]); name != "MQTT" && name != "MQIsdp" {
		return 0, false
	}
	return b[2+n], true
}

// checkFixedHeader checks the first byte of a packet against version before
// anything else is read.
func checkFixedHeader(t PacketType, flags, version byte) error {
	switch {
	case t == 0:
		return malformed("reserved packet type 0 (MQTT 5 §2.1.2)")
	case version == 0 && t != CONNECT:
		return protocolErr("first packet is " + t.String() + ", not CONNECT [MQTT-3.1.0-1]")
	case version != 0 && t == CONNECT:
		return protocolErr("second CONNECT [MQTT-3.1.0-2]")
	case t == AUTH && version < Version5:
		return malformed("AUTH is reserved before MQTT 5 (MQTT 3.1.1 §2.2.1)")
	case t == PUBLISH:
		return nil // flags checked by decodePublish
	case version == Version31:
		// MQTT 3.1 defined DUP and QoS bits for every packet; ignore them.
		return nil
	case flags != fixedFlags(t):
		// [MQTT-2.2.2-2] invalid flags are a malformed packet.
		return malformed(t.String() + " fixed header flags are not as reserved [MQTT-2.2.2-1]")
	}
	return nil
}

// readRemainingLength reads the Remaining Length, a Variable Byte Integer of
// at most four bytes [MQTT-1.5.5-1] (MQTT 3.1.1 §2.2.3), and returns it
// with its encoded length.
func (r *Reader) readRemainingLength() (n, lenLen int, err error) {
	for i := 0; i < 4; i++ {
		b, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, err
		}
		if i > 0 && b == 0 {
			return 0, 0, malformed("remaining length not minimally encoded [MQTT-1.5.5-1]")
		}
		n |= int(b&0x7F) << (7 * i)
		if b&0x80 == 0 {
			return n, i + 1, nil
		}
	}
	return 0, 0, malformed("remaining length longer than 4 bytes (MQTT 5 §1.5.5)")
}

// decodeBody decodes the variable header and payload of a packet of type t
// whose fixed header passed checkFixedHeader.
func decodeBody(c *cursor, t PacketType, flags, v byte) (Packet, error) {
	switch t {
	case CONNECT:
		p, err := decodeConnect(c)
		if p == nil {
			return nil, err
		}
		return p, err
	case CONNACK:
		return result(decodeConnack(c, v))
	case PUBLISH:
		return result(decodePublish(c, flags, v))
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		return result(decodeAck(c, t, v))
	case SUBSCRIBE:
		return result(decodeSubscribe(c, v))
	case SUBACK:
		return result(decodeSuback(c, v))
	case UNSUBSCRIBE:
		return result(decodeUnsubscribe(c, v))
	case UNSUBACK:
		return result(decodeUnsuback(c, v))
	case PINGREQ:
		return result(&Pingreq{}, endOfPacket(c, t))
	case PINGRESP:
		return result(&Pingresp{}, endOfPacket(c, t))
	case DISCONNECT:
		return result(decodeDisconnect(c, v))
	}
	return result(decodeAuth(c))
}

// result returns p, or a nil Packet (not a typed nil) with err.
func result[P Packet](p P, err error) (Packet, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}
