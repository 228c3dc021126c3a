package subprotocol

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// Transport is one client connection as a sequence of messages. web
// implements it over a WebSocket, and a TCP listener can implement it over a
// byte stream. It follows gorilla's concurrency contract: one goroutine reads
// (NextReader, SetReadDeadline), one goroutine writes (WriteMessage,
// SetWriteDeadline), and Close may be called from any goroutine.
type Transport interface {
	// NextReader returns the next inbound message. binary reports the
	// WebSocket frame type (always true for a stream transport).
	NextReader() (binary bool, r io.Reader, err error)
	// WriteMessage writes one outbound message.
	WriteMessage(binary bool, p []byte) error
	// Ping sends a transport keepalive (a WebSocket ping; a no-op on TCP).
	// Write loop only. The transport extends the read deadline when the
	// answer arrives.
	Ping() error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// Close sends a close frame with code and reason when it can do so
	// without blocking for long, then closes the connection. It is safe to
	// call from any goroutine and more than once.
	Close(code int, reason string) error
	// Abort closes the connection at once without a close frame; for when a
	// final frame could not get through anyway (write timeout).
	Abort()
	// InterruptWrite moves the deadline of a write in progress to d, so a
	// write blocked on a client that stopped reading ends soon. Safe from
	// any goroutine.
	InterruptWrite(d time.Time)
	RemoteAddr() net.Addr
	// Subprotocol is the negotiated WebSocket subprotocol, or "" on TCP.
	Subprotocol() string
	// Peer describes the connection as the listener established it (TLS,
	// client certificate, token from the URL). RemoteAddr already gives the
	// address after trusted proxies.
	Peer() Peer
}

// Peer is what a listener knows about a connection before the protocol
// reads anything: the protocols copy it into broker.Credentials.
type Peer struct {
	// Transport is "ws", "wss", "tcp" or "tls".
	Transport string
	// CertNames are the names of a verified TLS client certificate, its
	// Subject Common Name first, then its SANs; nil without one.
	CertNames []string
	// Token is the access_token query parameter of the WebSocket URL.
	Token string
}

// WebSocket close codes used by the protocols (RFC 6455 §7.4.1).
const (
	CloseNormal        = 1000
	CloseGoingAway     = 1001
	CloseProtocolError = 1002
	CloseUnsupported   = 1003
	ClosePolicy        = 1008
	CloseTooBig        = 1009
	CloseInternal      = 1011
)

// Protocol is one wire protocol served over a Transport.
type Protocol interface {
	// Name is a short name for logs and stats: "stomp", "mqtt".
	Name() string
	// Subprotocols lists the WebSocket subprotocols it answers, most
	// preferred first.
	Subprotocols() []string
	// Serve runs one connection until it ends. It is called on the
	// connection's own goroutine, owns t from then on and closes it before
	// returning; when t is a Parker, Serve may return ErrParked instead
	// (the connection goes on through Idle.Resume, which ends the same way).
	Serve(ctx context.Context, t Transport, r *broker.Router) error
}

// Registry is the ordered list of protocols a listener offers. Order is the
// server's preference when a client offers several subprotocols.
type Registry []Protocol

// Select picks the first protocol, in the registry's order of preference,
// and the first of its subprotocols that the client offered.
func (g Registry) Select(offered []string) (Protocol, string) {
	for _, p := range g {
		for _, name := range p.Subprotocols() {
			for _, o := range offered {
				if o == name {
					return p, name
				}
			}
		}
	}
	return nil, ""
}

// Names lists every subprotocol the registry answers, in order of preference.
func (g Registry) Names() []string {
	var names []string
	for _, p := range g {
		names = append(names, p.Subprotocols()...)
	}
	return names
}

// ErrParked is what a read loop returns when its transport parked the
// connection (Parker.WaitRead): the connection is not over, its read loop
// goes on later, on another goroutine, through Idle.Resume. A transport
// that parks knows this value; a Serve over any other transport never
// returns it.
var ErrParked = errors.New("subprotocol: connection parked")

// Idle is what a read loop hands its transport so that the transport can
// hold the connection while it is idle with no goroutine and no read
// buffers (web's WebSocket transport on Linux). The protocols' connections
// implement it.
type Idle interface {
	// IdleReader returns the read loop's buffered reader over the
	// transport and what it reads from: while parked, its buffer (empty)
	// goes back to a pool, and it reads from src again after.
	IdleReader() (br *bufio.Reader, src io.Reader)
	// Parking is called on the read loop's goroutine as the connection
	// parks, before Resume can run: the read loop drops the scratch
	// buffers it keeps between frames.
	Parking()
	// Resume continues the read loop on a new goroutine once the
	// connection has input, its read deadline has passed or it was
	// aborted. It returns ErrParked when it parked again, otherwise the
	// read loop's result, as Serve would.
	Resume() error
}

// Parker is a Transport that can park an idle connection.
type Parker interface {
	// WaitRead blocks until the connection has input, its read deadline
	// passes or it is closed, as a read would but without reading, and
	// reports false: the caller then reads. When the wait lasts long (an
	// idle connection), it parks the connection instead and reports
	// true: the caller must return ErrParked at once and touch nothing of
	// the connection any more, since in.Resume may already be running. in
	// must stay the same for the connection's life.
	WaitRead(in Idle) (parked bool)
}

// WaitIdle is how a read loop waits for its next frame when br (its
// buffered reader) holds nothing: through t's WaitRead when t is a Parker.
// It reports true when the connection was parked: the read loop returns
// ErrParked. Deadlines and errors are left to the read that follows.
func WaitIdle(t Transport, br *bufio.Reader, in Idle) (parked bool) {
	if br.Buffered() != 0 {
		return false
	}
	if p, ok := t.(Parker); ok {
		return p.WaitRead(in)
	}
	return false
}
