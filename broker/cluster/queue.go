package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// STOMP /queue/ destinations cluster-wide (broker.QueuePeers).
//
// Every shared queue's messages live in one replicated JetStream stream,
// "duplex_<name>_queues", with work-queue retention (a message is gone
// once acknowledged), on the subject "duplex.<name>.queue.<queue token>"
// (the whole queue name as one token, subject.go's encoding; a name whose
// subject would pass MaxSubject uses "%long.<sha256 hex>"; the name also
// travels in the Duplex-Queue header). A SEND is published there and
// acknowledged by the stream's quorum (PubAck) before QueueSend returns,
// so the client's RECEIPT follows the replicated write; a retry after a
// lost PubAck is stored once (the message id node.boot.q<seq>, the
// stream's duplicate window). The publish is asynchronous, so a batch of
// SENDs (a STOMP client that pipelines) waits for one round trip, not
// one per message.
//
// Each queue has one durable pull consumer, "q_<hash>", shared by every
// node with local consumers of the queue, so each message goes to one
// node: the consumers on all nodes compete. A node fetches only as many
// as its consumers have prefetch room for (Router.QueueRoom), so a node
// does not hoard the queue. A message a node holds (delivered, not yet
// acknowledged by its STOMP client) is kept from redelivery by
// InProgress every AckWait/3; a node that dies stops doing that, and
// after AckWait (Config.QueueAckWait) the cluster hands the message to
// another node, where the client sees redelivered:true. The broker
// settles each message once (broker.PeerMsg): ACK, NACK (Nak: any node
// may get it again), dead-lettering (Term, after the copy is stored in
// the dead-letter queue, itself a cluster queue).
//
// A node without JetStream (an external NATS without it, an embedded node
// without peers) keeps queues local (broker.ErrQueueLocal) and says so
// once.

const (
	hdrQueue = "Duplex-Queue"
	// queueSendRetry bounds how long a SEND is retried while the stream
	// has no quorum (a leader being elected after a node's loss) before
	// it is refused; queueSendWait how long it waits for the stream to
	// exist at startup.
	queueSendRetry = 15 * time.Second
	queueSendWait  = 10 * time.Second
	// queuePubAckWait is how long one publish waits for the stream's
	// acknowledgement before it is sent again.
	queuePubAckWait = 5 * time.Second
	// queueFetchWait is how long one pull request waits for messages.
	queueFetchWait = time.Second
	// queueMaxAckPending bounds the messages the whole cluster holds
	// unacknowledged per queue.
	queueMaxAckPending = 1 << 16
	// queueInactive: the durable consumer of a queue nobody has fetched
	// from for this long is removed by the server (the messages stay).
	queueInactive = time.Hour
)

// queueRouter is what the queue side needs of broker.Router.
type queueRouter interface {
	EnqueueFromPeer(name string, m *broker.Message, h broker.PeerMsg) bool
	QueueRoom(name string) int
}

// queueLink is a node's cluster-queue state.
type queueLink struct {
	on  atomic.Bool // the stream exists: queues are cluster-wide
	seq atomic.Uint64
	// stored: SENDs the stream has; received: messages taken from it
	// and handed to a local consumer.
	stored, received atomic.Uint64
	offOnce          sync.Once
	js               jetstream.JetStream // set before on
	stream           jetstream.Stream    // set before on

	mu     sync.Mutex
	wanted map[string]*queueFetch // queues with local consumers
	ctx    context.Context        // set with on; nil before
	closed bool                   // stopping: no fetch loop starts any more
	wg     sync.WaitGroup

	hmu  sync.Mutex
	held map[*peerMsg]struct{} // handed to the router, not settled
}

// queueFetch is one queue's fetch loop.
type queueFetch struct {
	name string
	wake chan struct{}
	stop chan struct{}
}

// QueueStats returns how many /queue/ SENDs this node stored in the
// queue stream and how many messages it took from it for its consumers.
func (n *Node) QueueStats() (stored, received uint64) {
	return n.ql.stored.Load(), n.ql.received.Load()
}

