package stomp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/go-stomp/stomp/v3/frame"
)

// fuzzSeeds are frames as real clients and servers send them.
var fuzzSeeds = []string{
	// STOMP.js CONNECT, with heart-beat negotiation.
	"CONNECT\naccept-version:1.2,1.1,1.0\nheart-beat:10000,10000\nhost:localhost\nlogin:guest\npasscode:guest\n\n\x00",
	"STOMP\r\naccept-version:1.2\r\nhost:/\r\n\r\n\x00",
	"CONNECTED\nversion:1.2\nheart-beat:0,0\nserver:duplex/0.1\nsession:s-1\n\n\x00",
	// SEND with content-length and a binary body.
	"SEND\ndestination:/topic/sensors/t1\ncontent-type:application/octet-stream\ncontent-length:4\n\n\x00\x01\x00\x02\x00",
	"SEND\ndestination:/queue/a\nreceipt:77\n\nhello\x00",
	"SUBSCRIBE\nid:sub-0\ndestination:/topic/sensors.*\nack:client-individual\n\n\x00",
	"UNSUBSCRIBE\nid:sub-0\n\n\x00",
	// MESSAGE with escaped headers.
	"MESSAGE\nsubscription:sub-0\nmessage-id:42\ndestination:/topic/a\nx\\cy:line1\\nline2\\\\\\r\n\nbody\x00",
	"ACK\nid:42\ntransaction:tx1\n\n\x00",
	"RECEIPT\nreceipt-id:77\n\n\x00",
	"ERROR\nmessage:malformed frame\ncontent-length:6\n\ndetail\x00",
	"DISCONNECT\nreceipt:99\n\n\x00\n",
	// Heart-beat EOLs around frames.
	"\n\r\n\nSEND\ndestination:/q\n\nx\x00\r\n\n",
}

func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	// The table fixtures too, but not the multi-KiB ones: minimizing a new
	// input grown from those takes the fuzzer minutes.
	for _, tc := range readCases {
		if len(tc.in) <= 512 {
			f.Add([]byte(tc.in))
		}
	}
	for _, tc := range readErrorCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readAll(newReader12(data, Limits{}))
		if !knownError(err) {
			t.Fatalf("unexpected error type: %v", err)
		}
		for _, fm := range got {
			if fm != nil {
				checkRoundTrip(t, fm)
			}
		}
		checkGoStomp(t, data, got)
		checkChunking(t, data, got, err)
		checkSmallLimits(t, data, got, err)
		checkFrameLimit(t, data, got, err)
	})
}

func newReader12(data []byte, l Limits) *Reader {
	r := NewReader(bytes.NewReader(data), l)
	r.SetVersion("1.2")
	return r
}

// knownError reports whether err is one of the Reader's errors.
func knownError(err error) bool {
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, ErrLineTooLong, ErrTooManyHeaders,
		ErrHeadersTooLarge, ErrBodyTooLarge, ErrFrameTooLarge, ErrBadContentLength, ErrMalformedCommand,
		ErrMalformedHeader, ErrBadEscape, ErrMissingNUL} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// bufio16 is data one byte per Read behind a 16-byte bufio.Reader, so that
// lines and bodies span many buffers.
func bufio16(data []byte) io.Reader {
	return bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16)
}

// checkChunking decodes data from bufio16 and requires the same items and
// error as from one buffer.
func checkChunking(t *testing.T, data []byte, want []*frame.Frame, wantErr error) {
	t.Helper()
	r := NewReader(bufio16(data), Limits{})
	r.SetVersion("1.2")
	got, err := readAll(r)
	if len(got) != len(want) || err.Error() != wantErr.Error() {
		t.Fatalf("chunked: %d items, %v; whole: %d items, %v", len(got), err, len(want), wantErr)
	}
	for i := range got {
		if d := sameFrame(got[i], want[i]); d != "" {
			t.Fatalf("item %d: chunked vs whole: %s", i, d)
		}
	}
}

// checkRoundTrip encodes f and decodes it again. The limits are doubled for
// the second decode because a raw colon in a value, which the Reader
// accepts, comes back escaped as two bytes.
func checkRoundTrip(t *testing.T, f *frame.Frame) {
	t.Helper()
	enc := AppendFrame(nil, f, "1.2")
	r := newReader12(enc, Limits{MaxLineLength: 2 * DefaultMaxLineLength, MaxHeaderBytes: 2 * DefaultMaxHeaderBytes})
	g, err := r.Read()
	if err != nil {
		t.Fatalf("decoding %q: %v", enc, err)
	}
	if d := sameFrame(g, f); d != "" {
		t.Fatalf("round trip of %q: %s", enc, d)
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("round trip of %q: left over input, %v", enc, err)
	}
}

