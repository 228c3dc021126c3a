//go:build unix

package web

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// WriteReady reports that the socket under the WebSocket would take a
// small message now (subprotocol.WriteReadier): poll(2) says POLLOUT, that
// is, at least a third of its send buffer is free, far more than the
// subprotocol.InlineMax bytes an inline writer writes. Over TLS the
// socket is the one under the TLS connection. Write side only.
func (t *wsTransport) WriteReady() bool {
	rc := rawSocket(t.ws.UnderlyingConn())
	if rc == nil {
		return false
	}
	ready := false
	err := rc.Control(func(fd uintptr) {
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds[:], 0)
		ready = err == nil && n == 1 && fds[0].Revents&(unix.POLLOUT|unix.POLLERR|unix.POLLHUP) == unix.POLLOUT
	})
	return err == nil && ready
}

// rawSocket finds the TCP socket under c (the frame sniffer, a counted
// connection, TLS), or nil.
func rawSocket(c net.Conn) syscall.RawConn {
	for range 4 {
		if tc, ok := c.(*net.TCPConn); ok {
			rc, err := tc.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}
