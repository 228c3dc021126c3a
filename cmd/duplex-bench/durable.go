package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// durablePub is one QoS 1 publisher of the durable and fill scenarios. It
// keeps at most inflight PUBLISHes sent and not yet PUBACKed, and times
// each one from the write of its PUBLISH to the arrival of its PUBACK: with
// the persistent session offline, the broker must have stored the message
// (and, with -sync always, synced it) before it sends that PUBACK.
type durablePub struct {
	session
	idx        int
	inflight   uint64
	sentAt     []atomic.Int64 // UnixNano send time of seq, at sentAt[seq%inflight]
	acked      counter        // highest sequence number PUBACKed
	wake       chan struct{}  // signalled on every PUBACK
	start, end int64          // UnixNano: PUBACKs of messages sent in [start, end) are timed

	// Owned by the reader goroutine; read after it ends.
	hist   histogram
	timed  int64  // PUBACKs timed (their message was sent inside the window)
	strays uint64 // deliveries or other packets: a clean-session publisher subscribes to nothing

	// Owned by the run goroutine; read after it ends.
	sent     uint64
	writeErr error
	stallErr error
}

// newDurablePub makes publisher idx on connection c.
func newDurablePub(idx, inflight int) *durablePub {
	return &durablePub{
		idx:      idx,
		inflight: uint64(inflight),
		sentAt:   make([]atomic.Int64, inflight),
		wake:     make(chan struct{}, 1),
	}
}

