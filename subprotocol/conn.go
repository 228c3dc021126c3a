package subprotocol

import (
	"errors"
	"io"
	"sync"

	"github.com/duplexmq/duplex/broker"
)

// The connection skeleton both protocols share. A connection has a read
// loop (the goroutine Serve runs on) that decodes, calls the Router and
// answers on the session's control lane (Writer.Reply), and a write side
// run by Writer that drains the Outbox each Pass (WriteRun). Either side
// can end the session; the read loop then finishes (waits for the write
// side, tells the Router). What differs per protocol is the codec, the
// frames it answers with and its log lines.

// IsTimeout reports a deadline error: a read or write that timed out.
func IsTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// EndRead ends a connection whose reader failed with an error that is not
// the protocol's to answer (the caller answers malformed input itself): a
// deadline, the end of the stream or a broken socket. Before login (sess
// nil) it closes t, with 1008 "connect timeout" after a deadline, and
// reports false: there is nothing to finish. Otherwise it closes sess, for
// CloseReadTimeout, CloseClientClosed (EOF) or CloseTransportError, and
// reports true: the read loop finishes the session.
func EndRead(t Transport, sess *broker.Session, err error) (finish bool) {
	switch {
	case IsTimeout(err):
		if sess == nil {
			t.Close(ClosePolicy, "connect timeout")
			return false
		}
		sess.Close(broker.CloseReadTimeout)
	case sess == nil:
		t.Abort()
		return false
	case errors.Is(err, io.EOF):
		sess.Close(broker.CloseClientClosed)
	default:
		sess.Close(broker.CloseTransportError)
	}
	return true
}

// Reply queues the encoded frame b on sess's control lane and, when nobody
// writes, writes it on the calling goroutine (the read loop's
// acknowledgements and receipts) rather than start a write goroutine. A
// control lane that overflows (a client that sends requests without
// reading the answers) closes sess with CloseProtocolError; Reply then
// reports false.
func (w *Writer) Reply(sess *broker.Session, b []byte) (ok bool) {
	inline := w.Acquire()
	ok = true
	if err := sess.Outbox.PushControl(b); err == broker.ErrControlOverflow {
		sess.Close(broker.CloseProtocolError)
		ok = false
	}
	if inline {
		w.WriteInline()
	}
	return ok
}

// ReplyLater is Reply for the read loop of a connection that flushes once
// per read of its socket (Stream.SetBeforeWait): when nobody writes, it
// takes the write side and leaves the frame for FlushReplies, so that the
// answers to one read's requests (a pipelining MQTT publisher's PUBACKs)
// go out in one write, not one each. Until then a publisher's delivery to
// this connection is written by the FlushReplies that follows. The read
// loop must call FlushReplies before anything that may wait, as for
// deferred deliveries, and before it waits for its own write side.
func (w *Writer) ReplyLater(sess *broker.Session, b []byte) (ok bool) {
	if !w.held && w.Acquire() {
		w.held = true
	}
	ok = true
	if err := sess.Outbox.PushControl(b); err == broker.ErrControlOverflow {
		sess.Close(broker.CloseProtocolError)
		ok = false
	}
	return ok
}

// FlushReplies writes what ReplyLater left, on the read loop.
func (w *Writer) FlushReplies() {
	if w.held {
		w.held = false
		w.WriteInline()
	}
}

// Done tells the read loop that the write side has ended for good: Add
// before it can end, Done when it has, Wait in the read loop's finish. A
// sync.WaitGroup held by value, it costs an idle connection no channel.
type Done = sync.WaitGroup

// WriteEnd is how a protocol connection ends its write side (EndPass).
type WriteEnd interface {
	// WriteFailed ends the session after a failed write (WriteFailed).
	WriteFailed(err error)
	// Final sends the protocol's last frame for a session closed for
	// reason, if it has one, and closes the transport.
	Final(reason broker.CloseReason)
	// StopWriting ends the write side for good: the read loop's finish
	// may proceed.
	StopWriting()
}

// WriteRun is what one run of a write side (a Passer) keeps between its
// passes: the batch, the first write error, and the drained slices, handed
// back to the Outbox on the next Drain so that a busy write goroutine
// allocates nothing per pass.
type WriteRun struct {
	B    Batch
	Err  error
	ctrl [][]byte
	msgs []broker.Delivery
}

// Drain drains o into the slices of the previous pass.
func (r *WriteRun) Drain(o *broker.Outbox) (ctrl [][]byte, msgs []broker.Delivery, closed bool) {
	return o.Drain(r.ctrl, r.msgs)
}

// EndPass ends a pass that drained ctrl and msgs and reports whether the
// write side goes on: after a failed write, end.WriteFailed; once the
// session is closed, end.Final for reason; then end.StopWriting, and
// false. The slices are kept for the next Drain, without their references.
func (r *WriteRun) EndPass(ctrl [][]byte, msgs []broker.Delivery, closed bool, reason broker.CloseReason, end WriteEnd) bool {
	clear(ctrl)
	clear(msgs)
	r.ctrl, r.msgs = ctrl[:0], msgs[:0]
	switch {
	case r.Err != nil:
		end.WriteFailed(r.Err)
	case closed:
		end.Final(reason)
	default:
		return true
	}
	end.StopWriting()
	return false
}

// WriteFailed ends sess after a write to t failed, and aborts t. It reports
// a timeout, which means the client stopped reading (CloseWriteTimeout;
// the caller logs it); any other failure is CloseTransportError.
func WriteFailed(t Transport, sess *broker.Session, err error) (timeout bool) {
	reason := broker.CloseTransportError
	if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		reason = broker.CloseWriteTimeout
		timeout = true
	}
	sess.Close(reason)
	t.Abort()
	return timeout
}
