package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// STOMP durable topic subscriptions in JetStream (broker.BindingPeers):
// a durable subscription (a queue bound to a topic filter, binding.go) is
// a durable consumer of the durable stream (durable.go), named by its
// queue and filtered on its filter's subjects, so it collects every QoS
// 1/2 message published on any node (stored before the publisher's
// RECEIPT) whatever node holds the subscription, and keeps them when
// that node dies. A node with local consumers of the subscription's queue
// fetches from it (bindingLoop) up to their free prefetch
// (Router.QueueRoom) and hands each message to the queue with its
// handle (Router.EnqueueBindingFromPeer): STOMP ACK acks it, NACK or a
// consumer that leaves gives it back. The loop starts by resetting the
// consumer to its ack floor, so what a dead node took and never got
// acknowledged comes again at once.

var _ broker.BindingPeers = (*Node)(nil)

// bindingAckWait: a STOMP consumer may hold a message (client ack) for a
// long time, and a queue does not recognise a second copy of one it
// holds, so JetStream gives it again only after a minute; a message
// held by a node that died comes back at the next loop's reset.
const bindingAckWait = time.Minute

// bindingRouter is what the loop needs of broker.Router.
type bindingRouter interface {
	EnqueueBindingFromPeer(qname string, m *broker.Message, h broker.PeerMsg) bool
	BindingConsumers(qname string) int
	QueueRoom(name string) int
}

// bindingConsumer is the consumer name of durable subscription qname.
func bindingConsumer(qname string) string {
	h := sha256.Sum256([]byte(qname))
	return "b" + hex.EncodeToString(h[:20])
}

// SaveBinding implements broker.BindingPeers.
func (n *Node) SaveBinding(qname, filter string) error {
	if !n.dur.on.Load() {
		return errDurableNotReady
	}
	return n.retryJS(func() error { return n.saveBinding(qname, filter) })
}

func (n *Node) saveBinding(qname, filter string) error {
	d := &n.dur
	ctx, cancel := context.WithTimeout(context.Background(), 2*durableTimeout)
	defer cancel()
	name := bindingConsumer(qname)
	want := d.subs.Filter(nil, filter)
	c, err := d.st.Consumer(ctx, name)
	switch {
	case err == nil:
		have := c.CachedInfo().Config.FilterSubjects
		if slices.Equal(have, want) {
			return nil
		}
		// Subscribed again on another destination: the old messages go
		// with the old consumer (binding_replace.go).
		if err := d.st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return err
	}
	_, err = n.ensureConsumer(ctx, name, broker.SubSpec{Filter: filter}, 0, bindingAckWait)
	return err
}

// DeleteBinding implements broker.BindingPeers.
func (n *Node) DeleteBinding(qname string) {
	d := &n.dur
	if !d.on.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*durableTimeout)
	defer cancel()
	if err := d.st.DeleteConsumer(ctx, bindingConsumer(qname)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		n.cfg.Log.Warn("cluster: consumer of a deleted durable subscription not deleted", "queue", qname, "err", err)
	}
}

// ConsumeBinding implements broker.BindingPeers.
func (n *Node) ConsumeBinding(qname string) {
	br, ok := n.router.(bindingRouter)
	if !ok || !n.dur.on.Load() {
		return
	}
	d := &n.dur
	d.mu.Lock()
	if d.bloops == nil {
		d.bloops = map[string]bool{}
	}
	_, running := d.bloops[qname]
	d.bloops[qname] = true // (again) wanted: a running loop about to end goes on
	d.mu.Unlock()
	if !running {
		go n.bindingLoop(qname, br)
	}
}