// queueBase is the subject prefix of the cluster's queues.
func (n *Node) queueBase() string { return "duplex." + esc(n.cfg.Name) + ".queue" }

// queueSubject is the stream subject of queue name.
func (n *Node) queueSubject(name string) string {
	s := n.queueBase() + "." + esc(name)
	if len(s) > n.subs.max {
		h := sha256.Sum256([]byte(name))
		return n.queueBase() + ".%long." + hex.EncodeToString(h[:])
	}
	return s
}

// queueConsumer is the durable consumer name of queue name.
func queueConsumer(name string) string {
	h := sha256.Sum256([]byte(name))
	return "q_" + hex.EncodeToString(h[:16])
}

// queuesOff reports (and logs once) a node that keeps queues local.
func (n *Node) queuesOff() bool {
	if n.cfg.jetStreamWanted() && !n.jsOff.Load() {
		return false
	}
	n.ql.offOnce.Do(func() {
		n.cfg.Log.Warn("cluster: no JetStream on this node, so /queue/ destinations stay local to it: consumers on other nodes do not get its queues' messages, and they do not survive its loss",
			"node", n.cfg.NodeID)
	})
	return true
}

// startQueues creates (or updates) the queue stream, retrying while the
// JetStream cluster forms, then starts the fetch loops of the queues
// with local consumers and the InProgress ticker. It returns when ctx
// ends or the queues run; stop waits for the loops.
func (n *Node) startQueues(ctx context.Context, js jetstream.JetStream) (stop func()) {
	sc := jetstream.StreamConfig{
		Name:        streamName(n.cfg.Name, "queues"),
		Description: "Duplex STOMP /queue/ messages, one subject per queue, gone once acknowledged",
		Subjects:    []string{n.queueBase() + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    n.replicas(),
		Discard:     jetstream.DiscardNew,
	}
	if c, ok := n.router.(interface{ Config() broker.Config }); ok && c.Config().MaxQueueDepth > 0 {
		// limits.max_queue_depth per queue, as on one node: a SEND to
		// a full queue is refused (broker.ErrQueueFull).
		sc.MaxMsgsPerSubject = int64(c.Config().MaxQueueDepth)
		sc.DiscardNewPerSubject = true
	}
	var st jetstream.Stream
	err := n.retryStart(ctx, "queue stream", func() (err error) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		st, err = js.CreateOrUpdateStream(cctx, sc)
		return err
	})
	if err != nil {
		return func() {}
	}
	n.ql.mu.Lock()
	n.ql.js, n.ql.stream, n.ql.ctx = js, st, ctx
	n.ql.on.Store(true)
	for _, f := range n.ql.wanted {
		n.startFetch(f)
	}
	n.ql.wg.Add(1)
	go n.inProgressLoop(ctx)
	n.ql.mu.Unlock()
	n.cfg.Log.Info("cluster: /queue/ destinations in JetStream", "node", n.cfg.NodeID, "stream", st.CachedInfo().Config.Name,
		"replicas", st.CachedInfo().Config.Replicas, "messages", st.CachedInfo().State.Msgs, "ack_wait", n.cfg.QueueAckWait)
	return func() {
		n.ql.mu.Lock()
		n.ql.closed = true // a subscription while closing starts no loop
		n.ql.mu.Unlock()
		n.ql.wg.Wait()
	}
}

