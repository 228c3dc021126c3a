package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// Persistent MQTT sessions in JetStream (broker.DurablePeers), so that
// no acknowledged QoS 1/2 message is lost with the node that holds a
// session (issue 11 Build 5). The design follows nats-server's own MQTT
// support (server/mqtt.go: $MQTT_msgs, one consumer per QoS>0
// subscription, $MQTT_sess):
//
//   - every QoS 1/2 topic message published on a node goes to the
//     stream duplex_<name>_durable, on duplex.<name>.d.<topic subject>
//     (the lossless level encoding of subject.go; a topic too long for a
//     subject on duplex.<name>.dlong, its topic in the Duplex-Topic
//     header), and the publisher's PUBACK/PUBREC waits for its PubAck.
//     Interest retention: the stream keeps a message only while a
//     consumer whose filter matches it has not acknowledged it, so a
//     message no persistent session wants is dropped at once;
//   - each QoS 1/2 subscription of a cluster-durable session (not a
//     share group's) is a durable consumer of that stream, filtered on
//     the subscription's subjects, starting with the messages stored
//     after it was made; one consumer per subscription because
//     JetStream refuses overlapping filters in one consumer ("a/#" and
//     "+/b"), so a message matching two subscriptions of one client
//     comes once per subscription (MQTT 5 §3.3.4 allows it), each in
//     publish order;
//   - the session's record (owner, expiry, subscriptions) is a key of
//     the KV bucket duplex_<name>_sessions, so a node that resumes a
//     session whose holder died knows its subscriptions;
//   - the node holding the connection runs the consumers (Consume) and
//     hands each message to the session (Router.DeliverFromPeer), acked
//     when the client acknowledges it (PUBACK, PUBREC). A consumer that
//     starts on a node (attach: a connection opened or resumed) is
//     first reset to its ack floor, so what an earlier connection
//     received and never acknowledged comes again at once, in order,
//     marked redelivered, instead of after AckWait; its packet id
//     derives from the stream sequence, the same on every node.
//
// Without JetStream (external NATS without it, an embedded node without
// peers) DurableOn is false and the router keeps persistent sessions in
// its own store, as before.

// Durable consumer settings: AckWait brings back a message JetStream
// handed to a pull request of an attachment that is gone (the request
// outlives it at the consumer's leader, so the reset at the next attach
// does not bring that message: it comes after AckWait, out of order;
// short, so that is seconds), and a message a connection holds longer
// comes again to the same attachment, which does not push it twice
// (DeliverFromPeer); durablePull is how many messages a
// consumer buffers per node, durableAckPending how many it hands out
// unacknowledged.
const (
	durableAckWait    = 10 * time.Second
	durablePull       = 64
	durableAckPending = 1024
	durableDupWindow  = 2 * time.Minute
	durableRetry      = 20 * time.Second // a publish retried while the stream has no quorum (an election takes up to ~10 s)
	durableTimeout    = 5 * time.Second  // one JetStream API request
)

var _ broker.DurablePeers = (*Node)(nil)

// durableLink is a node's side of the persistent sessions in JetStream.
type durableLink struct {
	on   atomic.Bool // the stream and the bucket are ready
	js   jetstream.JetStream
	st   jetstream.Stream
	kv   jetstream.KeyValue
	subs Subjects // Prefix duplex.<name>.d., Long duplex.<name>.dlong
	seq  atomic.Uint64

	mu     sync.Mutex
	att    map[string]*attachment // by session key
	bloops map[string]bool        // durable subscriptions fetched here: wanted again (durable_binding.go)
}

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

// durableSubjects are the stream's subjects.
func (n *Node) durableSubjects() Subjects {
	base := strings.TrimSuffix(n.subs.Prefix, "t.")
	ds := n.subs
	ds.Prefix, ds.Long = base+"d.", base+"dlong"
	ds.Retained = ds.Long // encodeMsg puts a retained message's topic in the header; durablePublish sets its subject
	return ds
}

