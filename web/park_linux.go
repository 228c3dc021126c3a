//go:build linux

package web

import (
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Parking (Linux). An idle WebSocket connection costs little more than its
// structs when no goroutine waits on it: its read loop returns
// (subprotocol.ErrParked) after it registered the socket in one shared epoll
// set (EPOLLONESHOT), and the poller starts a read goroutine again once the
// socket is readable, its read deadline has passed or the connection is
// aborted (the pattern of mailru/easygo and gobwas/ws). The read buffers go
// back to pools meanwhile.
//
// Parking costs a few system calls and a goroutine start per wake-up, so a
// connection parks only after it has waited parkAfter (Config.ParkAfter)
// in wsTransport.WaitRead: busy connections keep their goroutine and pay one
// MSG_PEEK per wait. The poller's sweep, every parkTick, moves connections
// that waited that long out of their wait (a read deadline in the past) and
// into the epoll set, and resumes parked connections whose read deadline
// has passed: deadlines of parked connections are kept to within a tick.

// parkTick is the poller's sweep interval.
const parkTick = 25 * time.Millisecond

// States of a parking slot (parkSlot.state).
const (
	slotRunning int32 = iota // a goroutine reads or handles input
	slotWaiting              // in WaitRead, blocked on the socket
	slotKicking              // the sweep is moving it out of its wait
	slotKicked               // out of its wait: WaitRead parks it
	slotParked               // in the epoll set, no goroutine
)

// parkSlot is one connection's place in the poller. The sweep reads the
// atomics of every slot in turn, so they sit together in chunks rather
// than in the transports.
type parkSlot struct {
	state    atomic.Int32
	waited   atomic.Int32 // poller tick at which the wait began
	deadline atomic.Int64 // read deadline of a parked connection, unix ns; 0: none

	// Guarded by poller.mu.
	t       *wsTransport // nil when free
	fd      int          // the socket, while t is set and not closed
	closed  bool         // aborted: never parked again
	inEpoll bool         // fd is in the epoll set (armed or spent)
}

const slotChunk = 1024

// poller owns the epoll set and the slots. One serves the whole process.
type poller struct {
	epfd int
	tick atomic.Int32

	mu     sync.Mutex
	chunks []*[slotChunk]parkSlot // append-only
	used   atomic.Int32           // slots ever handed out (high-water mark)
	free   []int32
}

var (
	pollOnce sync.Once
	thePoll  *poller // nil when epoll is not available
)

// getPoller returns the process's poller, started on first use, or nil.
func getPoller() *poller {
	pollOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		thePoll = &poller{epfd: fd}
		go thePoll.run()
	})
	return thePoll
}

// slot returns slot id.
func (p *poller) slot(id int32) *parkSlot { return &p.chunks[id/slotChunk][id%slotChunk] }

// register gives t a slot when its socket can be parked: a plain TCP
// connection (possibly counted by Server.Listener), never TLS.
func (p *poller) register(t *wsTransport, c net.Conn) bool {
	if r, ok := c.(*rawTCPConn); ok {
		c = r.Conn
	}
	if cc, ok := c.(*countedConn); ok {
		c = cc.Conn
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	if rc.Control(func(f uintptr) { fd = int(f) }) != nil || fd < 0 {
		return false
	}
	p.mu.Lock()
	var id int32
	if n := len(p.free); n > 0 {
		id = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		id = p.used.Load()
		if int(id) == len(p.chunks)*slotChunk {
			p.chunks = append(p.chunks, new([slotChunk]parkSlot))
		}
		p.used.Store(id + 1)
	}
	s := p.slot(id)
	s.t, s.fd, s.closed, s.inEpoll = t, fd, false, false
	s.state.Store(slotRunning)
	s.deadline.Store(0)
	p.mu.Unlock()
	t.rc, t.ps, t.slotID, t.readFn = rc, s, id, t.readAhead
	return true
}

// release frees t's slot once its connection has ended.
func (p *poller) release(t *wsTransport) {
	p.mu.Lock()
	s := t.ps
	p.closeLocked(s)
	s.t = nil
	p.free = append(p.free, t.slotID)
	p.mu.Unlock()
}

// closeLocked takes s's socket out of the epoll set before it is closed
// and keeps it out. It reports whether the connection was parked: the
// caller then resumes it (its read fails on the closed socket).
func (p *poller) closeLocked(s *parkSlot) (wasParked bool) {
	if s.closed {
		return false
	}
	s.closed = true
	if s.inEpoll {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, s.fd, &syscall.EpollEvent{})
		s.inEpoll = false
	}
	if s.state.CompareAndSwap(slotParked, slotRunning) {
		s.t.srv.parked.Add(-1)
		return true
	}
	return false
}

// abort is wsTransport.Abort's part: the socket leaves the epoll set before
// it is closed, and a parked connection is resumed after.
func (p *poller) abort(t *wsTransport, closeSocket func()) {
	p.mu.Lock()
	resume := p.closeLocked(t.ps)
	p.mu.Unlock()
	closeSocket()
	if resume {
		go t.resumed()
	}
}

