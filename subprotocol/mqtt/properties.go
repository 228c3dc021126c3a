package mqtt

// Property identifiers (MQTT 5 §2.2.2.2, table 2-4).
const (
	propPayloadFormat        = 0x01
	propMessageExpiry        = 0x02
	propContentType          = 0x03
	propResponseTopic        = 0x08
	propCorrelationData      = 0x09
	propSubscriptionID       = 0x0B
	propSessionExpiry        = 0x11
	propAssignedClientID     = 0x12
	propServerKeepAlive      = 0x13
	propAuthMethod           = 0x15
	propAuthData             = 0x16
	propRequestProblemInfo   = 0x17
	propWillDelay            = 0x18
	propRequestResponseInfo  = 0x19
	propResponseInfo         = 0x1A
	propServerReference      = 0x1C
	propReasonString         = 0x1F
	propReceiveMaximum       = 0x21
	propTopicAliasMaximum    = 0x22
	propTopicAlias           = 0x23
	propMaximumQoS           = 0x24
	propRetainAvailable      = 0x25
	propUser                 = 0x26
	propMaximumPacketSize    = 0x27
	propWildcardSubAvailable = 0x28
	propSubIDAvailable       = 0x29
	propSharedSubAvailable   = 0x2A
)

// willProps stands for the Will Properties of CONNECT where a property
// context is a PacketType (0 is otherwise a reserved type).
const willProps PacketType = 0

// propInfo is the name of a property and the property sets it may appear
// in: bit t of where is PacketType t, bit 0 the Will Properties.
type propInfo struct {
	name  string
	where uint16
}

