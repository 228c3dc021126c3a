package crash_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// Kill9 settings.
const (
	defaultKills  = 3
	publishPace   = 5 * time.Millisecond // at most one publish per pace per publisher
	minKillDelay  = 20 * time.Millisecond
	killDelaySpan = 2000 * time.Millisecond // random part of the delay before a kill
	minProgress   = 5                       // acknowledgements per publisher between kills
	waitProgress  = 30 * time.Second
)

// killPoint is one SIGKILL of the experiment, for the failure report.
type killPoint struct {
	idx     int
	delay   time.Duration // after the stream was running again
	offline bool          // subscribers offline across this kill
	gen     int           // broker generation killed
	how     string        // SIGKILL, or SIGTERM (a graceful restart under load)
	acked   []int         // per publisher, acknowledged before the kill
}

func (k killPoint) String() string {
	s := fmt.Sprintf("#%d: gen %d %v %v after progress (acked %v)", k.idx, k.gen, k.how, k.delay, k.acked)
	if k.offline {
		s += ", subscribers offline"
	}
	return s
}

// TestKill9 runs sustained streams and kills the broker with SIGKILL at
// random points (seeded: DUPLEX_CRASH_SEED; count: DUPLEX_CRASH_KILLS),
// restarting it each time:
//
//   - MQTT QoS 1 from two publishers and four pipelined lanes (concurrent
//     publishes on one connection) to an MQTT 5 and an MQTT 3.1.1
//     persistent session;
//   - MQTT QoS 2 from one publisher and four pipelined lanes to an MQTT 5
//     persistent session (paho.golang);
//   - STOMP SENDs with receipts to a topic with a durable subscription in
//     each dialect (RabbitMQ, ActiveMQ, Artemis) and to a /queue, consumed
//     with ack:client-individual;
//   - retained QoS 1 messages replacing each other.
//
// Subscribers are online across most kills (live deliveries and in-flight
// state) and offline across every third. Every fourth restart (only in
// longer runs: make soak) is a graceful SIGTERM under load instead, which
// must exit with status 0. After each restart a new
// subscriber's retained message must be no older than the last one
// acknowledged before the kill. At the end every acknowledged message must
// have reached its subscriber: at least once and in order of first arrival
// per publisher (QoS 1, STOMP), exactly once (QoS 2).
//
// It runs twice: with -sync always (every acknowledgement fsynced), and
// with -sync 200ms, whose acknowledged writes may wait for an fsync but
// are in the OS page cache, which a process crash does not lose.
func TestKill9(t *testing.T) {
	for _, policy := range []string{"always", "200ms"} {
		t.Run("sync="+policy, func(t *testing.T) { testKill9(t, policy) })
	}
}

