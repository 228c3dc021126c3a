package testutil

import (
	"errors"
	"testing"
	"time"
)

// Backoff between tries of a poll: the first retry comes after
// pollFirst, each later one after twice the last, up to pollMax.
const (
	pollFirst = time.Millisecond
	pollMax   = 20 * time.Millisecond
)

// ErrStop ends a Poll early: a condition returns it (or an error wrapping
// it) when waiting longer cannot help, such as a process that has exited.
var ErrStop = errors.New("stop polling")

// Poll calls f until it returns nil or an error wrapping ErrStop, or until
// timeout has passed; it returns f's last error (nil when f succeeded).
// f is called at least once.
func Poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	wait := pollFirst
	for {
		err := f()
		if err == nil || errors.Is(err, ErrStop) || !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(min(wait, time.Until(deadline)))
		wait = min(2*wait, pollMax)
	}
}

// EventuallyErr fails the test unless f returns nil within timeout; the
// failure carries f's last error.
func EventuallyErr(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	if err := Poll(timeout, f); err != nil {
		t.Fatalf("condition not met within %v: %v", timeout, err)
	}
}

// Eventually fails the test unless cond holds within timeout; what names
// the condition in the failure ("timed out waiting for WHAT").
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	errNot := errors.New("not yet")
	err := Poll(timeout, func() error {
		if cond() {
			return nil
		}
		return errNot
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s (%v)", what, timeout)
	}
}
