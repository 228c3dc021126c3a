//go:build linux

package web

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/duplexmq/duplex/subprotocol"
)

// rawTCPConn reads and writes a plain TCP socket with raw system calls
// (read(2) and write(2) without the runtime's entersyscall), still waiting
// in the runtime's poller, with the connection's deadlines, when the
// socket has nothing to read or no room.
//
// Why: Go sockets are non-blocking, so these calls never block, but every
// syscall.Read and syscall.Write tells the scheduler it enters a system
// call. When every P was idle (a broker between messages at a few thousand
// a second), sysmon sleeps deeply and that notice wakes it with a futex,
// one wake-up per read and per write. At 5,000 messages a second that was
// a quarter to a third of the broker's CPU per delivery (issue 10: setting
// GODEBUG=schedtrace, which keeps sysmon awake, took it off); a raw call
// costs what the kernel does and nothing more. Mosquitto's epoll loop pays
// the same kernel work and no scheduler.
//
// Everything but Read and Write (deadlines, addresses, Close, the
// admission count) is the wrapped connection's. One goroutine reads and
// one writes at a time (gorilla serialises its writers); their state is
// kept here so that the callbacks handed to syscall.RawConn are made once
// and nothing is allocated per call.
type rawTCPConn struct {
	net.Conn // the accepted connection: *net.TCPConn or a countedConn around one
	rc       syscall.RawConn

	rb      []byte // Read's buffer while in rc.Read
	rn      int
	rerr    syscall.Errno
	readFn  func(uintptr) bool
	wmu     sync.Mutex // Write and the tail's flush
	wb      []byte     // Write's bytes while in rc.Write
	wn      int
	werr    syscall.Errno
	try     bool // writeAll returns at a full socket (full) instead of waiting
	full    bool
	writeFn func(uintptr) bool
	// A small write the socket had no room for, whole or in part: Write
	// took it (tailMax bytes at most) and returned, and flushTail writes it
	// on its own goroutine. While one is pending, canWrite is false, so no
	// publisher starts an inline write that would wait behind it.
	tail        []byte
	tailPending atomic.Bool
	failed      error // flushTail's error, returned by every Write after
	// beforeRead is flushed before every read(2) (hookReads); read loop
	// only.
	beforeRead subprotocol.Flusher
}

// tailMax bounds what Write takes over when the socket is full: one
// inline pass (subprotocol.InlineMax) framed, with room to spare.
const tailMax = 4096

// wrapRaw returns c reading and writing through raw system calls when it
// is a plain TCP connection (possibly counted by Server.Listener), and c
// itself otherwise (TLS, other kinds).
func wrapRaw(c net.Conn) net.Conn {
	inner := c
	if cc, ok := c.(*countedConn); ok {
		inner = cc.Conn
	}
	tc, ok := inner.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawTCPConn{Conn: c, rc: rc}
	r.readFn, r.writeFn = r.readOnce, r.writeAll
	return r
}

func (c *rawTCPConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if c.beforeRead != nil {
		c.beforeRead.FlushDeferred()
	}
	c.rb = b
	err := c.rc.Read(c.readFn) // deadline and close errors come from here
	c.rb = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case c.rerr != 0:
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

// hookReads makes f flush before every read(2) of the raw TCP socket under
// c (a frame sniffer or a counted connection may wrap it) and reports
// whether there is one; f nil removes it. Call it from the goroutine that
// reads c.
func hookReads(c net.Conn, f subprotocol.Flusher) bool {
	if r, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = r.NetConn()
	}
	if rc, ok := c.(*rawTCPConn); ok {
		rc.beforeRead = f
		return true
	}
	return false
}

// readOnce is one read(2) into c.rb; false while it would block.
func (c *rawTCPConn) readOnce(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rb[0])), uintptr(len(c.rb)))
		switch e {
		case 0:
			c.rn, c.rerr = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			c.rn, c.rerr = 0, e
			return true
		}
	}
}

