package broker

// Deferred flushes: a connection's read loop that publishes many messages
// from one read of its socket signals (or writes to) each subscriber once
// for the whole read, not once per message, as nats-server's read loop
// collects the clients it delivered to and flushes them after each read
// (client.go pcd, flushClients). A flood of publishes then costs one
// write or one wake-up per subscriber per read of the publisher's socket,
// whatever the box's scheduling does to the gaps between them; a sparse
// publisher, one message per read, is flushed after each, as before.

// deferredFlushes is one session's outboxes waiting for FlushDeferred, in
// the order its publishes made them non-empty.
type deferredFlushes struct {
	outs []deferredOut
}

// deferredOut is one waiting outbox; inline is false when any publish
// that listed it had a fan-out past InlineFanout.
type deferredOut struct {
	o      *Outbox
	inline bool
}

// deferredScan bounds the scan for an outbox listed already; past it a
// second entry costs one more (idempotent) Flush.
const deferredScan = 8

// DeferFlushes makes the session's Publish and PublishExactlyOnce leave
// the subscribers' outboxes they filled unflushed until FlushDeferred. The
// protocol calls it on the session's read loop, and from then on calls
// Publish, PublishExactlyOnce and FlushDeferred for the session from that
// goroutine only, and FlushDeferred before anything that may wait: a read
// that is not served from a buffer, a pause, and the end of the loop.
func (s *Session) DeferFlushes() { s.deferOn = true }

// deferTo returns the session's deferred flushes when it defers them (made
// on first use: a connection that never publishes carries none), or nil.
func (s *Session) deferTo() *deferredFlushes {
	if s.deferred == nil && s.deferOn {
		s.deferred = new(deferredFlushes)
	}
	return s.deferred
}

// FlushDeferred flushes what the session's publishes left to flush since
// the last call (Outbox.Flush, inline where the publish allowed it). The
// caller holds no broker lock.
func (s *Session) FlushDeferred() {
	d := s.deferred
	if d == nil || len(d.outs) == 0 {
		return
	}
	for _, w := range d.outs {
		w.o.Flush(w.inline)
	}
	clear(d.outs)
	d.outs = d.outs[:0]
}

// add lists the outboxes a plan made non-empty.
func (d *deferredFlushes) add(outs []*Outbox, inline bool) {
next:
	for _, o := range outs {
		for i := max(0, len(d.outs)-deferredScan); i < len(d.outs); i++ {
			if d.outs[i].o == o {
				d.outs[i].inline = d.outs[i].inline && inline
				continue next
			}
		}
		d.outs = append(d.outs, deferredOut{o, inline})
	}
}
