package web

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// History of the live charts (issue 9): one Sample a second, the last 15
// minutes, computed from differences of the router's running totals.
const (
	historyLen      = 900 // samples kept: 15 minutes
	historyInterval = time.Second
	// maxEventStreams bounds the concurrent GET /api/v1/events streams;
	// each one holds a channel of eventBuffer samples, and a stream that
	// does not keep up misses samples rather than slowing the sampler.
	maxEventStreams = 100
	eventBuffer     = 4
)

// history samples the router once a second and keeps the last 15 minutes
// for the charts; it pushes each new sample to the event streams. The
// sampler runs from newHistory until the server's Shutdown.
type history struct {
	counters func() broker.Counters
	conns    func() int
	once     sync.Once // start

	mu    sync.Mutex
	ring  []Sample // historyLen slots; n filled, next is the slot of the next sample
	n     int
	next  int
	prev  broker.Counters // totals at prevT
	prevT time.Time
	subs  map[chan Sample]struct{}

	tails atomic.Int32 // running GET /api/v1/tail streams (live.go)
}

// newHistory returns s's history; liveRoutes starts the sampler (after
// initConsole has built everything the sampler reads), which runs until
// s.ctx ends. The router's counters leave the broker's own $SYS
// publications out.
func newHistory(s *Server) *history {
	r := s.router
	if r == nil {
		return newHistoryOf(func() broker.Counters { return broker.Counters{} }, func() int { return 0 })
	}
	return newHistoryOf(r.Counters, func() int {
		n := 0
		for _, c := range r.ConnCounts() {
			n += c.N
		}
		return n
	})
}

// start runs the sampler until ctx ends; calls after the first do nothing.
func (h *history) start(ctx context.Context) {
	h.once.Do(func() { go h.run(ctx, historyInterval) })
}

// newHistoryOf returns a history reading counters and conns, not yet
// sampling (tests call tick themselves).
func newHistoryOf(counters func() broker.Counters, conns func() int) *history {
	return &history{
		counters: counters,
		conns:    conns,
		ring:     make([]Sample, historyLen),
		subs:     make(map[chan Sample]struct{}),
	}
}

func (h *history) run(ctx context.Context, every time.Duration) {
	h.tick(time.Now())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.tick(now)
		}
	}
}

// drops adds up the messages lost or refused: Overview.Drops without
// SlowClosed, which counts sessions, and without NoSubscriber: a topic
// message nobody subscribed to is ordinary publish-subscribe (telemetry
// nobody watches right now), not a problem for the chart to flag; the
// overview still shows its total.
func drops(c broker.Counters) uint64 {
	return c.Dropped + c.OfflineDropped + c.QuotaRefused + c.Denied
}

// perSecond is the per-second rate of a counter that went from a to b in dt;
// a counter that went backwards (a restart of its source) counts 0.
func perSecond(a, b uint64, dt float64) float64 {
	if b < a || dt <= 0 {
		return 0
	}
	return float64(b-a) / dt
}

// tick takes one sample at now. The first tick only records the totals.
func (h *history) tick(now time.Time) {
	c := h.counters()
	conns := h.conns()
	h.mu.Lock()
	defer h.mu.Unlock()
	first := h.prevT.IsZero()
	p, dt := h.prev, now.Sub(h.prevT).Seconds()
	h.prev, h.prevT = c, now
	if first {
		return
	}
	smp := Sample{
		Time:        now.Unix(),
		Connections: conns,
		MsgsIn:      perSecond(p.Published, c.Published, dt),
		MsgsOut:     perSecond(p.Delivered, c.Delivered, dt),
		BytesIn:     perSecond(p.BytesIn, c.BytesIn, dt),
		BytesOut:    perSecond(p.BytesOut, c.BytesOut, dt),
		Drops:       perSecond(drops(p), drops(c), dt),
	}
	h.ring[h.next] = smp
	h.next = (h.next + 1) % len(h.ring)
	if h.n < len(h.ring) {
		h.n++
	}
	for ch := range h.subs {
		select {
		case ch <- smp:
		default: // a slow stream misses this one
		}
	}
}

// last returns the latest sample; before the first one, the current
// connections and zero rates.
func (h *history) last() Sample {
	h.mu.Lock()
	if h.n > 0 {
		smp := h.ring[(h.next-1+len(h.ring))%len(h.ring)]
		h.mu.Unlock()
		return smp
	}
	h.mu.Unlock()
	return Sample{Time: time.Now().Unix(), Connections: h.conns()}
}

// since returns the samples taken after Unix second t, oldest first
// (since(0): all of them).
func (h *history) since(t int64) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Sample, 0, h.n)
	start := (h.next - h.n + len(h.ring)) % len(h.ring)
	for i := 0; i < h.n; i++ {
		if smp := h.ring[(start+i)%len(h.ring)]; smp.Time > t {
			out = append(out, smp)
		}
	}
	return out
}

// subscribe registers an event stream; false when maxEventStreams are
// open already.
func (h *history) subscribe() (chan Sample, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxEventStreams {
		return nil, false
	}
	ch := make(chan Sample, eventBuffer)
	h.subs[ch] = struct{}{}
	return ch, true
}

func (h *history) unsubscribe(ch chan Sample) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}