func in(ts ...PacketType) (m uint16) {
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// propTable is MQTT 5 §2.2.2.2, table 2-4: which property may appear where.
var propTable = [...]propInfo{
	propPayloadFormat:        {"payload format indicator", in(PUBLISH, willProps)},
	propMessageExpiry:        {"message expiry interval", in(PUBLISH, willProps)},
	propContentType:          {"content type", in(PUBLISH, willProps)},
	propResponseTopic:        {"response topic", in(PUBLISH, willProps)},
	propCorrelationData:      {"correlation data", in(PUBLISH, willProps)},
	propSubscriptionID:       {"subscription identifier", in(PUBLISH, SUBSCRIBE)},
	propSessionExpiry:        {"session expiry interval", in(CONNECT, CONNACK, DISCONNECT)},
	propAssignedClientID:     {"assigned client identifier", in(CONNACK)},
	propServerKeepAlive:      {"server keep alive", in(CONNACK)},
	propAuthMethod:           {"authentication method", in(CONNECT, CONNACK, AUTH)},
	propAuthData:             {"authentication data", in(CONNECT, CONNACK, AUTH)},
	propRequestProblemInfo:   {"request problem information", in(CONNECT)},
	propWillDelay:            {"will delay interval", in(willProps)},
	propRequestResponseInfo:  {"request response information", in(CONNECT)},
	propResponseInfo:         {"response information", in(CONNACK)},
	propServerReference:      {"server reference", in(CONNACK, DISCONNECT)},
	propReasonString:         {"reason string", in(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH)},
	propReceiveMaximum:       {"receive maximum", in(CONNECT, CONNACK)},
	propTopicAliasMaximum:    {"topic alias maximum", in(CONNECT, CONNACK)},
	propTopicAlias:           {"topic alias", in(PUBLISH)},
	propMaximumQoS:           {"maximum QoS", in(CONNACK)},
	propRetainAvailable:      {"retain available", in(CONNACK)},
	propUser:                 {"user property", in(CONNECT, CONNACK, PUBLISH, willProps, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH)},
	propMaximumPacketSize:    {"maximum packet size", in(CONNECT, CONNACK)},
	propWildcardSubAvailable: {"wildcard subscription available", in(CONNACK)},
	propSubIDAvailable:       {"subscription identifiers available", in(CONNACK)},
	propSharedSubAvailable:   {"shared subscription available", in(CONNACK)},
}

// allowed reports whether property id may appear in the property set of t.
func allowed(id byte, t PacketType) bool {
	return int(id) < len(propTable) && propTable[id].where&(1<<t) != 0
}

// UserProperty is one User Property, a name/value string pair that may
// appear any number of times, order preserved (MQTT 5 §3.1.2.11.8).
type UserProperty struct {
	Key, Value string
}

// Properties holds the MQTT 5 properties of one packet or of a CONNECT's
// Will (MQTT 5 §2.2.2, table 2-4, whose identifiers the comments give). A
// zero field is an absent property, except where a Has field says
// otherwise: those properties have a meaningful zero, or a default other
// than zero when absent. ReadPacket leaves Properties zero for MQTT 3.x, and
// AppendPacket writes none for 3.x nor any property that the packet type
// does not allow, so one value can be reused across packet types. Byte
// slices alias the packet buffer; a decoded empty CorrelationData or
// AuthData is a non-nil empty slice.
type Properties struct {
	ContentType      string // 0x03 (PUBLISH, Will)
	ResponseTopic    string // 0x08: a topic name (PUBLISH, Will)
	AssignedClientID string // 0x12 (CONNACK)
	AuthMethod       string // 0x15 (CONNECT, CONNACK, AUTH)
	ResponseInfo     string // 0x1A (CONNACK)
	ServerReference  string // 0x1C (CONNACK, DISCONNECT)
	ReasonString     string // 0x1F (PUBACK..PUBCOMP, CONNACK, SUBACK, UNSUBACK, DISCONNECT, AUTH)

	CorrelationData        []byte         // 0x09 (PUBLISH, Will)
	AuthData               []byte         // 0x16 (CONNECT, CONNACK, AUTH)
	SubscriptionIdentifier []uint32       // 0x0B: 1..268,435,455; at most one in SUBSCRIBE, any number in PUBLISH
	User                   []UserProperty // 0x26: any number, in order (every packet with properties, Will)

	MessageExpiry     uint32 // 0x02: seconds, if HasMessageExpiry (PUBLISH, Will)
	SessionExpiry     uint32 // 0x11: seconds (CONNECT, CONNACK, DISCONNECT)
	WillDelay         uint32 // 0x18: seconds (Will)
	MaximumPacketSize uint32 // 0x27: 0 is absent, no limit (CONNECT, CONNACK)
	ServerKeepAlive   uint16 // 0x13: seconds, if HasServerKeepAlive (CONNACK)
	ReceiveMaximum    uint16 // 0x21: 0 is absent, 65,535 (CONNECT, CONNACK)
	TopicAliasMaximum uint16 // 0x22 (CONNECT, CONNACK)
	TopicAlias        uint16 // 0x23: never 0 on the wire (PUBLISH)
	PayloadFormat     byte   // 0x01: 0 unspecified bytes, 1 UTF-8 (PUBLISH, Will)
	MaximumQoS        byte   // 0x24: 0 or 1, if HasMaximumQoS; absent means 2 (CONNACK)

	RequestProblemInfo   bool // 0x17: if HasRequestProblemInfo; absent means true (CONNECT)
	RequestResponseInfo  bool // 0x19 (CONNECT)
	RetainAvailable      bool // 0x25: if HasRetainAvailable; absent means true (CONNACK)
	WildcardSubAvailable bool // 0x28: if HasWildcardSubAvailable; absent means true (CONNACK)
	SubIDAvailable       bool // 0x29: if HasSubIDAvailable; absent means true (CONNACK)
	SharedSubAvailable   bool // 0x2A: if HasSharedSubAvailable; absent means true (CONNACK)

	HasMessageExpiry        bool
	HasSessionExpiry        bool // an explicit 0 differs from absent in DISCONNECT (MQTT 5 §3.14.2.2.2)
	HasServerKeepAlive      bool
	HasRequestProblemInfo   bool
	HasMaximumQoS           bool
	HasRetainAvailable      bool
	HasWildcardSubAvailable bool
	HasSubIDAvailable       bool
	HasSharedSubAvailable   bool
}

// decode reads a property set, its Variable Byte Integer length and then
// the properties (MQTT 5 §2.2.2.1), for packet type t (willProps for a
// Will). An unknown property or one that t does not allow makes the packet
// malformed (MQTT 5 §2.2.2.2); a repeated property, other than User Property
// and a PUBLISH's Subscription Identifier, or an out-of-range value is a
// protocol error.
func (p *Properties) decode(c *cursor, t PacketType) error {
	n, err := c.readVarint("property length")
	if err != nil {
		return err
	}
	if int(n) > c.left() {
		return malformed("property length runs past the end of the packet")
	}
	pc := cursor{buf: c.buf[:c.pos+int(n)], pos: c.pos}
	c.pos += int(n)
	var seen uint64
	for pc.left() > 0 {
		id, err := pc.readByte("property identifier")
		if err != nil {
			return err
		}
		// Identifiers are Variable Byte Integers, but all defined ones are
		// a single byte, so a continuation bit means an unknown identifier.
		if int(id) >= len(propTable) || propTable[id].name == "" {
			return malformed("unknown property identifier (MQTT 5 §2.2.2.2)")
		}
		name := propTable[id].name
		if !allowed(id, t) {
			return malformed(name + " not allowed in " + propContext(t) + " (MQTT 5 §2.2.2.2)")
		}
		if seen&(1<<id) != 0 && id != propUser && !(id == propSubscriptionID && t == PUBLISH) {
			return protocolErr(name + " included more than once")
		}
		seen |= 1 << id
		if err := p.decodeOne(&pc, id, name); err != nil {
			return err
		}
	}
	return nil
}

// propContext names a property context for error messages.
func propContext(t PacketType) string {
	if t == willProps {
		return "will properties"
	}
	return t.String()
}

// decodeOne reads the value of property id and checks its range.
func (p *Properties) decodeOne(c *cursor, id byte, name string) (err error) {
	switch id {
	case propPayloadFormat:
		if p.PayloadFormat, err = c.readByte(name); err == nil && p.PayloadFormat > 1 {
			err = protocolErr("payload format indicator is not 0 or 1")
		}
	case propMessageExpiry:
		p.MessageExpiry, err = c.readUint32(name)
		p.HasMessageExpiry = true
	case propContentType:
		p.ContentType, err = c.readString(name)
	case propResponseTopic:
		if p.ResponseTopic, err = c.readString(name); err == nil {
			// [MQTT-3.3.2-14] the Response Topic is a Topic Name.
			err = ValidTopicName(p.ResponseTopic)
		}
	case propCorrelationData:
		p.CorrelationData, err = readPresentBinary(c, name)
	case propSubscriptionID:
		var v uint32
		if v, err = c.readVarint(name); err == nil {
			if v == 0 {
				// MQTT 5 §3.8.2.1.2: "It is a Protocol Error if the
				// Subscription Identifier has a value of 0."
				return protocolErr("subscription identifier 0")
			}
			p.SubscriptionIdentifier = append(p.SubscriptionIdentifier, v)
		}
	case propSessionExpiry:
		p.SessionExpiry, err = c.readUint32(name)
		p.HasSessionExpiry = true
	case propAssignedClientID:
		p.AssignedClientID, err = c.readString(name)
	case propServerKeepAlive:
		p.ServerKeepAlive, err = c.readUint16(name)
		p.HasServerKeepAlive = true
	case propAuthMethod:
		p.AuthMethod, err = c.readString(name)
	case propAuthData:
		p.AuthData, err = readPresentBinary(c, name)
	case propRequestProblemInfo:
		p.RequestProblemInfo, err = readFlag(c, name)
		p.HasRequestProblemInfo = true
	case propWillDelay:
		p.WillDelay, err = c.readUint32(name)
	case propRequestResponseInfo:
		p.RequestResponseInfo, err = readFlag(c, name)
	case propResponseInfo:
		p.ResponseInfo, err = c.readString(name)
	case propServerReference:
		p.ServerReference, err = c.readString(name)
	case propReasonString:
		p.ReasonString, err = c.readString(name)
	case propReceiveMaximum:
		if p.ReceiveMaximum, err = c.readUint16(name); err == nil && p.ReceiveMaximum == 0 {
			err = protocolErr("receive maximum 0 (MQTT 5 §3.1.2.11.3)")
		}
	case propTopicAliasMaximum:
		p.TopicAliasMaximum, err = c.readUint16(name)
	case propTopicAlias:
		if p.TopicAlias, err = c.readUint16(name); err == nil && p.TopicAlias == 0 {
			err = Error{Code: CodeTopicAliasInvalid, Reason: "topic alias 0 [MQTT-3.3.2-8]"}
		}
	case propMaximumQoS:
		if p.MaximumQoS, err = c.readByte(name); err == nil && p.MaximumQoS > 1 {
			err = protocolErr("maximum QoS is not 0 or 1 (MQTT 5 §3.2.2.3.4)")
		}
		p.HasMaximumQoS = true
	case propRetainAvailable:
		p.RetainAvailable, err = readFlag(c, name)
		p.HasRetainAvailable = true
	case propUser:
		var u UserProperty
		if u.Key, err = c.readString(name); err == nil {
			if u.Value, err = c.readString(name); err == nil {
				p.User = append(p.User, u)
			}
		}
	case propMaximumPacketSize:
		if p.MaximumPacketSize, err = c.readUint32(name); err == nil && p.MaximumPacketSize == 0 {
			err = protocolErr("maximum packet size 0 (MQTT 5 §3.1.2.11.4)")
		}
	case propWildcardSubAvailable:
		p.WildcardSubAvailable, err = readFlag(c, name)
		p.HasWildcardSubAvailable = true
	case propSubIDAvailable:
		p.SubIDAvailable, err = readFlag(c, name)
		p.HasSubIDAvailable = true
	case propSharedSubAvailable:
		p.SharedSubAvailable, err = readFlag(c, name)
		p.HasSharedSubAvailable = true
	}
	return err
}

// readPresentBinary reads a Binary Data property, returning an empty
// non-nil slice for a zero length so that presence survives (a nil slice
// is an absent property).
func readPresentBinary(c *cursor, name string) ([]byte, error) {
	b, err := c.readBinary(name)
	if b == nil && err == nil {
		b = []byte{}
	}
	return b, err
}

// readFlag reads a Byte property that must be 0 or 1; any other value is a
// protocol error (for example MQTT 5 §3.1.2.11.6, §3.2.2.3.5).
func readFlag(c *cursor, name string) (bool, error) {
	b, err := c.readByte(name)
	if err == nil && b > 1 {
		err = protocolErr(name + " is not 0 or 1")
	}
	return b == 1, err
}

// size returns the encoded length of the properties that t allows, without
// the Property Length in front of them.
func (p *Properties) size(t PacketType) int {
	n := 0
	str := func(id byte, s string) {
		if s != "" && allowed(id, t) {
			n += 1 + stringLen(len(s))
		}
	}
	num := func(id byte, width int, present bool) {
		if present && allowed(id, t) {
			n += 1 + width
		}
	}
	num(propPayloadFormat, 1, p.PayloadFormat != 0)
	num(propMessageExpiry, 4, p.HasMessageExpiry)
	str(propContentType, p.ContentType)
	str(propResponseTopic, p.ResponseTopic)
	if p.CorrelationData != nil && allowed(propCorrelationData, t) {
		n += 1 + stringLen(len(p.CorrelationData))
	}
	if allowed(propSubscriptionID, t) {
		for _, id := range p.SubscriptionIdentifier {
			n += 1 + varintLen(clampVarint(id))
		}
	}
	num(propSessionExpiry, 4, p.SessionExpiry != 0 || p.HasSessionExpiry)
	str(propAssignedClientID, p.AssignedClientID)
	num(propServerKeepAlive, 2, p.HasServerKeepAlive)
	str(propAuthMethod, p.AuthMethod)
	if p.AuthData != nil && allowed(propAuthData, t) {
		n += 1 + stringLen(len(p.AuthData))
	}
	num(propRequestProblemInfo, 1, p.HasRequestProblemInfo)
	num(propWillDelay, 4, p.WillDelay != 0)
	num(propRequestResponseInfo, 1, p.RequestResponseInfo)
	str(propResponseInfo, p.ResponseInfo)
	str(propServerReference, p.ServerReference)
	str(propReasonString, p.ReasonString)
	num(propReceiveMaximum, 2, p.ReceiveMaximum != 0)
	num(propTopicAliasMaximum, 2, p.TopicAliasMaximum != 0)
	num(propTopicAlias, 2, p.TopicAlias != 0)
	num(propMaximumQoS, 1, p.HasMaximumQoS)
	num(propRetainAvailable, 1, p.HasRetainAvailable)
	if allowed(propUser, t) {
		for _, u := range p.User {
			n += 1 + stringLen(len(u.Key)) + stringLen(len(u.Value))
		}
	}
	num(propMaximumPacketSize, 4, p.MaximumPacketSize != 0)
	num(propWildcardSubAvailable, 1, p.HasWildcardSubAvailable)
	num(propSubIDAvailable, 1, p.HasSubIDAvailable)
	num(propSharedSubAvailable, 1, p.HasSharedSubAvailable)
	return n
}

// appendTo appends the Property Length and the properties that t allows,
// in identifier order; the bytes agree with size.
func (p *Properties) appendTo(dst []byte, t PacketType) []byte {
	dst = appendVarint(dst, p.size(t))
	ok := func(id byte, present bool) bool { return present && allowed(id, t) }
	if ok(propPayloadFormat, p.PayloadFormat != 0) {
		dst = append(dst, propPayloadFormat, p.PayloadFormat)
	}
	if ok(propMessageExpiry, p.HasMessageExpiry) {
		dst = appendUint32(append(dst, propMessageExpiry), p.MessageExpiry)
	}
	if ok(propContentType, p.ContentType != "") {
		dst = appendString(append(dst, propContentType), p.ContentType)
	}
	if ok(propResponseTopic, p.ResponseTopic != "") {
		dst = appendString(append(dst, propResponseTopic), p.ResponseTopic)
	}
	if ok(propCorrelationData, p.CorrelationData != nil) {
		dst = appendBinary(append(dst, propCorrelationData), p.CorrelationData)
	}
	if allowed(propSubscriptionID, t) {
		for _, id := range p.SubscriptionIdentifier {
			dst = appendVarint(append(dst, propSubscriptionID), clampVarint(id))
		}
	}
	if ok(propSessionExpiry, p.SessionExpiry != 0 || p.HasSessionExpiry) {
		dst = appendUint32(append(dst, propSessionExpiry), p.SessionExpiry)
	}
	if ok(propAssignedClientID, p.AssignedClientID != "") {
		dst = appendString(append(dst, propAssignedClientID), p.AssignedClientID)
	}
	if ok(propServerKeepAlive, p.HasServerKeepAlive) {
		dst = appendUint16(append(dst, propServerKeepAlive), p.ServerKeepAlive)
	}
	if ok(propAuthMethod, p.AuthMethod != "") {
		dst = appendString(append(dst, propAuthMethod), p.AuthMethod)
	}
	if ok(propAuthData, p.AuthData != nil) {
		dst = appendBinary(append(dst, propAuthData), p.AuthData)
	}
	if ok(propRequestProblemInfo, p.HasRequestProblemInfo) {
		dst = append(dst, propRequestProblemInfo, flagByte(p.RequestProblemInfo))
	}
	if ok(propWillDelay, p.WillDelay != 0) {
		dst = appendUint32(append(dst, propWillDelay), p.WillDelay)
	}
	if ok(propRequestResponseInfo, p.RequestResponseInfo) {
		dst = append(dst, propRequestResponseInfo, 1)
	}
	if ok(propResponseInfo, p.ResponseInfo != "") {
		dst = appendString(append(dst, propResponseInfo), p.ResponseInfo)
	}
	if ok(propServerReference, p.ServerReference != "") {
		dst = appendString(append(dst, propServerReference), p.ServerReference)
	}
	if ok(propReasonString, p.ReasonString != "") {
		dst = appendString(append(dst, propReasonString), p.ReasonString)
	}
	if ok(propReceiveMaximum, p.ReceiveMaximum != 0) {
		dst = appendUint16(append(dst, propReceiveMaximum), p.ReceiveMaximum)
	}
	if ok(propTopicAliasMaximum, p.TopicAliasMaximum != 0) {
		dst = appendUint16(append(dst, propTopicAliasMaximum), p.TopicAliasMaximum)
	}
	if ok(propTopicAlias, p.TopicAlias != 0) {
		dst = appendUint16(append(dst, propTopicAlias), p.TopicAlias)
	}
	if ok(propMaximumQoS, p.HasMaximumQoS) {
		dst = append(dst, propMaximumQoS, p.MaximumQoS)
	}
	if ok(propRetainAvailable, p.HasRetainAvailable) {
		dst = append(dst, propRetainAvailable, flagByte(p.RetainAvailable))
	}
	if allowed(propUser, t) {
		for _, u := range p.User {
			dst = appendString(appendString(append(dst, propUser), u.Key), u.Value)
		}
	}
	if ok(propMaximumPacketSize, p.MaximumPacketSize != 0) {
		dst = appendUint32(append(dst, propMaximumPacketSize), p.MaximumPacketSize)
	}
	if ok(propWildcardSubAvailable, p.HasWildcardSubAvailable) {
		dst = append(dst, propWildcardSubAvailable, flagByte(p.WildcardSubAvailable))
	}
	if ok(propSubIDAvailable, p.HasSubIDAvailable) {
		dst = append(dst, propSubIDAvailable, flagByte(p.SubIDAvailable))
	}
	if ok(propSharedSubAvailable, p.HasSharedSubAvailable) {
		dst = append(dst, propSharedSubAvailable, flagByte(p.SharedSubAvailable))
	}
	return dst
}

// encodedLen returns the encoded length of a property set including its
// Property Length.
func (p *Properties) encodedLen(t PacketType) int {
	n := p.size(t)
	return varintLen(n) + n
}

// isZero reports whether no property that t allows would be encoded.
func (p *Properties) isZero(t PacketType) bool { return p.size(t) == 0 }

// clampVarint limits v to the largest Variable Byte Integer, so that size
// and appendTo agree even on out-of-range input.
func clampVarint(v uint32) int { return int(min(v, maxVarint)) }

func flagByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
