package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// Inbound MQTT QoS 2 packet ids across nodes (broker.InboundPeers), so
// that a PUBLISH the client resends to another node, because the node
// that stored it died before its PUBREC reached the client, is not
// published twice [MQTT-4.3.3-10]. The idea is nats-server's $MQTT_qos2in
// (server/mqtt.go: a stream subject per session and packet id until
// PUBREL); Duplex forwards at once (method B), so what it keeps is a
// record, not the message:
//
//   - KV bucket duplex_<name>_qos2in, key "<session key>.<packet id>"
//     (the session key is the persistent session's record key: the
//     first 16 bytes of SHA-256 of the client id, hex), value "p"
//     (pending: written before the message is stored) or "s" (stored:
//     written, on the pending record's revision, once the message is in
//     the durable stream and, retained, in the retained stream, before
//     it is forwarded live and before PUBREC);
//   - the message is stored in the durable stream under the message id
//     "q2.<key>.<revision of the pending record>", so every node that
//     handles one hold stores it under one name, and the next message
//     under the same packet id under another;
//   - each record has a TTL of the session's expiry plus a minute (none
//     for a session that never expires), and PUBREL purges it (the
//     purge marker goes after a minute).
//
// A resend (DUP) reads the record from the stream's leader (a replica
// may lag just after a node's death): "s" is acknowledged and not
// published; "p" is stored again under the same message ids, which the
// durable and retained streams keep once within their duplicate window
// (2 min), then marked "s" on the same revision, then forwarded: the node
// that wrote "p" forwarded nothing (a retained message the retained
// stream had already reached every node: the resend is acknowledged
// only); no record means the first PUBLISH never reached a node that
// wrote one, so the resend is new. The "s" write is a compare-and-set: of
// two nodes handling one hold (the first one cut off, not dead) only one
// forwards; the other acknowledges without publishing. A PUBLISH without
// DUP is always new [MQTT-3.3.1-1]: it overwrites whatever record a
// failed release left.
//
// Limits: a node that dies after "s" and before its forward reaches NATS
// leaves the other nodes' live (non-persistent) subscribers without the
// message, never with two; persistent sessions have it from the durable
// stream. A resend that comes more than the duplicate window after a
// "p" whose node died after its durable write is stored twice.

// inboundLink is a node's side of the inbound packet id records.
type inboundLink struct {
	on     atomic.Bool
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream string // the bucket's stream, KV_<bucket>
	prefix string // "$KV.<bucket>."
	ttl    bool   // the server keeps per-key TTLs (LimitMarkerTTL)
	seq    atomic.Uint64
}

// Record values.
const (
	inboundPending = "p"
	inboundStored  = "s"
)

// inboundMarkerTTL is how long a purge marker (PUBREL) or a TTL's delete
// marker stays in the bucket.
const inboundMarkerTTL = time.Minute

var _ broker.InboundPeers = (*Node)(nil)

var errInboundNotReady = errors.New("cluster: the inbound QoS 2 bucket is not ready yet")

// startInbound creates (or updates) the bucket, retrying while the
// JetStream cluster forms, until ctx ends. It runs before startDurable,
// so that a session is cluster-durable only once its ids can be kept.
func (n *Node) startInbound(ctx context.Context, js jetstream.JetStream) {
	l := &n.q2
	l.js = js
	if n.retryStart(ctx, "inbound QoS 2 bucket", func() error { return n.createInbound(ctx) }) == nil {
		l.on.Store(true)
	}
}

func (n *Node) createInbound(ctx context.Context) error {
	l := &n.q2
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cfg := jetstream.KeyValueConfig{
		Bucket:         streamName(n.cfg.Name, "qos2in"),
		Description:    "Duplex inbound MQTT QoS 2 packet ids of persistent sessions, from PUBLISH to PUBREL",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       n.replicas(),
		LimitMarkerTTL: inboundMarkerTTL,
	}
	kv, err := l.js.CreateOrUpdateKeyValue(cctx, cfg)
	l.ttl = err == nil
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		// A NATS before 2.11: records go at PUBREL, or when a new
		// PUBLISH reuses the id, never by themselves.
		cfg.LimitMarkerTTL = 0
		kv, err = l.js.CreateOrUpdateKeyValue(cctx, cfg)
	}
	if err != nil {
		return err
	}
	l.kv, l.stream, l.prefix = kv, "KV_"+cfg.Bucket, "$KV."+cfg.Bucket+"."
	return nil
}

// inboundKey is the record key of packet id of session key.
func inboundKey(key string, id uint16) string {
	return key + "." + strconv.FormatUint(uint64(id), 10)
}

