package broker

import (
	"fmt"
	"strings"

	"github.com/duplexmq/duplex/store"
)

// DurableQueuePrefix starts the name of a durable subscription's queue.
// Clients cannot send to or consume such a queue directly.
const DurableQueuePrefix = "$durable/"

// bindingProtocol marks a durable subscription's record in the store.
const bindingProtocol = "stomp-durable"

// binding is a durable topic subscription (STOMP: RabbitMQ durable:true,
// ActiveMQ activemq.subscriptionName, Artemis durable-subscription-name):
// a queue that collects every message matching filter, whether or not a
// consumer is attached, as RabbitMQ does with a durable queue bound to the
// topic exchange. Consumers read it like any queue, with acks and
// redelivery; with a store it survives restarts.
type binding struct {
	queue  *queue
	filter string
	entry  *Subscription // the index entry: Subscription.bind = queue
}

// bindingID is the store record of the durable subscription with queue
// name qname. 0xFF never occurs in UTF-8, so no MQTT client id can clash.
func bindingID(qname string) string { return "\xffbinding:" + qname }

// SubscribeDurable subscribes s to the durable subscription name on
// sub.Filter, creating it if needed; a different filter rebinds it. sub
// becomes a consumer of the subscription's queue (its messages are
// acknowledged as sub.Ack says), and messages published while nobody
// consumes wait there.
func (r *Router) SubscribeDurable(s *Session, sub *Subscription, name string) error {
	if err := ValidFilter(sub.Filter); err != nil {
		return err
	}
	if sub.Group != "" {
		return fmt.Errorf("%w: a durable subscription cannot be shared", ErrInvalidFilter)
	}
	qname := DurableQueuePrefix + name
	if err := ValidQueueName(qname); err != nil {
		return err
	}
	if !r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), OpSubscribe, sub.Filter) {
		return r.denySubscribe()
	}
	if err := r.bind(qname, sub.Filter, true); err != nil {
		return err
	}
	sub.Filter, sub.Queue, sub.Durable = "", qname, true
	return r.subscribe(s, sub)
}

// bind creates or rebinds the durable subscription qname on filter and,
// when save is set, records it in the store.
func (r *Router) bind(qname, filter string, save bool) error {
	r.qmu.Lock()
	b := r.bindings[qname]
	var old *Subscription
	switch {
	case b == nil:
		q := r.queues[qname]
		if q == nil {
			q = newQueue(qname, nil)
			r.queues[qname] = q
		}
		b = &binding{queue: q}
		r.bindings[qname] = b
		r.nbind.Add(1)
	case b.filter == filter:
		r.qmu.Unlock()
		return nil
	default:
		old = b.entry
	}
	b.filter = filter
	b.entry = &Subscription{Key: qname, Filter: filter, QoS: ExactlyOnce, bind: b.queue}
	entry := b.entry
	r.qmu.Unlock()
	if old == nil || !r.idx.Replace(old, entry) {
		r.idx.Insert(entry)
	}
	if !save || r.dur == nil {
		return nil
	}
	id := bindingID(qname)
	if err := r.dur.st.PutSession(store.Session{ID: id, Protocol: bindingProtocol, Expiry: NeverExpire}); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	if err := r.dur.st.PutSub(id, store.Sub{Key: "binding", Filter: filter, Queue: qname, QoS: 1, Durable: true}); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// Unbind deletes the durable subscription name with every message waiting
// in it (STOMP UNSUBSCRIBE with the dialect's durable header). Its
// consumers stop receiving. An unknown name is not an error.
func (r *Router) Unbind(name string) error {
	qname := DurableQueuePrefix + name
	r.qmu.Lock()
	b := r.bindings[qname]
	if b == nil {
		r.qmu.Unlock()
		return nil
	}
	delete(r.bindings, qname)
	delete(r.queues, qname)
	r.nbind.Add(-1)
	r.qmu.Unlock()
	r.idx.Remove(b.entry)
	q := b.queue
	q.mu.Lock()
	q.ready, q.unacked, q.bytes = nil, make(map[uint64]queued), 0
	q.mu.Unlock()
	if r.dur == nil {
		return nil
	}
	// Everything the store holds for it goes, including messages whose
	// acknowledgement is still on its way to the store (ackLoop).
	if err := r.dropStoredQueue(qname); err != nil {
		return err
	}
	if err := r.dur.st.DeleteSession(bindingID(qname)); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// dropStoredQueue removes every stored message of the named queue.
func (r *Router) dropStoredQueue(qname string) error {
	page, err := r.dur.st.QueuePending(qname, 0, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	if len(page) == 0 {
		return nil
	}
	refs := make([]store.Ref, len(page))
	for i, e := range page {
		refs[i] = store.Ref{Name: qname, Seq: e.Seq}
	}
	if _, err := r.dur.st.Commit(&store.Batch{QueueAcks: refs}); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// isDurableQueue reports a durable subscription's queue name.
func isDurableQueue(name string) bool { return strings.HasPrefix(name, DurableQueuePrefix) }
