package subprotocol_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/transporttest"
)

// EndRead: before login the transport is closed (1008 after a deadline)
// or aborted, with nothing to finish; after login the session closes with
// the reason for the error and the read loop finishes.
func TestEndRead(t *testing.T) {
	deadline := fmt.Errorf("read: %w", os.ErrDeadlineExceeded)
	for _, c := range []struct {
		name      string
		err       error
		code      int  // before login
		aborted   bool // before login
		afterWant broker.CloseReason
	}{
		{"deadline", deadline, subprotocol.ClosePolicy, false, broker.CloseReadTimeout},
		{"eof", io.EOF, 0, true, broker.CloseClientClosed},
		{"wrapped eof", fmt.Errorf("frame: %w", io.EOF), 0, true, broker.CloseClientClosed},
		{"broken", errors.New("connection reset"), 0, true, broker.CloseTransportError},
	} {
		t.Run(c.name, func(t *testing.T) {
			ft := transporttest.New("test")
			if subprotocol.EndRead(ft, nil, c.err) {
				t.Error("before login: finish = true, want false")
			}
			if code, aborted, _ := ft.CloseState(); code != c.code || aborted != c.aborted {
				t.Errorf("before login: close %d, aborted %v; want %d, %v", code, aborted, c.code, c.aborted)
			}

			r := broker.New(broker.Config{}, nil)
			sess, err := r.Open("c", broker.SessionOptions{Protocol: "test", RemoteAddr: "test"})
			if err != nil {
				t.Fatal(err)
			}
			ft = transporttest.New("test")
			if !subprotocol.EndRead(ft, sess, c.err) {
				t.Error("after login: finish = false, want true")
			}
			if got := sess.Reason(); !sess.Closed() || got != c.afterWant {
				t.Errorf("after login: session closed %v for %v, want %v", sess.Closed(), got, c.afterWant)
			}
			if ft.Closed() {
				t.Error("after login: EndRead closed the transport (the write side does)")
			}
		})
	}
}

// WriteFailed closes the session (a timeout as a write timeout) and aborts
// the transport.
func TestWriteFailed(t *testing.T) {
	for _, c := range []struct {
		err     error
		timeout bool
		reason  broker.CloseReason
	}{
		{os.ErrDeadlineExceeded, true, broker.CloseWriteTimeout},
		{errors.New("broken pipe"), false, broker.CloseTransportError},
	} {
		r := broker.New(broker.Config{}, nil)
		sess, err := r.Open("c", broker.SessionOptions{Protocol: "test", RemoteAddr: "test"})
		if err != nil {
			t.Fatal(err)
		}
		ft := transporttest.New("test")
		if got := subprotocol.WriteFailed(ft, sess, c.err); got != c.timeout {
			t.Errorf("WriteFailed(%v) = %v, want %v", c.err, got, c.timeout)
		}
		if sess.Reason() != c.reason {
			t.Errorf("WriteFailed(%v): session closed for %v, want %v", c.err, sess.Reason(), c.reason)
		}
		if _, aborted, _ := ft.CloseState(); !aborted {
			t.Errorf("WriteFailed(%v): transport not aborted", c.err)
		}
	}
}