func testKill9(t *testing.T, syncPolicy string) {
	kills := envInt(t, "DUPLEX_CRASH_KILLS", defaultKills)
	seed := int64(envInt(t, "DUPLEX_CRASH_SEED", int(time.Now().UnixNano()&(1<<62-1))))
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6475706c6578))
	t.Logf("seed %d, %d kill points (reproduce with DUPLEX_CRASH_SEED=%d DUPLEX_CRASH_KILLS=%d)", seed, kills, seed, kills)
	var points []killPoint
	t.Cleanup(func() {
		if t.Failed() {
			var ps []string
			for _, p := range points {
				ps = append(ps, p.String())
			}
			t.Logf("FAILED with seed %d and kill points:\n  %s\nreproduce: DUPLEX_CRASH_SEED=%d DUPLEX_CRASH_KILLS=%d go test -count=1 -run 'TestKill9/sync=%s' -v ./test/crash/",
				seed, strings.Join(ps, "\n  "), seed, kills, syncPolicy)
		}
	})

	// A queue limit high enough that no acknowledged message is refused
	// for a session while its subscriber is offline.
	srv := startServer(t, "kill9-sync-"+syncPolicy, "-sync", syncPolicy, "-max-session-queue", "1000000")

	const (
		topicQoS1  = "crash/k9/qos1"
		topicQoS2  = "crash/k9/qos2"
		stompTopic = "/topic/crash/k9/stomp"
		queue      = "/queue/crash-k9"
		retained   = "crash/k9/retained"
	)
	q1Sub := newV5Sub(srv, "k9-qos1-sub", topicQoS1, 1)
	q2Sub := newV5Sub(srv, "k9-qos2-sub", topicQoS2, 2)
	v3Sub := newV3Sub(srv, "k9-qos1-sub-v311", topicQoS1, 1) // paho.mqtt.golang
	v3Sub.reconnect = true
	// One durable topic subscription per STOMP dialect, on one topic.
	var topicSubs []*stompConsumer
	for _, d := range stompDialects {
		client := "k9-stomp-durable-" + d.name
		topicSubs = append(topicSubs, newStompConsumer(srv, client, stompTopic, d.connHdrs(client), d.subHdrs(client)))
	}
	queueSub := newStompConsumer(srv, "k9-queue-consumer", queue, nil, nil)
	stompSubs := append(slices.Clone(topicSubs), queueSub)
	for _, c := range stompSubs {
		c.start()
		t.Cleanup(c.stop)
	}
	t.Cleanup(func() { _ = q1Sub.offline(); _ = q2Sub.offline(); v3Sub.offline() })

	setOnline := func(on bool) {
		t.Helper()
		var errs, took []string
		for _, s := range []*v5Sub{q1Sub, q2Sub} {
			t0 := time.Now()
			var err error
			if on {
				err = s.online()
			} else {
				err = s.offline()
			}
			took = append(took, fmt.Sprintf("%s %v", s.name, time.Since(t0).Round(time.Millisecond)))
			if err != nil {
				errs = append(errs, err.Error())
			}
		}
		t0 := time.Now()
		if on {
			if err := v3Sub.online(); err != nil {
				errs = append(errs, err.Error())
			}
		} else {
			v3Sub.offline()
		}
		took = append(took, fmt.Sprintf("%s %v", v3Sub.name, time.Since(t0).Round(time.Millisecond)))
		for _, c := range stompSubs {
			t0 := time.Now()
			if err := c.setOnline(on); err != nil {
				errs = append(errs, err.Error())
			}
			took = append(took, fmt.Sprintf("%s %v", c.name, time.Since(t0).Round(time.Millisecond)))
		}
		t.Logf("subscribers online=%v (broker generation %d): %s", on, srv.gen(), strings.Join(took, ", "))
		if len(errs) > 0 {
			t.Fatalf("subscribers online=%v (broker generation %d): %s", on, srv.gen(), strings.Join(errs, "; "))
		}
	}
	setOnline(true)

	// The streams.
	p1, p2 := &pubLog{name: "p1"}, &pubLog{name: "p2"} // MQTT QoS 1
	r1 := &pubLog{name: "r1"}                          // MQTT QoS 2
	s1 := &pubLog{name: "s1"}                          // STOMP to the durable topic subscription
	u1 := &pubLog{name: "u1"}                          // STOMP to the queue
	t1 := &pubLog{name: "t1"}                          // MQTT QoS 1 retained, each replacing the last
	// Pipelined: lanes publishing concurrently on one connection each
	// (QoS 1, QoS 2); each lane waits for its own acknowledgement, so the
	// order per lane is defined.
	var w1, w2 []*pubLog
	for _, lane := range []string{"a", "b", "c", "d"} {
		w1 = append(w1, &pubLog{name: "w1" + lane})
		w2 = append(w2, &pubLog{name: "w2" + lane})
	}
	logs := append([]*pubLog{p1, p2, r1, s1, u1, t1}, append(w1, w2...)...)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	run := func(l *pubLog, send func(payload string) error, closeFn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer closeFn()
			tick := time.NewTicker(publishPace)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				n, p := l.take()
				err := send(p)
				l.result(n, err)
				if err != nil && sleepOrStop(retryDelay, stop) {
					return
				}
			}
		}()
	}
	mqttStream := func(l *pubLog, topic string, qos byte, retain bool) {
		pub := newMQTTPub("k9-pub-"+l.name, srv)
		run(l, func(p string) error {
			ctx, cancel := context.WithTimeout(context.Background(), waitShort)
			defer cancel()
			return pub.Publish(ctx, topic, qos, retain, p)
		}, pub.Close)
	}
	stompStream := func(l *pubLog, dest string) {
		snd := &stompSender{srv: srv}
		run(l, func(p string) error { return snd.send(dest, p) }, snd.close)
	}
	mqttStream(p1, topicQoS1, 1, false)
	mqttStream(p2, topicQoS1, 1, false)
	mqttStream(r1, topicQoS2, 2, false)
	mqttStream(t1, retained, 1, true)
	pipelined := func(lanes []*pubLog, topic string, qos byte) {
		sp := &sharedPub{p: newMQTTPub("k9-pipelined-"+topic[len("crash/k9/"):], srv)}
		var left sync.WaitGroup
		left.Add(len(lanes))
		for _, l := range lanes {
			run(l, func(p string) error {
				ctx, cancel := context.WithTimeout(context.Background(), waitShort)
				defer cancel()
				return sp.publish(ctx, topic, qos, p)
			}, func() {
				left.Done()
				left.Wait()
				sp.close()
			})
		}
	}
	pipelined(w1, topicQoS1, 1)
	pipelined(w2, topicQoS2, 2)
	stompStream(s1, stompTopic)
	stompStream(u1, queue)
	stopped := false
	stopStreams := func() {
		if stopped {
			return
		}
		stopped = true
		close(stop)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitExit):
			t.Errorf("publishers still running %v after stop", waitExit)
		}
	}
	t.Cleanup(stopStreams)

	acked := func() []int {
		out := make([]int, len(logs))
		for i, l := range logs {
			out[i] = l.ackedCount()
		}
		return out
	}
	// progress waits until every publisher has had minProgress more
	// acknowledgements than in base.
	progress := func(base []int, what string) {
		t.Helper()
		err := waitFor(waitProgress, func() error {
			if err := srv.alive(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			var slow []string
			for i, l := range logs {
				if got := l.ackedCount(); got < base[i]+minProgress {
					slow = append(slow, fmt.Sprintf("%s (%d new)", l, got-base[i]))
				}
			}
			if len(slow) > 0 {
				return fmt.Errorf("%s", strings.Join(slow, "; "))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: publishers made no progress within %v (broker generation %d): %v", what, waitProgress, srv.gen(), err)
		}
	}

	progress(acked(), "before the first kill")
	for i := range kills {
		offline := i%3 == 1
		if offline {
			setOnline(false)
		}
		delay := minKillDelay + time.Duration(rng.Int64N(int64(killDelaySpan)))
		time.Sleep(delay) // the experiment: where in the stream the kill lands
		kp := killPoint{idx: i + 1, delay: delay, offline: offline, gen: srv.gen(), how: "SIGKILL", acked: acked()}
		if i%4 == 3 {
			kp.how = "SIGTERM" // every fourth: a graceful restart under load
		}
		points = append(points, kp)
		t.Logf("kill %s", kp)
		srv.restart(kp.how == "SIGKILL")
		checkRetained(t, srv, retained, t1, kp.acked[slices.Index(logs, t1)], i+1)
		if offline {
			setOnline(true)
		}
		progress(acked(), fmt.Sprintf("after kill #%d", i+1))
	}
	stopStreams()
	for _, l := range logs {
		t.Logf("publisher %s", l)
	}

	// End markers: each subscription's deliveries are in order, so once a
	// marker arrived everything routed before it has been delivered.
	markers := map[*recorder]string{}
	for _, c := range topicSubs[1:] {
		markers[c.rec] = "end of stream" // the marker sent to topicSubs[0]'s topic
	}
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitShort)
		defer cancel()
		mp := newMQTTPub("k9-marker", srv)
		defer mp.Close()
		sp := &stompSender{srv: srv}
		defer sp.close()
		for _, m := range []struct {
			rec  *recorder
			send func(string) error
		}{
			{q1Sub.rec, func(p string) error { return mp.Publish(ctx, topicQoS1, 1, false, p) }},
			{v3Sub.rec, nil}, // same topic as q1Sub
			{q2Sub.rec, func(p string) error { return mp.Publish(ctx, topicQoS2, 2, false, p) }},
			{topicSubs[0].rec, func(p string) error { return sp.send(stompTopic, p) }},
			{queueSub.rec, func(p string) error { return sp.send(queue, p) }},
		} {
			marker := "end of stream"
			markers[m.rec] = marker
			if m.send == nil {
				continue
			}
			if err := m.send(marker); err != nil {
				t.Fatalf("marker for %s (broker generation %d, up): %v", m.rec.name, srv.gen(), err)
			}
		}
	}()

	streams := []struct {
		rec  *recorder
		pubs []*pubLog
		opt  checkOptions
	}{
		{q1Sub.rec, append([]*pubLog{p1, p2}, w1...), checkOptions{ordered: true}},
		{v3Sub.rec, append([]*pubLog{p1, p2}, w1...), checkOptions{ordered: true}},
		{q2Sub.rec, append([]*pubLog{r1}, w2...), checkOptions{ordered: true, exactlyOnce: true}},
		{queueSub.rec, []*pubLog{u1}, checkOptions{ordered: true}},
	}
	for _, c := range topicSubs {
		streams = append(streams, struct {
			rec  *recorder
			pubs []*pubLog
			opt  checkOptions
		}{c.rec, []*pubLog{s1}, checkOptions{ordered: true}})
	}
	if err := srv.alive(); err != nil {
		t.Error(err)
	}
	var recs []*recorder
	var wants [][]string
	for _, s := range streams {
		var want []string
		for _, l := range s.pubs {
			want = append(want, l.ackedPayloads()...)
		}
		recs = append(recs, s.rec)
		wants = append(wants, append(want, markers[s.rec]))
	}
	missing := drainAll(recs, wants, time.Now().Add(waitDrain))
	lastErrs := map[*recorder]*string{
		q1Sub.rec: q1Sub.lastErr.Load(),
		q2Sub.rec: q2Sub.lastErr.Load(),
	}
	for _, c := range stompSubs {
		lastErrs[c.rec] = c.lastErr.Load()
	}
	for i, s := range streams {
		dups := 0
		for _, d := range s.rec.snapshot() {
			if d.dup {
				dups++
			}
		}
		t.Logf("subscriber %s: %d deliveries (%d flagged redelivered/DUP), %d of %d wanted missing after the drain",
			s.rec.name, s.rec.len(), dups, len(missing[i]), len(wants[i]))
		if len(missing[i]) > 0 {
			if e := lastErrs[s.rec]; e != nil && *e != "" {
				t.Logf("subscriber %s: last client error: %s", s.rec.name, *e)
			}
		}
		if s.rec.times(markers[s.rec]) == 0 {
			t.Errorf("%s: the end-of-stream marker, published after the last restart, never arrived", s.rec.name)
		}
		for _, p := range checkStream(s.rec, s.pubs, s.opt) {
			t.Error(p)
		}
	}
	for _, s := range []*v5Sub{q1Sub, q2Sub} {
		for _, p := range s.getProblems() {
			t.Error(p)
		}
	}
}

