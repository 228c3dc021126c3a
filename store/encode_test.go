package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current encoder")

// goldenRecords are frozen: their encodings must equal testdata/<name>.golden
// byte for byte. Never edit a golden file to make a test pass; a changed
// on-disk format needs a new record version.
func goldenRecords() []struct {
	name   string
	rec    any
	encode func() []byte
	decode func([]byte) (any, error)
} {
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	msg := Msg{
		ID: 1234567, Topic: "sensors/kitchen/temp", Queue: "", Payload: []byte("21.5"),
		ContentType: "text/plain", ResponseTopic: "replies/1", CorrelationData: []byte{0xde, 0xad},
		PayloadFormat: 1, Props: []Prop{{"unit", "C"}, {"x-empty", ""}}, QoS: 2, Retain: true, Expires: when,
	}
	session := Session{
		ID: "client-1", Protocol: "mqtt5", Expiry: 90 * time.Second, ExpiresAt: when,
		Will:  &Will{Msg: Msg{Topic: "status/client-1", Payload: []byte("offline"), QoS: 1}, Delay: 5 * time.Second},
		State: []byte{0, 1, 0, 2},
	}
	ownedSession := session
	ownedSession.Owner = "alice"
	ownedMsg := msg
	ownedMsg.Owner = "@client:dev-7"
	sub := Sub{Key: "sensors/#", Filter: "sensors/#", Queue: "q", Group: "workers", QoS: 1,
		NoLocal: true, RetainAsPublished: true, RetainHandling: 1, SubID: 300, Durable: true}
	return []struct {
		name   string
		rec    any
		encode func() []byte
		decode func([]byte) (any, error)
	}{
		{"msg_v1", msg, func() []byte { return encodeMsg(&msg) }, func(b []byte) (any, error) { return decodeMsg(b) }},
		{"msg_empty_v1", Msg{}, func() []byte { return encodeMsg(&Msg{}) }, func(b []byte) (any, error) { return decodeMsg(b) }},
		{"session_v1", session, func() []byte { return encodeSession(&session) }, func(b []byte) (any, error) { return decodeSession(b) }},
		{"session_v2", ownedSession, func() []byte { return encodeSession(&ownedSession) }, func(b []byte) (any, error) { return decodeSession(b) }},
		{"msg_v2", ownedMsg, func() []byte { return encodeMsg(&ownedMsg) }, func(b []byte) (any, error) { return decodeMsg(b) }},
		{"sub_v1", sub, func() []byte { return encodeSub(&sub) }, func(b []byte) (any, error) { return decodeSub(b) }},
	}
}

func TestGolden(t *testing.T) {
	for _, g := range goldenRecords() {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join("testdata", g.name+".golden")
			enc := g.encode()
			if *update {
				must(t, os.WriteFile(path, []byte(hexLines(enc)), 0o644))
			}
			text, err := os.ReadFile(path)
			must(t, err)
			want, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
			must(t, err)
			if !bytes.Equal(enc, want) {
				t.Fatalf("encoding changed (on-disk format!):\n got %x\nwant %x\n(run with -update only for a new record version)", enc, want)
			}
			got, err := g.decode(want)
			must(t, err)
			if !reflect.DeepEqual(got, g.rec) {
				t.Fatalf("decoding golden bytes:\n got %+v\nwant %+v", got, g.rec)
			}
		})
	}
}

func hexLines(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}

func TestDecodeTruncated(t *testing.T) {
	for _, g := range goldenRecords() {
		full := g.encode()
		for i := range len(full) {
			if _, err := g.decode(full[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s truncated to %d bytes: err = %v, want ErrCorrupt", g.name, i, err)
			}
		}
		if _, err := g.decode(append(full, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s with a trailing byte: err = %v, want ErrCorrupt", g.name, err)
		}
		for _, v := range []byte{0, recordV2 + 1} {
			bad := bytes.Clone(full)
			bad[0] = v
			if _, err := g.decode(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s with version %d: err = %v, want ErrCorrupt", g.name, v, err)
			}
		}
		if full[0] == recordV1 && g.name != "sub_v1" {
			// A version 1 record relabelled 2 lacks the owner.
			bad := bytes.Clone(full)
			bad[0] = recordV2
			if _, err := g.decode(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s relabelled version 2: err = %v, want ErrCorrupt", g.name, err)
			}
		}
	}
}

func TestDecodeHugeLength(t *testing.T) {
	// Version, ID, then a topic that claims 2^62 bytes.
	b := []byte{recordV1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}
	if _, err := decodeMsg(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
	// A props count far beyond the remaining bytes.
	m := encodeMsg(&Msg{})
	// version, id(0), topic, queue, payload, ctype, rtopic, corr, pformat = 9 bytes; then props count.
	huge := append(bytes.Clone(m[:9]), 0xff, 0xff, 0xff, 0xff, 0x0f)
	huge = append(huge, m[10:]...)
	if _, err := decodeMsg(huge); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("huge props: err = %v", err)
	}
}

func FuzzDecodeMsg(f *testing.F) {
	for _, g := range goldenRecords() {
		f.Add(g.encode())
	}
	f.Add([]byte{})
	f.Add([]byte{recordV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMsg(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// Bounded allocation: every field's bytes come from the input, and
		// each Prop costs at least two input bytes.
		n := len(m.Owner) + len(m.Topic) + len(m.Queue) + len(m.Payload) + len(m.ContentType) +
			len(m.ResponseTopic) + len(m.CorrelationData) + 2*len(m.Props)
		for _, p := range m.Props {
			n += len(p.Key) + len(p.Value)
		}
		if n > len(b) {
			t.Fatalf("decoded %d bytes of fields from %d input bytes", n, len(b))
		}
		// Whatever decodes re-encodes to the same bytes.
		if re := encodeMsg(&m); !bytes.Equal(re, b) {
			// Non-canonical varints may decode; they must at least round-trip.
			m2, err := decodeMsg(re)
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip: %v", err)
			}
		}
		_, _ = decodeSession(b)
		_, _ = decodeSub(b)
	})
}

func TestPayloadLen(t *testing.T) {
	m := Msg{ID: 300, Topic: "a/b", Queue: "q", Payload: make([]byte, 1000), Props: []Prop{{"k", "v"}}}
	if got := payloadLen(encodeMsg(&m)); got != 1000 {
		t.Fatalf("payloadLen = %d, want 1000", got)
	}
	bad := encodeMsg(&m)[:5]
	if got := payloadLen(bad); got != 5 {
		t.Fatalf("payloadLen(truncated) = %d, want its length 5", got)
	}
	m.Owner = "alice"
	if got := payloadLen(encodeMsg(&m)); got != 1000 {
		t.Fatalf("payloadLen(version 2) = %d, want 1000", got)
	}
}
