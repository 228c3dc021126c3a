package mqtt

// Subscribe is the SUBSCRIBE packet (MQTT 5 §3.8, MQTT 3.1.1 §3.8). Every
// filter has passed ValidTopicFilter.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties // MQTT 5 only: at most one SubscriptionIdentifier
	Subscriptions []Subscription
}

// Subscription is one Topic Filter and its Subscription Options (MQTT 5
// §3.8.3.1). MQTT 3.x carries only QoS.
type Subscription struct {
	Filter            string
	QoS               byte // maximum QoS, 0 to 2
	NoLocal           bool // MQTT 5: do not deliver the client's own messages
	RetainAsPublished bool // MQTT 5: keep the RETAIN flag when forwarding
	RetainHandling    byte // MQTT 5: 0 send retained, 1 only for new subscriptions, 2 never
}

// Type returns SUBSCRIBE.
func (*Subscribe) Type() PacketType { return SUBSCRIBE }

// Subscription Options bits (MQTT 5 §3.8.3.1).
const (
	subQoS               = 0x03
	subNoLocal           = 0x04
	subRetainAsPublished = 0x08
	subRetainHandling    = 0x30
	subReservedV5        = 0xC0
	subReservedV3        = 0xFC
)

func decodeSubscribe(c *cursor, v byte) (*Subscribe, error) {
	p := new(Subscribe)
	var err error
	if p.PacketID, err = readPacketID(c); err != nil {
		return nil, err
	}
	if v >= Version5 {
		if err := p.Properties.decode(c, SUBSCRIBE); err != nil {
			return nil, err
		}
	}
	for c.left() > 0 {
		var s Subscription
		if s.Filter, err = c.readString("topic filter"); err != nil {
			return nil, err
		}
		opts, err := c.readByte("subscription options")
		if err != nil {
			return nil, err
		}
		if v >= Version5 {
			if opts&subReservedV5 != 0 {
				return nil, malformed("SUBSCRIBE reserved option bits set [MQTT-3.8.3-5]")
			}
		} else if opts&subReservedV3 != 0 {
			return nil, malformed("SUBSCRIBE reserved option bits set [MQTT-3.8.3-4]")
		}
		s.QoS = opts & subQoS
		if s.QoS == 3 {
			return nil, malformed("SUBSCRIBE requested QoS 3 [MQTT-3.8.3-4]")
		}
		if err := ValidTopicFilter(s.Filter); err != nil {
			return nil, err
		}
		if v >= Version5 {
			s.NoLocal = opts&subNoLocal != 0
			s.RetainAsPublished = opts&subRetainAsPublished != 0
			s.RetainHandling = opts & subRetainHandling >> 4
			if s.RetainHandling == 3 {
				return nil, protocolErr("SUBSCRIBE retain handling 3 (MQTT 5 §3.8.3.1)")
			}
			if _, _, shared := SharedFilter(s.Filter); shared && s.NoLocal {
				return nil, protocolErr("no local on a shared subscription [MQTT-3.8.3-4]")
			}
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if len(p.Subscriptions) == 0 {
		return nil, protocolErr("SUBSCRIBE without a topic filter [MQTT-3.8.3-3]")
	}
	return p, nil
}

func (p *Subscribe) flags() byte { return fixedFlags(SUBSCRIBE) }

func (p *Subscribe) size(v byte) int {
	n := 2
	if v >= Version5 {
		n += p.Properties.encodedLen(SUBSCRIBE)
	}
	for _, s := range p.Subscriptions {
		n += stringLen(len(s.Filter)) + 1
	}
	return n
}

func (p *Subscribe) appendBody(dst []byte, v byte) []byte {
	dst = appendUint16(dst, p.PacketID)
	if v >= Version5 {
		dst = p.Properties.appendTo(dst, SUBSCRIBE)
	}
	for _, s := range p.Subscriptions {
		opts := s.QoS & subQoS
		if v >= Version5 {
			if s.NoLocal {
				opts |= subNoLocal
			}
			if s.RetainAsPublished {
				opts |= subRetainAsPublished
			}
			opts |= (s.RetainHandling & 3) << 4
		}
		dst = append(appendString(dst, s.Filter), opts)
	}
	return dst
}

// Suback is the SUBACK packet (MQTT 5 §3.9, MQTT 3.1.1 §3.9): one reason
// code per requested filter, in order [MQTT-3.9.3-1]. For MQTT 3.x,
// AppendPacket sends every failure code as 0x80 [MQTT-3.9.3-2].
type Suback struct {
	PacketID    uint16
	Properties  Properties // MQTT 5 only
	ReasonCodes []ReasonCode
}

// Type returns SUBACK.
func (*Suback) Type() PacketType { return SUBACK }

func decodeSuback(c *cursor, v byte) (*Suback, error) {
	p := new(Suback)
	var err error
	if p.PacketID, err = readPacketID(c); err != nil {
		return nil, err
	}
	valid := &v3SubackSet
	if v >= Version5 {
		valid = &subackCodes
		if err := p.Properties.decode(c, SUBACK); err != nil {
			return nil, err
		}
	}
	p.ReasonCodes = make([]ReasonCode, c.left())
	for i := range p.ReasonCodes {
		code, _ := c.readByte("reason code")
		p.ReasonCodes[i] = ReasonCode(code)
		if !valid.has(p.ReasonCodes[i]) {
			return nil, protocolErr("invalid SUBACK reason code [MQTT-3.9.3-2]")
		}
	}
	return p, nil
}

func (p *Suback) flags() byte { return 0 }

func (p *Suback) size(v byte) int {
	n := 2 + len(p.ReasonCodes)
	if v >= Version5 {
		n += p.Properties.encodedLen(SUBACK)
	}
	return n
}

func (p *Suback) appendBody(dst []byte, v byte) []byte {
	dst = appendUint16(dst, p.PacketID)
	if v >= Version5 {
		dst = p.Properties.appendTo(dst, SUBACK)
		for _, code := range p.ReasonCodes {
			dst = append(dst, byte(code))
		}
		return dst
	}
	for _, code := range p.ReasonCodes {
		dst = append(dst, byte(v3SubackCode(code)))
	}
	return dst
}

// Unsubscribe is the UNSUBSCRIBE packet (MQTT 5 §3.10, MQTT 3.1.1 §3.10).
// Every filter has passed ValidTopicFilter.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties // MQTT 5 only
	Filters    []string
}

// Type returns UNSUBSCRIBE.
func (*Unsubscribe) Type() PacketType { return UNSUBSCRIBE }

func decodeUnsubscribe(c *cursor, v byte) (*Unsubscribe, error) {
	p := new(Unsubscribe)
	var err error
	if p.PacketID, err = readPacketID(c); err != nil {
		return nil, err
	}
	if v >= Version5 {
		if err := p.Properties.decode(c, UNSUBSCRIBE); err != nil {
			return nil, err
		}
	}
	for c.left() > 0 {
		f, err := c.readString("topic filter")
		if err != nil {
			return nil, err
		}
		if err := ValidTopicFilter(f); err != nil {
			return nil, err
		}
		p.Filters = append(p.Filters, f)
	}
	if len(p.Filters) == 0 {
		return nil, protocolErr("UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]")
	}
	return p, nil
}

func (p *Unsubscribe) flags() byte { return fixedFlags(UNSUBSCRIBE) }

func (p *Unsubscribe) size(v byte) int {
	n := 2
	if v >= Version5 {
		n += p.Properties.encodedLen(UNSUBSCRIBE)
	}
	for _, f := range p.Filters {
		n += stringLen(len(f))
	}
	return n
}

func (p *Unsubscribe) appendBody(dst []byte, v byte) []byte {
	dst = appendUint16(dst, p.PacketID)
	if v >= Version5 {
		dst = p.Properties.appendTo(dst, UNSUBSCRIBE)
	}
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst
}

// Unsuback is the UNSUBACK packet (MQTT 5 §3.11, MQTT 3.1.1 §3.11). MQTT
// 3.x has only the Packet Identifier; v5 adds one reason code per filter.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties   // MQTT 5 only
	ReasonCodes []ReasonCode // MQTT 5 only
}

