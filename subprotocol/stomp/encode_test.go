package stomp

import (
	"io"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

var encodeCases = []struct {
	name    string
	version string
	f       *frame.Frame
	want    string
}{{
	name:    "heart-beat",
	version: "1.2",
	f:       nil,
	want:    "\n",
}, {
	name:    "no headers, no body",
	version: "1.2",
	f:       &frame.Frame{Command: "DISCONNECT"},
	want:    "DISCONNECT\n\n\x00",
}, {
	// The body is written as is, NULs included; content-length is the
	// caller's.
	name:    "body with NULs",
	version: "1.2",
	f:       mkFrame("MESSAGE", "a\x00b", "content-length", "3"),
	want:    "MESSAGE\ncontent-length:3\n\na\x00b\x00",
}, {
	// Repeated headers keep their order.
	name:    "repeated headers",
	version: "1.2",
	f:       mkFrame("MESSAGE", "", "foo", "1", "foo", "2"),
	want:    "MESSAGE\nfoo:1\nfoo:2\n\n\x00",
}, {
	// §Value Encoding in 1.2: backslash, LF, colon and CR, in names and
	// values.
	name:    "escapes 1.2",
	version: "1.2",
	f:       mkFrame("MESSAGE", "", "k:x", "a\nb\\c\rd:e"),
	want:    "MESSAGE\nk\\cx:a\\nb\\\\c\\rd\\ce\n\n\x00",
}, {
	// An unknown version string escapes as 1.2.
	name:    "escapes unknown version",
	version: "",
	f:       mkFrame("MESSAGE", "", "k", "\r"),
	want:    "MESSAGE\nk:\\r\n\n\x00",
}, {
	// 1.1 has no \r escape.
	name:    "escapes 1.1",
	version: "1.1",
	f:       mkFrame("MESSAGE", "", "k:x", "a\nb\\c\rd:e"),
	want:    "MESSAGE\nk\\cx:a\\nb\\\\c\rd\\ce\n\n\x00",
}, {
	name:    "no escapes 1.0",
	version: "1.0",
	f:       mkFrame("MESSAGE", "", "k", `a\b:c`),
	want:    "MESSAGE\nk:a\\b:c\n\n\x00",
}, {
	// CONNECTED does not escape, in any version.
	name:    "CONNECTED raw",
	version: "1.2",
	f:       mkFrame("CONNECTED", "", "version", "1.2", "server", `duplex\1:0`),
	want:    "CONNECTED\nversion:1.2\nserver:duplex\\1:0\n\n\x00",
}, {
	name:    "CONNECT raw",
	version: "1.1",
	f:       mkFrame("CONNECT", "", "login", `dom\user`),
	want:    "CONNECT\nlogin:dom\\user\n\n\x00",
}, {
	name:    "nil header",
	version: "1.2",
	f:       &frame.Frame{Command: "RECEIPT", Body: []byte("x")},
	want:    "RECEIPT\n\nx\x00",
}}

func TestAppendFrame(t *testing.T) {
	for _, tc := range encodeCases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prev\x00")
			got := AppendFrame(prefix, tc.f, tc.version)
			if !strings.HasPrefix(string(got), "prev\x00") {
				t.Fatalf("dst prefix lost: %q", got)
			}
			if got := string(got[len(prefix):]); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestAppendFrameRoundTrip decodes each encoding with the same version and
// gets the frame back.
func TestAppendFrameRoundTrip(t *testing.T) {
	for _, tc := range encodeCases {
		if tc.f == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.want), Limits{})
			r.SetVersion(tc.version)
			got, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			want := tc.f
			if want.Header == nil {
				want = &frame.Frame{Command: want.Command, Header: frame.NewHeader(), Body: want.Body}
			}
			if d := sameFrame(got, want); d != "" {
				t.Error(d)
			}
		})
	}
}

// TestAppendFrameCoalesce writes several frames into one buffer, as the
// write loop does, and reads them back in order.
func TestAppendFrameCoalesce(t *testing.T) {
	frames := []*frame.Frame{
		mkFrame("MESSAGE", "one", "subscription", "0", "destination", "/topic/a"),
		nil,
		mkFrame("RECEIPT", "", "receipt-id", "77"),
		mkFrame("MESSAGE", "t\x00o", "content-length", "3"),
	}
	var buf []byte
	for _, f := range frames {
		buf = AppendFrame(buf, f, "1.2")
	}
	got, err := readAll(NewReader(strings.NewReader(string(buf)), Limits{}))
	if err != io.EOF || len(got) != len(frames) {
		t.Fatalf("got %d items, %v; want %d, io.EOF", len(got), err, len(frames))
	}
	for i := range frames {
		if d := sameFrame(got[i], frames[i]); d != "" {
			t.Errorf("frame %d: %s", i, d)
		}
	}
}

func TestAppendFrameAllocs(t *testing.T) {
	f := mkFrame("MESSAGE", strings.Repeat("x", 64),
		"subscription", "sub-0", "message-id", "42", "destination", "/topic/a:b", "k\\", "v\n")
	dst := make([]byte, 0, 512)
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		if n := testing.AllocsPerRun(100, func() { dst = AppendFrame(dst[:0], f, v) }); n != 0 {
			t.Errorf("version %s: %v allocations, want 0", v, n)
		}
	}
}

func BenchmarkAppendMessage64(b *testing.B) {
	f := mkFrame("MESSAGE", strings.Repeat("x", 64), "subscription", "sub-0", "message-id", "42",
		"destination", "/topic/sensors/t1", "content-type", "text/plain", "content-length", "64")
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendFrame(dst[:0], f, "1.2")
	}
	b.SetBytes(int64(len(dst)))
}
