package main

import (
	"errors"
	"fmt"
)

// MQTT 3.1.1 packet types (the high nibble of a packet's first byte).
const (
	mqttCONNECT    = 1
	mqttCONNACK    = 2
	mqttPUBLISH    = 3
	mqttPUBACK     = 4
	mqttSUBSCRIBE  = 8
	mqttSUBACK     = 9
	mqttDISCONNECT = 14
)

// mqttKeepAlive is the keep-alive the generator announces, in seconds. It
// never sends PINGREQ: runs are far shorter than one and a half times this
// (except -scenario adminapi's, which keeps its idle connections alive).
const mqttKeepAlive = 60

// errMalformedPacket is returned for bytes that are not an MQTT packet.
var errMalformedPacket = errors.New("malformed MQTT packet")

// mqttPacket is one parsed MQTT control packet. body (the variable header
// and payload) points into the parser's buffer and is valid only until the
// parser reads more data.
type mqttPacket struct {
	typ   byte // packet type, 1..15
	flags byte // low nibble of the first byte
	body  []byte
}

// mqttParser splits a byte stream (the concatenated WebSocket messages of
// one connection) into MQTT packets. A WebSocket message may hold several
// packets and a packet may continue in the next message, so packets are
// delimited by their remaining length only, never by message boundaries.
type mqttParser struct {
	parser // its buffer and fill; the STOMP frame parsing is not used
}

// next parses the next complete packet into pk. It returns false with a nil
// error when more data is needed.
func (p *mqttParser) next(pk *mqttPacket) (bool, error) {
	b := p.buf[p.off:]
	if len(b) < 2 {
		return false, nil
	}
	rem, hdr := 0, 1
	for shift := 0; ; shift += 7 {
		if hdr >= len(b) {
			return false, nil
		}
		if hdr == 5 {
			return false, fmt.Errorf("%w: remaining length longer than 4 bytes", errMalformedPacket)
		}
		c := b[hdr]
		hdr++
		rem |= int(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	if rem > p.limit {
		return false, fmt.Errorf("%w: remaining length %d over the %d limit", errMalformedPacket, rem, p.limit)
	}
	if len(b) < hdr+rem {
		return false, nil
	}
	pk.typ, pk.flags = b[0]>>4, b[0]&0x0f
	pk.body = b[hdr : hdr+rem]
	p.off += hdr + rem
	return true, nil
}

// publish decodes a PUBLISH packet: its QoS, packet identifier (0 for QoS 0)
// and payload. The topic name is skipped.
func (pk *mqttPacket) publish() (qos byte, id uint16, payload []byte, err error) {
	qos = (pk.flags >> 1) & 3
	b := pk.body
	if qos > 2 || len(b) < 2 {
		return 0, 0, nil, fmt.Errorf("%w: PUBLISH flags %#x, %d bytes", errMalformedPacket, pk.flags, len(b))
	}
	n := 2 + (int(b[0])<<8 | int(b[1]))
	if qos > 0 {
		n += 2
	}
	if len(b) < n {
		return 0, 0, nil, fmt.Errorf("%w: PUBLISH shorter than its topic", errMalformedPacket)
	}
	if qos > 0 {
		id = uint16(b[n-2])<<8 | uint16(b[n-1])
	}
	return qos, id, b[n:], nil
}

// packetID returns the packet identifier that starts the body of PUBACK
// and SUBACK.
func (pk *mqttPacket) packetID() (uint16, bool) {
	if len(pk.body) < 2 {
		return 0, false
	}
	return uint16(pk.body[0])<<8 | uint16(pk.body[1]), true
}

// MQTT 3.1.1 packet encoders. Each appends one complete packet to b.

// appendMQTTHeader appends a fixed header: first byte and remaining length.
func appendMQTTHeader(b []byte, first byte, rem int) []byte {
	b = append(b, first)
	for {
		c := byte(rem & 0x7f)
		rem >>= 7
		if rem > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if rem == 0 {
			return b
		}
	}
}

// appendMQTTString appends a two-byte length and s.
func appendMQTTString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// appendMQTTConnect appends a CONNECT for MQTT 3.1.1 with a clean session,
// no will, no credentials and keep-alive mqttKeepAlive.
func appendMQTTConnect(b []byte, clientID string) []byte {
	return appendMQTTConnectSession(b, clientID, true, "", "")
}

// appendMQTTConnectSession appends a CONNECT for MQTT 3.1.1 like
// appendMQTTConnect, with the Clean Session flag set only when clean: a
// client that connects with clean false resumes (or starts) a persistent
// session, which the broker keeps, with its subscriptions and its QoS 1
// messages, after the client goes. A non-empty user adds the user name and
// password [MQTT-3.1.2-18..21].
func appendMQTTConnectSession(b []byte, clientID string, clean bool, user, password string) []byte {
	var flags byte
	if clean {
		flags = 0x02
	}
	rem := 10 + 2 + len(clientID)
	if user != "" {
		flags |= 0x80 | 0x40
		rem += 2 + len(user) + 2 + len(password)
	}
	b = appendMQTTHeader(b, mqttCONNECT<<4, rem)
	b = append(b, 0, 4, 'M', 'Q', 'T', 'T', 4, flags, mqttKeepAlive>>8, mqttKeepAlive&0xff)
	b = appendMQTTString(b, clientID)
	if user != "" {
		b = appendMQTTString(b, user)
		b = appendMQTTString(b, password)
	}
	return b
}

// appendMQTTSubscribe appends a SUBSCRIBE for one topic filter.
func appendMQTTSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = appendMQTTHeader(b, mqttSUBSCRIBE<<4|0x02, 2+2+len(filter)+1)
	b = append(b, byte(id>>8), byte(id))
	b = appendMQTTString(b, filter)
	return append(b, qos)
}

// mqttPublishPrefix returns the fixed head of every PUBLISH to topic with
// the given QoS and a payload of size bytes: fixed header and topic name.
// A QoS 1 PUBLISH continues with its packet identifier.
func mqttPublishPrefix(topic string, qos byte, size int) []byte {
	rem := 2 + len(topic) + size
	if qos > 0 {
		rem += 2
	}
	b := appendMQTTHeader(nil, mqttPUBLISH<<4|qos<<1, rem)
	return appendMQTTString(b, topic)
}

// appendMQTTPublish appends a PUBLISH made of prefix (from
// mqttPublishPrefix), the packet identifier when qos > 0, and payload.
func appendMQTTPublish(b, prefix []byte, qos byte, id uint16, payload []byte) []byte {
	b = append(b, prefix...)
	if qos > 0 {
		b = append(b, byte(id>>8), byte(id))
	}
	return append(b, payload...)
}

// appendMQTTPuback appends a PUBACK.
func appendMQTTPuback(b []byte, id uint16) []byte {
	return append(b, mqttPUBACK<<4, 2, byte(id>>8), byte(id))
}

// appendMQTTDisconnect appends a DISCONNECT.
func appendMQTTDisconnect(b []byte) []byte {
	return append(b, mqttDISCONNECT<<4, 0)
}

// mqttPacketID maps a publisher's sequence number (from 1) to a packet
// identifier, which must be 1..65535.
func mqttPacketID(seq uint64) uint16 {
	return uint16((seq-1)%65535 + 1)
}
