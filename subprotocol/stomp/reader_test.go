package stomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/go-stomp/stomp/v3/frame"
)

// heartBeat stands for a heart-beat in the expected output of a Reader.
var heartBeat *frame.Frame

// mkFrame builds an expected frame; headers are name, value pairs.
func mkFrame(command, body string, headers ...string) *frame.Frame {
	f := frame.New(command, headers...)
	if body != "" {
		f.Body = []byte(body)
	}
	return f
}

// sameFrame reports how a and b differ, or "" if they are equal: same
// command, same header entries in the same order, same body bytes.
func sameFrame(a, b *frame.Frame) string {
	switch {
	case a == nil && b == nil:
		return ""
	case a == nil || b == nil:
		return fmt.Sprintf("heart-beat vs frame: %v vs %v", a, b)
	case a.Command != b.Command:
		return fmt.Sprintf("command %q vs %q", a.Command, b.Command)
	case a.Header.Len() != b.Header.Len():
		return fmt.Sprintf("%d headers vs %d", a.Header.Len(), b.Header.Len())
	case !bytes.Equal(a.Body, b.Body):
		return fmt.Sprintf("body %q vs %q", a.Body, b.Body)
	}
	for i := range a.Header.Len() {
		ak, av := a.Header.GetAt(i)
		bk, bv := b.Header.GetAt(i)
		if ak != bk || av != bv {
			return fmt.Sprintf("header %d: %q:%q vs %q:%q", i, ak, av, bk, bv)
		}
	}
	return ""
}

// readAll reads frames and heart-beats until the first error.
func readAll(r *Reader) ([]*frame.Frame, error) {
	var out []*frame.Frame
	for {
		f, err := r.Read()
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
}

// chunkings feeds the same bytes in different pieces: whole, one byte per
// Read, half of each Read, data together with io.EOF, and through a caller's
// minimum-size bufio.Reader so that every line and body spans buffers.
var chunkings = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"OneByteReader", iotest.OneByteReader},
	{"HalfReader", iotest.HalfReader},
	{"DataErrReader", iotest.DataErrReader},
	{"bufio16", func(r io.Reader) io.Reader { return bufio.NewReaderSize(r, 16) }},
}

var (
	long5k  = strings.Repeat("v", 5000)  // over the 4 KiB read buffer, under the 8 KiB line limit
	body10k = strings.Repeat("b", 10000) // over the read buffer, without content-length
)

