package subprotocol

import (
	"sync"
	"time"
)

// MaxBatch is about the most bytes coalesced into one transport message;
// frames queued together beyond it go out in further messages.
const MaxBatch = 64 << 10

// CloseFlushTimeout bounds writing a protocol's final frame when a session
// closes.
const CloseFlushTimeout = time.Second

// batchPool shares encode buffers between connections: an idle connection
// holds none.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Batch coalesces a write pass's encoded frames into as few transport
// messages as it can: one message per run of frames of the same type
// (WebSocket text or binary), each written under a write deadline. Its
// buffer comes from a pool shared by all connections and goes back on
// Done. The first write error sticks in Err, and later frames are dropped.
//
// Batch never flushes on size by itself, so a caller may encode while
// holding a lock and flush after releasing it: it checks Full and calls
// Flush. A Batch is used by one writer at a time.
type Batch struct {
	T       Transport
	Timeout time.Duration // write deadline for each message
	Err     error
	Flushes int // messages written
	// Bytes counts the bytes of the messages written without error; the
	// protocol hands them to Session.AddBytesOut and resets it.
	Bytes int

	buf    *[]byte
	binary bool // the type of the frames in buf
}

// Buf returns the buffer to append one frame to; hand the result to Added.
func (b *Batch) Buf() []byte {
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
	return *b.buf
}

// Added records dst, the buffer from Buf with one frame of type binary
// appended. When the type differs from the frames before it, those go out
// first in a message of their own.
func (b *Batch) Added(dst []byte, binary bool) {
	start := len(*b.buf)
	*b.buf = dst
	if binary != b.binary && start > 0 {
		frame := append([]byte(nil), dst[start:]...) // rare: a type change
		*b.buf = dst[:start]
		b.Flush()
		*b.buf = append(*b.buf, frame...)
	}
	b.binary = binary
}

// Append adds one encoded frame.
func (b *Batch) Append(frame []byte, binary bool) { b.Added(append(b.Buf(), frame...), binary) }

// Len is the number of bytes waiting.
func (b *Batch) Len() int {
	if b.buf == nil {
		return 0
	}
	return len(*b.buf)
}

// Full reports MaxBatch bytes or more waiting.
func (b *Batch) Full() bool { return b.Len() >= MaxBatch }

// Flush writes what is waiting as one message under the write deadline.
func (b *Batch) Flush() {
	if b.buf == nil {
		return
	}
	if b.Err == nil && len(*b.buf) > 0 {
		_ = b.T.SetWriteDeadline(time.Now().Add(b.Timeout))
		b.Err = b.T.WriteMessage(b.binary, *b.buf)
		b.Flushes++
		if b.Err == nil {
			b.Bytes += len(*b.buf)
		}
	}
	*b.buf = (*b.buf)[:0]
	b.binary = false
}

// Done flushes and gives the buffer back to the pool (unless a huge frame
// made it too big to keep).
func (b *Batch) Done() {
	if b.buf == nil {
		return
	}
	b.Flush()
	if cap(*b.buf) <= 4*MaxBatch {
		batchPool.Put(b.buf)
	}
	b.buf = nil
}
