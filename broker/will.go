package broker

import (
	"context"
	"time"
)

// PublishWill publishes m, the will of a connection that ended without a
// clean DISCONNECT, after delay (MQTT 5 Will Delay Interval); a connection
// with the same id within the delay cancels it.
func (r *Router) PublishWill(id SessionID, m *Message, delay time.Duration) {
	if delay <= 0 {
		_ = r.Publish(context.Background(), nil, m)
		return
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if old := r.wills[id]; old != nil {
		old.Stop()
	} else if sp := r.sessionPeers(); sp != nil {
		sp.Hold(claimKey("mqtt", id, ""), true) // a claim elsewhere cancels it
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		r.wmu.Lock()
		if r.wills[id] != t {
			r.wmu.Unlock()
			return
		}
		delete(r.wills, id)
		r.unholdWill(id)
		r.wmu.Unlock()
		_ = r.Publish(context.Background(), nil, m)
	})
	r.wills[id] = t
}

func (r *Router) cancelWill(id SessionID) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if t := r.wills[id]; t != nil {
		t.Stop()
		delete(r.wills, id)
		r.unholdWill(id)
	}
}

// unholdWill tells a SessionPeers that id's pending will is gone. Caller
// holds r.wmu.
func (r *Router) unholdWill(id SessionID) {
	if sp := r.sessionPeers(); sp != nil {
		sp.Hold(claimKey("mqtt", id, ""), false)
	}
}
