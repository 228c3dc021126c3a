package stomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/go-stomp/stomp/v3/frame"
)

// Default frame limits, applied by Limits.WithDefaults to zero fields.
const (
	DefaultMaxLineLength  = 8 << 10  // 8 KiB per command or header line
	DefaultMaxHeaders     = 64       // header lines per frame
	DefaultMaxHeaderBytes = 64 << 10 // 64 KiB of header lines per frame
	DefaultMaxBodyLength  = 4 << 20  // 4 MiB per body
)

// readBufferSize is the size of the bufio.Reader that NewReader puts in
// front of a reader that is not already a *bufio.Reader.
const readBufferSize = 4096

// Errors returned by Reader.Read. Each is wrapped with the detail (the limit
// in bytes, the offending text), so test for them with errors.Is. All of them
// are fatal to the connection: STOMP 1.2 §ERROR lets the server send an ERROR
// frame and close. IsSizeError tells the limit errors apart.
var (
	ErrLineTooLong      = errors.New("stomp: line exceeds the limit")
	ErrTooManyHeaders   = errors.New("stomp: header count exceeds the limit")
	ErrHeadersTooLarge  = errors.New("stomp: header section exceeds the limit")
	ErrBodyTooLarge     = errors.New("stomp: frame body exceeds the limit")
	ErrFrameTooLarge    = errors.New("stomp: frame exceeds the limit")
	ErrBadContentLength = errors.New("stomp: invalid content-length")
	ErrMalformedCommand = errors.New("stomp: malformed command line")
	ErrMalformedHeader  = errors.New("stomp: malformed header")
	ErrBadEscape        = errors.New("stomp: invalid escape sequence")
	ErrMissingNUL       = errors.New("stomp: frame body not terminated by NUL")
)

// IsSizeError reports whether err is a frame limit error: a line, header
// section, header count or body over its limit. The WebSocket caller closes
// with 1009 (message too big) for those, RFC 6455 §7.4.1; every other decode
// error is a protocol error (1002).
func IsSizeError(err error) bool {
	return errors.Is(err, ErrLineTooLong) || errors.Is(err, ErrHeadersTooLarge) ||
		errors.Is(err, ErrBodyTooLarge) || errors.Is(err, ErrTooManyHeaders) || errors.Is(err, ErrFrameTooLarge)
}

// Limits bounds what a Reader accepts from one frame (STOMP 1.2 §Size
// Limits). The zero value means the defaults.
type Limits struct {
	MaxLineLength  int // longest command or header line in bytes, EOL excluded (default 8 KiB)
	MaxHeaders     int // most header lines per frame (default 64)
	MaxHeaderBytes int // total bytes of all header lines, EOLs excluded (default 64 KiB)
	MaxBodyLength  int // largest body in bytes, with or without content-length (default 4 MiB)
	// MaxFrameLength bounds command, header lines and body together, EOLs
	// excluded; 0 means no bound beyond the others. The server sets it
	// before login (Config.MaxFrameBeforeLogin).
	MaxFrameLength int
}

// WithDefaults returns l with every zero or negative field set to its
// default (DefaultMaxLineLength and so on).
func (l Limits) WithDefaults() Limits {
	if l.MaxLineLength <= 0 {
		l.MaxLineLength = DefaultMaxLineLength
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBodyLength <= 0 {
		l.MaxBodyLength = DefaultMaxBodyLength
	}
	return l
}

// Reader decodes STOMP frames from a stream within fixed Limits (STOMP 1.2
// §Augmented BNF). Unlike go-stomp's frame.Reader it never buffers a line,
// header section or body beyond its limit, and it checks a content-length
// before allocating for it. A Reader is not safe for concurrent use.
type Reader struct {
	br  *bufio.Reader
	lim Limits
	ver version
	err error // sticky: every decode error is fatal

	line []byte   // a line that did not fit in br's buffer
	esc  []byte   // unescaped header name or value
	hdr  []string // name, value, name, value... of the frame being read
}

// Release drops the scratch buffers a Reader keeps between frames (an idle
// connection's); the next frame allocates them again.
func (r *Reader) Release() { r.line, r.esc, r.hdr = nil, nil, nil }

// NewReader returns a Reader that decodes frames from r within l (zero fields
// get the defaults). r is used as is when it is a *bufio.Reader, of any
// size; otherwise it is wrapped in one.
func NewReader(r io.Reader, l Limits) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	return &Reader{br: br, lim: l.WithDefaults()}
}

