package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// loadRun is one throughput or latency run: its publishers, subscribers
// and connections (subscribers first, then publishers).
type loadRun struct {
	cfg     *config
	window  uint64 // messages in flight per publisher and subscriber
	pubs    []*publisher
	subs    []*subscriber
	clients []conn
}

// runThroughput runs the throughput and latency scenarios: publishers and
// subscribers on their topics, a warm-up, a measured window, a drain that
// waits for every published message to arrive, and a clean DISCONNECT.
func runThroughput(ctx context.Context, cfg *config, r *result) {
	lr := newLoadRun(cfg)
	if err := lr.connect(ctx); err != nil {
		r.fail("setup: %v", err)
		return
	}
	start := time.Now().Add(cfg.warmup)
	end := start.Add(cfg.duration)
	m := lr.measure(start, end)
	drain(lr.pubs, lr.subs, cfg.timeout)
	unconfirmed := stopAll(lr.pubs, lr.subs, cfg.timeout)
	lr.report(r, m, unconfirmed)
}

// newLoadRun lays out publishers and subscribers on topics. Each publisher's
// window is -window shared among the publishers of its topic, so that no
// subscriber ever has more than -window messages in flight.
func newLoadRun(cfg *config) *loadRun {
	topo := newTopology(cfg.pubs, cfg.subs)
	pubsPerTopic := cfg.pubs / topo.topics
	if topo.topics == 1 {
		pubsPerTopic = cfg.pubs
	}
	window := uint64(max(4, cfg.window/pubsPerTopic))
	chunk := max(1, window/4)
	lr := &loadRun{cfg: cfg, window: window}
	lr.pubs = make([]*publisher, cfg.pubs)
	for i := range lr.pubs {
		p := &publisher{
			idx:      i,
			dest:     topicName(cfg.protocol, "bench", topo.pubTopic[i]),
			window:   window,
			chunk:    chunk,
			confirms: cfg.protocol == protoSTOMP || cfg.qos > 0,
			wake:     make(chan struct{}, 1),
		}
		if cfg.rate > 0 {
			p.interval = time.Duration(float64(time.Second) * float64(cfg.pubs) / cfg.rate)
		}
		lr.pubs[i] = p
	}
	lr.subs = make([]*subscriber, cfg.subs)
	for j := range lr.subs {
		var feeds []*publisher
		for _, i := range topo.pubsOf(j) {
			feeds = append(feeds, lr.pubs[i])
		}
		s := newSubscriber(j, cfg.size, cfg.pubs, feeds, chunk)
		s.dest = topicName(cfg.protocol, "bench", topo.subTopic[j])
		lr.subs[j] = s
	}
	for i, p := range lr.pubs {
		for _, j := range topo.subsOf(i) {
			p.subs = append(p.subs, lr.subs[j])
		}
	}
	return lr
}

// connect opens every connection, 16 at a time, and subscribes the
// subscribers (each SUBSCRIBE confirmed by a RECEIPT or SUBACK). On error
// it closes what it opened.
func (lr *loadRun) connect(ctx context.Context) error {
	d, err := newDialer(lr.cfg, false)
	if err != nil {
		return err
	}
	lr.clients = make([]conn, len(lr.subs)+len(lr.pubs))
	err = parallel(len(lr.clients), 16, func(k int) error {
		c, err := lr.dialerFor(k, d).dial(ctx) // cluster.go: -sub-urls
		if err != nil {
			return err
		}
		lr.clients[k] = c
		if k < len(lr.subs) {
			if err := c.subscribe(k, lr.subs[k].dest, time.Now().Add(lr.cfg.timeout)); err != nil {
				return fmt.Errorf("subscriber %d: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		for _, c := range lr.clients {
			if c != nil {
				c.close()
			}
		}
	}
	return err
}

// measurement is what was measured around the window.
type measurement struct {
	wall             time.Duration
	broker, self     time.Duration // CPU used in the window
	brokerOK, selfOK bool
	machine          time.Duration // CPU used by every process
	machineOK        bool
}

// measure starts the readers and publishers, samples CPU at the window's
// start and end, and returns once every publisher has stopped.
func (lr *loadRun) measure(start, end time.Time) measurement {
	for j, s := range lr.subs {
		s.start, s.end = start.UnixNano(), end.UnixNano()
		s.session.start(lr.clients[j], s)
	}
	var wg sync.WaitGroup
	for i, p := range lr.pubs {
		p.session.start(lr.clients[len(lr.subs)+i], p)
		p.c.setWriteDeadline(end.Add(lr.cfg.timeout))
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(start, end, lr.cfg.size)
		}()
	}

	time.Sleep(time.Until(start))
	brokerCPU, selfCPU := startBrokersCPU(lr.cfg), startCPU(0) // cluster.go: -broker-pids
	busy0, err0 := machineBusy()
	time.Sleep(time.Until(end))
	var m measurement
	m.broker, m.brokerOK = brokerCPU.used()
	m.brokerOK = m.brokerOK && lr.cfg.brokerPID != 0
	m.self, m.selfOK = selfCPU.used()
	busy1, err1 := machineBusy()
	m.machine, m.machineOK = busy1-busy0, err0 == nil && err1 == nil
	m.wall = time.Since(start)
	wg.Wait()
	return m
}
