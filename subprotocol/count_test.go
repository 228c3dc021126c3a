package subprotocol

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// inbound is a recorder whose NextReader returns queued messages.
type inbound struct {
	recorder
	in [][]byte
}

func (r *inbound) NextReader() (bool, io.Reader, error) {
	if len(r.in) == 0 {
		return true, nil, io.EOF
	}
	m := r.in[0]
	r.in = r.in[1:]
	return true, bytes.NewReader(m), nil
}

// TestBatchCountsBytes: Bytes adds up the messages written, not those a
// write failed on.
func TestBatchCountsBytes(t *testing.T) {
	r := &recorder{}
	b := Batch{T: r}
	b.Append([]byte("abc"), false)
	b.Append([]byte("de"), true) // a type change: "abc" goes out alone
	b.Done()
	if b.Bytes != 5 || len(r.msgs) != 2 {
		t.Fatalf("Bytes %d after %d messages, want 5 after 2", b.Bytes, len(r.msgs))
	}
	r.fail = errors.New("broken")
	b.Append([]byte("fgh"), false)
	b.Done()
	if b.Bytes != 5 {
		t.Errorf("Bytes %d after a failed write, want 5", b.Bytes)
	}
}

// TestStreamConsumedBy: N counts what the stream handed on, and ConsumedBy
// takes off what a bufio.Reader still buffers, so frames spanning or
// sharing messages are counted as decoded.
func TestStreamConsumedBy(t *testing.T) {
	st := &Stream{T: &inbound{in: [][]byte{[]byte("one\ntw"), []byte("o\nthree\n")}}}
	br := bufio.NewReaderSize(st, 16)
	for i, want := range []int64{4, 8, 14} {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if got := st.ConsumedBy(br.Buffered()); got != want {
			t.Errorf("after line %d: consumed %d, want %d", i+1, got, want)
		}
	}
	if st.N != 14 {
		t.Errorf("N %d, want 14", st.N)
	}
}