// QueueSend implements broker.QueuePeers: it publishes m to the queue
// stream at once (asynchronously: a publisher's batch of SENDs costs one
// round trip, and they are stored in order) and wait returns once the
// stream's quorum has it. A publish that fails or is not acknowledged in
// queuePubAckWait is retried under the same message id (stored once)
// while there is no quorum, for up to queueSendRetry. Without JetStream
// it returns broker.ErrQueueLocal.
func (n *Node) QueueSend(m *broker.Message) (wait func() error, err error) {
	if n.queuesOff() {
		return nil, broker.ErrQueueLocal
	}
	if !n.ql.on.Load() {
		// JetStream is forming (the node is not ready yet).
		deadline := time.Now().Add(queueSendWait)
		for !n.ql.on.Load() {
			if n.queuesOff() {
				return nil, broker.ErrQueueLocal
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%w: the cluster's queue stream is not ready", broker.ErrStore)
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-n.done:
				return nil, fmt.Errorf("%w: cluster node closed", broker.ErrStore)
			}
		}
	}
	seq := n.ql.seq.Add(1)
	nm := encodeMsg(n.subs, n.self, seq, m, time.Now())
	if nm == nil {
		return func() error { return nil }, nil // expired on the way: never delivered
	}
	nm.Subject = n.queueSubject(m.Queue)
	nm.Header.Del(hdrTopic)
	nm.Header.Set(hdrQueue, esc(m.Queue))
	id := n.selfID + ".q" + strconv.FormatUint(seq, 10)
	fut, err := n.ql.js.PublishMsgAsync(nm, jetstream.WithMsgID(id))
	return func() error {
		if err == nil {
			t := time.NewTimer(queuePubAckWait)
			defer t.Stop()
			select {
			case <-fut.Ok():
				n.ql.stored.Add(1)
				return nil
			case err = <-fut.Err():
			case <-t.C:
			case <-n.done:
				return fmt.Errorf("%w: cluster node closed", broker.ErrStore)
			}
		}
		if storeRefused(err) {
			n.stats.ForwardDropped.Add(1)
			return broker.ErrQueueFull
		}
		return n.queuePublish(nm, id)
	}, nil
}

// queuePublish publishes nm under id and waits for the stream's
// acknowledgement, retrying while there is no quorum.
func (n *Node) queuePublish(nm *nats.Msg, id string) error {
	deadline := time.Now().Add(queueSendRetry)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), queuePubAckWait)
		_, err := n.ql.js.PublishMsg(ctx, nm, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			n.ql.stored.Add(1)
			return nil
		}
		if storeRefused(err) {
			n.stats.ForwardDropped.Add(1)
			return broker.ErrQueueFull
		}
		var api *jetstream.APIError
		if errors.As(err, &api) && api.Code != 503 || errors.Is(err, nats.ErrMaxPayload) || time.Now().After(deadline) {
			// Refused for good (headers past 64 KiB, too large), or
			// no quorum for too long (503: JetStream unavailable).
			n.stats.ForwardDropped.Add(1)
			return fmt.Errorf("%w: cluster queue: %v", broker.ErrStore, err)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-n.done:
			return fmt.Errorf("%w: cluster node closed", broker.ErrStore)
		}
	}
}

// storeRefused reports the stream refusing a message for its limits
// (the queue's max_queue_depth, the stream's or the server's store):
// not worth a retry.
func storeRefused(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jetstream.ErrorCode(10077) // JSStreamStoreFailedF
}

// QueueConsume implements broker.QueuePeers: the fetch loop of name
// starts with its first local consumer and stops with its last. It never
// blocks.
func (n *Node) QueueConsume(name string, add bool) {
	if n.queuesOff() {
		return
	}
	n.ql.mu.Lock()
	defer n.ql.mu.Unlock()
	if n.ql.wanted == nil {
		n.ql.wanted = map[string]*queueFetch{}
	}
	f := n.ql.wanted[name]
	switch {
	case add && f == nil:
		f = &queueFetch{name: name, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		n.ql.wanted[name] = f
		if n.ql.ctx != nil {
			n.startFetch(f)
		}
	case !add && f != nil:
		delete(n.ql.wanted, name)
		close(f.stop)
	}
}

// QueueWake implements broker.QueuePeers: name's fetch loop asks for room
// again. It never blocks.
func (n *Node) QueueWake(name string) {
	n.ql.mu.Lock()
	f := n.ql.wanted[name]
	n.ql.mu.Unlock()
	if f != nil {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}
