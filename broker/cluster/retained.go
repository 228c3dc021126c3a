package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// Retained messages cluster-wide, for the nodes that are up and for those
// that join or restart later [MQTT-3.3.1-5].
//
// Each retained message (and each delete: an empty retained payload
// [MQTT-3.3.1-10]) is published to the cluster's retained stream on
// "duplex.<name>.retained.<topic subject>", where the stream keeps one
// message per subject (MaxMsgsPerSubject 1): the current set, deletes as
// empty tombstones. Every node reads the stream with an ordered consumer
// that starts with the last message of every subject: until it has caught
// up (read the stream's last sequence as its leader gave it when the
// consumer started) the node only keeps what it reads (RetainFromPeer: a
// restored subscriber must not get old retained messages again as new),
// after that it routes each message as it comes (PublishFromPeer), which
// is how a retained message published on another node reaches the live
// subscribers here. Ready fails until the node has caught up.
//
// A topic whose subject would be longer than MaxSubject uses the token
// "%long" (never an encoded level) and the hex SHA-256 of the topic; the
// topic itself is in the Duplex-Topic header, as on the core retained
// subject. MQTT 5 message expiry is counted from the time the stream
// stored the message.

// retainer is the router's RetainFromPeer (broker.Router has it).
type retainer interface {
	RetainFromPeer(m *broker.Message) error
}

// retainedSubject is the stream subject of a retained message on topic.
func (n *Node) retainedSubject(topic string) string {
	prefix := n.subs.Retained + "."
	b := appendLevels([]byte(prefix), topic)
	if len(b) > n.subs.max {
		h := sha256.Sum256([]byte(topic))
		return prefix + "%long." + hex.EncodeToString(h[:])
	}
	return string(b)
}

// startRetained creates (or updates) the retained stream and starts
// reading it; stop ends the reading.
func (n *Node) startRetained(ctx context.Context, js jetstream.JetStream) (stop func(), err error) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name:              streamName(n.cfg.Name, "retained"),
		Description:       "Duplex retained messages: the last message per topic, deletes as empty tombstones",
		Subjects:          []string{n.subs.Retained + ".>"},
		Storage:           jetstream.FileStorage,
		Replicas:          n.replicas(),
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
	})
	if err != nil {
		return nil, err
	}
	c, err := st.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{n.subs.Retained + ".>"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, err
	}
	// Caught up once the message at the stream's last sequence, as its
	// leader answers now, is read: the consumer reads this server's
	// replica, which may lag just after a restart (its own NumPending
	// would then say 0 too early, and the rest would be routed as new).
	info, err := st.Info(cctx)
	if err != nil {
		return nil, err
	}
	target := info.State.LastSeq
	if target == 0 {
		n.retainedLoaded.Store(true)
	}
	cc, err := c.Consume(func(jm jetstream.Msg) { n.onRetained(jm, target) })
	if err != nil {
		return nil, err
	}
	if n.retainedOut == nil {
		n.retainedOut = make(chan retainedJob, retainedQueue)
	}
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.retainedLoop(pctx, js)
	}()
	n.retainedOn.Store(true)
	n.cfg.Log.Info("cluster: retained messages in JetStream", "node", n.cfg.NodeID, "stream", st.CachedInfo().Config.Name,
		"replicas", st.CachedInfo().Config.Replicas, "messages", st.CachedInfo().State.Msgs)
	return func() {
		n.retainedOn.Store(false)
		pcancel()
		<-done
		cc.Stop()
	}, nil
}

// onRetained keeps or routes one message of the retained stream; the
// one at stream sequence target ends the load.
func (n *Node) onRetained(jm jetstream.Msg, target uint64) {
	meta, err := jm.Metadata()
	if err != nil {
		n.stats.Malformed.Add(1)
		return
	}
	defer func() {
		if meta.Sequence.Stream >= target && !n.retainedLoaded.Load() {
			n.retainedLoaded.Store(true)
			n.cfg.Log.Info("cluster: retained messages loaded", "node", n.cfg.NodeID)
		}
	}()
	nm := &nats.Msg{Subject: n.subs.Retained, Header: jm.Headers(), Data: jm.Data()}
	m, from, _, err := decodeMsg(n.subs, nm, meta.Timestamp)
	if err == nil {
		err = broker.ValidTopicName(m.Topic)
	}
	if err != nil || !m.Retain {
		n.stats.Malformed.Add(1)
		return
	}
	if from == n.selfID {
		n.stats.Duplicates.Add(1) // kept here when it was published
		return
	}
	if m.Expired() {
		return
	}
	if !n.retainedLoaded.Load() {
		if r, ok := n.router.(retainer); ok {
			if err := r.RetainFromPeer(m); err != nil {
				n.stats.ReceiveDropped.Add(1)
			}
			return
		}
	}
	if err := n.router.PublishFromPeer(m); err != nil {
		n.stats.ReceiveDropped.Add(1)
		return
	}
	n.stats.Received.Add(1)
}

var _ broker.RetainPeers = (*Node)(nil)

// retainedJob is one retained message for retainedLoop: id names it in
// the stream (empty: its node.boot.seq), w is its publisher waiting for
// it (StoreRetained), nil for one nobody waits for.
type retainedJob struct {
	nm *nats.Msg
	id string
	w  *retainedWaiter
}

// retainedWaiter is a publisher waiting in StoreRetained.
type retainedWaiter struct {
	id   string
	done chan error // buffered: one answer
}

