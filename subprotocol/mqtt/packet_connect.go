package mqtt

import "unicode/utf8"

// maxClientID31 is the longest Client Identifier MQTT 3.1 allows (MQTT 3.1
// §3.1 "Client Identifier": "between 1 and 23 characters long").
const maxClientID31 = 23

// Connect is the CONNECT packet, the first packet a client sends (MQTT 5
// §3.1, MQTT 3.1.1 §3.1). ProtocolLevel is the level the client asked for;
// the server answers in that version.
type Connect struct {
	ProtocolLevel byte // Version31, Version311 or Version5
	CleanStart    bool // Clean Start in MQTT 5, Clean Session in 3.x
	KeepAlive     uint16
	Properties    Properties // MQTT 5 only
	ClientID      string     // may be empty in 3.1.1 and 5: the server decides [MQTT-3.1.3-6]
	Will          *Will      // nil when the Will Flag is 0
	HasUsername   bool       // User Name Flag
	Username      string
	HasPassword   bool   // Password Flag
	Password      []byte // aliases the packet buffer
}

// Will is the Will Message of a CONNECT (MQTT 5 §3.1.2.5, §3.1.3.2-4).
type Will struct {
	Properties Properties // MQTT 5 Will Properties
	Topic      string
	Payload    []byte // aliases the packet buffer
	QoS        byte
	Retain     bool
}

// Type returns CONNECT.
func (*Connect) Type() PacketType { return CONNECT }

// CONNECT flag bits (MQTT 5 §3.1.2.3).
const (
	connectReserved   = 0x01
	connectCleanStart = 0x02
	connectWill       = 0x04
	connectWillQoS    = 0x18
	connectWillRetain = 0x20
	connectPassword   = 0x40
	connectUsername   = 0x80
)

// decodeConnect decodes a CONNECT body. Its own protocol name and level
// choose the rules [MQTT-3.1.2-1] [MQTT-3.1.2-2]. Once the level is known,
// failures return the partial *Connect with the error, so that the server
// can answer in the client's version.
func decodeConnect(c *cursor) (*Connect, error) {
	name, err := c.readString("protocol name")
	if err != nil {
		return nil, err
	}
	level, err := c.readByte("protocol level")
	if err != nil {
		return nil, err
	}
	p := &Connect{ProtocolLevel: level}
	switch {
	case name == protocolName && (level == Version311 || level == Version5):
	case name == protocolName31 && level == Version31:
	case name != protocolName && name != protocolName31:
		// [MQTT-3.1.2-1] the server may answer 0x84 (v5) and must close.
		return p, Error{Code: CodeUnsupportedProtocolVersion, Reason: "unknown protocol name [MQTT-3.1.2-1]"}
	default:
		// [MQTT-3.1.2-2] CONNACK return code 0x01 (3.x) or 0x84 (v5), then close.
		return p, Error{Code: CodeUnsupportedProtocolVersion, Reason: "unsupported protocol level [MQTT-3.1.2-2]"}
	}
	return p, p.decodeRest(c)
}

// decodeRest decodes what follows the protocol level.
func (p *Connect) decodeRest(c *cursor) error {
	flags, err := c.readByte("connect flags")
	if err != nil {
		return err
	}
	// [MQTT-3.1.2-3] the reserved flag is zero (3.1.1 and 5; 3.1 is silent).
	if flags&connectReserved != 0 && p.ProtocolLevel >= Version311 {
		return malformed("CONNECT reserved flag set [MQTT-3.1.2-3]")
	}
	willQoS := flags & connectWillQoS >> 3
	if flags&connectWill == 0 {
		// [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] without a Will,
		// Will QoS and Will Retain are zero.
		if willQoS != 0 || flags&connectWillRetain != 0 {
			return malformed("will QoS or retain set without a will [MQTT-3.1.2-11]")
		}
	} else if willQoS == 3 {
		return malformed("will QoS 3 [MQTT-3.1.2-14]") // 3.1.1; [MQTT-3.1.2-12] in v5
	}
	// [MQTT-3.1.2-22] in 3.x a password needs a user name; MQTT 5 allows it.
	if flags&connectPassword != 0 && flags&connectUsername == 0 && p.ProtocolLevel < Version5 {
		return malformed("password without user name [MQTT-3.1.2-22]")
	}
	p.CleanStart = flags&connectCleanStart != 0
	p.HasUsername = flags&connectUsername != 0
	p.HasPassword = flags&connectPassword != 0
	if p.KeepAlive, err = c.readUint16("keep alive"); err != nil {
		return err
	}
	if p.ProtocolLevel >= Version5 {
		if err := p.Properties.decode(c, CONNECT); err != nil {
			return err
		}
		// MQTT 5 §3.1.2.11.10: Authentication Data needs a Method.
		if p.Properties.AuthData != nil && p.Properties.AuthMethod == "" {
			return protocolErr("authentication data without authentication method")
		}
	}
	if p.ClientID, err = c.readString("client identifier"); err != nil {
		return err
	}
	if p.ProtocolLevel == Version31 {
		if n := utf8.RuneCountInString(p.ClientID); n == 0 || n > maxClientID31 {
			// MQTT 3.1 §3.1: CONNACK return code 2, identifier rejected.
			return Error{Code: CodeClientIdentifierNotValid, Reason: "MQTT 3.1 client identifier is not 1 to 23 characters"}
		}
	}
	if flags&connectWill != 0 {
		w := &Will{QoS: willQoS, Retain: flags&connectWillRetain != 0}
		if p.ProtocolLevel >= Version5 {
			if err := w.Properties.decode(c, willProps); err != nil {
				return err
			}
		}
		if w.Topic, err = c.readString("will topic"); err != nil {
			return err
		}
		if err := ValidTopicName(w.Topic); err != nil {
			return err
		}
		if w.Payload, err = c.readBinary("will payload"); err != nil {
			return err
		}
		p.Will = w
	}
	if p.HasUsername {
		if p.Username, err = c.readString("user name"); err != nil {
			return err
		}
	}
	if p.HasPassword {
		if p.Password, err = c.readBinary("password"); err != nil {
			return err
		}
	}
	return endOfPacket(c, CONNECT)
}

