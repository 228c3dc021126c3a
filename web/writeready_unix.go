//go:build unix

package web

import (
	"net"
	"syscall"
)

// WriteReady reports that the socket under the WebSocket would take a
// small message now (subprotocol.WriteReadier). A plain TCP socket
// (rawTCPConn) takes it whatever its room, without waiting: it is ready
// unless a tail it could not take is still being written. Under TLS, the
// TCP socket is asked: poll(2) says POLLOUT, that is, at least a third of
// its send buffer is free, far more than the subprotocol.InlineMax bytes an
// inline writer writes. Write side only.
func (t *wsTransport) WriteReady() bool {
	if r, ok := t.ws.UnderlyingConn().(interface{ NetConn() net.Conn }); ok {
		if w, ok := r.NetConn().(interface{ canWrite() bool }); ok { // rawTCPConn
			return w.canWrite()
		}
	}
	rc := rawSocket(t.ws.UnderlyingConn())
	if rc == nil {
		return false
	}
	ready := false
	err := rc.Control(func(fd uintptr) { ready = pollOut(fd) })
	return err == nil && ready
}

// rawSocket finds the TCP socket under c (the frame sniffer, a counted
// connection, TLS), or nil.
func rawSocket(c net.Conn) syscall.RawConn {
	for range 4 {
		if r, ok := c.(interface{ rawConn() syscall.RawConn }); ok { // rawTCPConn
			return r.rawConn()
		}
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
