package cluster

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// A session's consumers run on the node that holds its connection
// (durable.go has the design).

// attachment is a session's consumers running on this node for one
// connection (AttachSession).
type attachment struct {
	key       string
	deliver   func(broker.PeerDelivery) bool
	mu        sync.Mutex
	stopped   bool
	ccs       map[string]jetstream.ConsumeContext // by consumer name
	acked     map[string]*ackedSet                // by consumer name
	rewinding map[string]bool                     // by consumer name (rewind)
	rels      map[string]*relSet                  // by consumer name: QoS 2 released (durable_pubrel.go)
	early     map[uint16]bool                     // PUBCOMPs before the records were read
}

// ackedSet is the last stream sequences a consumer's messages were
// acknowledged at through one attachment (and the one it replaced on
// this node): an ack JetStream lost (its consumer's leader changed)
// brings the message back, and it must not reach the client twice
// (MQTT QoS 2). It is acked again instead.
type ackedSet struct {
	mu   sync.Mutex
	seen map[uint64]struct{}
	ring []uint64
	pos  int
}

const ackedKeep = 512

func (s *ackedSet) add(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[uint64]struct{}{}
	}
	if len(s.ring) < ackedKeep {
		s.ring = append(s.ring, seq)
	} else {
		delete(s.seen, s.ring[s.pos])
		s.ring[s.pos] = seq
		s.pos = (s.pos + 1) % ackedKeep
	}
	s.seen[seq] = struct{}{}
}

func (s *ackedSet) has(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seen[seq]
	return ok
}

// ackedFor returns a's set for consumer name.
func (a *attachment) ackedFor(name string) *ackedSet {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.acked[name]
	if s == nil {
		s = &ackedSet{}
		a.acked[name] = s
	}
	return s
}

// AttachSession implements broker.DurablePeers.
func (n *Node) AttachSession(key string, deliver func(broker.PeerDelivery) bool) (detach func()) {
	d := &n.dur
	a := &attachment{key: key, deliver: deliver, ccs: map[string]jetstream.ConsumeContext{}, acked: map[string]*ackedSet{}}
	d.mu.Lock()
	if d.att == nil {
		d.att = map[string]*attachment{}
	}
	prev := d.att[key]
	d.att[key] = a
	d.mu.Unlock()
	if prev != nil {
		prev.stopAll()
		prev.mu.Lock()
		for name, s := range prev.acked {
			a.acked[name] = s // a takeover on this node: what the old connection acked stays acked
		}
		if len(prev.rels) > 0 {
			a.rels = maps.Clone(prev.rels) // and what it released stays released, writes in flight too
		}
		prev.mu.Unlock()
	}
	detach = func() {
		d.mu.Lock()
		if d.att[key] == a {
			delete(d.att, key)
		}
		d.mu.Unlock()
		a.stopAll()
	}
	go n.attach(key, a)
	return detach
}

// attach starts a's consumers, retrying those that are not available
// (a consumer whose leader died is being elected one, which takes
// seconds) until they run or a is stopped. The connection does not wait
// for it: its messages come once the consumers run.
func (n *Node) attach(key string, a *attachment) {
	var lastLog time.Time
	for !a.isStopped() && !n.closing() {
		err := n.attachOnce(key, a)
		if err == nil {
			return
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			n.cfg.Log.Warn("cluster: a persistent session's consumers are not available yet; retrying", "err", err)
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-n.done:
			return
		}
	}
}

func (n *Node) attachOnce(key string, a *attachment) error {
	rec, err := n.LoadSession(key)
	if err != nil || rec == nil {
		return err
	}
	var failed error
	for name, sp := range durableSubs(key, rec) {
		ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
		if err := n.consume(ctx, a, name, sp, rec.Expiry, true); err != nil {
			failed = err
		}
		cancel()
	}
	return failed
}

