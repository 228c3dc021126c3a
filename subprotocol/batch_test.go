package subprotocol

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// recorder is a Transport that records written messages and can fail.
type recorder struct {
	msgs      []string
	binary    []bool
	deadlines int
	fail      error
}

func (r *recorder) NextReader() (bool, io.Reader, error) { return false, nil, io.EOF }
func (r *recorder) WriteMessage(binary bool, p []byte) error {
	if r.fail != nil {
		return r.fail
	}
	r.msgs = append(r.msgs, string(p))
	r.binary = append(r.binary, binary)
	return nil
}
func (r *recorder) Ping() error                      { return nil }
func (r *recorder) SetReadDeadline(time.Time) error  { return nil }
func (r *recorder) SetWriteDeadline(time.Time) error { r.deadlines++; return nil }
func (r *recorder) Close(int, string) error          { return nil }
func (r *recorder) Abort()                           {}
func (r *recorder) InterruptWrite(time.Time)         {}
func (r *recorder) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r *recorder) Subprotocol() string              { return "" }
func (r *recorder) Peer() Peer                       { return Peer{} }

// TestBatchCoalescesByType: same-type frames share a message; a type change
// sends what came before on its own; every message has a write deadline.
func TestBatchCoalescesByType(t *testing.T) {
	r := &recorder{}
	b := Batch{T: r, Timeout: time.Second}
	b.Append([]byte("a"), false)
	b.Append([]byte("b"), false)
	b.Added(append(b.Buf(), "\xff"...), true)
	b.Append([]byte("c"), true)
	b.Append([]byte("d"), false)
	b.Done()
	want := []string{"ab", "\xffc", "d"}
	wantBin := []bool{false, true, false}
	if len(r.msgs) != len(want) {
		t.Fatalf("messages %q, want %q", r.msgs, want)
	}
	for i := range want {
		if r.msgs[i] != want[i] || r.binary[i] != wantBin[i] {
			t.Errorf("message %d: %q binary %v, want %q binary %v", i, r.msgs[i], r.binary[i], want[i], wantBin[i])
		}
	}
	if r.deadlines != 3 || b.Flushes != 3 {
		t.Errorf("%d deadlines, %d flushes; want 3 each", r.deadlines, b.Flushes)
	}
	if b.Len() != 0 {
		t.Errorf("Len %d after Done", b.Len())
	}
}

// TestBatchNeverFlushesOnSizeItself: the caller decides when a full batch
// goes out (MQTT encodes under a lock and flushes after releasing it).
func TestBatchNeverFlushesOnSizeItself(t *testing.T) {
	r := &recorder{}
	b := Batch{T: r, Timeout: time.Second}
	big := make([]byte, MaxBatch/2+1)
	b.Append(big, true)
	b.Append(big, true)
	if len(r.msgs) != 0 || !b.Full() {
		t.Fatalf("%d messages written, Full %v: want 0 and true", len(r.msgs), b.Full())
	}
	b.Flush()
	if len(r.msgs) != 1 || len(r.msgs[0]) != 2*len(big) || b.Full() {
		t.Fatalf("after Flush: %d messages, Full %v", len(r.msgs), b.Full())
	}
	b.Done()
}

// TestBatchErrorSticks: after a failed write, later frames are dropped.
func TestBatchErrorSticks(t *testing.T) {
	boom := errors.New("boom")
	r := &recorder{fail: boom}
	b := Batch{T: r, Timeout: time.Second}
	b.Append([]byte("a"), false)
	b.Flush()
	r.fail = nil
	b.Append([]byte("b"), false)
	b.Done()
	if !errors.Is(b.Err, boom) || len(r.msgs) != 0 {
		t.Fatalf("Err %v, %d messages written after the failure", b.Err, len(r.msgs))
	}
}
