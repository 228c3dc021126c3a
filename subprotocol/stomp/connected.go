package stomp

import (
	"errors"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
)

// connected dispatches client frames after CONNECTED (STOMP 1.2 §Client
// Frames). A frame with a receipt header gets a RECEIPT once handled.
func connected(c *conn, f *frame.Frame) error {
	// Read the receipt first: a frame buffered in a transaction loses its
	// receipt header, but the RECEIPT is due now (STOMP 1.2 §RECEIPT).
	receipt, wantReceipt := f.Header.Contains(frame.Receipt)
	if f.Command == frame.SEND && c.limiter != nil {
		c.throttle(len(f.Body))
		if c.sess.Closed() {
			return nil
		}
	}
	if f.Command == frame.SEND && c.pipelined(f) {
		m, err := c.sendMessage(f)
		if err != nil {
			return err
		}
		c.submit(sendJob{f: f, m: m})
		return nil
	}
	c.drainPipe() // every other frame after the SENDs before it
	var err error
	switch f.Command {
	case frame.SEND:
		if tx, ok := f.Header.Contains("transaction"); ok {
			err = c.buffer(tx, f)
		} else {
			err = c.handleSend(f)
		}
	case frame.SUBSCRIBE:
		if err = c.handleSubscribe(f); errors.Is(err, broker.ErrNotAuthorized) {
			c.p.ctr.SubscribeDenied()
		}
	case frame.UNSUBSCRIBE:
		err = c.handleUnsubscribe(f)
	case frame.ACK, frame.NACK:
		if tx, ok := f.Header.Contains("transaction"); ok {
			err = c.buffer(tx, f)
		} else {
			err = c.handleAck(f)
		}
	case frame.BEGIN:
		err = c.handleBegin(f)
	case frame.COMMIT:
		err = c.handleCommit(f)
	case frame.ABORT:
		err = c.handleAbort(f)
	case frame.DISCONNECT:
		// STOMP 1.2 §DISCONNECT: receipt, then the server closes. Queued
		// frames are flushed first by the write loop.
		if wantReceipt {
			c.receipt(receipt)
		}
		c.sess.Close(broker.CloseClientClosed)
		return nil
	case frame.CONNECT, frame.STOMP:
		return protocolErr("already connected", "%s is only valid as the first frame", f.Command)
	default:
		return protocolErr("unknown command", "%s is not a STOMP client command", commandName(f.Command))
	}
	if err != nil {
		return err
	}
	if wantReceipt {
		c.receipt(receipt)
	}
	return nil
}

// throttle waits until the connection's publish rate (Config.PublishRate,
// PublishBytesRate) allows a SEND of size body bytes. The read loop reads
// nothing meanwhile: the publisher is slowed by back-pressure, and no
// frame is dropped. The wait ends early if the session closes.
func (c *conn) throttle(size int) {
	if !c.limiter.Wait(c.ctx, c.sess.Done(), &c.p.ctr, size, c.sess.FlushDeferred) {
		return
	}
	if c.readTimeout > 0 {
		// The client's heart-beats waited unread too.
		_ = c.t.SetReadDeadline(time.Now().Add(c.readTimeout))
	}
}

// receipt sends a RECEIPT frame (STOMP 1.2 §RECEIPT). It goes through the
// outbox, so it keeps its order with deliveries; when no write goroutine
// runs, the read loop writes it itself rather than start one.
func (c *conn) receipt(id string) {
	b := AppendFrame(nil, frame.New(frame.RECEIPT, frame.ReceiptId, id), c.version)
	c.wr.Reply(c.sess, b)
}
