// Header decoding for Reader: the version rules for escaping, splitting and
// unescaping header lines, and interning commands and header names.

package stomp

import (
	"bytes"
	"fmt"

	"github.com/go-stomp/stomp/v3/frame"
)

// version is a negotiated STOMP version as far as framing cares.
type version uint8

const (
	v12 version = iota // 1.2, and the default before CONNECTED
	v11
	v10
)

// parseVersion maps "1.0" and "1.1" to their versions; anything else,
// including "" (not negotiated yet), follows the 1.2 rules.
func parseVersion(s string) version {
	switch s {
	case "1.0":
		return v10
	case "1.1":
		return v11
	}
	return v12
}

// escapes reports whether frames with this command escape their headers
// under version v: STOMP 1.2 §Value Encoding ("CONNECT and CONNECTED frames
// do not escape"; STOMP is an alias of CONNECT), and 1.0 has no escaping.
func escapes(v version, command string) bool {
	switch command {
	case frame.CONNECT, frame.STOMP, frame.CONNECTED:
		return false
	}
	return v != v10
}

// header splits a header line at its first colon and decodes both sides.
// STOMP 1.2 §Augmented BNF: header-name is 1*<any OCTET except CR or LF or
// ":">. A colon in the value is accepted as go-stomp and 1.0 peers do.
func (r *Reader) header(line []byte, escaped bool) (name, value string, err error) {
	if r.ver == v12 && bytes.IndexByte(line, '\r') >= 0 {
		return "", "", fmt.Errorf("%w: bare CR", ErrMalformedHeader)
	}
	i := bytes.IndexByte(line, ':')
	switch {
	case i < 0:
		return "", "", fmt.Errorf("%w: no colon", ErrMalformedHeader)
	case i == 0:
		return "", "", fmt.Errorf("%w: empty name", ErrMalformedHeader)
	}
	if !escaped {
		return intern(line[:i]), string(line[i+1:]), nil
	}
	k, err := r.unescape(line[:i])
	if err != nil {
		return "", "", err
	}
	name = intern(k)
	v, err := r.unescape(line[i+1:])
	if err != nil {
		return "", "", err
	}
	return name, string(v), nil
}

// unescape decodes STOMP 1.2 §Value Encoding: \n, \c and \\, plus \r from
// 1.2 on. Any other escape, or a backslash at the end, is an error ("MUST be
// treated as a fatal protocol error"). The result is valid until the next
// call.
func (r *Reader) unescape(b []byte) ([]byte, error) {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return b, nil
	}
	out := append(r.esc[:0], b[:i]...)
	for ; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i++; i == len(b) {
			return nil, fmt.Errorf("%w: trailing backslash", ErrBadEscape)
		}
		switch b[i] {
		case 'n':
			c = '\n'
		case 'c':
			c = ':'
		case '\\':
			c = '\\'
		case 'r':
			if r.ver != v12 {
				return nil, fmt.Errorf(`%w \r before STOMP 1.2`, ErrBadEscape)
			}
			c = '\r'
		default:
			return nil, fmt.Errorf("%w %q", ErrBadEscape, b[i-1:i+1])
		}
		out = append(out, c)
	}
	r.esc = out
	return out, nil
}

// intern returns b as a string, without allocating for the STOMP commands
// and the header names of STOMP 1.2 §Frames and Headers.
func intern(b []byte) string {
	switch string(b) { // the compiler does not allocate for this conversion
	case frame.SEND:
		return frame.SEND
	case frame.SUBSCRIBE:
		return frame.SUBSCRIBE
	case frame.UNSUBSCRIBE:
		return frame.UNSUBSCRIBE
	case frame.ACK:
		return frame.ACK
	case frame.NACK:
		return frame.NACK
	case frame.BEGIN:
		return frame.BEGIN
	case frame.COMMIT:
		return frame.COMMIT
	case frame.ABORT:
		return frame.ABORT
	case frame.DISCONNECT:
		return frame.DISCONNECT
	case frame.CONNECT:
		return frame.CONNECT
	case frame.STOMP:
		return frame.STOMP
	case frame.CONNECTED:
		return frame.CONNECTED
	case frame.MESSAGE:
		return frame.MESSAGE
	case frame.RECEIPT:
		return frame.RECEIPT
	case frame.ERROR:
		return frame.ERROR
	case frame.Destination:
		return frame.Destination
	case frame.ContentLength:
		return frame.ContentLength
	case frame.ContentType:
		return frame.ContentType
	case frame.Receipt:
		return frame.Receipt
	case frame.ReceiptId:
		return frame.ReceiptId
	case frame.Id:
		return frame.Id
	case frame.Ack:
		return frame.Ack
	case frame.Subscription:
		return frame.Subscription
	case frame.MessageId:
		return frame.MessageId
	case frame.Transaction:
		return frame.Transaction
	case frame.AcceptVersion:
		return frame.AcceptVersion
	case frame.Host:
		return frame.Host
	case frame.Login:
		return frame.Login
	case frame.Passcode:
		return frame.Passcode
	case frame.HeartBeat:
		return frame.HeartBeat
	case frame.Version:
		return frame.Version
	case frame.Session:
		return frame.Session
	case frame.Server:
		return frame.Server
	case frame.Message:
		return frame.Message
	}
	return string(b)
}