// Write writes b. A write of at most tailMax bytes that finds the socket
// full does not wait: what is left goes to flushTail, which waits for room
// on its own goroutine, and Write reports all of b written. So a publisher
// writing a small delivery inline (subprotocol.Writer.FlushInline) never
// waits on its subscriber's socket, without asking the socket first
// (poll(2) before every inline write cost as much as the write). The next
// Write waits for the tail, so bytes keep their order.
func (c *rawTCPConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.failed != nil {
		return 0, c.failed
	}
	if c.tailPending.Load() { // before flushTail got wmu: write it here
		if err := c.writeTail(); err != nil {
			return 0, err
		}
	}
	// One try without waiting for a small write; a full socket leaves the
	// rest to flushTail.
	c.try, c.full = len(b) <= tailMax, false
	c.wb, c.wn, c.werr = b, 0, 0
	n, err := c.write()
	c.try = false
	if err != nil || !c.full {
		return n, err
	}
	c.tail = append(c.tail[:0], b[n:]...)
	c.tailPending.Store(true)
	go c.flushTail()
	return len(b), nil
}

// write writes the rest of c.wb, waiting for room in the runtime's poller
// within the write deadline; c.wmu is held.
func (c *rawTCPConn) write() (int, error) {
	err := c.rc.Write(c.writeFn)
	n := c.wn
	c.wb = nil
	if err == nil && c.werr != 0 {
		err = os.NewSyscallError("write", c.werr)
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// flushTail writes the tail Write left, within the write deadline the
// connection had, unless a Write got there first.
func (c *rawTCPConn) flushTail() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.tailPending.Load() {
		_ = c.writeTail()
	}
}

// writeTail writes the pending tail; c.wmu is held. A failure closes the
// connection: its reader ends it, and every later Write reports the error.
func (c *rawTCPConn) writeTail() error {
	c.wb, c.wn, c.werr = c.tail, 0, 0
	_, err := c.write()
	c.tail = c.tail[:0]
	c.tailPending.Store(false)
	if err != nil {
		c.failed = err
		_ = c.Conn.Close()
	}
	return err
}

// drainTail writes a pending tail before a graceful close, within d, so
// that what was written before the close (a RECEIPT, an ERROR) still goes
// out ahead of the FIN, as a blocking write would have made it
// (tcpTransport.Close). A tail flushTail is writing meanwhile gets the same
// deadline.
func (c *rawTCPConn) drainTail(d time.Duration) {
	if !c.tailPending.Load() {
		return
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(d))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.tailPending.Load() {
		_ = c.writeTail()
	}
}

// canWrite reports that a small Write now will not wait behind a tail
// (WriteReady).
func (c *rawTCPConn) canWrite() bool { return !c.tailPending.Load() }

// writeAll writes what is left of c.wb; false while the socket is full,
// unless c.try: then it reports full.
func (c *rawTCPConn) writeAll(fd uintptr) bool {
	for c.wn < len(c.wb) {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wb[c.wn])), uintptr(len(c.wb)-c.wn))
		switch e {
		case 0:
			c.wn += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			c.full = c.try
			return c.try
		default:
			c.werr = e
			return true
		}
	}
	return true
}

func (c *rawTCPConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// NetConn returns the wrapped connection.
func (c *rawTCPConn) NetConn() net.Conn { return c.Conn }

// rawConn is the socket's syscall.RawConn (WriteReady, parking).
func (c *rawTCPConn) rawConn() syscall.RawConn { return c.rc }

// CloseWrite half-closes the connection, as the wrapped one would.
func (c *rawTCPConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rawRead is one read(2) without entersyscall (see rawTCPConn), for
// callbacks that already run inside syscall.RawConn.Read.
func rawRead(fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(n), 0
}

// pollOut reports whether fd has room to write now: ppoll(2) with a zero
// timeout, raw as above.
func pollOut(fd uintptr) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	var ts unix.Timespec
	n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return e == 0 && n == 1 && fds[0].Revents&(unix.POLLOUT|unix.POLLERR|unix.POLLHUP) == unix.POLLOUT
}
