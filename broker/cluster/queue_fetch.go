package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The fetch side of the cluster queues (queue.go has the design): a loop
// per queue with local consumers takes what their prefetch leaves room
// for, and held messages are kept alive while their consumers hold them.

// startFetch starts f's loop. Caller holds ql.mu, with ctx set.
func (n *Node) startFetch(f *queueFetch) {
	if n.ql.closed {
		return
	}
	n.ql.wg.Add(1)
	go func() {
		defer n.ql.wg.Done()
		n.fetchLoop(n.ql.ctx, f)
	}()
}

// queueConsumerConfig is the shared durable consumer of queue name.
func (n *Node) queueConsumerConfig(name string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:           queueConsumer(name),
		Description:       "Duplex queue consumers on every node",
		FilterSubject:     n.queueSubject(name),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           n.cfg.QueueAckWait,
		MaxDeliver:        -1, // the broker's max_redeliveries decides (EnqueueFromPeer)
		MaxAckPending:     queueMaxAckPending,
		InactiveThreshold: queueInactive,
	}
}

// fetchLoop takes messages of f's queue from its consumer while the
// queue has local consumers, as many at a time as they have room for.
func (n *Node) fetchLoop(ctx context.Context, f *queueFetch) {
	qr, ok := n.router.(queueRouter)
	if !ok {
		return
	}
	var cons jetstream.Consumer
	var lastLog time.Time
	pause := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-f.stop:
		case <-ctx.Done():
		}
		return false
	}
	for {
		select {
		case <-f.stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		if cons == nil {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			c, err := n.ql.stream.CreateOrUpdateConsumer(cctx, n.queueConsumerConfig(f.name))
			cancel()
			if err != nil {
				if time.Since(lastLog) > 10*time.Second {
					lastLog = time.Now()
					n.cfg.Log.Info("cluster: queue consumer not ready yet; retrying", "node", n.cfg.NodeID, "queue", f.name, "err", err)
				}
				if !pause(500 * time.Millisecond) {
					return
				}
				continue
			}
			cons = c
		}
		room := qr.QueueRoom(f.name)
		if room <= 0 {
			select {
			case <-f.wake:
			case <-time.After(queueFetchWait): // a missed wake costs this much at most
			case <-f.stop:
				return
			case <-ctx.Done():
				return
			}
			continue
		}
		batch, err := cons.Fetch(room, jetstream.FetchMaxWait(queueFetchWait))
		if err != nil {
			cons = nil // gone (removed, or its stream's leader changed): made again
			if !pause(500 * time.Millisecond) {
				return
			}
			continue
		}
		for jm := range batch.Messages() {
			n.onQueueMsg(qr, f.name, jm)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				cons = nil
			}
			if !pause(200 * time.Millisecond) {
				return
			}
		}
	}
}

// onQueueMsg hands one fetched message to the router with its handle.
func (n *Node) onQueueMsg(qr queueRouter, name string, jm jetstream.Msg) {
	meta, err := jm.Metadata()
	if err != nil {
		n.stats.Malformed.Add(1)
		_ = jm.Term()
		return
	}
	h := jm.Headers()
	got, err := decodeToken(h.Get(hdrQueue))
	if err != nil || got != name {
		n.stats.Malformed.Add(1)
		_ = jm.Term() // a foreign publisher on the queue's subject
		return
	}
	hd := make(nats.Header, len(h)+1)
	for k, v := range h {
		hd[k] = v
	}
	hd.Set(hdrTopic, EncodeTopic("")) // decodeMsg reads the (empty) topic from the header
	m, _, _, err := decodeMsg(n.subs, &nats.Msg{Subject: n.subs.Long, Header: hd, Data: jm.Data()}, meta.Timestamp)
	if err != nil {
		n.stats.Malformed.Add(1)
		_ = jm.Term()
		return
	}
	p := &peerMsg{jm: jm, ql: &n.ql, delivered: meta.NumDelivered}
	n.ql.hmu.Lock()
	if n.ql.held == nil {
		n.ql.held = map[*peerMsg]struct{}{}
	}
	n.ql.held[p] = struct{}{}
	n.ql.hmu.Unlock()
	if !qr.EnqueueFromPeer(name, m, p) {
		p.Nak(0) // its consumers left meanwhile
		return
	}
	n.ql.received.Add(1)
}

// inProgressLoop tells the stream every AckWait/3 that the messages this
// node holds are still being worked on, so that only a node's loss (or
// its link's) makes them go to another node.
func (n *Node) inProgressLoop(ctx context.Context) {
	defer n.ql.wg.Done()
	t := time.NewTicker(max(n.cfg.QueueAckWait/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		n.ql.hmu.Lock()
		held := make([]*peerMsg, 0, len(n.ql.held))
		for p := range n.ql.held {
			held = append(held, p)
		}
		n.ql.hmu.Unlock()
		for _, p := range held {
			if !p.done.Load() {
				_ = p.jm.InProgress()
			}
		}
	}
}

// peerMsg is broker.PeerMsg on a JetStream message: settled once.
type peerMsg struct {
	jm        jetstream.Msg
	ql        *queueLink
	delivered uint64
	done      atomic.Bool
}

// settle reports whether p was not settled yet, and forgets it.
func (p *peerMsg) settle() bool {
	if !p.done.CompareAndSwap(false, true) {
		return false
	}
	p.ql.hmu.Lock()
	delete(p.ql.held, p)
	p.ql.hmu.Unlock()
	return true
}

// Ack implements broker.PeerMsg (STOMP 1.2 ACK): the stream forgets it.
func (p *peerMsg) Ack() {
	if p.settle() {
		_ = p.jm.Ack()
	}
}

// Nak implements broker.PeerMsg (STOMP 1.2 NACK): redelivered to any node.
func (p *peerMsg) Nak(delay time.Duration) {
	if !p.settle() {
		return
	}
	if delay > 0 {
		_ = p.jm.NakWithDelay(delay)
		return
	}
	_ = p.jm.Nak()
}

// Term implements broker.PeerMsg: never delivered again.
func (p *peerMsg) Term() {
	if p.settle() {
		_ = p.jm.Term()
	}
}

// Delivered implements broker.PeerMsg.
func (p *peerMsg) Delivered() uint64 { return p.delivered }