// confirmed records, on the reader goroutine, the PUBACK of message seq
// (PUBACKs come in order, so every earlier message is acknowledged too).
func (p *durablePub) confirmed(seq uint64) {
	now := time.Now().UnixNano()
	if t := p.sentAt[seq%p.inflight].Load(); t >= p.start && t < p.end {
		p.hist.record(now - t)
		p.timed++
	}
	p.acked.Store(seq)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// delivery counts a message nobody asked for.
func (p *durablePub) delivery([]byte) { p.strays++ }

// other counts a packet other than PUBACK.
func (p *durablePub) other() { p.strays++ }

// run publishes to durableTopic until end, or, with a quota, until the
// quota (shared by all publishers) is used up. Waiting longer than stall
// for a PUBACK ends it with stallErr set.
func (p *durablePub) run(end time.Time, quota *atomic.Int64, size int, stall time.Duration) {
	p.c.preparePublish(durableTopic, size)
	body := make([]byte, size)
	for i := minBody; i < size; i++ {
		body[i] = 'x'
	}
	binary.LittleEndian.PutUint32(body[offPub:], uint32(p.idx))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var waiting time.Time // when the current wait for a PUBACK began
	for {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		if p.sent-p.acked.Load() >= p.inflight {
			if waiting.IsZero() {
				waiting = now
			} else if now.Sub(waiting) >= stall {
				p.stallErr = fmt.Errorf("no PUBACK for %s with %d PUBLISHes in flight", stall, p.inflight)
				return
			}
			timer.Reset(min(stall-now.Sub(waiting), end.Sub(now)))
			select {
			case <-p.wake:
			case <-timer.C:
			case <-p.done:
				return
			}
			continue
		}
		waiting = time.Time{}
		if quota != nil && quota.Add(-1) < 0 {
			return
		}
		seq := p.sent + 1
		ns := now.UnixNano()
		binary.LittleEndian.PutUint64(body[offTime:], uint64(ns))
		binary.LittleEndian.PutUint64(body[offSeq:], seq)
		p.sentAt[seq%p.inflight].Store(ns)
		if err := p.c.publish(seq, body, true); err != nil {
			p.writeErr = err
			return
		}
		p.sent = seq
	}
}

// waitAcked waits until deadline for the PUBACKs of every message sent.
func (p *durablePub) waitAcked(deadline time.Time) {
	for p.acked.Load() < p.sent && time.Now().Before(deadline) {
		select {
		case <-p.wake:
		case <-p.done:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// durableRun is one durable or fill run: the persistent subscriber's setup
// and the publishers.
type durableRun struct {
	cfg  *config
	d    *dialer
	pubs []*durablePub
	// CPU over the measured time, as measure takes it.
	m measurement
}

// setupSubscriber gives the persistent subscriber -client-id a fresh
// session with one QoS 1 subscription to durableTopic and leaves it
// offline: a clean-session CONNECT first discards whatever session that
// identifier had, then a persistent CONNECT, SUBSCRIBE, DISCONNECT.
func setupSubscriber(ctx context.Context, d *dialer, cfg *config) error {
	c, _, err := d.dialSession(ctx, cfg.clientID, true)
	if err != nil {
		return fmt.Errorf("subscriber %q, clean session: %w", cfg.clientID, err)
	}
	if err := c.bye(time.Now().Add(cfg.timeout)); err != nil {
		return fmt.Errorf("subscriber %q, clean session: disconnect: %w", cfg.clientID, err)
	}
	c, present, err := d.dialSession(ctx, cfg.clientID, false)
	if err != nil {
		return fmt.Errorf("subscriber %q, persistent session: %w", cfg.clientID, err)
	}
	if present {
		c.close()
		return fmt.Errorf("subscriber %q: the broker resumed a session a clean-session CONNECT should have discarded", cfg.clientID)
	}
	if err := c.subscribe(0, durableTopic, time.Now().Add(cfg.timeout)); err != nil {
		c.close()
		return fmt.Errorf("subscriber %q: %w", cfg.clientID, err)
	}
	if err := c.bye(time.Now().Add(cfg.timeout)); err != nil {
		return fmt.Errorf("subscriber %q: disconnect: %w", cfg.clientID, err)
	}
	return nil
}

// newDurableRun sets up the offline persistent subscriber and connects the
// publishers.
func newDurableRun(ctx context.Context, cfg *config) (*durableRun, error) {
	d, err := newDialer(cfg, false)
	if err != nil {
		return nil, err
	}
	if err := setupSubscriber(ctx, d, cfg); err != nil {
		return nil, err
	}
	dr := &durableRun{cfg: cfg, d: d, pubs: make([]*durablePub, cfg.pubs)}
	clients := make([]conn, cfg.pubs)
	err = parallel(cfg.pubs, 16, func(i int) error {
		c, err := d.dial(ctx)
		if err != nil {
			return fmt.Errorf("publisher %d: %w", i, err)
		}
		clients[i] = c
		return nil
	})
	if err != nil {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
		return nil, err
	}
	for i := range dr.pubs {
		dr.pubs[i] = newDurablePub(i, cfg.inflight)
		dr.pubs[i].c = clients[i]
	}
	return dr, nil
}

// publish starts every publisher's reader and run loop, with PUBACKs of
// messages sent in [start, end) timed, and returns once every run loop has
// returned and its PUBACKs have come (or -timeout passed). With a quota the
// publishers stop when it is used up; end is then only a limit. CPU is
// measured over [start, min(end, the last PUBACK)].
func (dr *durableRun) publish(start, end time.Time, quota *atomic.Int64) {
	cfg := dr.cfg
	var wg sync.WaitGroup
	for _, p := range dr.pubs {
		p.start, p.end = start.UnixNano(), end.UnixNano()
		p.session.start(p.c, p)
		p.c.setWriteDeadline(end.Add(cfg.timeout))
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(end, quota, cfg.size, cfg.timeout)
			p.waitAcked(time.Now().Add(cfg.timeout))
		}()
	}
	time.Sleep(time.Until(start))
	brokerCPU, selfCPU := startCPU(cfg.brokerPID), startCPU(0)
	busy0, err0 := machineBusy()
	if quota == nil {
		time.Sleep(time.Until(end))
	} else {
		wg.Wait()
	}
	m := &dr.m
	m.broker, m.brokerOK = brokerCPU.used()
	m.brokerOK = m.brokerOK && cfg.brokerPID != 0
	m.self, m.selfOK = selfCPU.used()
	busy1, err1 := machineBusy()
	m.machine, m.machineOK = busy1-busy0, err0 == nil && err1 == nil
	m.wall = time.Since(start)
	wg.Wait()
}

// stop disconnects the publishers and returns how many DISCONNECTs the
// broker did not confirm.
func (dr *durableRun) stop() int {
	var unconfirmed atomic.Int64
	parallel(len(dr.pubs), 64, func(i int) error {
		s := &dr.pubs[i].session
		select {
		case <-s.done:
			s.c.close()
			return nil
		default:
		}
		if !s.stop(dr.cfg.timeout) && s.failure() == nil {
			unconfirmed.Add(1)
		}
		return nil
	})
	return int(unconfirmed.Load())
}

// report records the failures common to durable and fill and returns the
// merged PUBACK latency histogram, the PUBACKs timed, and the messages sent
// and acknowledged.
func (dr *durableRun) report(r *result, unconfirmed int) (hist histogram, timed int64, sent, acked uint64) {
	var fails []connErr
	var strays uint64
	for _, p := range dr.pubs {
		hist.merge(&p.hist)
		timed += p.timed
		sent += p.sent
		acked += min(p.acked.Load(), p.sent)
		strays += p.strays
		switch err := p.failure(); {
		case err != nil:
			fails = append(fails, connErr{fmt.Sprintf("publisher %d", p.idx), err.Error()})
		case p.writeErr != nil:
			fails = append(fails, connErr{fmt.Sprintf("publisher %d", p.idx), "send: " + p.writeErr.Error()})
		case p.stallErr != nil:
			fails = append(fails, connErr{fmt.Sprintf("publisher %d", p.idx), p.stallErr.Error()})
		}
	}
	failList(r, "publishers failed", fails)
	if acked < sent {
		r.fail("%d of %d PUBLISHes never PUBACKed", sent-acked, sent)
	}
	if strays > 0 {
		r.fail("%d unexpected packets to publishers", strays)
	}
	if unconfirmed > 0 {
		r.fail("%d DISCONNECTs not confirmed (the broker did not close the connection)", unconfirmed)
	}
	return hist, timed, sent, acked
}

// addCPU adds the broker's CPU per acknowledged message and the
// generator's and other processes' CPU.
func (r *result) addCPU(m measurement, msgs int64) {
	if m.brokerOK && msgs > 0 {
		r.add("broker %.2f cpu-us/msg (%.0f%% of a core)", float64(m.broker.Microseconds())/float64(msgs), 100*m.broker.Seconds()/m.wall.Seconds())
	}
	if m.selfOK {
		r.add("generator %.0f%% cpu", 100*m.self.Seconds()/m.wall.Seconds())
	}
	if m.brokerOK && m.selfOK && m.machineOK {
		r.add("other procs %.0f%% cpu", 100*max(0, m.machine-m.broker-m.self).Seconds()/m.wall.Seconds())
	}
}

// addPubackLatency appends the publish-to-PUBACK percentiles.
func (r *result) addPubackLatency(h *histogram) {
	if h.n == 0 {
		return
	}
	r.add("PUBACK p50 %s", fmtMs(h.quantile(0.50)))
	r.add("p90 %s", fmtMs(h.quantile(0.90)))
	r.add("p99 %s", fmtMs(h.quantile(0.99)))
	r.add("max %s", fmtMs(h.max))
}

// runDurable is the durable scenario: with the persistent subscriber
// offline, -pubs publishers send QoS 1 messages to its topic for -warmup
// plus -duration, each with at most -inflight unacknowledged. Every
// message is one the broker must store (and sync, per its policy) before
// its PUBACK. It reports messages/s PUBACKed (of those sent in the measured
// window) and the publish-to-PUBACK latency.
func runDurable(ctx context.Context, cfg *config, r *result) {
	dr, err := newDurableRun(ctx, cfg)
	if err != nil {
		r.fail("setup: %v", err)
		return
	}
	start := time.Now().Add(cfg.warmup)
	end := start.Add(cfg.duration)
	dr.publish(start, end, nil)
	unconfirmed := dr.stop()
	hist, timed, sent, _ := dr.report(r, unconfirmed)
	r.add("%.0f msg/s", float64(timed)/cfg.duration.Seconds())
	r.addPubackLatency(&hist)
	r.addCPU(dr.m, timed)
	if timed == 0 {
		r.fail("no message PUBACKed in the measured window")
	}
	fmt.Fprintf(os.Stderr, "duplex-bench: %s: %d messages sent in all (warm-up included), now queued for %q\n", r.name, sent, cfg.clientID)
}

// runFill is the fill scenario: it queues exactly -msgs QoS 1 messages for
// the offline persistent subscriber, sent by -pubs publishers with at most
// -inflight unacknowledged each, and reports how long that took.
func runFill(ctx context.Context, cfg *config, r *result) {
	dr, err := newDurableRun(ctx, cfg)
	if err != nil {
		r.fail("setup: %v", err)
		return
	}
	var quota atomic.Int64
	quota.Store(int64(cfg.msgs))
	start := time.Now()
	dr.publish(start, start.Add(cfg.deadline), &quota)
	took := dr.m.wall
	unconfirmed := dr.stop()
	hist, _, sent, acked := dr.report(r, unconfirmed)
	r.add("%d queued in %s", acked, fmtDur(took))
	r.add("%.0f msg/s", float64(acked)/took.Seconds())
	r.addPubackLatency(&hist)
	r.addCPU(dr.m, int64(acked))
	if sent != uint64(cfg.msgs) {
		r.fail("sent %d of the %d messages", sent, cfg.msgs)
	}
}