var readCases = []struct {
	name    string
	version string // "" is before CONNECTED
	in      string
	want    []*frame.Frame
}{{
	name: "CONNECT",
	in:   "CONNECT\naccept-version:1.2\nhost:example.org\n\n\x00",
	want: []*frame.Frame{mkFrame("CONNECT", "", "accept-version", "1.2", "host", "example.org")},
}, {
	// CONNECT headers are never unescaped; a colon in a value is literal.
	name: "CONNECT no unescape",
	in:   "CONNECT\nlogin:dom\\user\npasscode:a:b\\c\n\n\x00",
	want: []*frame.Frame{mkFrame("CONNECT", "", "login", `dom\user`, "passcode", `a:b\c`)},
}, {
	// STOMP is CONNECT's alias, and stays raw even after SetVersion.
	name:    "STOMP no unescape",
	version: "1.2",
	in:      "STOMP\nlogin:a\\tb\n\n\x00",
	want:    []*frame.Frame{mkFrame("STOMP", "", "login", `a\tb`)},
}, {
	name:    "CONNECTED no unescape",
	version: "1.2",
	in:      "CONNECTED\nversion:1.2\nserver:duplex\\1\n\n\x00",
	want:    []*frame.Frame{mkFrame("CONNECTED", "", "version", "1.2", "server", `duplex\1`)},
}, {
	// content-length lets the body hold NULs.
	name:    "SEND content-length with NULs",
	version: "1.2",
	in:      "SEND\ndestination:/queue/a\ncontent-length:5\n\na\x00b\x00c\x00",
	want:    []*frame.Frame{mkFrame("SEND", "a\x00b\x00c", "destination", "/queue/a", "content-length", "5")},
}, {
	// Leading zeros are still a decimal integer.
	name:    "content-length leading zeros",
	version: "1.2",
	in:      "SEND\ncontent-length:003\n\nabc\x00",
	want:    []*frame.Frame{mkFrame("SEND", "abc", "content-length", "003")},
}, {
	name:    "content-length zero",
	version: "1.2",
	in:      "SEND\ncontent-length:0\n\n\x00",
	want:    []*frame.Frame{mkFrame("SEND", "", "content-length", "0")},
}, {
	// Only the first content-length counts (§Repeated Header Entries).
	name:    "content-length repeated",
	version: "1.2",
	in:      "SEND\ncontent-length:2\ncontent-length:junk\n\nab\x00",
	want:    []*frame.Frame{mkFrame("SEND", "ab", "content-length", "2", "content-length", "junk")},
}, {
	name:    "body without content-length",
	version: "1.2",
	in:      "SEND\ndestination:/topic/x\n\nhello\x00",
	want:    []*frame.Frame{mkFrame("SEND", "hello", "destination", "/topic/x")},
}, {
	name:    "long body without content-length",
	version: "1.2",
	in:      "SEND\n\n" + body10k + "\x00",
	want:    []*frame.Frame{mkFrame("SEND", body10k)},
}, {
	name:    "long header line",
	version: "1.2",
	in:      "SEND\nx:" + long5k + "\n\n\x00",
	want:    []*frame.Frame{mkFrame("SEND", "", "x", long5k)},
}, {
	// CR LF line endings, and a CR LF heart-beat after the NUL.
	name:    "CRLF",
	version: "1.2",
	in:      "SEND\r\ndestination:/q\r\n\r\nhi\x00\r\n",
	want:    []*frame.Frame{mkFrame("SEND", "hi", "destination", "/q"), heartBeat},
}, {
	// EOLs before, between and after frames are heart-beats.
	name:    "heart-beats",
	version: "1.2",
	in:      "\n\r\nSEND\n\na\x00\nSEND\n\nb\x00\n\n",
	want:    []*frame.Frame{heartBeat, heartBeat, mkFrame("SEND", "a"), heartBeat, mkFrame("SEND", "b"), heartBeat, heartBeat},
}, {
	name:    "back-to-back frames",
	version: "1.2",
	in:      "SEND\n\na\x00SEND\ncontent-length:1\n\nb\x00",
	want:    []*frame.Frame{mkFrame("SEND", "a"), mkFrame("SEND", "b", "content-length", "1")},
}, {
	// Repeated headers are all kept in order; Get returns the first.
	name:    "repeated headers",
	version: "1.2",
	in:      "MESSAGE\nfoo:1\nfoo:2\nbar:3\n\n\x00",
	want:    []*frame.Frame{mkFrame("MESSAGE", "", "foo", "1", "foo", "2", "bar", "3")},
}, {
	// §Value Encoding in 1.2, in names and values.
	name:    "escapes 1.2",
	version: "1.2",
	in:      "MESSAGE\nk\\cx:a\\nb\\\\c\\rd\\ce\n\n\x00",
	want:    []*frame.Frame{mkFrame("MESSAGE", "", "k:x", "a\nb\\c\rd:e")},
}, {
	// Before CONNECTED, non-CONNECT frames follow 1.2.
	name: "escapes before CONNECTED",
	in:   "SEND\nk:a\\r\\n\n\n\x00",
	want: []*frame.Frame{mkFrame("SEND", "", "k", "a\r\n")},
}, {
	// An escaped backslash followed by n is not a newline.
	name:    "escaped backslash then n",
	version: "1.2",
	in:      "MESSAGE\nk:\\\\n\n\n\x00",
	want:    []*frame.Frame{mkFrame("MESSAGE", "", "k", `\n`)},
}, {
	name:    "escapes 1.1",
	version: "1.1",
	in:      "MESSAGE\nk\\cx:a\\nb\\\\c\\cd\n\n\x00",
	want:    []*frame.Frame{mkFrame("MESSAGE", "", "k:x", "a\nb\\c:d")},
}, {
	// 1.1 has no \r escape, so a CR inside a value is raw.
	name:    "bare CR 1.1",
	version: "1.1",
	in:      "MESSAGE\nk:a\rb\n\n\x00",
	want:    []*frame.Frame{mkFrame("MESSAGE", "", "k", "a\rb")},
}, {
	// 1.0 has no escaping at all.
	name:    "no escapes 1.0",
	version: "1.0",
	in:      "MESSAGE\nk\\c:a\\tb\rc\n\n\x00",
	want:    []*frame.Frame{mkFrame("MESSAGE", "", `k\c`, "a\\tb\rc")},
}, {
	// A raw colon in a value is accepted, as go-stomp and 1.0 peers do.
	name:    "colon in value",
	version: "1.2",
	in:      "SEND\nx:a:b\n\n\x00",
	want:    []*frame.Frame{mkFrame("SEND", "", "x", "a:b")},
}, {
	name:    "empty value",
	version: "1.2",
	in:      "SEND\nx:\n\n\x00",
	want:    []*frame.Frame{mkFrame("SEND", "", "x", "")},
}, {
	// Unknown commands are for the state machine to reject.
	name:    "unknown command",
	version: "1.2",
	in:      "FOO\n\n\x00",
	want:    []*frame.Frame{mkFrame("FOO", "")},
}}

