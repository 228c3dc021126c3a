package main

import (
	"sync/atomic"
	"time"
)

// drain waits, at most timeout, until every subscriber has seen the last
// message of each of its publishers or has ended.
func drain(pubs []*publisher, subs []*subscriber, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		pending := false
		for _, s := range subs {
			select {
			case <-s.done:
				continue
			default:
			}
			for _, p := range pubs {
				if s.wake[p.idx] != nil && s.highest[p.idx].Load() < p.sent {
					pending = true
				}
			}
		}
		if !pending {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stopAll ends every session, 64 at a time, and returns how many
// DISCONNECTs the broker did not confirm (sessions that had already ended
// excluded: they are reported as failures on their own).
func stopAll(pubs []*publisher, subs []*subscriber, timeout time.Duration) int {
	var ss []*session
	for _, p := range pubs {
		ss = append(ss, &p.session)
	}
	for _, s := range subs {
		ss = append(ss, &s.session)
	}
	var unconfirmed atomic.Int64
	parallel(len(ss), 64, func(k int) error {
		select {
		case <-ss[k].done:
			ss[k].c.close()
			return nil
		default:
		}
		if !ss[k].stop(timeout) && ss[k].failure() == nil {
			unconfirmed.Add(1)
		}
		return nil
	})
	return int(unconfirmed.Load())
}
