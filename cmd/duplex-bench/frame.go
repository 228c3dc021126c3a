package main

import "strconv"

// STOMP 1.2 frame encoders. Each appends one complete frame, NUL included,
// to b. Header values are escaped per STOMP 1.2 except in CONNECT, where
// the specification forbids escaping.

// appendConnect appends a CONNECT frame asking for STOMP 1.2 with
// heart-beats off in both directions, with login and passcode headers when
// user is not empty.
func appendConnect(b []byte, host, user, password string) []byte {
	b = append(b, "CONNECT\naccept-version:1.2\nhost:"...)
	b = append(b, host...)
	if user != "" {
		b = append(b, "\nlogin:"...)
		b = append(b, user...)
		b = append(b, "\npasscode:"...)
		b = append(b, password...)
	}
	b = append(b, "\nheart-beat:0,0\n\n\x00"...)
	return b
}

// appendSubscribe appends an auto-ack SUBSCRIBE frame, with a receipt
// header when receipt is not empty.
func appendSubscribe(b []byte, id, dest, receipt string) []byte {
	b = append(b, "SUBSCRIBE\nid:"...)
	b = appendEscaped(b, id)
	b = append(b, "\ndestination:"...)
	b = appendEscaped(b, dest)
	b = append(b, "\nack:auto\n"...)
	if receipt != "" {
		b = append(b, "receipt:"...)
		b = appendEscaped(b, receipt)
		b = append(b, '\n')
	}
	return append(b, '\n', 0)
}

// appendDisconnect appends a DISCONNECT frame with a receipt header.
func appendDisconnect(b []byte, receipt string) []byte {
	b = append(b, "DISCONNECT\nreceipt:"...)
	b = appendEscaped(b, receipt)
	return append(b, "\n\n\x00"...)
}

// sendPrefix returns the fixed head of every SEND frame to dest with a body
// of bodyLen bytes: command, destination and content-length headers.
func sendPrefix(dest string, bodyLen int) []byte {
	b := []byte("SEND\ndestination:")
	b = appendEscaped(b, dest)
	b = append(b, "\ncontent-length:"...)
	b = strconv.AppendInt(b, int64(bodyLen), 10)
	return append(b, '\n')
}

// appendSend appends a SEND frame made of prefix (from sendPrefix), an
// optional numeric receipt header (receipt 0 means none) and body.
func appendSend(b, prefix []byte, receipt uint64, body []byte) []byte {
	b = append(b, prefix...)
	if receipt != 0 {
		b = append(b, "receipt:"...)
		b = strconv.AppendUint(b, receipt, 10)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, body...)
	return append(b, 0)
}

// appendEscaped appends a header value with STOMP 1.2 escaping.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case ':':
			b = append(b, '\\', 'c')
		default:
			b = append(b, c)
		}
	}
	return b
}
