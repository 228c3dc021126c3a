package web

import (
	"container/list"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/duplexmq/duplex/subprotocol"
)

// maxIdleSources bounds the sources admission remembers without an open
// connection (for their connect-rate limiter). Sources with connections
// are bounded by MaxConnections.
const maxIdleSources = 100_000

// admissionLimits derives the connection cap and the socket cap from the
// open-file limit nofile (0: unknown) and the configured MaxConnections
// (0 or less: derived).
//
// The reserve is the descriptors kept from client sockets, for listeners,
// the store, logs and the runtime: 5% of the limit, at least 32 (a
// process holds a dozen descriptors of its own, which 5% of a small limit
// such as macOS's 256 would not cover). A derived MaxConnections is the
// limit minus the reserve. Server.Listener lets a margin of sockets past
// MaxConnections through (1%, at least 16), so HTTP 503 and the protocols'
// refusals, not a silent close, are what clients see first, but never more
// than the limit minus half the reserve: accept never fails for want of
// descriptors.
func admissionLimits(nofile, maxConns int) (conns, sockets int) {
	reserve := max((nofile*5+99)/100, 32) // 5%, rounded up
	if maxConns <= 0 {
		maxConns = fallbackMaxConnections
		if nofile > 0 {
			maxConns = max(nofile-reserve, 1)
		}
	}
	sockets = maxConns + max(16, maxConns/100)
	if nofile > 0 {
		sockets = max(min(sockets, nofile-reserve/2), 1)
	}
	return maxConns, sockets
}

// refusal is why admission refused a connection.
type refusal uint8

const (
	admitted     refusal = iota
	refusedTotal         // MaxConnections
	refusedPerIP         // MaxConnectionsPerIP
	refusedRate          // ConnectRatePerIP, or too many sources to track
)

func (r refusal) String() string {
	switch r {
	case refusedTotal:
		return "max_connections"
	case refusedPerIP:
		return "max_connections_per_ip"
	case refusedRate:
		return "connect_rate_per_ip"
	}
	return "admitted"
}

// AdmissionStats counts what admission control did: open connections and
// sockets, and refusals by cause since the server started.
type AdmissionStats struct {
	// Connections are the open protocol connections (WebSocket and TCP);
	// MaxConnections is their cap.
	Connections, MaxConnections int
	// Sockets are the open sockets accepted through Server.Listener (HTTP
	// keep-alive ones too); MaxSockets is their cap.
	Sockets, MaxSockets int
	// RefusedTotal, RefusedPerIP and RefusedRate count connections refused
	// for MaxConnections, MaxConnectionsPerIP and ConnectRatePerIP.
	RefusedTotal, RefusedPerIP, RefusedRate uint64
	// RefusedSockets counts sockets Server.Listener closed at once past
	// MaxSockets.
	RefusedSockets uint64
	// TLSHandshakeFailures counts TLS connections whose handshake failed or
	// timed out: TCP ones, and HTTPS ones served by NewHTTPServer.
	TLSHandshakeFailures uint64
	// Sources is the number of source addresses admission tracks.
	Sources int
}

// admission is the connection admission control shared by the WebSocket
// gateway and every TCP listener, keyed by source: an IPv4 address, or an
// IPv6 address's /64 (one subscriber's usual allocation, so an attacker
// cannot pick a fresh address per connection).
type admission struct {
	max, perIP int        // perIP < 0: off
	rate       rate.Limit // 0: off
	burst      int
	socketCap  int
	maxIdle    int              // maxIdleSources; tests lower it
	now        func() time.Time // time.Now; tests replace it
	log        *subprotocol.LogLimiter
	logf       func(msg string, args ...any)

	proxies []netip.Prefix // trusted proxies: exempt from the per-source socket count

	mu      sync.Mutex
	total   int
	sources map[netip.Addr]*source
	pending map[netip.Addr]int // per source: sockets not (yet) protocol connections
	idle    list.List          // *source with n == 0, least recently used at the back

	refused        [refusedRate + 1]atomic.Uint64
	sockets        atomic.Int64
	refusedSockets atomic.Uint64
	tlsFailures    atomic.Uint64
}

// source is one source address's state.
type source struct {
	key  netip.Addr
	n    int           // open connections
	lim  *rate.Limiter // nil when the rate is off
	elem *list.Element // in admission.idle while n == 0
}

