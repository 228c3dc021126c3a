package security

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Publish rate in TestPublishRate.
const (
	pubRate   = 200 // [limits] publish_rate, messages per second per connection
	pubBurst  = pubRate
	floodMax  = 20000 // messages the flooder tries to send
	floodSpan = 2 * time.Second
)

// TestPublishRate: a publisher flooding a topic past [limits] publish_rate
// (200/s; burst = rate) is slowed by pausing its reads — in a bounded window
// no more than the token bucket allows gets through, in order, nothing
// dropped — but it is not disconnected. A subscriber on the same topic is
// not kicked as a slow consumer and receives every message of a second,
// well-behaved publisher. The flooder speaks MQTT 3.1.1 over TCP in one
// subtest and STOMP over WebSocket in the other. The subscriber's pending
// limit (max_pending_msgs = 500) is above the publish burst (200) plus the
// well-behaved publisher's 100, but far below the flood, so an unpaced
// flood would have it kicked: the "control" subtest, on a broker without publish_rate,
// logs what the same flood does then (not asserted: it depends on speed).
func TestPublishRate(t *testing.T) {
	t.Parallel()
	p := startBroker(t, fmt.Sprintf(`
[limits]
publish_rate = %d
max_pending_msgs = 500
`, pubRate))
	for _, kind := range []string{"mqtt-tcp", "stomp-ws"} {
		t.Run(kind, func(t *testing.T) { publishFlood(t, p, kind, msgLimit) })
	}
	t.Run("control", func(t *testing.T) {
		c := startBroker(t, "\n[limits]\nmax_pending_msgs = 500\n")
		topic := uniq("ctl/t")
		sub, _ := mustV5(t, c, "ws", neighbourIP, v5Login(uniq("ctl-sub-"), "", "", true, 0))
		sub.sub(t, topic, 1)
		nc, err := dialTCP(offenderIP, c.MQTT)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		r := newRawMQTT(nc)
		_ = r.write(connectPacket(connectSpec{level: 4, id: uniq("ctl-flood-"), clean: true}))
		if _, err := r.read(waitShort); err != nil {
			t.Fatal(err)
		}
		var buf []byte
		for i := range floodMax {
			buf = append(buf, publishPacket(4, topic, fmt.Appendf(nil, "f-%d", i))...)
		}
		_ = nc.SetWriteDeadline(time.Now().Add(waitShort))
		go func() { _, _ = nc.Write(buf) }()
		err = waitFor(waitShort, func() error {
			if sub.trouble() == "" {
				return errors.New("not kicked")
			}
			return nil
		})
		if err == nil {
			t.Logf("control: without publish_rate the same flood got the subscriber kicked: %s", sub.trouble())
		} else {
			t.Logf("control: without publish_rate the subscriber was not kicked within %v", waitShort)
		}
	})
}

// floodLimit is the limit under test: the flood message's padding and the
// most messages the limit lets through in elapsed.
type floodLimit struct {
	name  string
	pad   int
	bound func(elapsed time.Duration) int
}

var msgLimit = floodLimit{
	name:  fmt.Sprintf("publish_rate %d/s, burst %d", pubRate, pubBurst),
	bound: func(e time.Duration) int { return pubBurst + int(pubRate*e.Seconds()) + 1 },
}

// TestPublishBytesRate: as TestPublishRate for [limits] publish_bytes_rate
// (20000 bytes/s, one second's worth at once) with 1000-byte messages.
func TestPublishBytesRate(t *testing.T) {
	t.Parallel()
	const bytesRate, size = 20000, 1000
	p := startBroker(t, fmt.Sprintf("\n[limits]\npublish_bytes_rate = %d\n", bytesRate))
	lim := floodLimit{
		name: fmt.Sprintf("publish_bytes_rate %d B/s", bytesRate),
		pad:  size,
		bound: func(e time.Duration) int {
			return int((bytesRate+bytesRate*e.Seconds())/size) + 1
		},
	}
	for _, kind := range []string{"mqtt-tcp", "stomp-ws"} {
		t.Run(kind, func(t *testing.T) { publishFlood(t, p, kind, lim) })
	}
}