var (
	errRetainedNotStored = errors.New("cluster: retained message not stored: NATS not connected")
	errRetainedBusy      = errors.New("cluster: retained message not stored: too many waiting for the stream")
	errRetainedTimeout   = errors.New("cluster: retained message not stored in time")
	errNodeClosing       = errors.New("cluster: node closing")
	// errRetainedDuplicate is no failure: the stream had a message
	// under the waiter's id already (StoreRetained's dup).
	errRetainedDuplicate = errors.New("cluster: retained message stored before under its id")
)

// StoreRetained implements broker.RetainPeers: m goes the way Forward
// takes (sendLoop, then retainedLoop), behind every retained message
// handed over before it, so a topic's last retained message in the
// stream is the one the node took last; the caller waits until the
// stream's quorum has it. Without the retained stream it is Forward.
func (n *Node) StoreRetained(m *broker.Message, dedup string) (dup bool, err error) {
	if !n.retainedOn.Load() {
		n.Forward(m)
		return false, nil
	}
	w := &retainedWaiter{id: dedup, done: make(chan error, 1)}
	n.retainedWait.Store(m, w)
	t := time.NewTimer(retainedRetry + 10*time.Second)
	defer t.Stop()
	select {
	case n.out <- m:
	case <-t.C:
		n.retainedWait.Delete(m)
		return false, errRetainedTimeout
	case <-n.done:
		n.retainedWait.Delete(m)
		return false, errNodeClosing
	}
	select {
	case err := <-w.done:
		if err == errRetainedDuplicate {
			return true, nil
		}
		return false, err
	case <-t.C:
		n.retainedWait.Delete(m)
		return false, errRetainedTimeout
	case <-n.done:
		return false, errNodeClosing
	}
}

// retainedDropped answers m's waiting publisher, if any, when sendLoop
// does not hand m to the stream: err, or nil for an expired message.
func (n *Node) retainedDropped(m *broker.Message, err error) {
	if !m.Retain {
		return
	}
	if v, ok := n.retainedWait.LoadAndDelete(m); ok {
		v.(*retainedWaiter).done <- err
	}
}

// toRetainedStream hands an encoded retained message to retainedLoop
// instead of the core retained subject, once the node reads the stream;
// it reports whether it did. A full queue drops a message nobody waits
// for (counted) and refuses one a publisher waits for.
func (n *Node) toRetainedStream(nm *nats.Msg, m *broker.Message) bool {
	if !m.Retain {
		return false
	}
	if !n.retainedOn.Load() {
		n.retainedDropped(m, nil) // the node is closing: the core subject, as without JetStream
		return false
	}
	nm.Subject = n.retainedSubject(m.Topic)
	job := retainedJob{nm: nm}
	if v, ok := n.retainedWait.LoadAndDelete(m); ok {
		job.w = v.(*retainedWaiter)
		job.id = job.w.id
	}
	select {
	case n.retainedOut <- job:
	default:
		n.stats.ForwardDropped.Add(1)
		if job.w != nil {
			job.w.done <- errRetainedBusy
		}
	}
	return true
}

// retainedLoop stores the node's retained messages in the stream, one at
// a time so that two on one topic keep their order. A JetStream publish
// is acknowledged by the stream's quorum; while there is none (a replica
// lost, a leader being elected) it is retried, under a message id so
// that a retry after a lost acknowledgement is stored once (the stream's
// duplicate window), and dropped, counted, after retainedRetry. A
// publisher waiting for the message (StoreRetained) gets the outcome.
func (n *Node) retainedLoop(ctx context.Context, js jetstream.JetStream) {
	var lastErr time.Time
	for {
		var job retainedJob
		select {
		case job = <-n.retainedOut:
		case <-ctx.Done():
			return
		}
		nm, id := job.nm, job.id
		if id == "" {
			// node.boot.seq, the first fields of the metadata
			// header, is the message's identity.
			f := strings.SplitN(nm.Header.Get(hdrMeta), ".", 4)
			id = strings.Join(f[:min(3, len(f))], ".")
		}
		err := n.storeRetained(ctx, js, nm, id)
		if job.w != nil {
			job.w.done <- err
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && err != errRetainedDuplicate && time.Since(lastErr) > 10*time.Second {
			lastErr = time.Now()
			n.cfg.Log.Warn("cluster: retained message not stored in JetStream; dropped", "topic_bytes", len(nm.Subject), "err", err)
		}
	}
}

// storeRetained publishes one retained message to the stream, retried
// while there is no quorum, for retainedRetry at most. A first try that
// the stream answers as a duplicate of id returns errRetainedDuplicate:
// the message was stored before, by another node (a resent QoS 2
// PUBLISH); on a retry a duplicate is this node's own lost
// acknowledgement.
func (n *Node) storeRetained(ctx context.Context, js jetstream.JetStream, nm *nats.Msg, id string) error {
	deadline := time.Now().Add(retainedRetry)
	for first := true; ; first = false {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := js.PublishMsg(pctx, nm, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			if first && ack.Duplicate {
				return errRetainedDuplicate
			}
			n.stats.Forwarded.Add(1)
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if time.Now().After(deadline) || refused(err) {
			n.stats.ForwardDropped.Add(1)
			return err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// retainedRetry bounds how long a retained message is retried while the
// stream has no quorum; retainedQueue is how many may wait.
const (
	retainedRetry = 30 * time.Second
	retainedQueue = 1024
)
