package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// report turns the run's counters and measurement into result fields and
// failures.
func (lr *loadRun) report(r *result, m measurement, unconfirmed int) {
	cfg := lr.cfg
	var hist histogram
	var delivered, published int64
	var lost, dups, bad uint64
	var subFails, pubFails []connErr
	for _, s := range lr.subs {
		hist.merge(&s.hist)
		delivered += s.delivered
		dups += s.dups
		bad += s.bad
		lost += s.gaps
		for _, p := range lr.pubs {
			if h := s.highest[p.idx].Load(); s.wake[p.idx] != nil && h < p.sent {
				lost += p.sent - h
			}
		}
		if err := s.failure(); err != nil {
			subFails = append(subFails, connErr{fmt.Sprintf("subscriber %d", s.idx), err.Error()})
		}
	}
	var maxStall time.Duration
	for _, p := range lr.pubs {
		published += p.inWindow
		maxStall = max(maxStall, p.maxStall)
		if err := p.failure(); err != nil {
			pubFails = append(pubFails, connErr{fmt.Sprintf("publisher %d", p.idx), err.Error()})
		} else if p.writeErr != nil {
			pubFails = append(pubFails, connErr{fmt.Sprintf("publisher %d", p.idx), "send: " + p.writeErr.Error()})
		}
	}

	secs := cfg.duration.Seconds()
	if cfg.scenario == scenarioLatency {
		r.addLatency(&hist)
		r.add("%.0f msg/s delivered", float64(delivered)/secs)
	} else {
		if cfg.subs > 0 {
			r.add("%.0f msg/s delivered", float64(delivered)/secs)
		}
		r.add("%.0f msg/s published", float64(published)/secs)
		r.addLatency(&hist)
	}
	perDelivery := delivered
	if cfg.subs == 0 {
		perDelivery = published
	}
	r.addBrokerCPU(m.broker, m.brokerOK, perDelivery, m.wall)
	if m.selfOK {
		r.add("generator %.0f%% cpu", 100*m.self.Seconds()/m.wall.Seconds())
	}
	if m.brokerOK && m.selfOK && m.machineOK {
		// What the rest of the machine took while we measured: a busy
		// neighbour makes every number above unreliable.
		others := max(0, m.machine-m.broker-m.self)
		r.add("other procs %.0f%% cpu", 100*others.Seconds()/m.wall.Seconds())
	}
	var total, msgs uint64
	for _, s := range lr.subs {
		total += s.total
		msgs += s.c.messagesRead()
	}
	perMsg := 0.0
	if msgs > 0 {
		perMsg = float64(total) / float64(msgs)
	}
	fmt.Fprintf(os.Stderr, "duplex-bench: %s: %d conns, window %d/subscriber, longest flow-control wait %s, %.1f deliveries per WebSocket message\n",
		r.name, len(lr.clients), lr.window, maxStall.Round(time.Millisecond), perMsg)

	failList(r, "subscribers disconnected", subFails)
	failList(r, "publishers failed", pubFails)
	if lost > 0 {
		r.fail("%d deliveries lost (sequence gaps or never arrived)", lost)
	}
	if dups > 0 {
		r.fail("%d deliveries duplicated or out of order", dups)
	}
	if bad > 0 {
		r.fail("%d messages with a body we did not send", bad)
	}
	if cfg.subs > 0 && delivered == 0 {
		r.fail("no deliveries in the measured window")
	}
	if cfg.scenario == scenarioLatency && float64(published) < 0.95*cfg.rate*secs {
		r.fail("published only %.0f msg/s of the %.0f asked", float64(published)/secs, cfg.rate)
	}
	if maxStall > 2*time.Second {
		r.fail("a publisher waited %s for subscribers to catch up", maxStall.Round(time.Millisecond))
	}
	if unconfirmed > 0 {
		if cfg.protocol == protoMQTT {
			r.fail("%d DISCONNECTs not confirmed (the broker did not close the connection)", unconfirmed)
		} else {
			r.fail("%d DISCONNECTs got no RECEIPT", unconfirmed)
		}
	}
}

// connErr is why one connection failed.
type connErr struct{ who, reason string }

// failList records one failure for a list of per-connection errors,
// grouping identical reasons: "10 subscribers disconnected: 10x broker
// ERROR ... (first: subscriber 0)".
func failList(r *result, what string, errs []connErr) {
	if len(errs) == 0 {
		return
	}
	var order []string
	first := map[string]string{}
	count := map[string]int{}
	for _, e := range errs {
		if count[e.reason] == 0 {
			order = append(order, e.reason)
			first[e.reason] = e.who
		}
		count[e.reason]++
	}
	var parts []string
	for _, reason := range order[:min(3, len(order))] {
		parts = append(parts, fmt.Sprintf("%dx %s (first: %s)", count[reason], reason, first[reason]))
	}
	if len(order) > 3 {
		parts = append(parts, fmt.Sprintf("and %d other reasons", len(order)-3))
	}
	r.fail("%d %s: %s", len(errs), what, strings.Join(parts, "; "))
}
