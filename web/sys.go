package web

import (
	"context"
	"math"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// $SYS (issue 9): every interval (RunSys; the sys_interval setting) the
// broker publishes its state as retained QoS 0 messages on Mosquitto's
// $SYS/broker/... topics, so MQTT dashboards written for Mosquitto work
// unchanged:
//
//	$SYS/broker/version                     "duplex version V"
//	$SYS/broker/uptime                      "N seconds" (every interval)
//	$SYS/broker/clients/connected           connected sessions
//	$SYS/broker/clients/disconnected        persistent sessions kept offline
//	$SYS/broker/clients/total               both
//	$SYS/broker/clients/maximum             most connected sessions seen since the start
//	$SYS/broker/messages/received           messages accepted for routing (the broker's $SYS ones excluded)
//	$SYS/broker/messages/sent               deliveries
//	$SYS/broker/messages/stored             retained + persistent-session + queue messages
//	$SYS/broker/store/messages/count        the same (Mosquitto 2's name)
//	$SYS/broker/retained messages/count     retained messages
//	$SYS/broker/subscriptions/count         subscriptions of all sessions
//	$SYS/broker/bytes/received, bytes/sent  bytes on the wire
//	$SYS/broker/load/{messages,bytes}/{received,sent}/{1min,5min,15min}
//	                                        per-minute rates, exponentially decaying averages over 1, 5
//	                                        and 15 minutes, as Mosquitto computes them ("%.2f")
//	$SYS/broker/heap/current, heap/maximum  Go heap bytes in use (live and unswept objects), and its maximum
//	$SYS/broker/duplex/drops/<cause>        drops_total of /metrics by cause
//	$SYS/broker/duplex/queues/count, queues/messages, sessions/persistent,
//	$SYS/broker/duplex/retained/bytes, auth/failures, store/file_bytes
//
// Like Mosquitto, a topic is published only when its value changed since
// the last interval (all of them on the first), except uptime. The
// messages are published by the broker itself (no session, Origin ""):
// the ACL does not apply to them, but subscribing to $SYS/# is for admins
// when an ACL is configured, and '#' or '+' at the start of a filter does
// not match $SYS topics [MQTT-4.7.2-1].

// sysLoadWindows are the load averages' windows and topic suffixes.
var sysLoadWindows = [3]struct {
	name string
	secs float64
}{{"1min", 60}, {"5min", 300}, {"15min", 900}}

// sysLoad is one exponentially decaying per-minute rate, over three
// windows.
type sysLoad struct {
	topic string // "$SYS/broker/load/messages/received"
	last  uint64 // counter at the previous tick
	avg   [3]float64
}

// update folds the counter's value after dt into the averages, as
// Mosquitto's calc_load does: the interval's per-minute rate r, and
// avg = r + e^(-dt/window) * (avg - r).
func (l *sysLoad) update(v uint64, dt float64) {
	var d uint64
	if v > l.last {
		d = v - l.last
	}
	l.last = v
	if dt <= 0 {
		return
	}
	r := float64(d) * 60 / dt
	for i, w := range sysLoadWindows {
		l.avg[i] = r + math.Exp(-dt/w.secs)*(l.avg[i]-r)
	}
}

// sysState is RunSys's state, owned by its goroutine.
type sysState struct {
	s        *Server
	last     map[string]string // topic -> value last published
	lastTick time.Time
	maxConns int
	maxHeap  uint64
	loads    [4]sysLoad // messages received, sent; bytes received, sent
	heap     []metrics.Sample
}

func newSysState(s *Server) *sysState {
	return &sysState{
		s:    s,
		last: make(map[string]string),
		loads: [4]sysLoad{
			{topic: "$SYS/broker/load/messages/received"},
			{topic: "$SYS/broker/load/messages/sent"},
			{topic: "$SYS/broker/load/bytes/received"},
			{topic: "$SYS/broker/load/bytes/sent"},
		},
		heap: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}},
	}
}

// RunSys publishes the $SYS/broker/... topics every interval until ctx
// ends or the server shuts down; interval <= 0: never (it returns at
// once). It publishes once at the start.
func (s *Server) RunSys(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	st := newSysState(s)
	st.tick(ctx, time.Now())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			st.tick(ctx, now)
		}
	}
}