// startDurable creates (or updates) the durable stream and the session
// bucket, retrying while the JetStream cluster forms, until ctx ends.
func (n *Node) startDurable(ctx context.Context, js jetstream.JetStream) {
	d := &n.dur
	d.js, d.subs = js, n.durableSubjects()
	var lastLog time.Time
	for {
		err := n.createDurable(ctx)
		if err == nil {
			d.on.Store(true)
			n.cfg.Log.Info("cluster: persistent sessions in JetStream", "node", n.cfg.NodeID,
				"stream", d.st.CachedInfo().Config.Name, "replicas", d.st.CachedInfo().Config.Replicas)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			n.cfg.Log.Info("cluster: durable stream not ready yet; retrying", "node", n.cfg.NodeID,
				"err", strings.TrimPrefix(err.Error(), "nats: "))
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

func (n *Node) createDurable(ctx context.Context) error {
	d := &n.dur
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := d.js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name:        streamName(n.cfg.Name, "durable"),
		Description: "Duplex QoS 1/2 messages for persistent sessions, kept until each subscription's consumer acknowledges them",
		Subjects:    []string{d.subs.Prefix + ">", d.subs.Long},
		Retention:   jetstream.InterestPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    n.replicas(),
		Duplicates:  durableDupWindow,
	})
	if err != nil {
		return err
	}
	kv, err := d.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
		Bucket:      streamName(n.cfg.Name, "sessions"),
		Description: "Duplex persistent session records: owner, expiry, subscriptions",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    n.replicas(),
	})
	if err != nil {
		return err
	}
	d.st, d.kv = st, kv
	return nil
}

// DurableOn implements broker.DurablePeers.
func (n *Node) DurableOn() bool { return n.dur.on.Load() }

