package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// TestHistoryRates: rates are counter differences over the interval, the
// ring keeps the last historyLen samples oldest first, since filters by
// time, and subscribers get each sample.
func TestHistoryRates(t *testing.T) {
	var mu sync.Mutex
	var c broker.Counters
	conns := 0
	h := newHistoryOf(func() broker.Counters { mu.Lock(); defer mu.Unlock(); return c },
		func() int { mu.Lock(); defer mu.Unlock(); return conns })
	t0 := time.Unix(1_700_000_000, 0)
	if s := h.last(); s.MsgsIn != 0 || s.Connections != 0 {
		t.Errorf("last before samples: %+v", s)
	}
	h.tick(t0) // baseline only
	if got := h.since(0); len(got) != 0 {
		t.Fatalf("samples after the first tick: %v", got)
	}
	ch, ok := h.subscribe()
	if !ok {
		t.Fatal("subscribe refused")
	}
	mu.Lock()
	c = broker.Counters{Published: 10, Delivered: 30, BytesIn: 1000, BytesOut: 3000, Dropped: 1, NoSubscriber: 2, OfflineDropped: 3, QuotaRefused: 4, Denied: 5, SlowConsumers: 100}
	conns = 7
	mu.Unlock()
	h.tick(t0.Add(2 * time.Second))
	want := Sample{Time: t0.Unix() + 2, Connections: 7, MsgsIn: 5, MsgsOut: 15, BytesIn: 500, BytesOut: 1500, Drops: 6.5}
	if got := h.last(); got != want {
		t.Errorf("sample %+v, want %+v", got, want)
	}
	select {
	case got := <-ch:
		if got != want {
			t.Errorf("pushed %+v", got)
		}
	default:
		t.Error("no sample pushed")
	}
	// A counter going backwards counts 0, not a huge rate.
	mu.Lock()
	c.Published = 5
	mu.Unlock()
	h.tick(t0.Add(3 * time.Second))
	if got := h.last(); got.MsgsIn != 0 || got.MsgsOut != 0 {
		t.Errorf("after a reset: %+v", got)
	}
	// Fill past the ring; a slow subscriber does not block the sampler.
	for i := 4; i < historyLen+50; i++ {
		mu.Lock()
		c.Published += uint64(i)
		mu.Unlock()
		h.tick(t0.Add(time.Duration(i) * time.Second))
	}
	all := h.since(0)
	if len(all) != historyLen {
		t.Fatalf("%d samples, want %d", len(all), historyLen)
	}
	for i, s := range all {
		if wantT := t0.Unix() + int64(historyLen+50-historyLen+i); s.Time != wantT {
			t.Fatalf("sample %d at %d, want %d", i, s.Time, wantT)
		}
	}
	last := all[len(all)-1]
	if last.MsgsIn != float64(historyLen+49) || h.last() != last {
		t.Errorf("last %+v", last)
	}
	if got := h.since(last.Time - 3); len(got) != 3 || got[0].Time != last.Time-2 {
		t.Errorf("since: %v", got)
	}
	h.unsubscribe(ch)
	// The stream cap.
	var chans []chan Sample
	for {
		c, ok := h.subscribe()
		if !ok {
			break
		}
		chans = append(chans, c)
	}
	if len(chans) != maxEventStreams {
		t.Errorf("%d streams, want %d", len(chans), maxEventStreams)
	}
}

// publishN publishes n messages on topic through the router.
func publishN(t *testing.T, r *broker.Router, topic string, n int, payload []byte) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := r.Publish(context.Background(), nil, &broker.Message{Topic: topic, Payload: payload, ContentType: "text/plain"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHistoryLive: the server's sampler sees a real router's publishes.
func TestHistoryLive(t *testing.T) {
	if testing.Short() {
		t.Skip("takes seconds")
	}
	s := newGW(t, Config{})
	deadline := time.Now().Add(10 * time.Second)
	for {
		publishN(t, s.gw.router, "live/a", 50, []byte("x"))
		resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/history", "", nil)
		var samples []Sample
		if err := json.Unmarshal([]byte(body), &samples); resp.StatusCode != 200 || err != nil {
			t.Fatalf("history: %d %q %v", resp.StatusCode, body, err)
		}
		if n := len(samples); n > 0 && samples[n-1].MsgsIn > 0 {
			if s.gw.hist.last().Time < samples[n-1].Time {
				t.Errorf("last older than history")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rate in %v", samples)
		}
		time.Sleep(100 * time.Millisecond) // publishing pace, not synchronisation
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ id, name, data string }

// sseStream reads events from an event-stream body.
type sseStream struct {
	resp *http.Response
	ch   chan sseEvent
}

// openSSE GETs url and reads its events in the background until the body
// ends (ch closes).
func openSSE(t *testing.T, ctx context.Context, u string, set func(*http.Request)) *sseStream {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Accept", "text/event-stream")
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	st := &sseStream{resp: resp, ch: make(chan sseEvent, 1024)}
	go func() {
		defer close(st.ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" || ev.id != "" {
					st.ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):]
			case strings.HasPrefix(line, "retry: "):
				st.ch <- sseEvent{name: "retry"}
			}
		}
	}()
	return st
}

// next returns the next event named name (skipping others), failing after
// wait.
func (st *sseStream) next(t *testing.T, name string, wait time.Duration) sseEvent {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-st.ch:
			if !ok {
				t.Fatalf("stream ended waiting for %q", name)
			}
			if ev.name == name {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no %q event in %v", name, wait)
		}
	}
}

