//go:build !unix

package web

import "net"

// readWaiter is a no-op where sockets cannot be peeked.
type readWaiter struct{}

func newReadWaiter(net.Conn) *readWaiter { return nil }

func (*readWaiter) Wait() {}

func (*readWaiter) Ready() bool { return true }
