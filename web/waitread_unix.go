//go:build unix

package web

import (
	"errors"
	"net"
	"syscall"
)

// readWaiter parks a read loop until its socket is readable, on a short
// stack: an idle connection's goroutine then blocks a few frames deep
// instead of inside gorilla's frame reader, and the runtime can shrink
// its stack. It reads nothing: it peeks (MSG_PEEK) so that data already
// in the socket, whose readiness edge a previous read consumed, is seen
// at once.
type readWaiter struct {
	rc    syscall.RawConn
	wait  func(fd uintptr) bool
	check func(fd uintptr) // sets ok
	ok    bool
}

// newReadWaiter returns a waiter for c's socket, or nil when c is not a
// plain TCP connection (TLS buffers decrypted bytes of its own).
func newReadWaiter(c net.Conn) *readWaiter {
	for range 4 {
		if tc, ok := c.(*net.TCPConn); ok {
			rc, err := tc.SyscallConn()
			if err != nil {
				return nil
			}
			w := &readWaiter{rc: rc, wait: readable}
			w.check = func(fd uintptr) { w.ok = readable(fd) }
			return w
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// readable reports whether fd has a byte to read, an error or end of file
// pending: everything but "would block".
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return !errors.Is(err, syscall.EAGAIN)
}

// Wait blocks until the socket is readable, its read deadline passes or it
// is closed; the read that follows reports those.
func (w *readWaiter) Wait() { _ = w.rc.Read(w.wait) }

// Ready reports whether a read would not block (bytes, end of file or an
// error are waiting).
func (w *readWaiter) Ready() bool {
	w.ok = true
	_ = w.rc.Control(w.check)
	return w.ok
}
