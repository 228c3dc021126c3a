package cluster

import (
	"context"
	"errors"
	"strings"
	"time"
)

// How often a JetStream stream or bucket the node needs is tried again
// while the JetStream cluster forms (it needs its replicas' servers up and
// a meta leader), and how often that is logged.
const (
	startRetryEvery = 500 * time.Millisecond
	startRetryLog   = 10 * time.Second
)

// stopRetry wraps an error that retrying cannot cure (a NATS account
// without JetStream): retryStart returns it at once.
type stopRetry struct{ error }

func (e stopRetry) Unwrap() error { return e.error }

// retryStart runs try until it returns nil, a stopRetry, or ctx ends
// (ctx.Err()), every startRetryEvery, and logs that what is not ready yet
// at most every startRetryLog.
func (n *Node) retryStart(ctx context.Context, what string, try func() error) error {
	var lastLog time.Time
	for {
		err := try()
		var stop stopRetry
		switch {
		case err == nil:
			return nil
		case errors.As(err, &stop):
			return stop.error
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if time.Since(lastLog) > startRetryLog {
			lastLog = time.Now()
			n.cfg.Log.Info("cluster: "+what+" not ready yet; retrying", "node", n.cfg.NodeID,
				"err", strings.TrimPrefix(err.Error(), "nats: "))
		}
		select {
		case <-time.After(startRetryEvery):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