// Type returns UNSUBACK.
func (*Unsuback) Type() PacketType { return UNSUBACK }

func decodeUnsuback(c *cursor, v byte) (*Unsuback, error) {
	p := new(Unsuback)
	var err error
	if p.PacketID, err = readPacketID(c); err != nil {
		return nil, err
	}
	if v >= Version5 {
		if err := p.Properties.decode(c, UNSUBACK); err != nil {
			return nil, err
		}
		p.ReasonCodes = make([]ReasonCode, c.left())
		for i := range p.ReasonCodes {
			code, _ := c.readByte("reason code")
			p.ReasonCodes[i] = ReasonCode(code)
			if !unsubackCodes.has(p.ReasonCodes[i]) {
				return nil, protocolErr("invalid UNSUBACK reason code (MQTT 5 §3.11.3)")
			}
		}
	}
	return p, endOfPacket(c, UNSUBACK)
}

func (p *Unsuback) flags() byte { return 0 }

func (p *Unsuback) size(v byte) int {
	if v >= Version5 {
		return 2 + p.Properties.encodedLen(UNSUBACK) + len(p.ReasonCodes)
	}
	return 2
}

func (p *Unsuback) appendBody(dst []byte, v byte) []byte {
	dst = appendUint16(dst, p.PacketID)
	if v >= Version5 {
		dst = p.Properties.appendTo(dst, UNSUBACK)
		for _, code := range p.ReasonCodes {
			dst = append(dst, byte(code))
		}
	}
	return dst
}
