package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
)

// TestSlowConsumer: with MaxPendingMsgs 10, a subscriber that never reads
// is closed as a slow consumer while the publisher goes on unhindered (its
// final receipt arrives) and a healthy subscriber receives every message in
// order.
//
// The publisher keeps at most 8 messages ahead of the healthy subscriber, so
// the healthy outbox can never pass 10: the test checks the policy, not the
// scheduler. The stuck subscriber's TCP receive buffer is 4 KiB, so its
// socket fills after a few MiB at most (of 10 MiB sent).
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	const (
		n      = 20000
		window = 8
		size   = 512
	)
	s := startServer(t, func(c *serverConfig) {
		c.Broker.MaxPendingMsgs = 10
		c.Stomp.WriteTimeout = time.Second // a blocked write gives up soon after the close
	})
	healthy := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	hsub := healthy.subscribe(t, "/topic/slow", stomp.AckAuto)

	stuck := newRaw(t, s, func(o *dialOptions) { o.readBuffer = 4096 })
	stuck.connect()
	stuck.send("SUBSCRIBE", "", "id", "stuck", "destination", "/topic/slow", "receipt", "r-stuck")
	stuck.expect("RECEIPT")
	// From here on the stuck client reads nothing until the end.

	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	pad := strings.Repeat("x", size-8)
	body := func(i int) string { return fmt.Sprintf("%08d", i) + pad }
	received := 0
	check := func() {
		t.Helper()
		m := recv(t, hsub, waitShort)
		if want := body(received); string(m.Body) != want {
			t.Fatalf("healthy subscriber: message %d has body %.16q…, want %.16q…", received, m.Body, want)
		}
		received++
	}
	start := time.Now()
	for i := range n {
		for i-received >= window {
			check()
		}
		var opts []func(*frame.Frame) error
		if i == n-1 {
			opts = append(opts, stomp.SendOpt.Receipt)
		}
		if err := pub.Send("/topic/slow", "text/plain", []byte(body(i)), opts...); err != nil {
			t.Fatalf("publish %d: %v (slow consumers so far %d)", i, err, s.Router.Stats().SlowConsumers)
		}
	}
	published := time.Since(start)
	for received < n {
		check()
	}
	t.Logf("published %d messages of %d bytes with a final receipt in %v; healthy subscriber got all", n, size, published.Round(time.Millisecond))

	if sc := s.Router.Stats().SlowConsumers; sc < 1 {
		t.Fatalf("Stats().SlowConsumers = %d, want >= 1", sc)
	}
	// The stuck session is gone; the healthy subscriber and publisher stay.
	checkFor(t, waitShort, func() error {
		if n := len(s.Router.Sessions()); n != 2 {
			return fmt.Errorf("%d sessions, want 2", n)
		}
		return nil
	})
	// The stuck client's connection has been closed by the server: reading
	// now drains what the socket buffers held and then hits the end. (A
	// big receive buffer first, or the 4 KiB window makes the drain crawl.)
	if tc, ok := stuck.ws.ws.NetConn().(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 20)
	}
	frames, code := stuck.expectClosed(waitLong)
	last := "none"
	if len(frames) > 0 {
		f := frames[len(frames)-1]
		last = f.Command + " " + headerString(f.Header)
		if len(last) > 200 {
			last = last[:200]
		}
	}
	t.Logf("stuck client read %d frames before the end (last: %s), close code %d", len(frames), last, code)
	// If the final frame made it out before the socket filled, it must be
	// the slow-consumer ERROR; a write stuck on a full socket is cut off
	// instead, without one.
	for i, f := range frames {
		if f.Command == "ERROR" {
			if msg := f.Header.Get("message"); msg != "slow consumer" {
				t.Errorf("stuck client got ERROR message:%q, want \"slow consumer\"", msg)
			}
			if i != len(frames)-1 {
				t.Errorf("frames after the ERROR: %s", describeFrames(frames[i+1:min(len(frames), i+4)]))
			}
			if code != 1008 {
				t.Errorf("close code %d after the slow-consumer ERROR, want 1008", code)
			}
		} else if f.Command != "MESSAGE" {
			t.Errorf("stuck client got %s %s", f.Command, headerString(f.Header))
		}
	}
	if len(frames) >= n {
		t.Errorf("stuck client was sent all %d messages: it was never cut off", len(frames))
	}
}
