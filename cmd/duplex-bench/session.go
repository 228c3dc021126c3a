package main

import (
	"errors"
	"sync/atomic"
	"time"
)

// session runs a connection's reader goroutine and ends the connection
// cleanly: DISCONNECT, wait for its confirmation (STOMP: RECEIPT; MQTT: the
// broker closes the connection), close.
type session struct {
	c        conn
	done     chan struct{}
	stopping atomic.Bool
	err      error // read loop's result; valid after done is closed
}

// start runs c.readLoop(h) on its own goroutine.
func (s *session) start(c conn, h handler) {
	s.c = c
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		s.err = c.readLoop(h)
	}()
}

// failure returns why the connection ended before stop was called, or nil.
// Call it only after done is closed.
func (s *session) failure() error {
	if s.err == nil {
		return nil
	}
	if s.stopping.Load() {
		var be *brokerError
		if !errors.As(s.err, &be) {
			return nil // we closed it ourselves
		}
	}
	return s.err
}

// stop ends the session: DISCONNECT (with receipt), wait up to timeout for
// the reader to see it, then close the socket. The caller must be the only
// writer. It reports whether the broker confirmed the DISCONNECT.
func (s *session) stop(timeout time.Duration) bool {
	select {
	case <-s.done: // already ended
		s.c.close()
		return false
	default:
	}
	deadline := time.Now().Add(timeout)
	s.stopping.Store(true)
	confirmed := false
	if s.c.sendBye(deadline) == nil {
		select {
		case <-s.done:
			confirmed = s.err == nil
		case <-time.After(time.Until(deadline)):
		}
	}
	s.c.close()
	<-s.done
	return confirmed
}
