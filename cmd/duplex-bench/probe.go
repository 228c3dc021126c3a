package main

import (
	"context"
	"time"
)

// runProbe opens one connection, subscribes once and disconnects: it tells
// whether the broker at -url speaks -protocol over WebSocket (a refused
// connection or a rejected subprotocol fails it).
func runProbe(ctx context.Context, cfg *config, r *result) {
	d, err := newDialer(cfg, true)
	if err != nil {
		r.fail("%v", err)
		return
	}
	c, err := d.dial(ctx)
	if err != nil {
		r.fail("%v", err)
		return
	}
	r.add("connected")
	if err := c.subscribe(0, topicName(cfg.protocol, "probe", 0), time.Now().Add(cfg.timeout)); err != nil {
		c.close()
		r.fail("subscribe: %v", err)
		return
	}
	r.add("subscribed")
	if err := c.bye(time.Now().Add(cfg.timeout)); err != nil {
		r.fail("disconnect: %v", err)
		return
	}
	r.add("disconnected")
}