// checkGoStomp reads data with go-stomp's frame.Reader and requires it to
// return every frame and heart-beat that ours accepted, identically. It stops
// at the first frame go-stomp is known to treat differently, as from there on
// it reads the stream differently too:
//   - go-stomp rejects commands it does not know; we leave that to the state
//     machine;
//   - go-stomp unescapes CONNECT, STOMP and CONNECTED headers, against STOMP
//     1.2 §Value Encoding, so those frames are compared only when no header
//     has a backslash.
//
// Our stricter checks (bare CR, undefined escapes, limits, EOF inside a frame)
// end our stream with an error, so they never reach the comparison.
func checkGoStomp(t *testing.T, data []byte, ours []*frame.Frame) {
	t.Helper()
	gs := frame.NewReader(bytes.NewReader(data))
	for i, want := range ours {
		if want != nil && goStompDiffers(want) {
			return
		}
		g, err := gs.Read()
		if err != nil {
			t.Fatalf("item %d: go-stomp: %v; ours: %v", i, err, want)
		}
		if d := sameFrame(g, want); d != "" {
			t.Fatalf("item %d: go-stomp vs ours: %s", i, d)
		}
	}
}

func goStompDiffers(f *frame.Frame) bool {
	switch f.Command {
	case frame.CONNECT, frame.STOMP, frame.CONNECTED:
		for i := range f.Header.Len() {
			k, v := f.Header.GetAt(i)
			if strings.Contains(k, `\`) || strings.Contains(v, `\`) {
				return true
			}
		}
		return false
	case frame.SEND, frame.SUBSCRIBE, frame.UNSUBSCRIBE, frame.ACK, frame.NACK,
		frame.BEGIN, frame.COMMIT, frame.ABORT, frame.DISCONNECT,
		frame.MESSAGE, frame.RECEIPT, frame.ERROR:
		return false
	}
	return true
}

// checkSmallLimits decodes data again with smallLimits limits. Until a limit trips
// it must see what the default reader saw, and every frame it accepts is
// within the limits.
func checkSmallLimits(t *testing.T, data []byte, want []*frame.Frame, wantErr error) {
	t.Helper()
	l := Limits{MaxLineLength: 24, MaxHeaders: 3, MaxHeaderBytes: 48, MaxBodyLength: 16}
	r := NewReader(bufio16(data), l)
	r.SetVersion("1.2")
	got, err := readAll(r)
	if len(got) > len(want) {
		t.Fatalf("smallLimits limits: %d items, default limits: %d", len(got), len(want))
	}
	for i, f := range got {
		if d := sameFrame(f, want[i]); d != "" {
			t.Fatalf("item %d: smallLimits vs default limits: %s", i, d)
		}
		if f != nil && (len(f.Body) > l.MaxBodyLength || f.Header.Len() > l.MaxHeaders) {
			t.Fatalf("item %d exceeds the limits: %d headers, %d-byte body", i, f.Header.Len(), len(f.Body))
		}
	}
	if !IsSizeError(err) && (len(got) != len(want) || err.Error() != wantErr.Error()) {
		t.Fatalf("smallLimits limits: %d items, %v; default limits: %d items, %v", len(got), err, len(want), wantErr)
	}
}

// checkFrameLimit decodes data with MaxFrameLength (the limit before
// login): the frames read are a prefix of those read without it, each
// within the limit (command, header lines and body, EOLs excluded), and
// any other outcome is a size error.
func checkFrameLimit(t *testing.T, data []byte, want []*frame.Frame, wantErr error) {
	t.Helper()
	const limit = 40
	r := NewReader(bufio16(data), Limits{MaxFrameLength: limit})
	r.SetVersion("1.2")
	got, err := readAll(r)
	if len(got) > len(want) {
		t.Fatalf("frame limit: %d items, default limits: %d", len(got), len(want))
	}
	for i, f := range got {
		if d := sameFrame(f, want[i]); d != "" {
			t.Fatalf("item %d: frame limit vs default limits: %s", i, d)
		}
		if f == nil {
			continue
		}
		n := len(f.Command) + len(f.Body)
		for j := range f.Header.Len() {
			k, v := f.Header.GetAt(j)
			n += len(k) + 1 + len(v)
		}
		// Escapes make the wire form longer than the decoded one, never
		// shorter, so the decoded size is within the limit too.
		if n > limit {
			t.Fatalf("item %d is %d bytes, over the %d-byte frame limit", i, n, limit)
		}
	}
	if !IsSizeError(err) && (len(got) != len(want) || err.Error() != wantErr.Error()) {
		t.Fatalf("frame limit: %d items, %v; default limits: %d items, %v", len(got), err, len(want), wantErr)
	}
}