// wait blocks t's read loop until its socket is readable, its read deadline
// passes or the sweep kicks it; kicked, it parks t. It reports whether t
// is parked.
func (p *poller) wait(t *wsTransport) (parked bool) {
	s := t.ps
	s.waited.Store(p.tick.Load())
	s.state.Store(slotWaiting)
	_ = t.rc.Read(t.readFn)
	if s.state.CompareAndSwap(slotWaiting, slotRunning) {
		return false // input, an error or the connection's own deadline
	}
	for s.state.Load() != slotKicked {
		runtime.Gosched() // the sweep is between its CAS and its deadline
	}
	// The kick set a deadline in the past: put the connection's back.
	_ = t.ws.UnderlyingConn().SetReadDeadline(t.readDeadline())
	if t.sniffer.holding() { // the read ahead won the race with the kick
		s.state.Store(slotRunning)
		return false
	}
	return p.park(t)
}

// park puts t's socket into the epoll set, armed once, after its read
// buffers went back to their pools. The read loop must return at once
// when it reports true: the poller may resume t before it has.
func (p *poller) park(t *wsTransport) bool {
	s := t.ps
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.closed {
		s.state.Store(slotRunning)
		return false
	}
	t.parkBuffers()
	s.deadline.Store(t.readDL)
	s.state.Store(slotParked)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: t.slotID}
	op := syscall.EPOLL_CTL_MOD
	if !s.inEpoll {
		op = syscall.EPOLL_CTL_ADD
	}
	if err := syscall.EpollCtl(p.epfd, op, s.fd, &ev); err != nil {
		s.state.Store(slotRunning)
		t.restoreBuffers()
		return false
	}
	s.inEpoll = true
	t.srv.parked.Add(1)
	return true
}

// readAhead is the wait's read function (syscall.RawConn.Read): it reads
// what the socket has into t.ahead, which the sniffer hands gorilla before
// it reads the socket again, and reports false while the read would block.
// Reading rather than peeking costs a busy connection no system call more
// than gorilla's own read would: only a copy.
func (t *wsTransport) readAhead(fd uintptr) bool {
	if t.ahead == nil {
		t.ahead = t.bufs.getBytes()
	}
	n, errno := rawRead(fd, *t.ahead) // raw: see rawTCPConn
	if errno == syscall.EAGAIN || errno == syscall.EINTR {
		return false
	}
	var err error
	if errno != 0 {
		err = os.NewSyscallError("read", errno)
	}
	t.sniffer.hold((*t.ahead)[:max(n, 0)], err)
	return true
}

// run is the poller's goroutine: epoll events resume parked connections.
// It waits for the epoll set in the runtime's own poller (an epoll file
// descriptor is readable while it has events), so that no thread blocks in
// epoll_wait; the sweep has a goroutine and a ticker of its own.
func (p *poller) run() {
	go p.sweepLoop()
	events := make([]syscall.EpollEvent, 256)
	drain := func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if err == syscall.EINTR {
				continue
			}
			for i := 0; i < n; i++ {
				p.ready(events[i].Fd)
			}
			if n < len(events) {
				return false // drained: wait for the next events
			}
		}
	}
	if syscall.SetNonblock(p.epfd, true) == nil {
		if rc, err := os.NewFile(uintptr(p.epfd), "duplex-park").SyscallConn(); err == nil {
			_ = rc.Read(drain) // returns only if the file is closed: never
			return
		}
	}
	// Not pollable (not expected): block a thread in epoll_wait.
	_ = syscall.SetNonblock(p.epfd, false)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil && err != syscall.EINTR {
			time.Sleep(parkTick) // do not spin
		}
		for i := 0; i < n; i++ {
			p.ready(events[i].Fd)
		}
	}
}

// sweepLoop runs the sweep every parkTick.
func (p *poller) sweepLoop() {
	tk := time.NewTicker(parkTick)
	for now := range tk.C {
		p.tick.Add(1)
		p.sweep(now)
	}
}

// ready resumes the connection of slot id, if it is still parked (a
// stale event for a slot since reused finds it running).
func (p *poller) ready(id int32) {
	p.mu.Lock()
	var t *wsTransport
	if id >= 0 && id < p.used.Load() {
		s := p.slot(id)
		if s.t != nil && s.state.CompareAndSwap(slotParked, slotRunning) {
			t = s.t
			t.srv.parked.Add(-1)
		}
	}
	p.mu.Unlock()
	if t != nil {
		go t.resumed()
	}
}

// sweep kicks connections that waited parkAfter out of their wait, and
// resumes parked ones whose read deadline has passed.
func (p *poller) sweep(now time.Time) {
	tick := p.tick.Load()
	nowNs := now.UnixNano()
	var kick, wake []int32
	p.mu.Lock()
	chunks := p.chunks
	p.mu.Unlock()
	used := p.used.Load()
	for id := int32(0); id < used; id++ {
		s := &chunks[id/slotChunk][id%slotChunk]
		switch s.state.Load() {
		case slotWaiting:
			if tick-s.waited.Load() >= 1 {
				kick = append(kick, id)
			}
		case slotParked:
			if dl := s.deadline.Load(); dl != 0 && dl <= nowNs {
				wake = append(wake, id)
			}
		}
	}
	for _, id := range kick {
		p.mu.Lock()
		s := p.slot(id)
		t := s.t
		if t == nil || tick-s.waited.Load() < t.parkTicks || !s.state.CompareAndSwap(slotWaiting, slotKicking) {
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		// Safe from any goroutine; the read loop restores its deadline.
		_ = t.ws.UnderlyingConn().SetReadDeadline(now)
		s.state.Store(slotKicked)
	}
	for _, id := range wake {
		p.ready(id)
	}
}

// parkTicksFor converts Config.ParkAfter into sweep ticks.
func parkTicksFor(d time.Duration) int32 {
	return int32(max(1, (d+parkTick-1)/parkTick))
}

func parkingSupported() bool { return getPoller() != nil }
