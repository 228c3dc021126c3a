package subprotocol

import (
	"io"
	"testing"
)

// countFlusher counts FlushDeferred calls.
type countFlusher struct{ n int }

func (f *countFlusher) FlushDeferred() { f.n++ }

// holdingInbound is an inbound that reports input held (InputHolder) as
// told.
type holdingInbound struct {
	inbound
	holds bool
}

func (r *holdingInbound) HoldsInput() bool { return r.holds }

// hookingInbound is an inbound that hooks its reads (ReadHooker).
type hookingInbound struct {
	inbound
	hook Flusher
}

func (r *hookingInbound) HookReads(f Flusher) bool { r.hook = f; return true }

// TestStreamBeforeWait: a Stream flushes before a Read the transport
// cannot serve from input already read, and before MayWait, but not while
// the transport holds input; a transport that hooks its own reads gets
// the Flusher instead and Read leaves it to it; SetBeforeWait(nil)
// removes it.
func TestStreamBeforeWait(t *testing.T) {
	f := &countFlusher{}
	tr := &holdingInbound{inbound: inbound{in: [][]byte{[]byte("ab"), []byte("cd")}}}
	st := &Stream{T: tr}
	st.SetBeforeWait(f)
	buf := make([]byte, 8)
	if _, err := st.Read(buf); err != nil || f.n != 1 {
		t.Fatalf("first Read: err %v, %d flushes, want 1", err, f.n)
	}
	tr.holds = true
	st.MayWait()
	if _, err := st.Read(buf); err != nil || f.n != 1 {
		t.Fatalf("Read with input held: err %v, %d flushes, want still 1", err, f.n)
	}
	tr.holds = false
	st.MayWait()
	if f.n != 2 {
		t.Fatalf("MayWait with nothing held: %d flushes, want 2", f.n)
	}
	st.SetBeforeWait(nil)
	st.MayWait()
	if _, err := st.Read(buf); err != io.EOF || f.n != 2 {
		t.Fatalf("after SetBeforeWait(nil): err %v, %d flushes, want EOF and 2", err, f.n)
	}

	hk := &hookingInbound{inbound: inbound{in: [][]byte{[]byte("ab")}}}
	st = &Stream{T: hk}
	f = &countFlusher{}
	st.SetBeforeWait(f)
	if hk.hook != Flusher(f) {
		t.Fatal("the transport did not get the Flusher to hook its reads")
	}
	if _, err := st.Read(buf); err != nil || f.n != 0 {
		t.Fatalf("Read over a hooking transport: err %v, %d flushes by the Stream, want 0", err, f.n)
	}
	st.MayWait() // waiting without a read: the Stream flushes
	if f.n != 1 {
		t.Fatalf("MayWait over a hooking transport: %d flushes, want 1", f.n)
	}
	st.SetBeforeWait(nil)
	if hk.hook != nil {
		t.Error("SetBeforeWait(nil) left the transport's hook")
	}
}
