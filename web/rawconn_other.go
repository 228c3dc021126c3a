//go:build !linux

package web

import "net"

// wrapRaw returns c: raw system calls are used on Linux only
// (rawconn_linux.go).
func wrapRaw(c net.Conn) net.Conn { return c }
