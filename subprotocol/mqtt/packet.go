package mqtt

// Protocol levels carried in CONNECT (MQTT 3.1 §3.1, MQTT 3.1.1 §3.1.2.2,
// MQTT 5 §3.1.2.2). ReadPacket and AppendPacket take one of them as the
// connection's negotiated version; 0 means "before CONNECT".
const (
	Version31  byte = 3 // MQTT 3.1, protocol name "MQIsdp"
	Version311 byte = 4 // MQTT 3.1.1, protocol name "MQTT"
	Version5   byte = 5 // MQTT 5.0, protocol name "MQTT"
)

// Protocol names sent in CONNECT [MQTT-3.1.2-1].
const (
	protocolName31 = "MQIsdp"
	protocolName   = "MQTT"
)

// PacketType is the MQTT Control Packet type, the high nibble of the first
// byte of the fixed header (MQTT 5 §2.1.2).
type PacketType byte

// Packet types (MQTT 5 §2.1.2, table 2-1). 0 is reserved; AUTH exists only
// in MQTT 5 (15 is reserved in 3.1 and 3.1.1).
const (
	CONNECT     PacketType = 1
	CONNACK     PacketType = 2
	PUBLISH     PacketType = 3
	PUBACK      PacketType = 4
	PUBREC      PacketType = 5
	PUBREL      PacketType = 6
	PUBCOMP     PacketType = 7
	SUBSCRIBE   PacketType = 8
	SUBACK      PacketType = 9
	UNSUBSCRIBE PacketType = 10
	UNSUBACK    PacketType = 11
	PINGREQ     PacketType = 12
	PINGRESP    PacketType = 13
	DISCONNECT  PacketType = 14
	AUTH        PacketType = 15
)

var packetTypeNames = [...]string{
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// String returns the packet type's name as the spec writes it ("PUBLISH").
func (t PacketType) String() string {
	if int(t) < len(packetTypeNames) {
		return packetTypeNames[t]
	}
	return "UNKNOWN"
}

// FromClient reports whether a client may send packets of type t to a
// server (MQTT 5 §2.1.2, table 2-1 "Direction of flow"). ReadPacket decodes
// every type, so the server rejects the others itself: a client sending
// CONNACK, SUBACK, UNSUBACK or PINGRESP commits a protocol error.
func (t PacketType) FromClient() bool {
	switch t {
	case CONNACK, SUBACK, UNSUBACK, PINGRESP:
		return false
	}
	return t >= CONNECT && t <= AUTH
}

// fixedFlags returns the reserved flag bits that every packet type except
// PUBLISH must carry in the fixed header [MQTT-2.2.2-1]: 0010 for PUBREL,
// SUBSCRIBE and UNSUBSCRIBE, 0000 for the rest (MQTT 5 §2.1.3, table 2-2).
func fixedFlags(t PacketType) byte {
	switch t {
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return 0x02
	}
	return 0
}

// Packet is one decoded MQTT Control Packet: *Connect, *Connack, *Publish,
// *Ack, *Subscribe, *Suback, *Unsubscribe, *Unsuback, *Pingreq, *Pingresp,
// *Disconnect or *Auth. ReadPacket returns them and AppendPacket encodes
// them; a type switch on the concrete type is the way to handle one.
type Packet interface {
	Type() PacketType
}

// encoder is implemented by every Packet of this package. size and
// appendBody must agree byte for byte; AppendPacket relies on it to write
// the Remaining Length first without a second buffer.
type encoder interface {
	Packet
	// flags returns the low nibble of the fixed header.
	flags() byte
	// size returns the length of the variable header plus payload, the
	// Remaining Length, when encoded for version v.
	size(v byte) int
	// appendBody appends the variable header and payload for version v.
	appendBody(dst []byte, v byte) []byte
}
