package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// frame is one parsed STOMP frame. Its slices point into the parser's
// buffer and are valid only until the parser reads more data.
type frame struct {
	command []byte
	headers [][2][]byte // raw (still escaped) name/value pairs, in order
	body    []byte
}

// header returns the first value of the named header (STOMP 1.2: the first
// occurrence wins) and whether it was present.
func (f *frame) header(name string) ([]byte, bool) {
	for _, h := range f.headers {
		if string(h[0]) == name {
			return h[1], true
		}
	}
	return nil, false
}

// is reports whether the frame's command is cmd.
func (f *frame) is(cmd string) bool { return string(f.command) == cmd }

// errorText describes an ERROR frame for reports: its message header and
// the start of its body.
func (f *frame) errorText() string {
	msg, _ := f.header("message")
	body := f.body
	if len(body) > 120 {
		body = body[:120]
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return fmt.Sprintf("%q", unescapeHeader(msg))
	}
	return fmt.Sprintf("%q (%q)", unescapeHeader(msg), body)
}

// errMalformed is returned for bytes that are not a STOMP frame.
var errMalformed = errors.New("malformed STOMP frame")

// parser splits a byte stream (the concatenated WebSocket messages of one
// connection) into STOMP frames. A WebSocket message may hold several
// frames (the server may coalesce them) and, for robustness, a frame may
// also continue in the next message. Bodies are delimited by content-length
// when present, by the first NUL otherwise. EOLs between frames (heart-beats)
// are skipped.
type parser struct {
	buf   []byte // bytes read; buf[off:] not parsed yet
	off   int
	limit int // most bytes buffered at once
}

// next parses the next complete frame into f. It returns false with a nil
// error when more data is needed.
func (p *parser) next(f *frame) (bool, error) {
	b := p.buf[p.off:]
	i := 0
	for i < len(b) && (b[i] == '\n' || b[i] == '\r') {
		i++
	}
	p.off += i
	b = b[i:]
	if len(b) == 0 {
		return false, nil
	}
	line, i, ok := nextLine(b, 0)
	if !ok {
		return false, nil
	}
	if len(line) == 0 {
		return false, errMalformed
	}
	f.command = line
	f.headers = f.headers[:0]
	clen := -1
	for {
		line, i, ok = nextLine(b, i)
		if !ok {
			return false, nil
		}
		if len(line) == 0 {
			break
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			return false, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		k, v := line[:c], line[c+1:]
		if clen < 0 && string(k) == "content-length" {
			n, ok := parseUint(v)
			if !ok || n > uint64(p.limit) {
				return false, fmt.Errorf("%w: content-length %q", errMalformed, v)
			}
			clen = int(n)
		}
		f.headers = append(f.headers, [2][]byte{k, v})
	}
	if clen >= 0 {
		if len(b)-i < clen+1 {
			return false, nil
		}
		if b[i+clen] != 0 {
			return false, fmt.Errorf("%w: no NUL after content-length %d body", errMalformed, clen)
		}
		f.body = b[i : i+clen]
		i += clen + 1
	} else {
		z := bytes.IndexByte(b[i:], 0)
		if z < 0 {
			return false, nil
		}
		f.body = b[i : i+z]
		i += z + 1
	}
	p.off += i
	return true, nil
}

// nextLine returns the line starting at b[i] without its EOL ("\n" or
// "\r\n"), and the index after the EOL; ok is false if no EOL follows yet.
func nextLine(b []byte, i int) (line []byte, next int, ok bool) {
	n := bytes.IndexByte(b[i:], '\n')
	if n < 0 {
		return nil, i, false
	}
	line = b[i : i+n]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, i + n + 1, true
}

// fill appends one WebSocket message from r to the buffer, first dropping
// the bytes already parsed. Frames returned earlier become invalid.
func (p *parser) fill(r io.Reader) error {
	if p.off > 0 {
		n := copy(p.buf, p.buf[p.off:])
		p.buf = p.buf[:n]
		p.off = 0
	}
	for {
		if len(p.buf) == cap(p.buf) {
			if len(p.buf) >= p.limit {
				return fmt.Errorf("more than %d bytes without a complete STOMP frame or MQTT packet", p.limit)
			}
			nb := make([]byte, len(p.buf), 2*cap(p.buf)+4096)
			copy(nb, p.buf)
			p.buf = nb
		}
		n, err := r.Read(p.buf[len(p.buf):cap(p.buf)])
		p.buf = p.buf[:len(p.buf)+n]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseUint parses a non-empty decimal number without allocating.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// unescapeHeader undoes STOMP 1.2 header escaping (\r \n \c \\) for display.
func unescapeHeader(v []byte) string {
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v)
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			out = append(out, v[i])
			continue
		}
		i++
		switch v[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 'c':
			out = append(out, ':')
		default:
			out = append(out, v[i])
		}
	}
	return string(out)
}
