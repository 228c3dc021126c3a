package mqtt

import (
	"bytes"
	"errors"
	"io"
	"runtime/metrics"
	"testing"
)

// fuzzMaxPacketSize keeps fuzzed packets small, so that an allocation that
// follows a declared length rather than the limit stands out.
const fuzzMaxPacketSize = 4096

// fuzzAllocLimit bounds the bytes allocated while decoding one packet:
// linear in the packet limit (strings, slices of user properties or
// subscriptions grow by doubling), never in a declared length.
const fuzzAllocLimit = 64*fuzzMaxPacketSize + 64<<10

// FuzzReadPacket feeds arbitrary bytes to ReadPacket under a negotiated
// version (0, 3, 4 or 5): it must not panic, fail only with an Error or an
// I/O error, allocate within fuzzAllocLimit per packet, and every packet it
// accepts must survive AppendPacket and decode to the same fields
// (ARCHITECTURE.md §3.10).
func FuzzReadPacket(f *testing.F) {
	versions := []byte{0, Version31, Version311, Version5}
	index := map[byte]byte{0: 0, Version31: 1, Version311: 2, Version5: 3}
	for _, fx := range fixtures {
		f.Add(index[fx.readVersion()], fx.raw)
	}
	// A CONNECT followed by packets of its version.
	f.Add(byte(0), append(append([]byte{}, fixtures[4].raw...), fixtureStream()...))
	f.Add(byte(2), fixtureStream())
	f.Add(byte(3), b(0x30, 0xFF, 0xFF, 0xFF, 0x7F))

	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	allocated := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	f.Fuzz(func(t *testing.T, vi byte, data []byte) {
		v := versions[int(vi)%len(versions)]
		r := NewReader(bytes.NewReader(data))
		r.MaxPacketSize = fuzzMaxPacketSize
		for range 16 {
			before := allocated()
			p, err := r.ReadPacket(v)
			if d := allocated() - before; d > fuzzAllocLimit {
				t.Fatalf("ReadPacket allocated %d bytes", d)
			}
			if err != nil {
				var e Error
				if !errors.As(err, &e) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				if _, ok := p.(*Connect); p != nil && !ok {
					t.Fatalf("packet %#v with error %v", p, err)
				}
				return
			}
			readV := v
			if c, ok := p.(*Connect); ok {
				v = c.ProtocolLevel
			}
			roundTrip(t, p, readV, v)
		}
	})
}

// roundTrip encodes p for version v and checks that it decodes, with
// readV as ReadPacket's version, to equal fields in exactly PacketSize bytes.
func roundTrip(t *testing.T, p Packet, readV, v byte) {
	raw := AppendPacket(nil, p, v)
	if n := PacketSize(p, v); n != len(raw) {
		t.Fatalf("PacketSize %d, AppendPacket wrote %d bytes for %#v", n, len(raw), p)
	}
	r := NewReader(bytes.NewReader(raw))
	r.MaxPacketSize = len(raw)
	q, err := r.ReadPacket(readV)
	if err != nil {
		t.Fatalf("re-reading % x: %v\npacket %#v", raw, err, p)
	}
	if !equalPackets(p, q) {
		t.Fatalf("round trip changed the packet:\n got %#v\nwant %#v", q, p)
	}
	if _, err := r.ReadPacket(readV); err != io.EOF {
		t.Fatalf("bytes left after re-reading: %v", err)
	}
}

// TestRoundTripFixtures runs the fuzz property over the fixtures.
func TestRoundTripFixtures(t *testing.T) {
	for _, f := range fixtures {
		roundTrip(t, f.p, f.readVersion(), f.v)
	}
}
