package broker

import "context"

// Shutdown closes every session with CloseServerShutdown and refuses new
// ones. It does not wait for connections to finish; the gateway does.
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	all := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.Close(CloseServerShutdown)
	}
	return ctx.Err()
}
