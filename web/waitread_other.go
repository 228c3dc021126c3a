//go:build !unix

package web

import "net"

// readWaiter is not available where sockets cannot be read raw: WaitRead
// then returns at once.
type readWaiter struct{}

func newReadWaiter(net.Conn) *readWaiter { return nil }

func (*readWaiter) ReadSome(*readBuffers) (*[]byte, int) { return nil, 0 }