// level returns the protocol level to encode p with: its own, or v when
// ProtocolLevel is 0.
func (p *Connect) level(v byte) byte {
	if p.ProtocolLevel != 0 {
		return p.ProtocolLevel
	}
	return v
}

func (p *Connect) flags() byte { return 0 }

func (p *Connect) size(v byte) int {
	v = p.level(v)
	n := 2 + 1 + 1 + 2 // protocol name length, level, flags, keep alive
	if v == Version31 {
		n += len(protocolName31)
	} else {
		n += len(protocolName)
	}
	if v >= Version5 {
		n += p.Properties.encodedLen(CONNECT)
	}
	n += stringLen(len(p.ClientID))
	if w := p.Will; w != nil {
		if v >= Version5 {
			n += w.Properties.encodedLen(willProps)
		}
		n += stringLen(len(w.Topic)) + stringLen(len(w.Payload))
	}
	if p.HasUsername {
		n += stringLen(len(p.Username))
	}
	if p.HasPassword {
		n += stringLen(len(p.Password))
	}
	return n
}

func (p *Connect) appendBody(dst []byte, v byte) []byte {
	v = p.level(v)
	if v == Version31 {
		dst = appendString(dst, protocolName31)
	} else {
		dst = appendString(dst, protocolName)
	}
	var flags byte
	if p.CleanStart {
		flags |= connectCleanStart
	}
	if w := p.Will; w != nil {
		flags |= connectWill | (w.QoS&3)<<3
		if w.Retain {
			flags |= connectWillRetain
		}
	}
	if p.HasPassword {
		flags |= connectPassword
	}
	if p.HasUsername {
		flags |= connectUsername
	}
	dst = appendUint16(append(dst, v, flags), p.KeepAlive)
	if v >= Version5 {
		dst = p.Properties.appendTo(dst, CONNECT)
	}
	dst = appendString(dst, p.ClientID)
	if w := p.Will; w != nil {
		if v >= Version5 {
			dst = w.Properties.appendTo(dst, willProps)
		}
		dst = appendBinary(appendString(dst, w.Topic), w.Payload)
	}
	if p.HasUsername {
		dst = appendString(dst, p.Username)
	}
	if p.HasPassword {
		dst = appendBinary(dst, p.Password)
	}
	return dst
}

// Connack is the CONNACK packet (MQTT 5 §3.2, MQTT 3.1.1 §3.2). ReasonCode
// takes the MQTT 5 codes; for a 3.x client AppendPacket maps failures onto
// the 3.x return codes (0x84 to 0x01, 0x85 to 0x02, 0x86 to 0x04; 0x87,
// 0x8A and 0x8C to 0x05; any other failure to 0x03), and codes below 0x80,
// the 3.x codes themselves, pass through. A decoded 3.x CONNACK holds the
// raw return code.
type Connack struct {
	SessionPresent bool // never encoded for MQTT 3.1, which has no such flag
	ReasonCode     ReasonCode
	Properties     Properties // MQTT 5 only
}

// Type returns CONNACK.
func (*Connack) Type() PacketType { return CONNACK }

func decodeConnack(c *cursor, v byte) (*Connack, error) {
	p := new(Connack)
	ack, err := c.readByte("connect acknowledge flags")
	if err != nil {
		return nil, err
	}
	code, err := c.readByte("connect reason code")
	if err != nil {
		return nil, err
	}
	p.ReasonCode = ReasonCode(code)
	// MQTT 3.1 has a reserved byte where 3.1.1 put its flags.
	if v >= Version311 {
		if ack&0xFE != 0 {
			return nil, malformed("CONNACK reserved flags set [MQTT-3.2.2-1]")
		}
		p.SessionPresent = ack&1 != 0
		if p.SessionPresent && code != 0 {
			return nil, protocolErr("CONNACK session present with a failure code [MQTT-3.2.2-4]")
		}
	}
	if v >= Version5 {
		if !connackCodes.has(p.ReasonCode) {
			return nil, protocolErr("invalid CONNACK reason code (MQTT 5 §3.2.2.2)")
		}
		if err := p.Properties.decode(c, CONNACK); err != nil {
			return nil, err
		}
	} else if code > byte(Code3NotAuthorized) {
		return nil, protocolErr("reserved CONNACK return code (MQTT 3.1.1 §3.2.2.3)")
	}
	return p, endOfPacket(c, CONNACK)
}

func (p *Connack) flags() byte { return 0 }

func (p *Connack) size(v byte) int {
	if v >= Version5 {
		return 2 + p.Properties.encodedLen(CONNACK)
	}
	return 2
}

func (p *Connack) appendBody(dst []byte, v byte) []byte {
	var ack byte
	if p.SessionPresent && v >= Version311 {
		ack = 1
	}
	if v < Version5 {
		return append(dst, ack, byte(v3ConnackCode(p.ReasonCode)))
	}
	return p.Properties.appendTo(append(dst, ack, byte(p.ReasonCode)), CONNACK)
}

// endOfPacket reports bytes beyond what packet type t defines as malformed
// (MQTT 5 §2.1.4: the Remaining Length covers exactly the variable header
// and payload).
func endOfPacket(c *cursor, t PacketType) error {
	if c.left() != 0 {
		return malformed(t.String() + " has bytes beyond its last field")
	}
	return nil
}
