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
	owner  string        // owner key of the session that created it (owner.go)
}

// durableQueueName is the queue of the durable subscription name owned by
// owner. Names are scoped by owner, so two users' "sub-0" (STOMP.js's
// default subscription ids, which RabbitMQ's durable:true uses as names)
// are two subscriptions and neither can read or rebind the other's. The
// zero configuration's anonymous owner "" keeps the unscoped name (and
// the names stored before owners existed). '%' and '/' in an owner key are
// escaped, so the first '/' after the prefix ends it.
func durableQueueName(owner, name string) string {
	if owner == "" {
		return DurableQueuePrefix + name
	}
	return DurableQueuePrefix + ownerEscaper.Replace(owner) + "/" + name
}

var ownerEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// bindingID is the store record of the durable subscription with queue
// name qname. 0xFF never occurs in UTF-8, so no MQTT client id can clash.
func bindingID(qname string) string { return "\xffbinding:" + qname }

// SubscribeDurable subscribes s to the durable subscription name of s's
// owner on sub.Filter, creating it if needed; a different filter rebinds
// it. sub becomes a consumer of the subscription's queue (its messages are
// acknowledged as sub.Ack says), and messages published while nobody
// consumes wait there. A new durable subscription counts against the
// owner's MaxSessionsPerUser (ErrSessionQuota): like a persistent session
// it keeps messages for ever.
func (r *Router) SubscribeDurable(s *Session, sub *Subscription, name string) error {
	if err := ValidFilter(sub.Filter); err != nil {
		return err
	}
	if sub.Group != "" {
		return fmt.Errorf("%w: a durable subscription cannot be shared", ErrInvalidFilter)
	}
	qname := durableQueueName(s.owner, name)
	if err := ValidQueueName(qname); err != nil {
		return err
	}
	if !r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), OpSubscribe, sub.Filter) {
		return r.denySubscribe()
	}
	if err := r.bind(qname, sub.Filter, s.owner, true); err != nil {
		return err
	}
	sub.Filter, sub.Queue, sub.Durable = "", qname, true
	return r.subscribe(s, sub)
}

// bind creates or rebinds the durable subscription qname of owner on
// filter and, when save is set (not at restore), checks the owner's quota
// and records it in the store. A subscription another owner created is
// ErrNotAuthorized (names are scoped by owner, so only names written
// before authentication was configured can meet one).
func (r *Router) bind(qname, filter, owner string, save bool) error {
	r.qmu.Lock()
	b := r.bindings[qname]
	var old *Subscription
	switch {
	case b == nil:
		if save && owner != "" && r.cfg.MaxSessionsPerUser > 0 && r.bindOwners[owner] >= r.cfg.MaxSessionsPerUser {
			r.qmu.Unlock()
			return fmt.Errorf("%w: %d durable subscriptions", ErrSessionQuota, r.cfg.MaxSessionsPerUser)
		}
		q := r.queues[qname]
		if q == nil {
			q = newQueue(qname, nil)
			r.queues[qname] = q
		}
		b = &binding{queue: q, owner: owner}
		r.bindings[qname] = b
		r.bindOwners[owner]++
		r.nbind.Add(1)
	case b.owner != owner && b.owner != "":
		r.qmu.Unlock()
		return fmt.Errorf("%w: the durable subscription belongs to another user", ErrNotAuthorized)
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
	if err := r.dur.st.PutSession(store.Session{ID: id, Protocol: bindingProtocol, Expiry: NeverExpire, Owner: owner}); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	if err := r.dur.st.PutSub(id, store.Sub{Key: "binding", Filter: filter, Queue: qname, QoS: 1, Durable: true}); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// Unbind deletes the durable subscription name of s's owner with every
// message waiting in it (STOMP UNSUBSCRIBE with the dialect's durable
// header). Its consumers stop receiving. An unknown name is not an error.
func (r *Router) Unbind(s *Session, name string) error {
	qname := durableQueueName(s.owner, name)
	r.qmu.Lock()
	b := r.bindings[qname]
	if b == nil {
		r.qmu.Unlock()
		return nil
	}
	if b.owner != s.owner && b.owner != "" {
		r.qmu.Unlock()
		return fmt.Errorf("%w: the durable subscription belongs to another user", ErrNotAuthorized)
	}
	return r.dropBindingLocked(qname, b)
}

// dropBindingLocked deletes the durable subscription b (queue qname) with
// its messages, in memory and in the store. Caller holds r.qmu; it is
// released.
func (r *Router) dropBindingLocked(qname string, b *binding) error {
	delete(r.bindings, qname)
	if r.bindOwners[b.owner]--; r.bindOwners[b.owner] <= 0 {
		delete(r.bindOwners, b.owner)
	}
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
