package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// client is one STOMP connection. Like gorilla's Conn, it allows one
// reader goroutine and one writer goroutine at a time.
type client struct {
	ws     *websocket.Conn
	p      parser
	f      frame
	wbuf   []byte
	prefix []byte // of every SEND (preparePublish)
	msgs   uint64 // WebSocket messages read; owned by the reader
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
		c.msgs++
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
	c.wbuf = appendConnect(c.wbuf[:0], host, login.user, login.password)
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
func (c *client) subscribe(n int, dest string, deadline time.Time) error {
	id := strconv.Itoa(n)
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

// sendBye sends DISCONNECT with receipt byeReceipt.
func (c *client) sendBye(deadline time.Time) error { return c.sendDisconnect(deadline) }

// bye sends DISCONNECT, waits for its RECEIPT and closes. Only for
// connections without a reader goroutine.
func (c *client) bye(deadline time.Time) error {
	defer c.ws.Close()
	if err := c.sendDisconnect(deadline); err != nil {
		return fmt.Errorf("send DISCONNECT: %w", err)
	}
	return c.await("RECEIPT", byeReceipt, deadline)
}

// preparePublish builds the head of every SEND to dest.
func (c *client) preparePublish(dest string, size int) { c.prefix = sendPrefix(dest, size) }

// publish sends one SEND, with receipt seq when confirm is set.
func (c *client) publish(seq uint64, body []byte, confirm bool) error {
	var receipt uint64
	if confirm {
		receipt = seq
	}
	c.wbuf = appendSend(c.wbuf[:0], c.prefix, receipt, body)
	return c.ws.WriteMessage(websocket.BinaryMessage, c.wbuf)
}

// setWriteDeadline bounds later writes.
func (c *client) setWriteDeadline(t time.Time) { c.ws.SetWriteDeadline(t) }

// close closes the socket.
func (c *client) close() { c.ws.Close() }

// messagesRead returns how many WebSocket messages the reader has read.
func (c *client) messagesRead() uint64 { return c.msgs }

// readLoop reads frames until the RECEIPT for the final DISCONNECT (nil),
// an ERROR frame (*brokerError) or a read error, passing MESSAGE bodies,
// numeric RECEIPTs and every other frame to h.
func (c *client) readLoop(h handler) error {
	for {
		f, err := c.readFrame()
		if err != nil {
			return err
		}
		switch {
		case f.is("MESSAGE"):
			h.delivery(f.body)
		case f.is("RECEIPT"):
			id, _ := f.header("receipt-id")
			if string(id) == byeReceipt {
				return nil
			}
			if n, ok := parseUint(id); ok {
				h.confirmed(n)
			} else {
				h.other()
			}
		case f.is("ERROR"):
			return &brokerError{f.errorText()}
		default:
			h.other()
		}
	}
}