// consume starts consumer name for a unless it runs already. With reset,
// the consumer first goes back to its ack floor: what it handed out and
// never got acknowledged comes again now.
func (n *Node) consume(ctx context.Context, a *attachment, name string, sp broker.SubSpec, expiry time.Duration, reset bool) error {
	d := &n.dur
	a.mu.Lock()
	_, running := a.ccs[name]
	stopped := a.stopped
	a.mu.Unlock()
	if running || stopped {
		return nil
	}
	c, err := n.ensureConsumer(ctx, name, sp, expiry, durableAckWait)
	if err != nil {
		return err
	}
	var dupUpTo, floor uint64
	var gap deliveryGap
	if reset {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		floor = info.AckFloor.Stream
		gap.last, gap.known = info.Delivered.Consumer, true
		if info.Delivered.Stream > info.AckFloor.Stream {
			dupUpTo = info.Delivered.Stream
			seq := max(info.AckFloor.Stream+1, info.Config.OptStartSeq)
			if _, err := d.st.ResetConsumerToSequence(ctx, name, seq); err != nil {
				return err
			}
			gap.last = 0 // a reset numbers the deliveries from 1 again
		}
	}
	// Read before the first message: what the client took (QoS 2
	// PUBREC) through any node never reaches it again. A consumer
	// started again for this attachment (or a takeover on this node)
	// keeps the set this node writes: it has every entry of the record,
	// and those whose write is still under way. A QoS 1 subscription's
	// deliveries are never released: its set starts empty, unread (one
	// upgraded to QoS 2 merges the record at its first write).
	a.mu.Lock()
	rel := a.rels[name]
	a.mu.Unlock()
	switch {
	case rel != nil:
	case sp.QoS < broker.ExactlyOnce:
		rel = newRelSet(n, name, floor)
	default:
		if rel, err = n.loadRel(ctx, name, floor); err != nil {
			return err
		}
	}
	a.mu.Lock()
	for id := range a.early {
		if rel.done(id) {
			delete(a.early, id)
		}
	}
	if a.rels == nil {
		a.rels = map[string]*relSet{}
	}
	a.rels[name] = rel
	a.mu.Unlock()
	subKey := sp.Key
	acked := a.ackedFor(name)
	cc, err := c.Consume(func(jm jetstream.Msg) {
		m, meta, ok := n.decodeDurable(jm)
		if !ok {
			return
		}
		if a.isStopped() {
			return // the next attach resets the consumer: it comes again
		}
		if !gap.accept(meta.Sequence.Consumer) {
			// A delivery before this one never came (the consumer's
			// leader died with it on the way, or a pull request of a
			// stopped Consume took it): it would come later, behind
			// this one [MQTT-4.6.0-6]. Back to the ack floor instead;
			// what comes until the reset shows is not delivered.
			n.rewind(a, name)
			return
		}
		seq := meta.Sequence.Stream
		if acked.has(seq) || rel.has(seq) {
			_ = jm.Ack() // its ack was lost, or a reset brought it back: the client has it
			return
		}
		a.deliver(broker.PeerDelivery{
			Msg: m, SubKey: subKey, Seq: seq,
			Redelivered: meta.NumDelivered > 1 || seq <= dupUpTo,
			H:           &sessMsg{jm: jm, n: meta.NumDelivered, seq: seq, acked: acked, rel: rel, sure: m.QoS == broker.ExactlyOnce},
		})
	}, jetstream.PullMaxMessages(durablePull), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrConsumerLeadershipChanged) {
			// The consumer's leader moved (its node died): what it had
			// sent and never reached us would come only after AckWait,
			// behind newer messages. Back to the ack floor instead; what
			// the session holds already is not pushed twice.
			n.rewind(a, name)
			return
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrBadRequest) ||
			errors.Is(err, jetstream.ErrConsumerNotFound) {
			// The pull subscription ends on these (a consumer whose
			// leader was lost may answer so while it elects one): start
			// it again, from its ack floor, while the session is here; a
			// consumer the record no longer names stays stopped.
			n.cfg.Log.Info("cluster: a persistent subscription's consumer stopped; starting it again", "filter", sp.Filter, "err", err)
			go func() {
				a.stop(name)
				n.attach(a.key, a)
			}()
			return
		}
		n.cfg.Log.Debug("cluster: persistent subscription consumer", "filter", sp.Filter, "err", err)
	}))
	if err != nil {
		return err
	}
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		cc.Stop()
		return nil
	}
	a.ccs[name] = cc
	a.mu.Unlock()
	return nil
}

