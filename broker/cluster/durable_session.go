package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// The session records and consumers of persistent sessions in JetStream
// (durable.go has the design).

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
		n.deleteRel(ctx, name)
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
