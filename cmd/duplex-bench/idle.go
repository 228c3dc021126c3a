package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// runIdle opens cfg.conns STOMP or MQTT connections, each with one
// subscription to its own topic, lets the broker's memory settle and reports the growth of its
// resident set per connection. Idle connections have no reader goroutine:
// setup and teardown read synchronously, so the generator itself stays
// small while they are open.
func runIdle(ctx context.Context, cfg *config, r *result) {
	if lim := raiseOpenFiles(); lim > 0 && uint64(cfg.conns)+64 > lim {
		r.fail("-conns %d needs more than this process's open-files limit %d", cfg.conns, lim)
		return
	}
	if cfg.brokerPID != 0 {
		if lim, err := procOpenFilesLimit(cfg.brokerPID); err == nil && uint64(cfg.conns)+64 > lim {
			fmt.Fprintf(os.Stderr, "duplex-bench: warning: broker open-files limit %d is below -conns %d\n", lim, cfg.conns)
		}
	}
	d, err := newDialer(cfg, true)
	if err != nil {
		r.fail("%v", err)
		return
	}
	var rss0 uint64
	if cfg.brokerPID != 0 {
		if rss0, err = procRSS(cfg.brokerPID); err != nil {
			r.fail("broker memory: %v", err)
			return
		}
	}

	clients := make([]conn, cfg.conns)
	began := time.Now()
	err = parallel(cfg.conns, 32, func(k int) error {
		c, err := d.dial(ctx)
		if err != nil {
			return fmt.Errorf("connection %d: %w", k, err)
		}
		clients[k] = c
		if err := c.subscribe(k, topicName(cfg.protocol, "idle", k), time.Now().Add(cfg.timeout)); err != nil {
			return fmt.Errorf("connection %d: %w", k, err)
		}
		return nil
	})
	opened := 0
	for _, c := range clients {
		if c != nil {
			opened++
		}
	}
	fmt.Fprintf(os.Stderr, "duplex-bench: %s: %d connections open in %s\n", r.name, opened, time.Since(began).Round(time.Millisecond))
	if err != nil {
		r.fail("opened %d of %d: %v", opened, cfg.conns, err)
	}

	if cfg.brokerPID != 0 && err == nil {
		rss, err := settledRSS(cfg.brokerPID, cfg.duration)
		if err != nil {
			r.fail("broker memory: %v", err)
		} else {
			delta := float64(rss) - float64(rss0)
			r.add("%s/conn broker RSS", fmtBytes(delta/float64(cfg.conns)))
			r.add("RSS %s -> %s", fmtBytes(float64(rss0)), fmtBytes(float64(rss)))
		}
	}
	r.add("generator %d goroutines", runtime.NumGoroutine())

	var unconfirmed atomic.Int64
	var firstErr error
	var once sync.Once
	parallel(len(clients), 32, func(k int) error {
		c := clients[k]
		if c == nil {
			return nil
		}
		if err := c.bye(time.Now().Add(cfg.timeout)); err != nil {
			unconfirmed.Add(1)
			once.Do(func() { firstErr = err })
		}
		return nil
	})
	if n := unconfirmed.Load(); n > 0 {
		r.fail("%d of %d connections did not survive idling (DISCONNECT unconfirmed; first: %v)", n, opened, firstErr)
	}
}

// settledRSS polls the broker's resident set every 250 ms until it has
// grown by less than 0.5% over the last second, or for at most limit, and
// returns the last reading.
func settledRSS(pid int, limit time.Duration) (uint64, error) {
	deadline := time.Now().Add(max(limit, 2*time.Second))
	var hist []uint64
	for {
		rss, err := procRSS(pid)
		if err != nil {
			return 0, err
		}
		hist = append(hist, rss)
		if n := len(hist); n > 4 && float64(rss) < 1.005*float64(hist[n-5]) {
			return rss, nil
		}
		if time.Now().After(deadline) {
			return rss, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
}
