package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// subprotocol is the only WebSocket subprotocol the generator offers.
const subprotocol = "v12.stomp"

// maxBuffered bounds a connection's unparsed bytes (one STOMP frame plus
// whatever the server coalesced with it).
const maxBuffered = 16 << 20

// dialer opens WebSocket connections, spreading them over source addresses
// 127.0.0.2, 127.0.0.3, ... when asked, so that more client sockets fit
// than one source address has ephemeral ports.
type dialer struct {
	url     string
	host    string
	timeout time.Duration
	ws      []*websocket.Dialer
	next    atomic.Uint64
}

// newDialer makes a dialer for rawURL. sourceIPs 0 lets the kernel pick
// the source address. small asks for small per-connection buffers (for
// many idle connections).
func newDialer(rawURL string, sourceIPs int, timeout time.Duration, small bool) (*dialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("url %q: only ws:// is supported", rawURL)
	}
	if sourceIPs < 0 || sourceIPs > 250 {
		return nil, fmt.Errorf("-source-ips %d: want 0..250", sourceIPs)
	}
	d := &dialer{url: rawURL, host: u.Hostname(), timeout: timeout}
	n := max(sourceIPs, 1)
	pool := &sync.Pool{}
	for i := range n {
		nd := &net.Dialer{Timeout: timeout}
		if sourceIPs > 0 {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
		}
		wd := &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: timeout,
			Subprotocols:     []string{subprotocol},
			ReadBufferSize:   64 << 10,
			WriteBufferSize:  64 << 10,
		}
		if small {
			wd.ReadBufferSize, wd.WriteBufferSize = 1024, 1024
			wd.WriteBufferPool = pool
		}
		d.ws = append(d.ws, wd)
	}
	return d, nil
}

// dial opens one WebSocket connection and completes the STOMP CONNECT.
func (d *dialer) dial(ctx context.Context) (*client, error) {
	wd := d.ws[d.next.Add(1)%uint64(len(d.ws))]
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	ws, resp, err := wd.DialContext(ctx, d.url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket dial: %w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("websocket dial: %w", err)
	}
	if ws.Subprotocol() != subprotocol {
		ws.Close()
		return nil, fmt.Errorf("server chose subprotocol %q, want %q", ws.Subprotocol(), subprotocol)
	}
	ws.SetReadLimit(maxBuffered)
	c := &client{ws: ws, p: parser{limit: maxBuffered}}
	if err := c.connect(d.host, time.Now().Add(d.timeout)); err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

// client is one STOMP connection. Like gorilla's Conn, it allows one
// reader goroutine and one writer goroutine at a time.
type client struct {
	ws   *websocket.Conn
	p    parser
	f    frame
	wbuf []byte
}

// brokerError is an ERROR frame received from the broker.
type brokerError struct{ text string }

func (e *brokerError) Error() string { return "broker ERROR " + e.text }

// readFrame returns the next frame, reading WebSocket messages as needed.
// The frame is valid until the next call.
func (c *client) readFrame() (*frame, error) {
	for {
		ok, err := c.p.next(&c.f)
		if err != nil {
			return nil, err
		}
		if ok {
			return &c.f, nil
		}
		_, r, err := c.ws.NextReader()
		if err != nil {
			return nil, err
		}
		if err := c.p.fill(r); err != nil {
			return nil, err
		}
	}
}

// writeText sends b as one text WebSocket message.
func (c *client) writeText(b []byte) error {
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// connect sends CONNECT and waits for CONNECTED until deadline.
func (c *client) connect(host string, deadline time.Time) error {
	c.ws.SetWriteDeadline(deadline)
	c.wbuf = appendConnect(c.wbuf[:0], host)
	if err := c.writeText(c.wbuf); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	return c.await("CONNECTED", "", deadline)
}

// await reads frames until one with command cmd (and, if receipt is not
// empty, receipt-id receipt) arrives, an ERROR arrives, or deadline passes.
// Other frames are skipped.
func (c *client) await(cmd, receipt string, deadline time.Time) error {
	c.ws.SetReadDeadline(deadline)
	defer c.ws.SetReadDeadline(time.Time{})
	for {
		f, err := c.readFrame()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", cmd, err)
		}
		if f.is("ERROR") {
			return &brokerError{f.errorText()}
		}
		if !f.is(cmd) {
			continue
		}
		if receipt != "" {
			if id, _ := f.header("receipt-id"); string(id) != receipt {
				continue
			}
		}
		return nil
	}
}

// subscribe sends an auto-ack SUBSCRIBE with a receipt and waits for the
// RECEIPT, so the subscription is live when it returns.
func (c *client) subscribe(id, dest string, deadline time.Time) error {
	c.ws.SetWriteDeadline(deadline)
	c.wbuf = appendSubscribe(c.wbuf[:0], id, dest, "sub-"+id)
	if err := c.writeText(c.wbuf); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	return c.await("RECEIPT", "sub-"+id, deadline)
}

// byeReceipt is the receipt id of the final DISCONNECT.
const byeReceipt = "bye"

// sendDisconnect sends DISCONNECT with receipt byeReceipt.
func (c *client) sendDisconnect(deadline time.Time) error {
	c.ws.SetWriteDeadline(deadline)
	c.wbuf = appendDisconnect(c.wbuf[:0], byeReceipt)
	return c.writeText(c.wbuf)
}

// disconnect sends DISCONNECT, waits for its RECEIPT and closes. Only for
// connections without a reader goroutine.
func (c *client) disconnect(deadline time.Time) error {
	defer c.ws.Close()
	if err := c.sendDisconnect(deadline); err != nil {
		return fmt.Errorf("send DISCONNECT: %w", err)
	}
	return c.await("RECEIPT", byeReceipt, deadline)
}

// readLoop reads frames until the RECEIPT for the final DISCONNECT (nil),
// an ERROR frame (*brokerError) or a read error, passing every other frame
// to handle.
func (c *client) readLoop(handle func(f *frame)) error {
	for {
		f, err := c.readFrame()
		if err != nil {
			return err
		}
		switch {
		case f.is("ERROR"):
			return &brokerError{f.errorText()}
		case f.is("RECEIPT"):
			if id, _ := f.header("receipt-id"); string(id) == byeReceipt {
				return nil
			}
		}
		handle(f)
	}
}
