package testutil

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestPollLastError: Poll retries until the deadline and returns the
// condition's last error.
func TestPollLastError(t *testing.T) {
	n := 0
	err := Poll(30*time.Millisecond, func() error {
		n++
		return fmt.Errorf("try %d", n)
	})
	if n < 2 || err == nil || err.Error() != fmt.Sprintf("try %d", n) {
		t.Fatalf("after %d tries: %v; want the last try's error", n, err)
	}
}

// TestPollSuccess: Poll returns nil as soon as the condition holds.
func TestPollSuccess(t *testing.T) {
	n := 0
	if err := Poll(time.Minute, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Poll: %v after %d tries, want nil after 3", err, n)
	}
}

// TestPollStop: an error wrapping ErrStop ends the poll at once.
func TestPollStop(t *testing.T) {
	n := 0
	err := Poll(time.Minute, func() error {
		n++
		return fmt.Errorf("%w: gone", ErrStop)
	})
	if n != 1 || !errors.Is(err, ErrStop) {
		t.Fatalf("Poll: %v after %d tries, want ErrStop after 1", err, n)
	}
}

// TestEventually: the helpers return once the condition holds.
func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, time.Minute, "the third try", func() bool { n++; return n == 3 })
	m := 0
	EventuallyErr(t, time.Minute, func() error {
		if m++; m < 3 {
			return errors.New("not yet")
		}
		return nil
	})
}

// TestEventuallyFails: a condition that never holds fails the test with
// its name or its last error.
func TestEventuallyFails(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(t testing.TB)
		want string
	}{
		{"Eventually", func(t testing.TB) { Eventually(t, 10*time.Millisecond, "godot", func() bool { return false }) },
			"timed out waiting for godot (10ms)"},
		{"EventuallyErr", func(t testing.TB) {
			EventuallyErr(t, 10*time.Millisecond, func() error { return errors.New("still no godot") })
		}, "condition not met within 10ms: still no godot"},
	} {
		ft := &fatalT{TB: t}
		done := make(chan struct{})
		go func() { // Fatalf ends the goroutine, as in a test
			defer close(done)
			c.run(ft)
		}()
		<-done
		if ft.msg != c.want {
			t.Errorf("%s: failed with %q, want %q", c.name, ft.msg, c.want)
		}
	}
}

// fatalT records Fatalf instead of failing the real test.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}
func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtimeGoexit()
}
