//go:build !linux

package web

import (
	"net"
	"syscall"
	"time"
)

// Parking needs epoll (park_linux.go). Elsewhere no connection parks: each
// keeps its read goroutine, blocked in its read.

type poller struct{}

type parkSlot struct{}

func getPoller() *poller { return nil }

func (*poller) register(*wsTransport, net.Conn) bool     { return false }
func (*poller) release(*wsTransport)                     {}
func (*poller) abort(_ *wsTransport, closeSocket func()) { closeSocket() }
func (*poller) wait(*wsTransport) bool                   { return false }

func (*wsTransport) readAhead(uintptr) bool { return true }

var _ syscall.RawConn // the field type in wsTransport

func parkTicksFor(time.Duration) int32 { return 1 }

func parkingSupported() bool { return false }
