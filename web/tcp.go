package web

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/duplexmq/duplex/subprotocol"
)

// ErrServerClosed is what ServeTCP returns once Shutdown has begun.
var ErrServerClosed = errors.New("web: server closed")

// TCP keepalive for accepted connections. The kernel probes an idle peer
// after tcpKeepAliveIdle and drops it after tcpKeepAliveCount unanswered
// probes: this is what notices a vanished device on a plain TCP connection,
// where there is no WebSocket ping.
const (
	tcpKeepAliveIdle     = 30 * time.Second
	tcpKeepAliveInterval = 10 * time.Second
	tcpKeepAliveCount    = 3
)

// Accept retry backoff, as net/http's Server.Serve.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// ServeTCP accepts plain TCP (or TLS, from tls.NewListener) connections on
// ln and serves each with proto over a byte-stream transport: MQTT on 1883,
// STOMP on 61613. Connections share the server's router, context and
// Shutdown with the WebSocket ones.
//
// Accept errors other than a closed listener are logged and retried with a
// backoff from 5ms doubling to 1s. ServeTCP closes ln when it returns. It
// returns ErrServerClosed once Shutdown has begun (Shutdown closes ln), and
// the Accept error when ln is closed by someone else.
func (s *Server) ServeTCP(ln net.Listener, proto subprotocol.Protocol) error {
	defer ln.Close()
	// Shutdown cancels s.ctx: close the listener then, so Accept returns.
	stop := context.AfterFunc(s.ctx, func() { _ = ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			if backoff == 0 {
				backoff = acceptBackoffMin
			} else {
				backoff = min(2*backoff, acceptBackoffMax)
			}
			s.cfg.Log.Warn("web: tcp accept error; retrying", "addr", ln.Addr().String(), "protocol", proto.Name(), "err", err, "delay", backoff)
			tm := time.NewTimer(backoff)
			select {
			case <-tm.C:
			case <-s.ctx.Done():
				tm.Stop()
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		// Admission: a connection past a limit is closed at once, before
		// the TLS handshake or any protocol byte.
		ip := addrIP(c.RemoteAddr())
		if s.adm.admit(ip) != admitted {
			_ = c.Close()
			continue
		}
		promoteSocket(c) // counted as a connection now
		setKeepAlive(c)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			s.adm.release(ip)
			_ = c.Close()
			return ErrServerClosed
		}
		s.conns.Add(1)
		s.mu.Unlock()
		go s.serveTCPConn(c, proto, ip)
	}
}

// serveTCPConn runs one accepted connection to its end. A TLS connection
// first completes its handshake within HandshakeTimeout.
func (s *Server) serveTCPConn(c net.Conn, proto subprotocol.Protocol, ip netip.Addr) {
	defer s.conns.Done()
	defer s.adm.release(ip)
	peer := subprotocol.Peer{Transport: "tcp"}
	if tc, ok := c.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
		if err := tc.HandshakeContext(s.ctx); err != nil {
			s.adm.tlsFailures.Add(1)
			s.cfg.Log.Debug("web: tls handshake failed", "remote", c.RemoteAddr().String(), "protocol", proto.Name(), "err", err)
			_ = c.Close()
			return
		}
		_ = tc.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		peer = subprotocol.Peer{Transport: "tls", CertNames: certNames(&cs)}
	}
	t := &tcpTransport{c: wrapRaw(c), pongWait: s.cfg.PongWait, peer: peer}
	if err := proto.Serve(s.ctx, t, s.router); err != nil {
		s.cfg.Log.Debug("web: tcp connection ended", "remote", c.RemoteAddr().String(), "protocol", proto.Name(), "err", err)
	}
	t.Abort() // the protocol closes t; make sure
}

// setKeepAlive turns on TCP keepalive where the connection is TCP
// (directly, or under TLS or Server.Listener's wrapper).
func setKeepAlive(c net.Conn) {
	for range 4 {
		u, ok := c.(interface{ NetConn() net.Conn }) // *tls.Conn, countedConn
		if !ok {
			break
		}
		c = u.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{
			Enable:   true,
			Idle:     tcpKeepAliveIdle,
			Interval: tcpKeepAliveInterval,
			Count:    tcpKeepAliveCount,
		})
	}
}

// tcpTransport adapts a byte-stream net.Conn to subprotocol.Transport: the
// whole connection reads as one endless binary message, and each
// WriteMessage writes its bytes as they are. It holds no buffers of its own;
// the protocols buffer their reads and batch their writes.
type tcpTransport struct {
	c        net.Conn
	pongWait time.Duration
	peer     subprotocol.Peer

	readerGiven bool // NextReader has returned the connection; read loop only

	closeOnce sync.Once
}

// NextReader returns the connection itself the first time, as one binary
// message that ends when the connection does; after that it reports io.EOF.
func (t *tcpTransport) NextReader() (bool, io.Reader, error) {
	if t.readerGiven {
		return true, nil, io.EOF
	}
	t.readerGiven = true
	return true, t.c, nil
}

// WriteMessage writes p; there are no message boundaries on TCP.
func (t *tcpTransport) WriteMessage(_ bool, p []byte) error {
	_, err := t.c.Write(p)
	return err
}

// Ping sends nothing: TCP has no ping, and keepalive probes (setKeepAlive)
// check the peer instead. It extends the read deadline as a WebSocket pong
// would, so a client that sends no heart-beats (STOMP heart-beat 0,0) is not
// dropped as idle while the kernel still reaches it (STOMP pings only such
// clients). net.Conn deadlines are safe from any goroutine.
func (t *tcpTransport) Ping() error {
	return t.c.SetReadDeadline(time.Now().Add(t.pongWait))
}

// HookReads implements subprotocol.ReadHooker for a plain TCP socket.
func (t *tcpTransport) HookReads(f subprotocol.Flusher) bool { return hookReads(t.c, f) }

func (t *tcpTransport) SetReadDeadline(d time.Time) error  { return t.c.SetReadDeadline(d) }
func (t *tcpTransport) SetWriteDeadline(d time.Time) error { return t.c.SetWriteDeadline(d) }
func (t *tcpTransport) InterruptWrite(d time.Time)         { _ = t.c.SetWriteDeadline(d) }
func (t *tcpTransport) RemoteAddr() net.Addr               { return t.c.RemoteAddr() }
func (t *tcpTransport) Subprotocol() string                { return "" }

// Peer describes the connection: "tls" with the client certificate's
// names, or "tcp".
func (t *tcpTransport) Peer() subprotocol.Peer {
	if t.peer.Transport == "" {
		return subprotocol.Peer{Transport: "tcp"}
	}
	return t.peer
}

// Close closes the connection: TCP has no close frame, and what was
// written before (an ERROR) still goes out ahead of the FIN. Safe from any
// goroutine and more than once.
func (t *tcpTransport) Close(int, string) error {
	// A small write the socket could not take yet (web's raw connection
	// finishes it on its own) goes out before the FIN, within closeLinger.
	if r, ok := t.c.(interface{ drainTail(time.Duration) }); ok {
		r.drainTail(closeLinger)
	}
	t.Abort()
	return nil
}

// Abort closes the connection; only the first call does anything.
func (t *tcpTransport) Abort() {
	t.closeOnce.Do(func() { _ = t.c.Close() })
}
