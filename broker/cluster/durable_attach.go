package cluster

import (
	"context"
	"errors"
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
	var dupUpTo uint64
	if reset {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.Delivered.Stream > info.AckFloor.Stream {
			dupUpTo = info.Delivered.Stream
			seq := max(info.AckFloor.Stream+1, info.Config.OptStartSeq)
			if _, err := d.st.ResetConsumerToSequence(ctx, name, seq); err != nil {
				return err
			}
		}
	}
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
		seq := meta.Sequence.Stream
		if acked.has(seq) {
			_ = jm.Ack() // its ack was lost: the client has it
			return
		}
		a.deliver(broker.PeerDelivery{
			Msg: m, SubKey: subKey, Seq: seq,
			Redelivered: meta.NumDelivered > 1 || seq <= dupUpTo,
			H:           &sessMsg{jm: jm, n: meta.NumDelivered, seq: seq, acked: acked, sure: m.QoS == broker.ExactlyOnce},
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

// rewind resets consumer name to its ack floor, once at a time per
// attachment and consumer, retrying while it has no leader.
func (n *Node) rewind(a *attachment, name string) {
	a.mu.Lock()
	if a.rewinding == nil {
		a.rewinding = map[string]bool{}
	}
	if a.rewinding[name] || a.stopped {
		a.mu.Unlock()
		return
	}
	a.rewinding[name] = true
	a.mu.Unlock()
	go func() {
		defer func() {
			a.mu.Lock()
			delete(a.rewinding, name)
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
	}()
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
func (p *sessMsg) Nak(delay time.Duration) {
	if delay > 0 {
		_ = p.jm.NakWithDelay(delay)
		return
	}
	_ = p.jm.Nak()
}
func (p *sessMsg) Term()             { _ = p.jm.Term() }
func (p *sessMsg) Delivered() uint64 { return p.n }
