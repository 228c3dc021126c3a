package cluster

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// bindingFetchWait is how long one fetch of a durable subscription's
// consumer waits for messages (the pull request's expiry at the
// consumer's leader).
const bindingFetchWait = time.Second

// bindingOrder keeps a durable subscription's messages in order at this
// node (STOMP 1.2: MESSAGE frames of a subscription in the order sent, as
// RabbitMQ's queue behind a durable subscription gives them).
//
// JetStream numbers a consumer's deliveries 1, 2, 3, ... (from 1 again
// after a reset), so a fetch that gets a number past the next one saw a
// delivery go elsewhere: either to another node's fetch (consumers of one
// durable name on several nodes compete for its messages, and then no
// order across them is promised) or to a fetch that is gone: a node that
// died with its pull request at the leader, or a leader that died with
// the message on the way. That message would come again only after
// bindingAckWait, behind newer ones. So the loop holds what follows a gap
// until its own fetch is over, and then asks whether another fetch waits
// at the consumer (bindingDeliveryLost): if none does, the delivery is
// lost and the consumer is reset to its ack floor, so the missing message
// comes first (what this node held comes again, marked redelivered).
type bindingOrder struct {
	next uint64            // the delivery number expected next; 0: take any
	held []bindingDelivery // deliveries after a gap in this fetch
}

// bindingDelivery is one delivery of a fetch, with its metadata (read
// once: it is parsed from the reply subject).
type bindingDelivery struct {
	jm   jetstream.Msg
	meta *jetstream.MsgMetadata
}

// take reports whether d may be handed on now; if not, it is held.
func (o *bindingOrder) take(d bindingDelivery) bool {
	dn := d.meta.Sequence.Consumer
	if len(o.held) > 0 || (o.next != 0 && dn > o.next) {
		o.held = append(o.held, d)
		return false
	}
	o.next = dn + 1 // a lower number: another node reset the consumer
	return true
}

// release returns the held deliveries, to be handed on in order after
// all: the gap was another node's.
func (o *bindingOrder) release() []bindingDelivery {
	held := o.held
	o.held = nil
	o.next = held[len(held)-1].meta.Sequence.Consumer + 1
	return held
}

// drop forgets the held deliveries: the consumer is reset, and they come
// again after the one that was missing.
func (o *bindingOrder) drop() {
	o.held = nil
	o.next = 0
}

// bindingDeliveryLost reports whether a delivery that skipped this node's
// fetch went to a fetch that is gone. A live node consuming the same
// durable subscription keeps a pull request waiting at the consumer's
// leader almost all the time (bindingLoop fetches again at once); a dead
// node's pull request is gone when its route is, or expires within
// bindingFetchWait. So: no other pull request waiting now, or again after
// one fetch's wait, means lost. Called after this node's own fetch is
// over, so its own request is not counted. An error reading the
// consumer counts as lost: a reset costs duplicates, never order.
func (n *Node) bindingDeliveryLost(c jetstream.Consumer) bool {
	for i := range 2 {
		if i > 0 {
			select {
			case <-time.After(bindingFetchWait + 100*time.Millisecond):
			case <-n.done:
				return false
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
		info, err := c.Info(ctx)
		cancel()
		if err != nil || info.NumWaiting == 0 {
			return true
		}
	}
	return false
}