// bindingLoop fetches durable subscription qname's messages for this
// node's consumers until none is left, in order (bindingOrder).
func (n *Node) bindingLoop(qname string, br bindingRouter) {
	d := &n.dur
	name := bindingConsumer(qname)
	var c jetstream.Consumer
	var lastLog time.Time
	var ord bindingOrder
	reset := false
	pause := func(t time.Duration) bool {
		select {
		case <-time.After(t):
			return true
		case <-n.done:
			return false
		}
	}
	for {
		if br.BindingConsumers(qname) == 0 {
			d.mu.Lock()
			if d.bloops[qname] {
				d.bloops[qname] = false // a consumer came meanwhile: look again
				d.mu.Unlock()
				continue
			}
			delete(d.bloops, qname)
			d.mu.Unlock()
			return
		}
		d.mu.Lock()
		d.bloops[qname] = false
		d.mu.Unlock()
		if c == nil {
			var err error
			var next uint64
			if c, next, err = n.bindingConsumerOf(name, !reset); err != nil {
				c = nil
				if time.Since(lastLog) > 10*time.Second {
					lastLog = time.Now()
					n.cfg.Log.Warn("cluster: durable subscription's consumer not available yet; retrying", "queue", qname, "err", err)
				}
				if !pause(500 * time.Millisecond) {
					return
				}
				continue
			}
			if !reset || ord.next == 0 {
				// Looked up again after a failed fetch: the numbers this
				// loop saw still tell a delivery lost with that fetch.
				ord.next = next
			}
			reset = true
		}
		room := br.QueueRoom(qname)
		if room == 0 {
			if !pause(20 * time.Millisecond) {
				return
			}
			continue
		}
		batch, err := c.Fetch(room, jetstream.FetchMaxWait(bindingFetchWait))
		if err != nil {
			c = nil // its leader may have moved or it was deleted: look it up again
			if !pause(200 * time.Millisecond) {
				return
			}
			continue
		}
		refused := false
		for jm := range batch.Messages() {
			meta, err := jm.Metadata()
			if err != nil {
				continue // not a JetStream delivery
			}
			if d := (bindingDelivery{jm, meta}); ord.take(d) {
				refused = !n.enqueueBinding(br, qname, d, refused)
			}
		}
		if len(ord.held) > 0 {
			if n.bindingDeliveryLost(c) {
				n.cfg.Log.Info("cluster: a delivery of a durable subscription was lost with a node or a fetch; resetting its consumer to keep order", "queue", qname)
				ord.drop()
				c, reset = nil, false // look it up again, with a reset
				continue
			}
			for _, d := range ord.release() {
				refused = !n.enqueueBinding(br, qname, d, refused)
			}
		}
		if refused && !pause(20*time.Millisecond) {
			return
		}
		if n.closing() {
			return
		}
	}
}

// enqueueBinding hands jm to durable subscription qname's local queue and
// reports whether the queue took it. One it refuses (its consumer left
// meanwhile, or is full), and with refused every later one of the fetch,
// goes back at once: JetStream gives them again before newer messages,
// in order.
func (n *Node) enqueueBinding(br bindingRouter, qname string, d bindingDelivery, refused bool) bool {
	m, ok := n.decodeDurableMeta(d.jm, d.meta)
	if !ok {
		return !refused
	}
	if refused || !br.EnqueueBindingFromPeer(qname, m, &sessMsg{jm: d.jm, n: d.meta.NumDelivered}) {
		_ = d.jm.Nak()
		return false
	}
	return true
}

// bindingConsumerOf looks up the consumer name and, with reset, resets it
// to its ack floor: what it handed out and never got acknowledged (a
// node that died holding it) comes again now. next is the delivery
// number expected next (0 after a reset: take any).
func (n *Node) bindingConsumerOf(name string, reset bool) (c jetstream.Consumer, next uint64, err error) {
	d := &n.dur
	ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
	defer cancel()
	c, err = d.st.Consumer(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	info := c.CachedInfo()
	if reset && info.Delivered.Stream > info.AckFloor.Stream {
		seq := max(info.AckFloor.Stream+1, info.Config.OptStartSeq)
		if _, err := d.st.ResetConsumerToSequence(ctx, name, seq); err != nil {
			return nil, 0, err
		}
		return c, 0, nil
	}
	return c, info.Delivered.Consumer + 1, nil
}