// TestEvents: /api/v1/events pushes a "sample" at once and then each
// second, and ends at Shutdown.
func TestEvents(t *testing.T) {
	s := newGW(t, Config{AdminAuth: fakeAuth{}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openSSE(t, ctx, s.hs.URL+"/api/v1/events", basic("admin", "secret"))
	if st.resp.StatusCode != 200 {
		t.Fatalf("events: %d", st.resp.StatusCode)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := st.resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	st.next(t, "retry", 5*time.Second)
	var first, second Sample
	if err := json.Unmarshal([]byte(st.next(t, "sample", 5*time.Second).data), &first); err != nil {
		t.Fatal(err)
	}
	publishN(t, s.gw.router, "ev/a", 10, []byte("x"))
	if err := json.Unmarshal([]byte(st.next(t, "sample", 5*time.Second).data), &second); err != nil {
		t.Fatal(err)
	}
	if second.Time == 0 || second.Time < first.Time {
		t.Errorf("samples %+v then %+v", first, second)
	}
	// Without a login: 401 JSON, no challenge for an EventSource.
	resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/events", "", header("Accept", "text/event-stream"))
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("events without login: %d %q", resp.StatusCode, body)
	}
	// Shutdown ends the stream.
	_ = s.gw.Shutdown(context.Background())
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-st.ch:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("stream still open after Shutdown")
		}
	}
}

// TestEventsCap: past maxEventStreams, 503.
func TestEventsCap(t *testing.T) {
	s := newGW(t, Config{})
	for i := 0; i < maxEventStreams; i++ {
		if _, ok := s.gw.hist.subscribe(); !ok {
			t.Fatal("subscribe refused")
		}
	}
	resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/events", "", nil)
	if resp.StatusCode != 503 {
		t.Errorf("events past the cap: %d %q", resp.StatusCode, body)
	}
}

// TestTail: /api/v1/tail streams the messages of matching topics, as
// TailMessage with a base64 payload cut at TailPayloadBytes.
func TestTail(t *testing.T) {
	s := newGW(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openSSE(t, ctx, s.hs.URL+"/api/v1/tail?filter="+url.QueryEscape("tail/+"), nil)
	if st.resp.StatusCode != 200 || st.resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("tail: %d %v", st.resp.StatusCode, st.resp.Header)
	}
	st.next(t, "retry", 5*time.Second) // the tap is open
	r := s.gw.router
	publishN(t, r, "other/a", 1, []byte("no"))
	publishN(t, r, "tail/a", 1, []byte("hello"))
	big := bytes.Repeat([]byte{0xff}, TailPayloadBytes+10)
	publishN(t, r, "tail/b", 1, big)
	var m TailMessage
	if err := json.Unmarshal([]byte(st.next(t, "message", 5*time.Second).data), &m); err != nil {
		t.Fatal(err)
	}
	p, _ := base64.StdEncoding.DecodeString(m.Payload)
	if m.Topic != "tail/a" || string(p) != "hello" || m.Size != 5 || m.Truncated || m.ContentType != "text/plain" || m.Time == 0 {
		t.Errorf("message %+v", m)
	}
	m = TailMessage{}
	if err := json.Unmarshal([]byte(st.next(t, "message", 5*time.Second).data), &m); err != nil {
		t.Fatal(err)
	}
	p, _ = base64.StdEncoding.DecodeString(m.Payload)
	if m.Topic != "tail/b" || len(p) != TailPayloadBytes || m.Size != len(big) || !m.Truncated {
		t.Errorf("big message: topic %q, %d bytes, size %d, truncated %v", m.Topic, len(p), m.Size, m.Truncated)
	}
	cancel()
	// The tap closes with the stream; the slot is given back.
	testutil.Eventually(t, 5*time.Second, "the tail slot released", func() bool { return s.gw.hist.tails.Load() == 0 })

	// Bad filters.
	for _, f := range []string{"a/#/b", "a+", "#x"} {
		resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/tail?filter="+url.QueryEscape(f), "", nil)
		if resp.StatusCode != 400 {
			t.Errorf("filter %q: %d %q", f, resp.StatusCode, body)
		}
		apiErrorOf(t, resp, body)
	}
	// The cap.
	s.gw.hist.tails.Store(maxTails)
	resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/tail?filter=x", "", nil)
	s.gw.hist.tails.Store(0)
	if resp.StatusCode != 503 {
		t.Errorf("tail past the cap: %d %q", resp.StatusCode, body)
	}
}

