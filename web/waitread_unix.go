//go:build unix

package web

import (
	"net"
	"syscall"
)

// readWaiter waits for a socket to be readable on a short stack and reads
// what is there: an idle connection's goroutine then blocks a few frames
// deep instead of inside gorilla's frame reader, so the runtime can shrink
// its stack, and no read buffer is held while it waits.
type readWaiter struct {
	rc   syscall.RawConn
	read func(fd uintptr) bool // reads into a buffer from bufs; false: would block
	bufs *readBuffers
	buf  *[]byte
	n    int
}

// newReadWaiter returns a waiter for c's socket, or nil when c is not a
// plain TCP connection, possibly counted by Server.Listener: never under
// TLS, whose bytes on the socket are not the stream.
func newReadWaiter(c net.Conn) *readWaiter {
	if cc, ok := c.(*countedConn); ok {
		c = cc.Conn
	}
	if tc, ok := c.(*net.TCPConn); ok {
		rc, err := tc.SyscallConn()
		if err != nil {
			return nil
		}
		w := &readWaiter{rc: rc}
		w.read = func(fd uintptr) bool {
			// A buffer only for the read: none is held while waiting.
			buf := w.bufs.getBytes()
			n, err := syscall.Read(int(fd), *buf)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				w.bufs.putBytes(buf)
				return false
			}
			w.buf, w.n = buf, max(n, 0)
			return true
		}
		return w
	}
	return nil
}

// ReadSome waits until the socket is readable and reads into a buffer from
// bufs, which it returns with the byte count. It returns a nil buffer on
// end of file, an error, a passed deadline or a closed socket: the
// connection's next read reports those.
func (w *readWaiter) ReadSome(bufs *readBuffers) (*[]byte, int) {
	w.bufs, w.buf, w.n = bufs, nil, 0
	err := w.rc.Read(w.read)
	buf, n := w.buf, w.n
	w.bufs, w.buf = nil, nil
	if buf != nil && (err != nil || n == 0) {
		bufs.putBytes(buf)
		return nil, 0
	}
	return buf, n
}