func newAdmission(c *Config) *admission {
	a := &admission{
		max:       c.MaxConnections,
		perIP:     c.MaxConnectionsPerIP,
		burst:     c.ConnectBurstPerIP,
		socketCap: c.socketCap,
		maxIdle:   maxIdleSources,
		now:       time.Now,
		log:       &subprotocol.LogLimiter{},
		sources:   make(map[netip.Addr]*source),
		pending:   make(map[netip.Addr]int),
		proxies:   c.TrustedProxies,
		logf:      c.Log.Info,
	}
	if c.ConnectRatePerIP > 0 {
		a.rate = rate.Limit(c.ConnectRatePerIP)
	}
	return a
}

// sourceKey is the admission key of ip: the address itself for IPv4, the
// /64 prefix for IPv6.
func sourceKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// tracking reports whether sources need state: for the per-IP cap or the
// per-IP rate.
func (a *admission) tracking() bool { return a.perIP > 0 || a.rate > 0 }

// admit decides whether a new connection from ip may proceed; on success
// the caller must call release(ip) when it ends.
func (a *admission) admit(ip netip.Addr) refusal {
	now := a.now()
	key := sourceKey(ip)
	a.mu.Lock()
	why := a.admitLocked(key, now)
	a.mu.Unlock()
	if why != admitted {
		a.refused[why].Add(1)
		src := key.String()
		if ok, suppressed := a.log.Allow(src, now); ok {
			a.logf("web: connection refused", "remote", ip.String(), "cause", why.String(), "suppressed", suppressed)
		}
	}
	return why
}

func (a *admission) admitLocked(key netip.Addr, now time.Time) refusal {
	if a.total >= a.max {
		return refusedTotal
	}
	if !a.tracking() {
		a.total++
		return admitted
	}
	a.evictIdle(now, 2) // amortised: keeps the idle list short
	e := a.sources[key]
	if e == nil {
		if a.idle.Len() >= a.maxIdle {
			a.evictIdle(now, a.idle.Len())
			if a.idle.Len() >= a.maxIdle {
				return refusedRate // a flood from too many sources at once
			}
		}
		e = &source{key: key}
		if a.rate > 0 {
			e.lim = rate.NewLimiter(a.rate, a.burst)
		}
		a.sources[key] = e
		e.elem = a.idle.PushFront(e)
	}
	if a.perIP > 0 && e.n >= a.perIP {
		return refusedPerIP
	}
	if e.lim != nil && !e.lim.AllowN(now, 1) {
		if e.elem != nil {
			a.idle.MoveToFront(e.elem)
		}
		return refusedRate
	}
	if e.n == 0 {
		a.idle.Remove(e.elem)
		e.elem = nil
	}
	e.n++
	a.total++
	return admitted
}

// evictIdle drops up to n of the least recently used idle sources whose
// limiter has refilled (they are then no different from a new source); it
// stops at the first that has not.
func (a *admission) evictIdle(now time.Time, n int) {
	for ; n > 0; n-- {
		back := a.idle.Back()
		if back == nil {
			return
		}
		e := back.Value.(*source)
		if e.lim != nil && e.lim.TokensAt(now) < float64(a.burst) {
			return
		}
		a.idle.Remove(back)
		delete(a.sources, e.key)
	}
}

// release ends a connection admit let through.
func (a *admission) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if !a.tracking() {
		return
	}
	e := a.sources[sourceKey(ip)]
	if e == nil || e.n == 0 {
		return
	}
	e.n--
	if e.n == 0 {
		e.elem = a.idle.PushFront(e)
	}
}

// retryAfter is the Retry-After value (seconds) for a refusal.
func (a *admission) retryAfter(why refusal) string {
	if why == refusedRate && a.rate > 0 && a.rate < 1 {
		return strconv.Itoa(min(int(1/float64(a.rate))+1, 3600))
	}
	if why == refusedRate {
		return "1"
	}
	return "5"
}

func (a *admission) stats() AdmissionStats {
	a.mu.Lock()
	total, nsrc := a.total, len(a.sources)
	a.mu.Unlock()
	return AdmissionStats{
		Connections:          total,
		MaxConnections:       a.max,
		Sockets:              int(a.sockets.Load()),
		MaxSockets:           a.socketCap,
		RefusedTotal:         a.refused[refusedTotal].Load(),
		RefusedPerIP:         a.refused[refusedPerIP].Load(),
		RefusedRate:          a.refused[refusedRate].Load(),
		RefusedSockets:       a.refusedSockets.Load(),
		TLSHandshakeFailures: a.tlsFailures.Load(),
		Sources:              nsrc,
	}
}

