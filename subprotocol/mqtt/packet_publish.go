package mqtt

// Publish is the PUBLISH packet (MQTT 5 §3.3, MQTT 3.1.1 §3.3). Payload and
// the byte slices in Properties alias the buffer the Reader allocated for
// this packet alone, so the caller may keep them; they must not be modified
// while the packet may still be encoded elsewhere.
type Publish struct {
	Dup        bool
	QoS        byte // 0, 1 or 2
	Retain     bool
	Topic      string     // empty only with a v5 Topic Alias
	PacketID   uint16     // non-zero exactly when QoS > 0
	Properties Properties // MQTT 5 only
	Payload    []byte     // nil when empty
}

// Type returns PUBLISH.
func (*Publish) Type() PacketType { return PUBLISH }

// PUBLISH fixed header flags (MQTT 5 §3.3.1).
const (
	publishDup    = 0x08
	publishQoS    = 0x06
	publishRetain = 0x01
)

// decodePublish decodes a PUBLISH body whose fixed header carried flags.
func decodePublish(c *cursor, flags, v byte) (*Publish, error) {
	p := &Publish{
		Dup:    flags&publishDup != 0,
		QoS:    flags & publishQoS >> 1,
		Retain: flags&publishRetain != 0,
	}
	if p.QoS == 3 {
		return nil, malformed("PUBLISH QoS 3 [MQTT-3.3.1-4]")
	}
	if p.QoS == 0 && p.Dup {
		return nil, malformed("PUBLISH DUP set with QoS 0 [MQTT-3.3.1-2]")
	}
	var err error
	if p.Topic, err = c.readString("topic name"); err != nil {
		return nil, err
	}
	if p.QoS > 0 {
		if p.PacketID, err = readPacketID(c); err != nil {
			return nil, err
		}
	}
	if v >= Version5 {
		if err := p.Properties.decode(c, PUBLISH); err != nil {
			return nil, err
		}
	}
	if p.Topic == "" {
		if v >= Version5 && p.Properties.TopicAlias != 0 {
			// MQTT 5 §3.3.2.3.4: an empty topic name resolves through the alias.
		} else if v >= Version5 {
			return nil, protocolErr("empty topic name without a topic alias (MQTT 5 §3.3.2.3.4)")
		} else {
			return nil, Error{Code: CodeTopicNameInvalid, Reason: "empty topic name [MQTT-4.7.3-1]"}
		}
	} else if err := ValidTopicName(p.Topic); err != nil {
		return nil, err // [MQTT-3.3.2-2]
	}
	if c.left() > 0 {
		p.Payload = c.buf[c.pos:len(c.buf):len(c.buf)]
		c.pos = len(c.buf)
	}
	return p, nil
}

// readPacketID reads a Packet Identifier, which must be non-zero
// [MQTT-2.3.1-1].
func readPacketID(c *cursor) (uint16, error) {
	id, err := c.readUint16("packet identifier")
	if err == nil && id == 0 {
		err = protocolErr("packet identifier 0 [MQTT-2.3.1-1]")
	}
	return id, err
}

func (p *Publish) flags() byte {
	f := (p.QoS & 3) << 1
	if p.Dup {
		f |= publishDup
	}
	if p.Retain {
		f |= publishRetain
	}
	return f
}

func (p *Publish) size(v byte) int {
	n := stringLen(len(p.Topic)) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v >= Version5 {
		n += p.Properties.encodedLen(PUBLISH)
	}
	return n
}

func (p *Publish) appendBody(dst []byte, v byte) []byte {
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v >= Version5 {
		dst = p.Properties.appendTo(dst, PUBLISH)
	}
	return append(dst, p.Payload...)
}

// Ack is one of the four QoS acknowledgements, which share a layout: PUBACK
// (MQTT 5 §3.4), PUBREC (§3.5), PUBREL (§3.6) and PUBCOMP (§3.7). Kind says
// which. ReasonCode and Properties are MQTT 5 only.
type Ack struct {
	Kind       PacketType // PUBACK, PUBREC, PUBREL or PUBCOMP
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns p.Kind.
func (p *Ack) Type() PacketType { return p.Kind }

// decodeAck decodes a PUBACK, PUBREC, PUBREL or PUBCOMP body. In MQTT 5 a
// Remaining Length of 2 means Success and no properties, and less than 4
// means no properties (MQTT 5 §3.4.2.1, §3.4.2.2.1).
func decodeAck(c *cursor, t PacketType, v byte) (*Ack, error) {
	p := &Ack{Kind: t}
	var err error
	if p.PacketID, err = readPacketID(c); err != nil {
		return nil, err
	}
	if v >= Version5 && c.left() > 0 {
		code, _ := c.readByte("reason code")
		p.ReasonCode = ReasonCode(code)
		valid := &pubackCodes
		if t == PUBREL || t == PUBCOMP {
			valid = &pubrelCodes
		}
		if !valid.has(p.ReasonCode) {
			return nil, protocolErr("invalid " + t.String() + " reason code [MQTT-3.4.2-1]")
		}
		if c.left() > 0 {
			if err := p.Properties.decode(c, t); err != nil {
				return nil, err
			}
		}
	}
	return p, endOfPacket(c, t)
}

func (p *Ack) flags() byte { return fixedFlags(p.Kind) }

func (p *Ack) size(v byte) int {
	if v < Version5 {
		return 2
	}
	props := p.Properties.size(p.Kind)
	switch {
	case props > 0:
		return 3 + varintLen(props) + props
	case p.ReasonCode != CodeSuccess:
		return 3
	}
	return 2
}

func (p *Ack) appendBody(dst []byte, v byte) []byte {
	dst = appendUint16(dst, p.PacketID)
	if v < Version5 {
		return dst
	}
	if p.Properties.isZero(p.Kind) {
		if p.ReasonCode != CodeSuccess {
			dst = append(dst, byte(p.ReasonCode))
		}
		return dst
	}
	return p.Properties.appendTo(append(dst, byte(p.ReasonCode)), p.Kind)
}