// TestTailDropped: a reader that does not keep up loses messages, and the
// stream reports the total as event "dropped".
func TestTailDropped(t *testing.T) {
	s := newGW(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.hs.URL+"/api/v1/tail?filter="+url.QueryEscape("#"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("first line %q %v", line, err)
	}
	// Not reading: the socket buffers fill, then the tap's channel, and
	// the rest is dropped.
	payload := bytes.Repeat([]byte("y"), 32<<10)
	publishN(t, s.gw.router, "drop/a", 3000, payload)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("no dropped event: %v", err)
		}
		if line == "event: dropped\n" {
			data, _ := br.ReadString('\n')
			var d struct{ Dropped uint64 }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &d); err != nil || d.Dropped == 0 {
				t.Fatalf("dropped %q %v", data, err)
			}
			return
		}
	}
}

// TestStreamsEndAtLogout: an event stream or a tail opened with the
// session cookie ends when the session does.
func TestStreamsEndAtLogout(t *testing.T) {
	s := newGW(t, Config{AdminAuth: fakeAuth{}})
	c, tok := login(t, s.hs.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev := openSSE(t, ctx, s.hs.URL+"/api/v1/events", withCookie(c))
	tail := openSSE(t, ctx, s.hs.URL+"/api/v1/tail?filter=x", withCookie(c))
	if ev.resp.StatusCode != 200 || tail.resp.StatusCode != 200 {
		t.Fatalf("streams: %d %d", ev.resp.StatusCode, tail.resp.StatusCode)
	}
	ev.next(t, "sample", 5*time.Second)
	tail.next(t, "retry", 5*time.Second)
	if resp, _ := loginDo(t, nil, "POST", s.hs.URL+"/api/v1/logout", "", withCookie(c, header(csrfHeader, tok))); resp.StatusCode != 200 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	for _, st := range []*sseStream{ev, tail} {
		timer := time.NewTimer(5 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-st.ch:
				if !ok {
					break drain
				}
			case <-timer.C:
				t.Fatal("stream open after logout")
			}
		}
		timer.Stop()
	}
}

// TestStreamConnReused: a stream that ends leaves its keep-alive
// connection usable (no stale write deadline), even after the write
// timeout has passed.
func TestStreamConnReused(t *testing.T) {
	s := newGW(t, Config{AdminAuth: fakeAuth{}, WriteTimeout: 50 * time.Millisecond})
	c, tok := login(t, s.hs.URL)
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.hs.URL+"/api/v1/events", nil)
	withCookie(c)(req)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "event: sample\n" {
			break
		}
	}
	// The session ends: the stream ends cleanly at its next sample.
	if resp, _ := loginDo(t, nil, "POST", s.hs.URL+"/api/v1/logout", "", withCookie(c, header(csrfHeader, tok))); resp.StatusCode != 200 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("stream end: %v", err)
	}
	resp.Body.Close()
	time.Sleep(200 * time.Millisecond) // past the write timeout (not synchronisation)
	var conns []httptrace.GotConnInfo
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { conns = append(conns, i) }}
	req, _ = http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", s.hs.URL+"/api/v1/me", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(conns) != 1 || !conns[0].Reused {
		t.Errorf("after the stream: %d, connections %+v", resp.StatusCode, conns)
	}
}

// TestEventsResume: samples carry their time as the event id; a stream
// opened with Last-Event-ID starts with the samples after it, and
// /api/v1/history?since= filters the same way.
func TestEventsResume(t *testing.T) {
	s := newGW(t, Config{})
	var all []Sample
	testutil.Eventually(t, 10*time.Second, "3 samples", func() bool { all = s.gw.hist.since(0); return len(all) >= 3 })
	from := all[0].Time
	resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/history?since="+strconv.FormatInt(from, 10), "", nil)
	var got []Sample
	if err := json.Unmarshal([]byte(body), &got); resp.StatusCode != 200 || err != nil || len(got) < 2 || got[0].Time <= from {
		t.Errorf("history?since: %d %q", resp.StatusCode, body)
	}
	for _, bad := range []string{"x", "-1", "1.5"} {
		if resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/history?since="+bad, "", nil); resp.StatusCode != 400 {
			t.Errorf("since=%s: %d %q", bad, resp.StatusCode, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openSSE(t, ctx, s.hs.URL+"/api/v1/events", header("Last-Event-ID", strconv.FormatInt(from, 10)))
	prev := from
	for i := 0; i < len(all)-1; i++ {
		ev := st.next(t, "sample", 5*time.Second)
		var smp Sample
		if err := json.Unmarshal([]byte(ev.data), &smp); err != nil {
			t.Fatal(err)
		}
		if smp.Time != all[i+1].Time || ev.id != strconv.FormatInt(smp.Time, 10) || smp.Time <= prev {
			t.Errorf("resumed sample %d: id %q, %+v, want t=%d", i, ev.id, smp, all[i+1].Time)
		}
		prev = smp.Time
	}
	// Then the live ones, in order, no repeats.
	for i := 0; i < 2; i++ {
		var smp Sample
		ev := st.next(t, "sample", 5*time.Second)
		if err := json.Unmarshal([]byte(ev.data), &smp); err != nil || smp.Time <= prev {
			t.Errorf("live sample after resume: %+v (prev %d)", smp, prev)
		}
		prev = smp.Time
	}
}
