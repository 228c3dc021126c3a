package broker

import (
	"fmt"
	"strings"
	"sync"

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
// redelivery; with a store it survives restarts. Subscribing with its name
// on another destination replaces it (binding_replace.go).
type binding struct {
	// mu serializes the changes of this one subscription (create, resume,
	// replace, delete) with their store writes and the attaching of the
	// consumer that asked for them. It comes before every other broker
	// lock (binding.mu → Session.mu, Router.qmu, queue.mu, Index.mu) and
	// no publish or delivery path takes it.
	mu    sync.Mutex
	owner string // owner key of the session that created it (owner.go)

	// Changed under mu and Router.qmu together; read under either.
	queue  *queue
	filter string
	entry  *Subscription // the index entry: Subscription.bind = queue
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
// owner on sub.Filter, creating it if needed. sub becomes a consumer of
// the subscription's queue (its messages are acknowledged as sub.Ack
// says), and messages published while nobody consumes wait there.
//
// The same name on the same filter resumes the subscription with the
// messages it kept. The same name on another filter replaces it, as a JMS
// durable subscriber with a new topic does: the old subscription and its
// messages are deleted and a new, empty one is made, in memory and in the
// store, before SubscribeDurable returns; nothing published on the old
// filter reaches sub. While another consumer is attached the name cannot
// change filter (ErrDurableInUse). A new durable subscription counts
// against the owner's MaxSessionsPerUser (ErrSessionQuota): like a
// persistent session it keeps messages for ever.
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
	// Refused before the binding changes: a SUBSCRIBE that fails must
	// not have replaced anything. (A session's frames are handled one at
	// a time, so the key cannot be taken meanwhile.)
	if s.Subscription(sub.Key) != nil {
		return ErrDuplicateSub
	}
	b, err := r.binding(qname, sub.Filter, s.owner, true)
	if err != nil {
		return err
	}
	if !b.entry.Durable && r.bindingPeers() != nil {
		// Restored from this node's store before the cluster's was up:
		// the cluster's consumer of that name is the subscription; the
		// local copy (its messages are in the cluster too) goes.
		b.mu.Unlock()
		r.qmu.Lock()
		if err := r.dropBindingLocked(qname, b); err != nil {
			return err
		}
		if b, err = r.binding(qname, sub.Filter, s.owner, true); err != nil {
			return err
		}
	}
	defer b.mu.Unlock()
	var bp BindingPeers
	if b.entry.Durable {
		if bp = r.bindingPeers(); bp != nil {
			if err := bp.SaveBinding(qname, b.filter); err != nil {
				r.log.Error("cluster: durable subscription not stored in the cluster", "queue", qname, "err", err)
				return fmt.Errorf("%w: %v", ErrStore, err)
			}
		}
	}
	sub.Filter, sub.Queue, sub.Durable = "", qname, true
	if err := r.subscribe(s, sub); err != nil {
		return err
	}
	if bp != nil {
		bp.ConsumeBinding(qname)
	}
	return nil
}

// bind restores the durable subscription qname of owner on filter from
// its store record (Restore; save is false there) and removes what a
// replaced filter left in its queue (pruneBinding).
func (r *Router) bind(qname, filter, owner string, save bool) error {
	b, err := r.binding(qname, filter, owner, save)
	if err != nil {
		return err
	}
	b.mu.Unlock()
	if save {
		return nil
	}
	return r.pruneBinding(qname, filter)
}

// binding returns the durable subscription qname of owner on filter with its
// mu held: created if there is none, replaced if it has another filter
// (replaceBinding). With save (not at restore) a new one counts against
// the owner's quota and every change is written to the store. A
// subscription another owner created is ErrNotAuthorized (names are
// scoped by owner, so only names written before authentication was
// configured can meet one).
func (r *Router) binding(qname, filter, owner string, save bool) (*binding, error) {
	for {
		r.qmu.Lock()
		b := r.bindings[qname]
		if b == nil {
			if save && owner != "" && r.cfg.MaxSessionsPerUser > 0 && r.bindOwners[owner] >= r.cfg.MaxSessionsPerUser {
				r.qmu.Unlock()
				return nil, fmt.Errorf("%w: %d durable subscriptions", ErrSessionQuota, r.cfg.MaxSessionsPerUser)
			}
			b = r.newBindingLocked(qname, filter, owner)
			r.qmu.Unlock()
			r.indexInsert(b.entry)
			if save {
				if err := r.saveBinding(qname, filter, owner, false); err != nil {
					b.mu.Unlock()
					return nil, err
				}
			}
			return b, nil
		}
		if b.owner != owner && b.owner != "" {
			r.qmu.Unlock()
			return nil, fmt.Errorf("%w: the durable subscription belongs to another user", ErrNotAuthorized)
		}
		r.qmu.Unlock()
		b.mu.Lock()
		r.qmu.Lock()
		live, same := r.bindings[qname] == b, b.filter == filter
		r.qmu.Unlock()
		switch {
		case !live:
			b.mu.Unlock() // deleted meanwhile: start again
			continue
		case same:
			return b, nil
		}
		if err := r.replaceBinding(qname, b, filter, save); err != nil {
			b.mu.Unlock()
			return nil, err
		}
		return b, nil
	}
}

// newBindingLocked registers a new durable subscription qname on filter,
// with its mu held (nobody else can see it yet, so taking it under qmu
// cannot wait). Caller holds r.qmu.
func (r *Router) newBindingLocked(qname, filter, owner string) *binding {
	q := r.queues[qname]
	if q == nil {
		q = newQueue(qname, nil)
		r.queues[qname] = q
	}
	b := &binding{owner: owner, queue: q, filter: filter}
	b.entry = &Subscription{SubSpec: SubSpec{Key: qname, Filter: filter, QoS: ExactlyOnce}, kind: kindBinding, bind: q}
	// Durable on the entry: its QoS 1/2 messages come from the cluster
	// store (peers_durable.go BindingPeers), not from local routing.
	b.entry.Durable = r.bindingPeers() != nil
	b.mu.Lock()
	r.bindings[qname] = b
	r.bindOwners[owner]++
	r.nbind.Add(1)
	return b
}

// saveBinding writes the store record of the durable subscription qname.
// replaced marks one whose filter changed: the next Restore removes what
// the old filter may have left in its queue (pruneBinding).
func (r *Router) saveBinding(qname, filter, owner string, replaced bool) error {
	if r.dur == nil {
		return nil
	}
	id := bindingID(qname)
	if err := r.dur.st.PutSession(store.Session{ID: id, Protocol: bindingProtocol, Expiry: NeverExpire, Owner: owner}); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	sub := store.Sub{Key: "binding", Filter: filter, Queue: qname, QoS: 1, Durable: true}
	if replaced {
		sub.SubID = bindingReplaced
	}
	if err := r.dur.st.PutSub(id, sub); err != nil {
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
// released (to take b.mu first). One deleted or replaced meanwhile is left
// as it is.
func (r *Router) dropBindingLocked(qname string, b *binding) error {
	r.qmu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	r.qmu.Lock()
	if r.bindings[qname] != b {
		r.qmu.Unlock()
		return nil
	}
	delete(r.bindings, qname)
	if r.bindOwners[b.owner]--; r.bindOwners[b.owner] <= 0 {
		delete(r.bindOwners, b.owner)
	}
	delete(r.queues, qname)
	r.nbind.Add(-1)
	r.qmu.Unlock()
	r.indexRemove(b.entry)
	b.queue.discardAll()
	if b.entry.Durable {
		if bp := r.bindingPeers(); bp != nil {
			bp.DeleteBinding(qname)
		}
	}
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