func publishFlood(t *testing.T, p *proc, kind string, lim floodLimit) {
	pad := strings.Repeat("x", lim.pad)
	topic := uniq("rate/t")
	// The subscriber (the neighbour): MQTT v5 over WebSocket, QoS 1.
	sub, _ := mustV5(t, p, "ws", neighbourIP, v5Login(uniq("rate-sub-"), "", "", true, 0))
	sub.sub(t, topic, 1)
	good, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("rate-good-"), "", "", true, 0))

	// The subscriber's tally: flood messages f-N and good ones g-N, each
	// in order.
	var mu sync.Mutex
	var fGot, gGot int
	var order []string
	go func() {
		for m := range sub.msgs {
			s := string(m.Payload)
			mu.Lock()
			switch {
			case strings.HasPrefix(s, "f-"):
				s, _, _ = strings.Cut(s, "|")
				if want := fmt.Sprintf("f-%d", fGot); s != want && len(order) < 5 {
					order = append(order, fmt.Sprintf("got %s, want %s", s, want))
				}
				fGot++
			case strings.HasPrefix(s, "g-"):
				if want := fmt.Sprintf("g-%d", gGot); s != want && len(order) < 5 {
					order = append(order, fmt.Sprintf("got %s, want %s", s, want))
				}
				gGot++
			}
			mu.Unlock()
		}
	}()
	counts := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return fGot, gGot
	}

	// The flooder logs in, then writes as fast as the broker reads.
	flooderID := uniq("flooder-")
	var nc net.Conn
	var frames [][]byte
	switch kind {
	case "mqtt-tcp":
		c, err := dialTCP(offenderIP, p.MQTT)
		if err != nil {
			t.Fatal(err)
		}
		nc = c
		r := newRawMQTT(nc)
		if err := r.write(connectPacket(connectSpec{level: 4, id: flooderID, clean: true})); err != nil {
			t.Fatal(err)
		}
		if ca, err := r.read(waitShort); err != nil || ca.typ() != 2 || ca.body[1] != 0 {
			t.Fatalf("flooder CONNACK: %v %v", ca, err)
		}
		for i := range floodMax {
			frames = append(frames, publishPacket(4, topic, fmt.Appendf(nil, "f-%d|%s", i, pad)))
		}
	case "stomp-ws":
		c, err := openSTOMP(p, "ws", offenderIP)
		if err != nil {
			t.Fatal(err)
		}
		nc = c
		r := newRawSTOMP(nc)
		if err := r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0", "client-id", flooderID); err != nil {
			t.Fatal(err)
		}
		if f, err := r.next(waitShort); err != nil || f.Command != "CONNECTED" {
			t.Fatalf("flooder CONNECTED: %v %v", f, err)
		}
		for i := range floodMax {
			frames = append(frames, encodeFrame("SEND", fmt.Appendf(nil, "f-%d|%s", i, pad), "destination", "/topic/"+topic))
		}
	}
	defer nc.Close()

	start := time.Now()
	wrote := make(chan int, 1)
	go func() {
		// Bounded: floodMax messages, or until the broker stops reading
		// for the rest of the window (the write deadline).
		_ = nc.SetWriteDeadline(start.Add(floodSpan))
		n := 0
		// Frames go out in batches of up to 64 KiB (one WebSocket
		// message per frame); a batch counts once wholly written.
		var batch []byte
		var inBatch int
		flush := func() bool {
			if _, err := nc.Write(batch); err != nil {
				return false
			}
			n += inBatch
			batch, inBatch = batch[:0], 0
			return true
		}
		for _, f := range frames {
			if kind != "mqtt-tcp" {
				batch, inBatch = f, 1
				if !flush() {
					break
				}
				batch = nil
				continue
			}
			batch = append(batch, f...)
			inBatch++
			if len(batch) >= 64<<10 && !flush() {
				break
			}
		}
		if kind == "mqtt-tcp" && inBatch > 0 {
			flush()
		}
		wrote <- n
	}()

	// The well-behaved publisher, during the flood: 100 messages, QoS 1.
	for i := range 100 {
		rc, err := good.publish(topic, 1, false, fmt.Appendf(nil, "g-%d", i))
		if err != nil || rc >= 0x80 {
			t.Fatalf("well-behaved publisher, message %d: reason %#02x, %v", i, rc, err)
		}
	}
	checkFor(t, waitShort, func() error {
		if f, g := counts(); g < 100 {
			return fmt.Errorf("subscriber has %d of the well-behaved publisher's 100 messages (and %d of the flood) %s", g, f, sub.trouble())
		}
		return nil
	})
	// The rest of the window: count what the flood got through.
	for time.Since(start) < floodSpan {
		time.Sleep(pollEvery) // a measurement window, not a synchronization
	}
	fAt, gAt := counts()         // first: what arrived by now...
	elapsed := time.Since(start) // ...is bounded by the bucket over this
	written := <-wrote
	bound := lim.bound(elapsed)
	t.Logf("%s flood (%s): wrote %d of %d messages; %d reached the subscriber in %v (bound %d); well-behaved publisher: %d of 100",
		kind, lim.name, written, floodMax, fAt, elapsed.Round(time.Millisecond), bound, gAt)
	if fAt > bound {
		t.Errorf("%d flood messages got through in %v; %s allows %d", fAt, elapsed, lim.name, bound)
	}
	if fAt == 0 {
		t.Errorf("no flood message got through: the flooder is stopped, not slowed")
	}
	mu.Lock()
	if len(order) > 0 {
		t.Errorf("subscriber: messages lost or reordered: %v", order)
	}
	mu.Unlock()

	// Not disconnected: the flooder's socket is still open (a read times
	// out rather than ending) and its session is listed.
	_ = nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 1)
	_, rerr := nc.Read(buf)
	var ne net.Error
	if !(errors.As(rerr, &ne) && ne.Timeout()) {
		t.Errorf("flooder's connection ended (%v): it must be slowed, not disconnected", rerr)
	}
	if code, body := p.apiGet(t, "/api/sessions", "", ""); code != 200 || !strings.Contains(body, `"`+nc.LocalAddr().String()+`"`) {
		t.Errorf("/api/sessions (HTTP %d) does not list the flooder %s from %s: %s", code, flooderID, nc.LocalAddr(), truncate(body, 2000))
	}
	// The subscriber was not kicked: no DISCONNECT, no error, and it still
	// receives.
	if tr := sub.trouble(); tr != "" {
		t.Errorf("subscriber kicked: %s", tr)
	}
	for i := 100; i < 110; i++ {
		good.mustPub(t, topic, 1, false, fmt.Sprintf("g-%d", i))
	}
	checkFor(t, waitShort, func() error {
		if _, g := counts(); g < 110 {
			return fmt.Errorf("subscriber has %d of the well-behaved publisher's 110 messages %s", g, sub.trouble())
		}
		return nil
	})
	_, g := counts()
	t.Logf("neighbour subscriber: received all %d messages of the well-behaved publisher, not kicked", g)
	nc.Close()
}
