// Package mqtt is Duplex's own MQTT 3.1, 3.1.1 and 5.0 codec (and, next, the
// MQTT server on top of it).
//
// The codec is pure: bytes in, packet structs out, no sockets. Reader checks
// a packet's declared remaining length against MaxPacketSize before it
// allocates anything, then validates what each version's spec requires
// (flags per packet type, UTF-8 rules, topic and filter syntax, property
// placement and duplicates) and reports failures as *Error values that carry
// the MQTT 5 reason code to send. AppendPacket encodes into a caller's
// buffer without allocating, mapping v5 reason codes to 3.x return codes.
//
// paho.golang's packets package is MQTT 5 only and allocates what a header
// claims (ARCHITECTURE §0.1), so it serves only as a test oracle here.
package mqtt