// tick reads the counters and publishes what changed.
func (st *sysState) tick(ctx context.Context, now time.Time) {
	s := st.s
	stats := s.router.Stats()
	ct := s.router.Counters()
	conns := 0
	for _, c := range s.router.ConnCounts() {
		conns += c.N
	}
	st.maxConns = max(st.maxConns, conns)
	metrics.Read(st.heap)
	var heap uint64
	if st.heap[0].Value.Kind() == metrics.KindUint64 {
		heap = st.heap[0].Value.Uint64()
	}
	st.maxHeap = max(st.maxHeap, heap)

	received := ct.Published
	dt := 0.0
	if !st.lastTick.IsZero() {
		dt = now.Sub(st.lastTick).Seconds()
	}
	for i, v := range [4]uint64{received, ct.Delivered, ct.BytesIn, ct.BytesOut} {
		if st.lastTick.IsZero() {
			st.loads[i].last = v // no interval yet: the averages start at 0
			continue
		}
		st.loads[i].update(v, dt)
	}
	st.lastTick = now

	// Mosquitto's form, "mosquitto version 2.0.18"; cmd/duplex's
	// Version already starts with "duplex ".
	version := strings.TrimPrefix(s.cfg.Version, "duplex ")
	if version == "" {
		version = "unknown"
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	queued := int64(stats.QueueReady + stats.QueueUnacked)
	stored := i(int64(stats.Retained) + stats.StoredMsgs + queued)
	offline := max(stats.Sessions-conns, 0)

	st.publish(ctx, "$SYS/broker/uptime", i(int64(now.Sub(s.started)/time.Second))+" seconds", true)
	pub := func(topic, v string) { st.publish(ctx, topic, v, false) }
	pub("$SYS/broker/version", "duplex version "+version)
	pub("$SYS/broker/clients/connected", i(int64(conns)))
	pub("$SYS/broker/clients/disconnected", i(int64(offline)))
	pub("$SYS/broker/clients/total", i(int64(conns+offline)))
	pub("$SYS/broker/clients/maximum", i(int64(st.maxConns)))
	pub("$SYS/broker/messages/received", u(received))
	pub("$SYS/broker/messages/sent", u(ct.Delivered))
	pub("$SYS/broker/messages/stored", stored)
	pub("$SYS/broker/store/messages/count", stored)
	pub("$SYS/broker/retained messages/count", i(int64(stats.Retained)))
	pub("$SYS/broker/subscriptions/count", i(stats.AllSubscriptions))
	pub("$SYS/broker/bytes/received", u(ct.BytesIn))
	pub("$SYS/broker/bytes/sent", u(ct.BytesOut))
	for _, l := range st.loads {
		for k, w := range sysLoadWindows {
			pub(l.topic+"/"+w.name, strconv.FormatFloat(l.avg[k], 'f', 2, 64))
		}
	}
	pub("$SYS/broker/heap/current", u(heap))
	pub("$SYS/broker/heap/maximum", u(st.maxHeap))

	for _, dc := range dropCauses(ct) {
		pub("$SYS/broker/duplex/drops/"+dc.cause, u(dc.n))
	}
	pub("$SYS/broker/duplex/queues/count", i(int64(stats.Queues)))
	pub("$SYS/broker/duplex/queues/messages", i(queued))
	pub("$SYS/broker/duplex/sessions/persistent", i(int64(stats.PersistentSessions)))
	pub("$SYS/broker/duplex/retained/bytes", i(stats.RetainedBytes))
	var authFailures uint64
	for _, ps := range s.protocolStats() {
		authFailures += ps.AuthFailures
	}
	pub("$SYS/broker/duplex/auth/failures", u(authFailures))
	if ss, ok := s.storeStats(); ok {
		pub("$SYS/broker/duplex/store/file_bytes", i(ss.FileSize))
	}
}

// publish sends v on topic, retained, unless it is the value last sent
// there (always when force).
func (st *sysState) publish(ctx context.Context, topic, v string, force bool) {
	if old, seen := st.last[topic]; seen && old == v && !force {
		return
	}
	st.last[topic] = v
	m := &broker.Message{Topic: topic, Payload: []byte(v), Retain: true}
	if err := st.s.router.Publish(ctx, nil, m); err != nil {
		st.s.cfg.Log.Debug("web: $SYS publish failed", "topic", topic, "err", err)
	}
}