func TestReaderValid(t *testing.T) {
	for _, tc := range readCases {
		for _, ch := range chunkings {
			t.Run(tc.name+"/"+ch.name, func(t *testing.T) {
				r := NewReader(ch.wrap(strings.NewReader(tc.in)), Limits{})
				r.SetVersion(tc.version)
				got, err := readAll(r)
				if err != io.EOF {
					t.Fatalf("got error %v after %d items, want io.EOF", err, len(got))
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %d items, want %d", len(got), len(tc.want))
				}
				for i := range got {
					if d := sameFrame(got[i], tc.want[i]); d != "" {
						t.Errorf("item %d: %s", i, d)
					}
				}
			})
		}
	}
}

func TestReaderRepeatedHeaderFirstWins(t *testing.T) {
	r := NewReader(strings.NewReader("MESSAGE\nfoo:1\nfoo:2\n\n\x00"), Limits{})
	f, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Header.Get("foo"); got != "1" {
		t.Errorf(`Get("foo") = %q, want "1"`, got)
	}
	if got := f.Header.GetAll("foo"); len(got) != 2 || got[1] != "2" {
		t.Errorf(`GetAll("foo") = %q, want ["1" "2"]`, got)
	}
}

var smallLimits = Limits{MaxLineLength: 16, MaxHeaders: 2, MaxHeaderBytes: 20, MaxBodyLength: 4}