// SetLimits replaces the limits (zero fields get the defaults) for the
// frames read from now on: the server reads CONNECT with smaller limits
// than the frames after login.
func (r *Reader) SetLimits(l Limits) { r.lim = l.WithDefaults() }

// SetVersion sets the negotiated protocol version ("1.0", "1.1" or "1.2")
// for the frames read from now on. It controls header unescaping (STOMP 1.2
// §Value Encoding): none for 1.0; \n, \c and \\ for 1.1; also \r for 1.2.
// Until it is called, frames follow the 1.2 rules. Headers of CONNECT, STOMP
// and CONNECTED frames are never unescaped, whatever the version.
func (r *Reader) SetVersion(v string) {
	r.ver = parseVersion(v)
}

// Read decodes the next frame. It returns (nil, nil) for a heart-beat, a bare
// EOL between frames (STOMP 1.2 §Heart-beating); EOLs after a frame's NUL
// come back that way too. It returns io.EOF if the stream ends between
// frames and io.ErrUnexpectedEOF if it ends inside one.
//
// Lines end in LF or CR LF in every version. From 1.2 on (and before
// SetVersion) a CR anywhere else in a header line is an error, since the
// header BNF excludes it; in 1.0 and 1.1 it is part of the value. A command
// line never contains a CR. Repeated headers are all kept in order, so
// Header.Get returns the first, as STOMP 1.2 §Repeated Header Entries
// requires. The command is not checked: that is the caller's state machine.
//
// The returned frame owns its memory; the body is allocated once, at the
// exact size when content-length is given. After an error the Reader
// returns that error forever.
func (r *Reader) Read() (*frame.Frame, error) {
	if r.err != nil {
		return nil, r.err
	}
	f, err := r.read()
	if err != nil {
		r.err = err
		clear(r.hdr)
		r.hdr = r.hdr[:0]
	}
	return f, err
}

// fh holds a frame and its header in one allocation.
type fh struct {
	f frame.Frame
	h frame.Header
}

func (r *Reader) read() (*frame.Frame, error) {
	line, err := r.readLine(true)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, nil // STOMP 1.2 §Heart-beating
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, fmt.Errorf("%w: CR before the EOL", ErrMalformedCommand)
	}
	command := intern(line)
	escaped := escapes(r.ver, command)

	n, size := 0, 0
	clen := -1 // index in r.hdr of the first content-length value
	for {
		var name, value string
		if line, err = r.readLine(false); err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		// STOMP 1.2 §Size Limits: the number of headers and the length of
		// the header section.
		if n++; n > r.lim.MaxHeaders {
			return nil, fmt.Errorf("%w of %d", ErrTooManyHeaders, r.lim.MaxHeaders)
		}
		if size += len(line); size > r.lim.MaxHeaderBytes {
			return nil, fmt.Errorf("%w of %d bytes", ErrHeadersTooLarge, r.lim.MaxHeaderBytes)
		}
		if r.lim.MaxFrameLength > 0 && len(command)+size > r.lim.MaxFrameLength {
			return nil, fmt.Errorf("%w of %d bytes", ErrFrameTooLarge, r.lim.MaxFrameLength)
		}
		if name, value, err = r.header(line, escaped); err != nil {
			return nil, err
		}
		if clen < 0 && name == frame.ContentLength {
			clen = len(r.hdr) + 1
		}
		r.hdr = append(r.hdr, name, value)
	}

	limit := r.lim.MaxBodyLength
	if r.lim.MaxFrameLength > 0 {
		limit = min(limit, r.lim.MaxFrameLength-len(command)-size)
	}
	var body []byte
	if clen >= 0 {
		body, err = r.readCounted(r.hdr[clen], limit)
	} else {
		body, err = r.readUntilNUL(limit)
	}
	if err != nil {
		return nil, err
	}

	p := new(fh)
	p.h = *frame.NewHeader(r.hdr...)
	p.f = frame.Frame{Command: command, Header: &p.h, Body: body}
	clear(r.hdr)
	r.hdr = r.hdr[:0]
	return &p.f, nil
}

