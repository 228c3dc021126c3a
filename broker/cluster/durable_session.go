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

// storedRecord is a session record as the bucket keeps it. Orphaned
// marks the record of a session whose node died, written with a message
// TTL of its expiry (claim_sweep.go): JetStream deletes it when that
// runs out, unless a connection resumes the session first (LoadSession
// writes it back unmarked, without TTL).
type storedRecord struct {
	broker.SessionRecord
	Orphaned bool `json:"orphaned,omitempty"`
	// Starts are the consumers' start sequences by consumer name, as
	// they were made (overlap.go): known without a request to a
	// consumer's leader, which may be being elected.
	Starts map[string]uint64 `json:"starts,omitempty"`
}

// LoadSession implements broker.DurablePeers: a connection resumes the
// session here, or its consumers start (attach), so an orphaned record
// is taken back. (A record is not checked for consumers gone by expiry:
// while a consumer's leader is elected, its lookup may answer "not
// found", and such a check deleted live sessions in TestClusterChaos.)
func (n *Node) LoadSession(key string) (rec *broker.SessionRecord, err error) {
	err = n.retryJS(func() error {
		if !n.dur.on.Load() {
			rec = nil
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
		defer cancel()
		sr, rev, err := n.getSession(ctx, key)
		if err != nil || sr == nil {
			rec = nil
			return err
		}
		if sr.Orphaned {
			if err := n.putBack(ctx, key, sr, rev); err != nil {
				return err
			}
		}
		rec = &sr.SessionRecord
		n.learnStarts(key, sr) // overlap.go
		return nil
	})
	return rec, err
}

func (n *Node) loadSession(key string) (*broker.SessionRecord, error) {
	if !n.dur.on.Load() {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
	defer cancel()
	sr, _, err := n.getSession(ctx, key)
	if err != nil || sr == nil {
		return nil, err
	}
	return &sr.SessionRecord, nil
}

// getSession reads the record of the session key and its revision (nil:
// none).
func (n *Node) getSession(ctx context.Context, key string) (*storedRecord, uint64, error) {
	e, err := n.dur.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var rec storedRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, err
	}
	return &rec, e.Revision(), nil
}

// putBack writes an orphaned record at revision rev back unmarked and
// without TTL. A record written since is a newer one: left as it is.
func (n *Node) putBack(ctx context.Context, key string, rec *storedRecord, rev uint64) error {
	back := *rec
	back.Orphaned = false
	body, err := json.Marshal(&back)
	if err != nil {
		return err
	}
	if _, err := n.dur.kv.Update(ctx, key, body, rev); err != nil && !casConflict(err) {
		return err
	}
	rec.Orphaned = false
	return nil
}

// adopt takes back the record of the session key if it is orphaned
// (claim_sweep.go).
func (n *Node) adopt(ctx context.Context, key string) {
	rec, rev, err := n.getSession(ctx, key)
	if err == nil && rec != nil && rec.Orphaned {
		err = n.putBack(ctx, key, rec, rev)
	}
	if err != nil {
		n.cfg.Log.Warn("cluster: a persistent session's record not taken back; it may expire while the session lives",
			"err", err)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*durableTimeout)
	defer cancel()
	osr, _, err := n.getSession(ctx, key)
	if err != nil {
		return err
	}
	var old *broker.SessionRecord
	if osr != nil {
		old = &osr.SessionRecord
	}
	had, want := durableSubs(key, old), durableSubs(key, rec)
	n.forgetStarts(key, old) // overlap.go
	sr := &storedRecord{SessionRecord: *rec, Starts: map[string]uint64{}}
	for name, sp := range want {
		if _, ok := had[name]; ok {
			if st, ok := osr.Starts[name]; ok {
				sr.Starts[name] = st
			}
			continue
		}
		c, err := n.ensureConsumer(ctx, name, sp, rec.Expiry, durableAckWait)
		if err != nil {
			return err
		}
		sr.Starts[name] = c.CachedInfo().Config.OptStartSeq
	}
	body, err := json.Marshal(sr)
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

// makeConsumer returns the consumer name, made for sp if there is none:
// it starts after the stream's last message, explicit acks, and goes
// away after the session's expiry without a connection pulling from it.
// Callers use ensureConsumer (durable_interest.go), which announces it.
func (n *Node) makeConsumer(ctx context.Context, name string, sp broker.SubSpec, expiry, ackWait time.Duration) (jetstream.Consumer, error) {
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
	n.forgetStarts(key, rec) // overlap.go
	for name := range durableSubs(key, rec) {
		if err := d.st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			n.cfg.Log.Warn("cluster: consumer of an ended session not deleted", "consumer", name, "err", err)
		}
		n.deleteRel(ctx, name)
	}
	if err := d.kv.Purge(ctx, key); err != nil {
		n.cfg.Log.Warn("cluster: record of an ended session not deleted", "err", err)
	}
}