// deliveryGap follows the delivery numbers of one Consume: JetStream
// numbers a consumer's deliveries 1, 2, 3 (from 1 again after a reset),
// so a number past the next means a delivery was lost on the way.
type deliveryGap struct {
	last    uint64
	known   bool      // last is the consumer's (else the next one sets it)
	waiting time.Time // since a gap: until the reset numbers from 1
}

// accept reports whether delivery number dn may be handed on. Consume
// calls its handler from one goroutine.
func (g *deliveryGap) accept(dn uint64) bool {
	if !g.waiting.IsZero() {
		if dn != 1 && time.Since(g.waiting) < durableAckWait {
			return false
		}
		g.waiting = time.Time{} // reset, or none came: go on
	} else if g.known && dn > g.last+1 {
		g.waiting = time.Now()
		return false
	}
	g.last, g.known = dn, true
	return true
}

// rewind resets consumer name to its ack floor, once at a time per
// attachment and consumer (a call while one runs makes it run once
// more), retrying while it has no leader.
func (n *Node) rewind(a *attachment, name string) {
	a.mu.Lock()
	if a.rewinding == nil {
		a.rewinding = map[string]bool{}
	}
	if a.stopped {
		a.mu.Unlock()
		return
	}
	if _, running := a.rewinding[name]; running {
		a.rewinding[name] = true // again
		a.mu.Unlock()
		return
	}
	a.rewinding[name] = false
	a.mu.Unlock()
	go func() {
		for n.rewindOnce(a, name) {
		}
	}()
}

// rewindOnce resets the consumer and reports whether rewind was called
// meanwhile.
func (n *Node) rewindOnce(a *attachment, name string) (again bool) {
	defer func() {
		a.mu.Lock()
		again = a.rewinding[name] && !a.stopped
		if again {
			a.rewinding[name] = false
		} else {
			delete(a.rewinding, name)
		}
		a.mu.Unlock()
	}()
	_ = n.retryJS(func() error {
		if a.isStopped() {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
		defer cancel()
		c, err := n.dur.st.Consumer(ctx, name)
		if err != nil {
			return err
		}
		info := c.CachedInfo()
		if info.Delivered.Stream <= info.AckFloor.Stream {
			return nil
		}
		_, err = n.dur.st.ResetConsumerToSequence(ctx, name, max(info.AckFloor.Stream+1, info.Config.OptStartSeq))
		return err
	})
	return false // set by the deferred function
}

func (a *attachment) isStopped() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopped
}

func (a *attachment) stop(name string) {
	a.mu.Lock()
	cc := a.ccs[name]
	delete(a.ccs, name)
	a.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
}

func (a *attachment) stopAll() {
	a.mu.Lock()
	a.stopped = true
	ccs := a.ccs
	a.ccs = map[string]jetstream.ConsumeContext{}
	a.mu.Unlock()
	for _, cc := range ccs {
		cc.Stop()
	}
}

// sessMsg is a message of a session consumer as broker.PeerMsg.
type sessMsg struct {
	jm    jetstream.Msg
	n     uint64
	seq   uint64
	acked *ackedSet // nil for a durable subscription's
	rel   *relSet   // the consumer's QoS 2 release record; nil for a durable subscription's
	// sure: the ack is confirmed by the consumer's leader, retried (a
	// QoS 2 message must not come again once the client has it).
	sure bool
}

func (p *sessMsg) Ack() {
	if p.acked != nil {
		p.acked.add(p.seq)
	}
	if !p.sure {
		_ = p.jm.Ack()
		return
	}
	go func() {
		for range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
			err := p.jm.DoubleAck(ctx)
			cancel()
			if err == nil {
				return
			}
		}
	}()
}

// ackReleased acks a QoS 2 delivery recorded as released
// (ReleaseQoS2): once, without waiting, for the record keeps it from
// coming again, and an ack the consumer's leader drops is sent again
// when the message comes back.
func (p *sessMsg) ackReleased() {
	if p.acked != nil {
		p.acked.add(p.seq)
	}
	_ = p.jm.Ack()
}

func (p *sessMsg) Nak(delay time.Duration) {
	if delay > 0 {
		_ = p.jm.NakWithDelay(delay)
		return
	}
	_ = p.jm.Nak()
}
func (p *sessMsg) Term()             { _ = p.jm.Term() }
func (p *sessMsg) Delivered() uint64 { return p.n }