var readErrorCases = []struct {
	name    string
	version string
	limits  Limits
	in      string
	want    error
	size    bool // IsSizeError
}{
	// Size limits (§Size Limits).
	{name: "command line too long", limits: smallLimits, in: "SENDSENDSENDSENDS\n\n\x00", want: ErrLineTooLong, size: true},
	{name: "header line too long", limits: smallLimits, in: "SEND\n0123456789:abcdef\n\n\x00", want: ErrLineTooLong, size: true},
	// 16 bytes plus CR LF is within the limit; 17 plus CR LF is not.
	{name: "line too long with CRLF", limits: smallLimits, in: "SEND\r\n0123456789:abcdef\r\n\r\n\x00", want: ErrLineTooLong, size: true},
	{name: "too many headers", limits: smallLimits, in: "SEND\na:1\nb:2\nc:3\n\n\x00", want: ErrTooManyHeaders, size: true},
	{name: "headers too large", limits: smallLimits, in: "SEND\na:123456789\nb:123456789\n\n\x00", want: ErrHeadersTooLarge, size: true},
	{name: "content-length over limit", limits: smallLimits, in: "SEND\ncontent-length:5\n\n12345\x00", want: ErrBodyTooLarge, size: true},
	{name: "huge content-length", in: "SEND\ncontent-length:99999999999999999999999999\n\n\x00", want: ErrBodyTooLarge, size: true},
	{name: "body over limit", limits: smallLimits, in: "SEND\n\n12345\x00", want: ErrBodyTooLarge, size: true},

	// content-length must be a non-negative decimal integer.
	{name: "content-length letters", in: "SEND\ncontent-length:abc\n\n\x00", want: ErrBadContentLength},
	{name: "content-length negative", in: "SEND\ncontent-length:-1\n\n\x00", want: ErrBadContentLength},
	{name: "content-length plus", in: "SEND\ncontent-length:+1\n\nx\x00", want: ErrBadContentLength},
	{name: "content-length empty", in: "SEND\ncontent-length:\n\n\x00", want: ErrBadContentLength},
	{name: "content-length space", in: "SEND\ncontent-length: 1\n\nx\x00", want: ErrBadContentLength},
	{name: "content-length trailing space", in: "SEND\ncontent-length:1 \n\nx\x00", want: ErrBadContentLength},
	// The byte after content-length bytes must be NUL.
	{name: "missing NUL", in: "SEND\ncontent-length:3\n\nabcd\x00", want: ErrMissingNUL},

	// Header and command syntax (§Augmented BNF).
	{name: "header without colon", in: "SEND\ndestination\n\n\x00", want: ErrMalformedHeader},
	{name: "empty header name", in: "SEND\n:x\n\n\x00", want: ErrMalformedHeader},
	{name: "bare CR 1.2", version: "1.2", in: "SEND\nk:a\rb\n\n\x00", want: ErrMalformedHeader},
	{name: "bare CR before CONNECTED", in: "CONNECT\nhost:a\r\r\n\r\n\x00", want: ErrMalformedHeader},
	{name: "CR in command", in: "SE\rND\n\n\x00", want: ErrMalformedCommand},
	{name: "lone CR heart-beat", in: "\r\r\n", want: ErrMalformedCommand},

	// §Value Encoding: undefined escapes are fatal.
	{name: "escape tab", version: "1.2", in: "SEND\nk:a\\tb\n\n\x00", want: ErrBadEscape},
	{name: "escape in name", version: "1.2", in: "SEND\nk\\x:a\n\n\x00", want: ErrBadEscape},
	{name: "trailing backslash", version: "1.2", in: "SEND\nk:a\\\n\n\x00", want: ErrBadEscape},
	{name: "escape CR in 1.1", version: "1.1", in: "SEND\nk:a\\rb\n\n\x00", want: ErrBadEscape},

	// The stream ends inside a frame.
	{name: "EOF after command", in: "SEND\n", want: io.ErrUnexpectedEOF},
	{name: "EOF in command", in: "SEN", want: io.ErrUnexpectedEOF},
	{name: "EOF in CRLF", in: "\r", want: io.ErrUnexpectedEOF},
	{name: "EOF in header", in: "SEND\ndest", want: io.ErrUnexpectedEOF},
	{name: "EOF in body", in: "SEND\n\nbody", want: io.ErrUnexpectedEOF},
	{name: "EOF in counted body", in: "SEND\ncontent-length:5\n\nab", want: io.ErrUnexpectedEOF},
	{name: "EOF before NUL", in: "SEND\ncontent-length:2\n\nab", want: io.ErrUnexpectedEOF},
	{name: "EOF after frame", in: "SEND\n\n\x00", want: io.EOF},
	{name: "empty stream", in: "", want: io.EOF},
}

func TestReaderErrors(t *testing.T) {
	for _, tc := range readErrorCases {
		for _, ch := range chunkings {
			t.Run(tc.name+"/"+ch.name, func(t *testing.T) {
				r := NewReader(ch.wrap(strings.NewReader(tc.in)), tc.limits)
				r.SetVersion(tc.version)
				_, err := readAll(r)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if IsSizeError(err) != tc.size {
					t.Errorf("IsSizeError(%v) = %v, want %v", err, !tc.size, tc.size)
				}
				if f, err2 := r.Read(); f != nil || err2 != err {
					t.Errorf("Read after error = %v, %v; want the same error again", f, err2)
				}
			})
		}
	}
}

func TestReaderErrorMessages(t *testing.T) {
	r := NewReader(strings.NewReader("SEND\n\n"+body10k+"\x00"), Limits{MaxBodyLength: 4096})
	_, err := r.Read()
	if want := "stomp: frame body exceeds the limit of 4096 bytes"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestReaderLimitEdges accepts a line, a header count, a header section and
// a body of exactly the limit.
func TestReaderLimitEdges(t *testing.T) {
	in := "SEND\r\n" +
		"0123456789:abcde\r\n" + // 16 bytes: the line limit
		"abc:d\r\n" + // 21 bytes of headers, the header byte limit
		"\r\n1234\x00" // 4 bytes: the body limit
	lim := Limits{MaxLineLength: 16, MaxHeaders: 2, MaxHeaderBytes: 21, MaxBodyLength: 4}
	for _, ch := range chunkings {
		r := NewReader(ch.wrap(strings.NewReader(in)), lim)
		f, err := r.Read()
		if err != nil {
			t.Fatalf("%s: %v", ch.name, err)
		}
		want := mkFrame("SEND", "1234", "0123456789", "abcde", "abc", "d")
		if d := sameFrame(f, want); d != "" {
			t.Errorf("%s: %s", ch.name, d)
		}
	}
}

// countingReader counts the bytes its callers have read.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// endless is an io.Reader of unlimited fill bytes.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

// allocated returns the bytes allocated on the heap while running fn.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestReaderHugeContentLength is go-stomp's 95 MB allocation (ARCHITECTURE
// §0 item 2): a 50-byte frame declaring 100 MB must fail before allocating.
func TestReaderHugeContentLength(t *testing.T) {
	in := "SEND\ndestination:/q\ncontent-length:100000000\n\nabc\x00"
	var err error
	n := allocated(func() {
		_, err = NewReader(strings.NewReader(in), Limits{}).Read()
	})
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("got %v, want ErrBodyTooLarge", err)
	}
	if n >= 1<<20 {
		t.Errorf("allocated %d bytes, want < 1 MiB", n)
	}
}

