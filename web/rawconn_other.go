//go:build !linux

package web

import (
	"net"

	"github.com/duplexmq/duplex/subprotocol"
)

// wrapRaw returns c: raw system calls are used on Linux only
// (rawconn_linux.go).
func wrapRaw(c net.Conn) net.Conn { return c }

// hookReads reports false: there is no raw socket to hook (Linux only).
func hookReads(net.Conn, subprotocol.Flusher) bool { return false }
