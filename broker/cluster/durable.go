package cluster

import (
	"context"
	"encoding/binary"
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

	in durableInterest // the consumers' filters: which messages to store (durable_interest.go)
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
	err := n.retryStart(ctx, "durable stream", func() error {
		if err := n.createDurable(ctx); err != nil {
			return err
		}
		return n.loadInterest(ctx) // before any publish may skip the stream (durable_interest.go)
	})
	if err != nil {
		return
	}
	d.on.Store(true)
	n.cfg.Log.Info("cluster: persistent sessions in JetStream", "node", n.cfg.NodeID,
		"stream", d.st.CachedInfo().Config.Name, "replicas", d.st.CachedInfo().Config.Replicas)
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
	kv, err := n.createSessionBuckets(cctx) // the records, and the client id holders (claim_sweep.go)
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
	skip := !d.in.wants(m.Topic)
	m.SetNotInCluster(skip) // a copy of a message (dead-lettered) may carry an old mark
	if skip {
		d.in.skipped.Add(1)
		return nil // no cluster-durable subscription wants it (durable_interest.go)
	}
	d.in.stored.Add(1)
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

// decodeDurable decodes a message of the durable stream for delivery
// (sessions' consumers, durable subscriptions' fetches): a malformed one
// is counted and terminated. ok is false when there is nothing to deliver.
func (n *Node) decodeDurable(jm jetstream.Msg) (m *broker.Message, meta *jetstream.MsgMetadata, ok bool) {
	meta, err := jm.Metadata()
	if err != nil {
		return nil, nil, false
	}
	if m, ok = n.decodeDurableMeta(jm, meta); !ok {
		return nil, nil, false
	}
	return m, meta, true
}

// decodeDurableMeta is decodeDurable for a message whose metadata the
// caller has read already.
func (n *Node) decodeDurableMeta(jm jetstream.Msg, meta *jetstream.MsgMetadata) (*broker.Message, bool) {
	nm, err := durableMsg(jm)
	var m *broker.Message
	if err == nil {
		m, _, _, err = decodeMsg(n.dur.subs, nm, meta.Timestamp)
	}
	if err != nil {
		n.stats.Malformed.Add(1)
		_ = jm.Term()
		return nil, false
	}
	return m, true
}
