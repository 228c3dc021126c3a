package subprotocol

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

func TestLogLimiterPerSource(t *testing.T) {
	var l LogLimiter
	t0 := time.Unix(1000, 0)
	if ok, n := l.Allow("a", t0); !ok || n != 0 {
		t.Fatalf("first line: %v %d", ok, n)
	}
	for i := 1; i <= 5; i++ {
		if ok, _ := l.Allow("a", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("line %d within 10 s let through", i)
		}
	}
	if ok, _ := l.Allow("b", t0.Add(time.Second)); !ok {
		t.Error("another source was suppressed")
	}
	ok, n := l.Allow("a", t0.Add(DefaultLogEvery))
	if !ok || n != 5 {
		t.Errorf("after the interval: %v, %d suppressed, want true, 5", ok, n)
	}
	if ok, _ := l.Allow("a", t0.Add(DefaultLogEvery+time.Second)); ok {
		t.Error("the interval restarted at the line let through")
	}
}

func TestLogLimiterBounded(t *testing.T) {
	l := LogLimiter{MaxSources: 8}
	t0 := time.Unix(1000, 0)
	for i := range 100 {
		l.Allow(fmt.Sprint("src", i), t0)
	}
	if n := len(l.m); n > 9 {
		t.Errorf("%d sources tracked, want at most 8 and the overflow entry", n)
	}
	// Past the interval, old entries are swept for new sources.
	if ok, _ := l.Allow("fresh", t0.Add(time.Minute)); !ok {
		t.Error("a new source after the interval was suppressed")
	}
	if _, ok := l.m["fresh"]; !ok {
		t.Error("the new source did not get its own entry after the sweep")
	}
}

func TestSourceHost(t *testing.T) {
	if h := SourceHost(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5}); h != "192.0.2.1" {
		t.Errorf("got %q", h)
	}
	if h := SourceHost(&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5}); h != "2001:db8::1" {
		t.Errorf("got %q", h)
	}
}

func TestPublishLimiterOff(t *testing.T) {
	if l := NewPublishLimiter(0, 0, 0); l != nil {
		t.Fatal("a limiter was allocated with both rates off")
	}
	var l *PublishLimiter
	if d := l.Delay(100); d != 0 {
		t.Errorf("a nil limiter delays %v", d)
	}
}

func TestPublishLimiterMessages(t *testing.T) {
	l := NewPublishLimiter(0.001, 2, 0) // burst 2, then one per 1000 s
	if l.Delay(10) != 0 || l.Delay(10) != 0 {
		t.Fatal("delayed within the burst")
	}
	d := l.Delay(10)
	if d <= 0 {
		t.Fatal("the third message is not delayed")
	}
	done := make(chan struct{})
	close(done) // the connection ended: the pause returns at once, not in 1000 s
	Pause(context.Background(), done, d)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // so does a cancelled context
	Pause(ctx, nil, d)
}

func TestPublishLimiterBytes(t *testing.T) {
	l := NewPublishLimiter(0, 0, 1000) // 1000 B/s, burst 1000
	if d := l.Delay(1000); d != 0 {
		t.Fatalf("the first burst is delayed %v", d)
	}
	// A message far above the burst goes into debt instead of failing.
	if d := l.Delay(5000); d < 4*time.Second {
		t.Fatalf("a 5000-byte message at 1000 B/s is delayed %v, want about 5 s", d)
	}
	r := l.bytes.ReserveN(time.Now(), 1)
	if d := r.Delay(); d < 4*time.Second {
		t.Errorf("the limiter owes %v, want about 5 s for the 5000 bytes", d)
	}
}

// TestLogLimiterPermit: the first line per source passes with the caller's
// args as they are; the next within the interval is held back.
func TestLogLimiterPermit(t *testing.T) {
	l := LogLimiter{MaxSources: 8}
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 1000}
	args, ok := l.Permit(addr, []any{"err", "x"})
	if !ok || len(args) != 2 {
		t.Fatalf("first line: ok %v args %v, want it through unchanged", ok, args)
	}
	if _, ok := l.Permit(&net.TCPAddr{IP: addr.IP, Port: 2000}, nil); ok {
		t.Error("second line from the same host within the interval went through")
	}
}
