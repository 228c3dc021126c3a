package stomp

import "github.com/go-stomp/stomp/v3/frame"

// AppendFrame appends the wire form of f to dst and returns the extended
// slice (STOMP 1.2 §Augmented BNF): command, LF, one "name:value" LF per
// header entry in order, LF, body, NUL. It does not add content-length; the
// caller sets it when the body may contain NUL. A nil f appends a heart-beat
// EOL (STOMP 1.2 §Heart-beating). AppendFrame does not allocate when dst has
// room.
//
// Header names and values are escaped for version (STOMP 1.2 §Value
// Encoding): not at all for "1.0" and for CONNECT, STOMP and CONNECTED
// frames; \\, \n and \c for "1.1"; also \r for "1.2" and for any other
// version string. Where nothing is escaped, the caller must not pass a LF,
// or a colon in a name, since the frame could not be decoded as it was sent;
// in 1.1 a CR at the end of a value is likewise lost.
func AppendFrame(dst []byte, f *frame.Frame, version string) []byte {
	if f == nil {
		return append(dst, '\n')
	}
	v := parseVersion(version)
	escaped := escapes(v, f.Command)
	dst = append(dst, f.Command...)
	dst = append(dst, '\n')
	if f.Header != nil {
		for i := range f.Header.Len() {
			name, value := f.Header.GetAt(i)
			if escaped {
				dst = appendEscaped(dst, name, v)
				dst = append(dst, ':')
				dst = appendEscaped(dst, value, v)
			} else {
				dst = append(dst, name...)
				dst = append(dst, ':')
				dst = append(dst, value...)
			}
			dst = append(dst, '\n')
		}
	}
	dst = append(dst, '\n')
	dst = append(dst, f.Body...)
	return append(dst, 0)
}

// appendEscaped appends s with the STOMP 1.2 §Value Encoding escapes of
// version v (1.1 or 1.2) applied.
func appendEscaped(dst []byte, s string, v version) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc byte
		switch s[i] {
		case '\\':
			esc = '\\'
		case '\n':
			esc = 'n'
		case ':':
			esc = 'c'
		case '\r':
			if v != v12 {
				continue
			}
			esc = 'r'
		default:
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, '\\', esc)
		start = i + 1
	}
	return append(dst, s[start:]...)
}
