package mqtt

// AppendPacket appends the encoding of p for protocol version v to dst and
// returns the extended slice. It allocates only when dst lacks capacity;
// PacketSize says how much is needed. For MQTT 3.x it leaves out properties
// and other v5-only fields, and maps reason codes as Connack and Suback
// describe. A *Connect is encoded in its own ProtocolLevel, or in v when
// that is 0. p must be one of this package's packet types (a pointer), or
// AppendPacket panics. AppendPacket does not validate: it encodes what the server
// built, and lengths beyond 65,535 bytes in a string are cut.
func AppendPacket(dst []byte, p Packet, v byte) []byte {
	e := p.(encoder)
	dst = append(dst, byte(p.Type())<<4|e.flags())
	dst = appendVarint(dst, e.size(v))
	return e.appendBody(dst, v)
}

// PacketSize returns the number of bytes AppendPacket would append for p in
// version v: the total packet size that MQTT 5 compares with a client's
// Maximum Packet Size [MQTT-3.1.2-24]. A server that finds a PUBLISH too
// large for a subscriber drops it for that subscriber.
func PacketSize(p Packet, v byte) int {
	n := p.(encoder).size(v)
	return 1 + varintLen(n) + n
}
