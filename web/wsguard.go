package web

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"unicode/utf8"
)

// Errors the WebSocket transport's reads end with.
var (
	// ErrInvalidUTF8 ends a text message that is not valid UTF-8; the
	// connection is closed with 1007 (RFC 6455 §8.1).
	ErrInvalidUTF8 = errors.New("web: text message is not valid UTF-8 (RFC 6455 §8.1)")
	// ErrBadClosePayload ends a connection whose peer sent a close frame
	// with a 1-byte payload; it is closed with 1002 (RFC 6455 §5.5.1).
	ErrBadClosePayload = errors.New("web: close frame with a 1-byte payload (RFC 6455 §5.5.1)")
)

// utf8Reader checks a text message as it streams, without buffering it
// (RFC 6455 §8.1): the first bytes of a rune split across reads are held
// back until the rest arrives, so invalid bytes never reach the decoder. A
// message that ends inside a rune is invalid. On invalid input it calls
// invalid once and fails every read after with ErrInvalidUTF8.
type utf8Reader struct {
	r       io.Reader
	invalid func()
	pend    [utf8.UTFMax - 1]byte // an incomplete rune held back
	npend   int
	out     []byte // validated bytes for reads smaller than small
	small   [2 * utf8.UTFMax]byte
	err     error // sticky
}

func (u *utf8Reader) reset(r io.Reader) {
	u.r, u.npend, u.out, u.err = r, 0, nil, nil
}

func (u *utf8Reader) Read(p []byte) (int, error) {
	if len(u.out) > 0 {
		n := copy(p, u.out)
		u.out = u.out[n:]
		return n, nil
	}
	if u.err != nil {
		return 0, u.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) >= len(u.small) {
		n, err := u.fill(p)
		if err != nil {
			u.err = err
		}
		return n, err
	}
	// A tiny read: validate into our own buffer, hand out from there.
	n, err := u.fill(u.small[:])
	if err != nil {
		u.err = err
	}
	u.out = u.small[:n]
	m := copy(p, u.out)
	u.out = u.out[m:]
	if m == 0 {
		return 0, err
	}
	return m, nil
}

// fill reads into p (len(p) >= 2*utf8.UTFMax) and returns only validated
// bytes, holding back an incomplete rune at the end.
func (u *utf8Reader) fill(p []byte) (int, error) {
	for {
		k := copy(p, u.pend[:u.npend])
		u.npend = 0
		n, err := u.r.Read(p[k:])
		n += k
		b := p[:n]
		tail := 0
		if err == nil {
			// An incomplete rune at the end waits for the next read.
			for i := n - 1; i >= 0 && i >= n-(utf8.UTFMax-1); i-- {
				if utf8.RuneStart(b[i]) {
					if !utf8.FullRune(b[i:]) {
						tail = n - i
					}
					break
				}
			}
		}
		if !utf8.Valid(b[:n-tail]) {
			u.invalid()
			return 0, ErrInvalidUTF8
		}
		u.npend = copy(u.pend[:], b[n-tail:])
		n -= tail
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// frameSniffer watches the frame headers a client sends, for the one thing
// gorilla/websocket hides: the payload length of a close frame. gorilla
// (v1.5.3) reports a close frame with no payload and one with a 1-byte
// payload alike, as code 1005, but the second is a protocol error (RFC 6455
// §5.5.1: a close body starts with a 2-byte code). It reads nothing itself:
// it parses the bytes gorilla reads through it, header bytes one by one and
// payloads skipped by length, and stops at the first close frame. Read runs
// on the connection's read goroutine only, as do the close handler that
// asks it.
type frameSniffer struct {
	net.Conn
	hdr      [14]byte
	nhdr     int
	need     int    // header length, once known (0: not yet)
	skip     uint64 // payload bytes still to pass
	closeLen int    // payload length of the first close frame; -1 until one

	// What wsTransport.readAhead read off the connection, handed out
	// before it is read again: the bytes, then the read's error.
	pend    []byte
	pendErr error
}

func newFrameSniffer(c net.Conn) *frameSniffer { return &frameSniffer{Conn: c, closeLen: -1} }

func (f *frameSniffer) Read(p []byte) (int, error) {
	var n int
	var err error
	switch {
	case len(f.pend) > 0:
		n = copy(p, f.pend)
		f.pend = f.pend[n:]
	case f.pendErr != nil:
		err, f.pendErr = f.pendErr, nil
	default:
		n, err = f.Conn.Read(p)
	}
	if f.closeLen < 0 {
		f.sniff(p[:n])
	}
	return n, err
}

// hold makes b, then err (io.EOF for an empty b without one), what Read
// returns next; hold(nil, nil) drops what is held.
func (f *frameSniffer) hold(b []byte, err error) {
	if len(b) == 0 && err == nil && b != nil {
		err = io.EOF
	}
	f.pend, f.pendErr = b, err
}

// holding reports bytes or an error held for Read.
func (f *frameSniffer) holding() bool { return len(f.pend) > 0 || f.pendErr != nil }

// NetConn returns the wrapped connection.
func (f *frameSniffer) NetConn() net.Conn { return f.Conn }

func (f *frameSniffer) sniff(b []byte) {
	for len(b) > 0 && f.closeLen < 0 {
		if f.skip > 0 {
			k := min(f.skip, uint64(len(b)))
			f.skip -= k
			b = b[k:]
			continue
		}
		f.hdr[f.nhdr] = b[0]
		f.nhdr++
		b = b[1:]
		if f.nhdr == 2 {
			f.need = 2
			switch f.hdr[1] & 0x7f {
			case 126:
				f.need += 2
			case 127:
				f.need += 8
			}
			if f.hdr[1]&0x80 != 0 {
				f.need += 4 // masking key
			}
		}
		if f.nhdr < 2 || f.nhdr < f.need {
			continue
		}
		var length uint64
		switch l := f.hdr[1] & 0x7f; l {
		case 126:
			length = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(f.hdr[2:10])
		default:
			length = uint64(l)
		}
		if f.hdr[0]&0x0f == 0x8 { // close
			f.closeLen = int(min(length, 1<<20))
			return
		}
		f.skip, f.nhdr, f.need = length, 0, 0
	}
}

// sniffingWriter hands gorilla's Upgrade a frameSniffer around the
// hijacked connection, and a read buffer of ours from bufs (gorilla keeps
// it when its ReadBufferSize is 0) so that the transport can tell whether a
// message is buffered and park the buffer while idle (wsTransport.WaitRead).
type sniffingWriter struct {
	http.ResponseWriter
	bufs    *readBuffers
	sniffer *frameSniffer
	br      *bufio.Reader
}

// minReadBuffer is the smallest read buffer gorilla takes over (it wants
// more than 256 bytes; control frames are up to 125).
const minReadBuffer = 257

func (w *sniffingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.sniffer = newFrameSniffer(wrapRaw(c))
	if brw.Reader.Buffered() > 0 {
		return w.sniffer, brw, nil // gorilla refuses the early data
	}
	// net/http's 4 KiB reader is garbage from here on.
	w.br = w.bufs.get(w.sniffer) // often the buffer an idle connection parked
	return w.sniffer, bufio.NewReadWriter(w.br, brw.Writer), nil
}