// DurablePublish implements broker.DurablePeers: m is stored once the
// stream's quorum has it. While the stream has none (a leader being
// elected after a node's loss) it is retried, under one message id so
// that a retry after a lost PubAck is stored once, for durableRetry.
func (n *Node) DurablePublish(m *broker.Message, dedup string) error {
	d := &n.dur
	if !d.on.Load() {
		if n.cfg.jetStreamWanted() && !n.jsOff.Load() {
			// Starting: the other nodes' persistent subscriptions
			// expect every QoS 1/2 message in the stream.
			return errDurableNotReady
		}
		return nil // no JetStream: sessions stay on their nodes
	}
	seq := d.seq.Add(1)
	nm := encodeMsg(d.subs, n.self, seq, m, time.Now())
	if nm == nil {
		return nil // expired on the way
	}
	if m.Retain {
		nm.Subject, _ = d.subs.Topic(m.Topic)
	}
	topicInData(nm)
	id := dedup
	if id == "" {
		id = n.selfID + ".d." + strconv.FormatUint(seq, 10)
	}
	deadline := time.Now().Add(durableRetry)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
		_, err := d.js.PublishMsg(ctx, nm, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return nil
		}
		if refused(err) || time.Now().After(deadline) || n.closing() {
			return err // refused (too large), or no quorum for too long
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hdrTopicData marks a durable message whose topic, too long for its
// subject, leads its data (uvarint length, topic) instead of travelling
// in Duplex-Topic: JetStream refuses headers past 64 KiB, and a topic
// may be 64 KiB.
const hdrTopicData = "Duplex-Topic-Data"

// topicInData moves a long topic from its header into nm's data.
func topicInData(nm *nats.Msg) {
	t := nm.Header.Get(hdrTopic)
	if t == "" {
		return
	}
	data := binary.AppendUvarint(make([]byte, 0, len(t)+len(nm.Data)+4), uint64(len(t)))
	nm.Data = append(append(data, t...), nm.Data...)
	nm.Header.Del(hdrTopic)
	nm.Header.Set(hdrTopicData, "1")
}

// durableMsg is a durable stream message as decodeMsg takes it: a topic
// in its data goes back to its header.
func durableMsg(jm jetstream.Msg) (*nats.Msg, error) {
	return fromDurable(&nats.Msg{Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data()})
}

func fromDurable(nm *nats.Msg) (*nats.Msg, error) {
	if nm.Header.Get(hdrTopicData) == "" {
		return nm, nil
	}
	l, k := binary.Uvarint(nm.Data)
	if k <= 0 || uint64(len(nm.Data)-k) < l {
		return nil, errHeader
	}
	h := nats.Header{}
	for key, v := range nm.Header {
		h[key] = v
	}
	h.Set(hdrTopic, string(nm.Data[k:k+int(l)]))
	nm.Header, nm.Data = h, nm.Data[k+int(l):]
	return nm, nil
}

var errDurableNotReady = errors.New("cluster: the durable stream is not ready yet")

// refused reports a JetStream answer that no retry changes: the message
// is too large for the connection or the stream.
func refused(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// retryJS runs f until it succeeds, for durableRetry at most: while a
// stream, bucket or consumer has lost its leader (a node died) its
// requests fail for seconds, and a SUBSCRIBE or a resume should wait
// that out rather than fail.
func (n *Node) retryJS(f func() error) error {
	deadline := time.Now().Add(durableRetry)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || n.closing() {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// closing reports a node that Close has begun to stop.
func (n *Node) closing() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// consumerName is the durable consumer of the subscription subKey of the
// session key.
func consumerName(key, subKey string) string {
	h := sha256.Sum256([]byte(subKey))
	return "s" + key + "-" + hex.EncodeToString(h[:10])
}

// durableSubs maps a record's subscriptions that have a consumer by
// consumer name.
func durableSubs(key string, rec *broker.SessionRecord) map[string]broker.SubSpec {
	out := map[string]broker.SubSpec{}
	if rec == nil {
		return out
	}
	for _, sp := range rec.Subs {
		if sp.QoS > broker.AtMostOnce && sp.Group == "" && sp.Queue == "" && sp.Filter != "" {
			out[consumerName(key, sp.Key)] = sp
		}
	}
	return out
}

// LoadSession implements broker.DurablePeers. (A record is not checked
// for consumers gone by expiry: while a consumer's leader is elected,
// its lookup may answer "not found", and such a check deleted live
// sessions in TestClusterChaos.)
func (n *Node) LoadSession(key string) (rec *broker.SessionRecord, err error) {
	err = n.retryJS(func() error {
		rec, err = n.loadSession(key)
		return err
	})
	return rec, err
}

func (n *Node) loadSession(key string) (*broker.SessionRecord, error) {
	d := &n.dur
	if !d.on.Load() {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
	defer cancel()
	e, err := d.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec broker.SessionRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// SaveSession implements broker.DurablePeers: the consumers of new
// subscriptions are made before the record names them, those of gone
// ones deleted after.
func (n *Node) SaveSession(key string, rec *broker.SessionRecord) error {
	if !n.dur.on.Load() {
		return errDurableNotReady
	}
	return n.retryJS(func() error { return n.saveSession(key, rec) })
}

func (n *Node) saveSession(key string, rec *broker.SessionRecord) error {
	d := &n.dur
	old, err := n.loadSession(key)
	if err != nil {
		return err
	}
	had, want := durableSubs(key, old), durableSubs(key, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*durableTimeout)
	defer cancel()
	for name, sp := range want {
		if _, ok := had[name]; ok {
			continue
		}
		if _, err := n.ensureConsumer(ctx, name, sp, rec.Expiry, durableAckWait); err != nil {
			return err
		}
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := d.kv.Put(ctx, key, body); err != nil {
		return err
	}
	d.mu.Lock()
	a := d.att[key]
	d.mu.Unlock()
	for name := range had {
		if _, ok := want[name]; ok {
			continue
		}
		if a != nil {
			a.stop(name)
		}
		if err := d.st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			n.cfg.Log.Warn("cluster: consumer of a removed subscription not deleted", "consumer", name, "err", err)
		}
	}
	if a != nil {
		for name, sp := range want {
			if _, ok := had[name]; ok {
				continue // attach starts it, reset to its ack floor first
			}
			if err := n.consume(ctx, a, name, sp, rec.Expiry, false); err != nil {
				n.cfg.Log.Warn("cluster: a new persistent subscription's consumer did not start; its messages wait for the next connection",
					"filter", sp.Filter, "err", err)
			}
		}
	}
	return nil
}

// ensureConsumer returns the consumer name, made for sp if there is none:
// it starts after the stream's last message, explicit acks, and goes
// away after the session's expiry without a connection pulling from it.
func (n *Node) ensureConsumer(ctx context.Context, name string, sp broker.SubSpec, expiry, ackWait time.Duration) (jetstream.Consumer, error) {
	d := &n.dur
	c, err := d.st.Consumer(ctx, name)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	info, err := d.st.Info(ctx)
	if err != nil {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "Duplex persistent session subscription " + sp.Filter,
		FilterSubjects: d.subs.Filter(nil, sp.Filter),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxAckPending:  durableAckPending,
		MaxDeliver:     -1,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    info.State.LastSeq + 1,
	}
	if expiry > 0 && expiry < 10*365*24*time.Hour {
		cfg.InactiveThreshold = expiry + time.Minute
	}
	return d.st.CreateConsumer(ctx, cfg)
}

// DeleteSession implements broker.DurablePeers.
func (n *Node) DeleteSession(key string) {
	d := &n.dur
	if !d.on.Load() {
		return
	}
	rec, err := n.loadSession(key) // once: a clean connect does not wait out an election
	if err != nil || rec == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*durableTimeout)
	defer cancel()
	for name := range durableSubs(key, rec) {
		if err := d.st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			n.cfg.Log.Warn("cluster: consumer of an ended session not deleted", "consumer", name, "err", err)
		}
	}
	if err := d.kv.Purge(ctx, key); err != nil {
		n.cfg.Log.Warn("cluster: record of an ended session not deleted", "err", err)
	}
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
		meta, err := jm.Metadata()
		if err != nil {
			return
		}
		nm, err := durableMsg(jm)
		var m *broker.Message
		if err == nil {
			m, _, _, err = decodeMsg(d.subs, nm, meta.Timestamp)
		}
		if err != nil {
			n.stats.Malformed.Add(1)
			_ = jm.Term()
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