// readLine returns the next line without its EOL (LF or CR LF, STOMP 1.2
// §Augmented BNF). The slice is valid until the next read. It fails with
// ErrLineTooLong having consumed at most MaxLineLength+2 bytes beyond one
// buffer of br. atBoundary says no byte of the frame has been read yet, so
// that an end of stream is io.EOF rather than io.ErrUnexpectedEOF.
func (r *Reader) readLine(atBoundary bool) ([]byte, error) {
	limit := r.lim.MaxLineLength
	b, err := r.br.ReadSlice('\n')
	if err == nil { // the whole line is in br's buffer
		if b = trimEOL(b); len(b) > limit {
			return nil, r.lineTooLong()
		}
		return b, nil
	}
	buf := r.line[:0]
	for err == bufio.ErrBufferFull {
		// Even if a CR LF follows, the line already has len(buf)+len(b)-1
		// bytes.
		if len(buf)+len(b) > limit+1 {
			return nil, r.lineTooLong()
		}
		buf = appendBounded(buf, b, limit+2)
		b, err = r.br.ReadSlice('\n')
	}
	r.line = buf
	if err != nil {
		if err == io.EOF {
			if atBoundary && len(buf)+len(b) == 0 {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(buf)+len(b) > limit+2 {
		return nil, r.lineTooLong()
	}
	buf = appendBounded(buf, b, limit+2)
	r.line = buf
	if buf = trimEOL(buf); len(buf) > limit {
		return nil, r.lineTooLong()
	}
	return buf, nil
}

func (r *Reader) lineTooLong() error {
	return fmt.Errorf("%w of %d bytes", ErrLineTooLong, r.lim.MaxLineLength)
}

// trimEOL strips the LF or CR LF that ends line.
func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// contentLength parses a content-length value (STOMP 1.2 §Header
// content-length): decimal digits only, at most limit. It stops at the
// first digit past the limit, so it cannot overflow.
func (r *Reader) contentLength(s string, limit int) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrBadContentLength)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w %q", ErrBadContentLength, s)
		}
		if n = n*10 + int(c-'0'); n > limit {
			return 0, fmt.Errorf("%w of %d bytes (content-length)", ErrBodyTooLarge, limit)
		}
	}
	return n, nil
}

// readCounted reads a body of content-length bytes and the NUL after it. The
// length is checked against limit before the body is allocated.
func (r *Reader) readCounted(contentLength string, limit int) ([]byte, error) {
	n, err := r.contentLength(contentLength, limit)
	if err != nil {
		return nil, err
	}
	var body []byte
	if n > 0 {
		body = make([]byte, n)
		if _, err := io.ReadFull(r.br, body); err != nil {
			return nil, unexpected(err)
		}
	}
	c, err := r.br.ReadByte()
	if err != nil {
		return nil, unexpected(err)
	}
	if c != 0 {
		return nil, fmt.Errorf("%w after %d bytes (content-length)", ErrMissingNUL, n)
	}
	return body, nil
}

// readUntilNUL reads a body without content-length: everything up to the
// first NUL (STOMP 1.2 §Augmented BNF). It fails as soon as the body passes
// limit, having read at most one buffer of br beyond it.
func (r *Reader) readUntilNUL(limit int) ([]byte, error) {
	b, err := r.br.ReadSlice(0)
	if err == nil { // the common case: the whole body is in br's buffer
		n := len(b) - 1
		if n > limit {
			return nil, bodyTooLarge(limit)
		}
		if n == 0 {
			return nil, nil
		}
		return append(make([]byte, 0, n), b[:n]...), nil
	}
	var body []byte
	for {
		switch err {
		case nil:
			b = b[:len(b)-1]
		case bufio.ErrBufferFull:
		default:
			return nil, unexpected(err)
		}
		if len(body)+len(b) > limit {
			return nil, bodyTooLarge(limit)
		}
		body = appendBounded(body, b, limit)
		if err == nil {
			return body, nil
		}
		b, err = r.br.ReadSlice(0)
	}
}

func bodyTooLarge(limit int) error {
	return fmt.Errorf("%w of %d bytes", ErrBodyTooLarge, limit)
}

// unexpected turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendBounded appends b to dst, growing dst geometrically but never to a
// capacity above limit. The caller ensures len(dst)+len(b) <= limit.
func appendBounded(dst, b []byte, limit int) []byte {
	need := len(dst) + len(b)
	if need > cap(dst) {
		c := max(2*cap(dst), need, 512)
		c = min(c, limit)
		dst = append(make([]byte, 0, c), dst...)
	}
	return append(dst, b...)
}