// HoldInbound implements broker.InboundPeers.
func (n *Node) HoldInbound(key string, id uint16, dup bool, ttl time.Duration) (broker.InboundHold, error) {
	l := &n.q2
	if !l.on.Load() {
		return broker.InboundHold{}, errInboundNotReady
	}
	k := inboundKey(key, id)
	if dup {
		var (
			val string
			rev uint64
		)
		err := n.retryJS(func() (err error) {
			val, rev, err = n.readInbound(k)
			return err
		})
		if err != nil {
			return broker.InboundHold{}, err
		}
		switch val {
		case inboundStored:
			return broker.InboundHold{Done: true, Rev: rev}, nil // [MQTT-4.3.3-10]
		case inboundPending:
			return broker.InboundHold{Dedup: inboundDedup(k, rev), Rev: rev}, nil
		}
	}
	// A new message under the id: a new record, whatever was there.
	var rev uint64
	msgID := n.selfID + ".q2." + strconv.FormatUint(l.seq.Add(1), 10) // a retry after a lost PubAck writes once
	err := n.retryJS(func() (err error) {
		rev, err = n.writeInbound(k, inboundPending, msgID, 0, ttl)
		return err
	})
	if err != nil {
		return broker.InboundHold{}, err
	}
	return broker.InboundHold{Dedup: inboundDedup(k, rev), Rev: rev}, nil
}

// inboundDedup is the durable stream's message id of the message held
// by record k at revision rev.
func inboundDedup(k string, rev uint64) string {
	return "q2." + k + "." + strconv.FormatUint(rev, 10)
}

// StoredInbound implements broker.InboundPeers: the record goes from
// pending to stored on the pending record's revision, retried (under one
// message id, so a retry after a lost acknowledgement writes once) while
// the bucket has no quorum. A record purged or replaced meanwhile stays
// so: broker.ErrInboundMoved.
func (n *Node) StoredInbound(key string, id uint16, h broker.InboundHold, ttl time.Duration) error {
	l := &n.q2
	if !l.on.Load() {
		return errInboundNotReady
	}
	k := inboundKey(key, id)
	msgID := n.selfID + ".q2." + strconv.FormatUint(l.seq.Add(1), 10)
	moved := false
	err := n.retryJS(func() error {
		_, err := n.writeInbound(k, inboundStored, msgID, h.Rev, ttl)
		if wrongLastSeq(err) {
			moved = true
			return nil
		}
		return err
	})
	if moved {
		return broker.ErrInboundMoved
	}
	return err
}

// wrongLastSeq reports a compare-and-set write refused because the
// subject's last message is not the expected one (R1 and R>1 codes).
func wrongLastSeq(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ReleaseInbound implements broker.InboundPeers.
func (n *Node) ReleaseInbound(key string, id uint16, check bool) (bool, error) {
	l := &n.q2
	if !l.on.Load() {
		return false, nil
	}
	k := inboundKey(key, id)
	if check {
		var val string
		err := n.retryJS(func() (err error) {
			val, _, err = n.readInbound(k)
			return err
		})
		if err != nil {
			return false, err
		}
		if val != inboundPending && val != inboundStored {
			return false, nil
		}
	}
	var opts []jetstream.KVDeleteOpt
	if l.ttl {
		opts = append(opts, jetstream.PurgeTTL(inboundMarkerTTL))
	}
	err := n.retryJS(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
		defer cancel()
		return l.kv.Purge(ctx, k, opts...)
	})
	return check, err
}

// writeInbound writes val as record k, on revision expect when not 0,
// with ttl when not 0 and the bucket keeps TTLs; it returns the new
// revision.
func (n *Node) writeInbound(k, val, msgID string, expect uint64, ttl time.Duration) (uint64, error) {
	l := &n.q2
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(msgID)}
	if expect != 0 {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(expect))
	}
	if ttl > 0 && l.ttl {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
	defer cancel()
	ack, err := l.js.PublishMsg(ctx, &nats.Msg{Subject: l.prefix + k, Data: []byte(val)}, opts...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// readInbound reads record k from the bucket stream's leader ("" when
// there is none, or it was purged or expired). Not a KV Get: that is a
// direct get, which any replica answers, and one that lags after a
// node's death could miss a record and so store a resend twice.
func (n *Node) readInbound(k string) (val string, rev uint64, err error) {
	l := &n.q2
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{l.prefix + k})
	if err != nil {
		return "", 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
	defer cancel()
	resp, err := n.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+l.stream, req)
	if err != nil {
		return "", 0, err
	}
	var r struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Seq  uint64 `json:"seq"`
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return "", 0, err
	}
	switch {
	case r.Error != nil && r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return "", 0, nil
	case r.Error != nil:
		return "", 0, r.Error
	case r.Message == nil:
		return "", 0, errors.New("cluster: empty stream message answer")
	}
	return string(r.Message.Data), r.Message.Seq, nil
}