// TestReaderHugeHeaderLine is the other half of §0 item 2: a 1 MiB header
// line fails having read about the line limit.
func TestReaderHugeHeaderLine(t *testing.T) {
	src := &countingReader{r: strings.NewReader("SEND\nx:" + strings.Repeat("y", 1<<20) + "\n\n\x00")}
	var err error
	n := allocated(func() {
		_, err = NewReader(src, Limits{}).Read()
	})
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("got %v, want ErrLineTooLong", err)
	}
	if max := DefaultMaxLineLength + 2*readBufferSize; src.n > max {
		t.Errorf("read %d bytes, want at most %d", src.n, max)
	}
	if n >= 64<<10 {
		t.Errorf("allocated %d bytes, want < 64 KiB", n)
	}
}

// TestReaderEndlessBody sends a body without content-length and without
// end: the reader stops just past the body limit.
func TestReaderEndlessBody(t *testing.T) {
	src := &countingReader{r: io.MultiReader(strings.NewReader("SEND\n\n"), endless('x'))}
	var err error
	n := allocated(func() {
		_, err = NewReader(src, Limits{}).Read()
	})
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("got %v, want ErrBodyTooLarge", err)
	}
	if max := DefaultMaxBodyLength + 2*readBufferSize; src.n > max {
		t.Errorf("read %d bytes, want at most %d", src.n, max)
	}
	// Geometric growth, each buffer capped at the limit.
	if max := uint64(2*DefaultMaxBodyLength + 64<<10); n > max {
		t.Errorf("allocated %d bytes, want at most %d", n, max)
	}
}

// TestReaderEndlessLine sends a command line without end.
func TestReaderEndlessLine(t *testing.T) {
	src := &countingReader{r: endless('A')}
	_, err := NewReader(bufio.NewReaderSize(src, 64), Limits{}).Read()
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("got %v, want ErrLineTooLong", err)
	}
	if max := DefaultMaxLineLength + 2*64; src.n > max {
		t.Errorf("read %d bytes, want at most %d", src.n, max)
	}
}

// TestReaderAllocs pins the allocations per frame: the frame with its
// header, the header slice, one string per header value (known names and
// commands are interned) and the body.
func TestReaderAllocs(t *testing.T) {
	in := []byte(send64)
	src := &cycle{data: in}
	r := NewReader(src, Limits{})
	if _, err := r.Read(); err != nil { // warm up the scratch buffers
		t.Fatal(err)
	}
	got := testing.AllocsPerRun(100, func() {
		if _, err := r.Read(); err != nil {
			t.Fatal(err)
		}
	})
	if want := 6.0; got > want { // fh, header slice, 3 values, body
		t.Errorf("%v allocations per frame, want at most %v", got, want)
	}
}

// send64 is a SEND frame as STOMP.js sends it, with a 64-byte body.
var send64 = "SEND\ndestination:/topic/sensors/t1\ncontent-type:text/plain\ncontent-length:64\n\n" +
	strings.Repeat("0123456789abcdef", 4) + "\x00"

// cycle is an io.Reader that repeats data forever.
type cycle struct {
	data []byte
	off  int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.off:])
	c.off = (c.off + n) % len(c.data)
	return n, nil
}

func BenchmarkReadSend64(b *testing.B) {
	r := NewReader(&cycle{data: []byte(send64)}, Limits{})
	b.SetBytes(int64(len(send64)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadSend64GoStomp is the same frame through go-stomp's unbounded
// frame.Reader, for comparison.
func BenchmarkReadSend64GoStomp(b *testing.B) {
	r := frame.NewReader(&cycle{data: []byte(send64)})
	b.SetBytes(int64(len(send64)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
	}
}