// AdmissionStats returns the admission counters.
func (s *Server) AdmissionStats() AdmissionStats { return s.adm.stats() }

// Listener wraps ln so that every socket it accepts is counted (HTTP
// keep-alive ones too) and a new socket past MaxConnections plus a small
// margin is closed at once: descriptors never run out, so Accept never
// fails in a loop, and the connections already open keep working. Wrap
// every listener (HTTP, admin, TCP) with it, under tls.NewListener:
//
//	ln = tls.NewListener(gw.Listener(tcpLn), reloader.Config())
//
// All wrapped listeners share one count.
//
// Sockets that are not (yet) a protocol connection (idle sockets, HTTP
// keep-alive ones, a TLS or WebSocket handshake in progress) also count
// per source address against MaxConnectionsPerIP, except from trusted
// proxies: past it a new socket from that address is closed at once, so
// one address cannot hold the server's sockets with connections that
// never send a byte. A socket stops counting there when it becomes a
// WebSocket or TCP protocol connection, which the per-IP connection cap
// then counts (a WebSocket client past it gets HTTP 503).
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &countingListener{Listener: ln, a: s.adm}
}

type countingListener struct {
	net.Listener
	a *admission
}

// Accept returns the next socket under the caps, closing those over them.
func (l *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if int(l.a.sockets.Add(1)) > l.a.socketCap {
			l.a.sockets.Add(-1)
			l.a.refusedSockets.Add(1) // before the close, as below
			_ = c.Close()
			if ok, suppressed := l.a.log.Allow("(sockets)", time.Now()); ok {
				l.a.logf("web: socket closed at once: too many open sockets", "remote", c.RemoteAddr().String(),
					"max_sockets", l.a.socketCap, "suppressed", suppressed)
			}
			continue
		}
		cc := &countedConn{Conn: c, a: l.a}
		if ip := addrIP(c.RemoteAddr()); l.a.perIP > 0 && !l.a.trusted(ip) {
			cc.key = sourceKey(ip)
			if !l.a.addPending(cc.key) {
				// Counted before the close, so a client that sees the
				// close also sees the count.
				l.a.sockets.Add(-1)
				l.a.refused[refusedPerIP].Add(1)
				_ = c.Close()
				if ok, suppressed := l.a.log.Allow(cc.key.String(), time.Now()); ok {
					l.a.logf("web: socket closed at once: too many sockets from one address", "remote", c.RemoteAddr().String(),
						"cause", refusedPerIP.String(), "suppressed", suppressed)
				}
				continue
			}
			cc.pending.Store(true)
		}
		return cc, nil
	}
}

// trusted reports whether ip is a trusted proxy.
func (a *admission) trusted(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range a.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addPending counts a socket from key that is not a protocol connection
// yet, unless key is at MaxConnectionsPerIP of them.
func (a *admission) addPending(key netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending[key] >= a.perIP {
		return false
	}
	a.pending[key]++
	return true
}

func (a *admission) donePending(key netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.pending[key]; n <= 1 {
		delete(a.pending, key)
	} else {
		a.pending[key] = n - 1
	}
}

// countedConn gives its socket back to the counts when closed.
type countedConn struct {
	net.Conn
	a       *admission
	key     netip.Addr  // the source, when counted as pending
	pending atomic.Bool // counted in admission.pending
	closed  atomic.Bool
}

// promote takes the socket out of the per-source count of sockets that
// are not protocol connections: it has become one.
func (c *countedConn) promote() {
	if c.pending.CompareAndSwap(true, false) {
		c.a.donePending(c.key)
	}
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.promote()
		c.a.sockets.Add(-1)
	}
	return c.Conn.Close()
}

// promoteSocket finds Server.Listener's socket under c (a *tls.Conn, the
// frame sniffer) and promotes it; it does nothing for other connections.
func promoteSocket(c net.Conn) {
	for range 4 {
		if cc, ok := c.(*countedConn); ok {
			cc.promote()
			return
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		c = u.NetConn()
	}
}

// NetConn returns the wrapped connection (as tls.Conn's does).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes a TCP connection: net/http uses it to let an
// error response reach the client before the close.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// addrIP is the IP of a net.Addr (TCP or otherwise); invalid when it has
// none (a net.Pipe), which admission counts as one source.
func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