// envInt reads a positive integer setting, or returns def.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// checkRetained subscribes a new session to topic and checks its retained
// message: publisher l's retained messages replace each other, so after
// a kill the retained one must be no older than the last acknowledged
// before the kill (the acknowledgedBefore'th); a later one is fine.
func checkRetained(t *testing.T, srv *server, topic string, l *pubLog, acknowledgedBefore, kill int) {
	t.Helper()
	if acknowledgedBefore == 0 {
		return
	}
	l.mu.Lock()
	floor := l.acked[acknowledgedBefore-1]
	l.mu.Unlock()
	c, _ := dialRaw5(t, srv, fmt.Sprintf("k9-retained-check-%d", kill), true, 0)
	defer c.disconnect()
	c.subscribe(topic, 1)
	deadline := time.Now().Add(waitShort)
	for {
		_ = c.nc.SetReadDeadline(deadline)
		p, err := packets.ReadPacket(c.nc)
		if err != nil {
			t.Errorf("after kill #%d: no retained message on %s (last acknowledged before the kill: %s-%d): %v", kill, topic, l.name, floor, err)
			return
		}
		pub, ok := p.Content.(*packets.Publish)
		if !ok || !pub.Retain {
			continue
		}
		name, n, ok := parsePayload(string(pub.Payload))
		if !ok || name != l.name || n < floor {
			t.Errorf("after kill #%d: retained message on %s is %q, older than %s-%d, acknowledged before the kill", kill, topic, pub.Payload, l.name, floor)
		}
		return
	}
}
