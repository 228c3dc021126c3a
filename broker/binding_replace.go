package broker

import (
	"fmt"

	"github.com/duplexmq/duplex/store"
)

// ErrDurableInUse refuses a durable subscription's name on another
// destination while a consumer is attached to it (JMS does the same). It
// is also ErrQueueExclusive, so protocols that map that one need nothing
// new.
var ErrDurableInUse error = durableInUse{}

type durableInUse struct{}

func (durableInUse) Error() string {
	return "broker: durable subscription in use: it cannot change destination while a consumer is attached"
}

func (durableInUse) Is(target error) bool { return target == ErrQueueExclusive }

// bindingReplaced is the SubID of a durable subscription's store record
// whose filter changed since the broker started: Restore then removes the
// stored messages its new filter does not match (pruneBinding).
const bindingReplaced = 1

// replaceBinding gives the durable subscription b (queue qname) the new
// filter, as JMS and Artemis do when a durable subscriber comes back with
// another topic: the old subscription is deleted with its messages and a
// new, empty one takes its name, in memory and, with save, in the store.
// A consumer still attached refuses it (ErrDurableInUse). Caller holds
// b.mu.
//
// Nothing published on the old filter reaches the new queue: the old
// index entry leaves before the new one arrives, and a publish already
// under way puts its message into the old queue, which nobody reads any
// more. Its stored copy, if it commits after the old messages were
// removed, stays in the store under the queue's name until the next
// Restore removes it (pruneBinding): the record is marked replaced.
func (r *Router) replaceBinding(qname string, b *binding, filter string, save bool) error {
	old := b.queue
	tag, inUse := old.attached()
	if inUse {
		return ErrDurableInUse
	}
	nq := newQueue(qname, nil)
	// A late ACK of an old consumer's tag names no message of the new
	// queue (Router.Ack finds the queue by name).
	nq.nextTag = tag
	entry := &Subscription{SubSpec: SubSpec{Key: qname, Filter: filter, QoS: ExactlyOnce}, kind: kindBinding, bind: nq}
	entry.Durable = b.entry.Durable // carried by the cluster store (SubscribeDurable replaces its consumer)
	r.qmu.Lock()
	prev, oldFilter := b.entry, b.filter
	r.queues[qname] = nq
	b.queue, b.filter, b.entry = nq, filter, entry
	r.qmu.Unlock()
	r.indexRemove(prev)
	dropped := old.discardAll()
	var err error
	if save && r.dur != nil {
		// The old messages go before the new filter is written: a crash
		// in between leaves the old subscription, empty, never the new
		// filter with the old messages.
		if err = r.dropStoredQueue(qname); err == nil {
			err = r.saveBinding(qname, filter, b.owner, true)
		}
	}
	r.indexInsert(entry)
	r.log.Info("durable subscription replaced: its name was subscribed with another destination; its messages are dropped",
		"queue", qname, "old", oldFilter, "new", filter, "dropped", dropped)
	return err
}

// attached reports whether a consumer of an open session is attached to
// q, and q's last delivery tag.
func (q *queue) attached() (lastTag uint64, inUse bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range q.consumers {
		if !c.Session.Closed() {
			return q.nextTag, true
		}
	}
	return q.nextTag, false
}

// discardAll empties q, whose durable subscription was deleted or
// replaced, and returns how many messages it held (ready and
// unacknowledged). Their stored copies are the caller's to remove.
func (q *queue) discardAll() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.ready) + len(q.unacked)
	q.ready, q.unacked, q.bytes = nil, make(map[uint64]queued), 0
	return n
}

// pruneBinding removes from the store the messages of a replaced durable
// subscription (its record marked bindingReplaced) that its filter does
// not match: those a publish under way at the replacement committed after
// the old messages were removed. The record loses the mark. It runs at
// Restore, before the queue's messages are loaded.
func (r *Router) pruneBinding(qname, filter string) error {
	if r.dur == nil {
		return nil
	}
	id := bindingID(qname)
	s, subs, err := r.dur.st.GetSession(id)
	if err != nil {
		return err
	}
	if len(subs) == 0 || subs[0].SubID != bindingReplaced {
		return nil
	}
	page, err := r.dur.st.QueuePending(qname, 0, 0)
	if err != nil {
		return err
	}
	var stale []store.Ref
	for _, e := range page {
		if !MatchTopic(filter, e.Msg.Topic) {
			stale = append(stale, store.Ref{Name: qname, Seq: e.Seq})
		}
	}
	if len(stale) > 0 {
		if _, err := r.dur.st.Commit(&store.Batch{QueueAcks: stale}); err != nil {
			return err
		}
		r.log.Info("store: removing messages a replaced durable subscription's old destination left", "queue", qname, "count", len(stale))
	}
	if err := r.saveBinding(qname, filter, s.Owner, false); err != nil {
		return fmt.Errorf("durable subscription %s: %w", qname, err)
	}
	return nil
}
