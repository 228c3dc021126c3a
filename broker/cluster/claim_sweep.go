package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// The records of a node that died (issue 11 Build 3 and 5).
//
// A node that dies leaves its holder records (claim.go) and the records
// of the persistent sessions it held (durable_session.go), which nothing
// would ever expire: the expiry timer of an offline session ran on it. So
// every node registers in the holder bucket (key n.<hash of its selfID>,
// written when JetStream is ready), and every probeEvery pings the nodes
// registered there on their own subjects (claim.go). A node whose subject
// has had no responders probeMisses times in a row (its NATS connection
// is gone; a slow answer does not count) has died, and each node that saw
// it so sweeps its records. Every step is a compare-and-set, so that two
// sweeping nodes, and a connection resuming a session meanwhile, do not
// undo each other:
//
//   - each holder record naming the dead node is deleted at the revision
//     read (a newer one is a connection that took the key since, and is
//     left alone); a key that a live node answers for on its claim
//     subject (session.go) is held there and the next step skipped;
//   - then, for an MQTT client id, the session's record: one with Session
//     Expiry 0 goes with its consumers (the session ended with its
//     connection, MQTT 5 §3.1.2.11.2), and so does one whose expiry ran
//     out; any other is rewritten marked orphaned with a JetStream
//     message TTL of what is left of its expiry, so that it goes by
//     itself when that runs out with no connection [MQTT-3.1.2-23] (its
//     consumers go a minute after, by their InactiveThreshold). The
//     expiry keeps counting: a session that was offline when its node
//     died has had its holder record rewritten when its connection
//     closed (Offline, claim.go), and the time of that write is when it
//     went offline. A connection that resumes the session (LoadSession)
//     writes its record back without mark or TTL;
//   - last, the dead node's registration.
//
// A node that finds its own registration gone (it was cut off long
// enough to be taken for dead, and is back) registers again, writes the
// holder records of the keys it holds again, and takes back the records
// of its persistent sessions.
//
// The times compared are the bucket leader's clock (the holder record's
// write) and the sweeping node's: nodes' clocks should agree to within a
// second or so (NTP).

// Probing: how often, and how many rounds without responders make a node
// dead.
const (
	probeEvery   = 5 * time.Second
	probeMisses  = 2
	sweepTimeout = time.Minute
	neverExpires = 10 * 365 * 24 * time.Hour // an expiry past this never ends (makeConsumer)
)

// nodeRec is a node's registration.
type nodeRec struct {
	Node string `json:"node"` // selfID
}

// nodeKey is the KV key of node id's registration.
func nodeKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return "n." + hex.EncodeToString(h[:16])
}

// createSessionBuckets creates (or updates) the bucket of session records
// (message TTLs allowed, for the records of dead nodes) and the holder
// bucket, and registers this node in the latter. createDurable calls it.
func (n *Node) createSessionBuckets(ctx context.Context) (jetstream.KeyValue, error) {
	d := &n.dur
	cfg := jetstream.KeyValueConfig{
		Bucket:         streamName(n.cfg.Name, "sessions"),
		Description:    "Duplex persistent session records: owner, expiry, subscriptions",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       n.replicas(),
		LimitMarkerTTL: time.Minute,
	}
	kv, err := d.js.CreateOrUpdateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		// A NATS server before 2.11: the records of dead nodes stay.
		n.cfg.Log.Warn("cluster: the NATS server has no message TTLs; the session records of a node that died are not expired")
		cfg.LimitMarkerTTL = 0
		kv, err = d.js.CreateOrUpdateKeyValue(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	ckv, err := d.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      streamName(n.cfg.Name, "clients"),
		Description: "Duplex client id holders (the node each id opened on last) and the nodes",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    n.replicas(),
	})
	if err != nil {
		return nil, err
	}
	val, _ := json.Marshal(nodeRec{Node: n.selfID})
	if _, err := ckv.Put(ctx, nodeKey(n.selfID), val); err != nil {
		return nil, err
	}
	cl := &n.sess.cl
	cl.mu.Lock()
	cl.kv = ckv
	cl.mu.Unlock()
	return kv, nil
}

// sweepLoop probes the registered nodes every probeEvery, once JetStream
// is ready, and sweeps the records of those that died.
func (n *Node) sweepLoop() {
	defer n.wg.Done()
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	misses := map[string]int{}
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		if kv := n.sess.cl.clientsKV(); kv != nil && n.nc.IsConnected() {
			n.probe(kv, misses)
		}
	}
}

// probe is one round of sweepLoop.
func (n *Node) probe(kv jetstream.KeyValue, misses map[string]int) {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	if err := n.register(ctx, kv); err != nil {
		return // no quorum: no sweep could write either
	}
	nodes, err := listNodes(ctx, kv)
	if err != nil {
		return
	}
	for id := range misses {
		if _, ok := nodes[id]; !ok {
			delete(misses, id)
		}
	}
	for id, rev := range nodes {
		if id == n.selfID {
			continue
		}
		ping := nats.NewMsg(n.nodeSubject(id))
		ping.Header.Set(hdrOp, opPing)
		if _, err := n.nc.RequestMsg(ping, durableTimeout); !errors.Is(err, nats.ErrNoResponders) {
			delete(misses, id)
			continue
		}
		if misses[id]++; misses[id] < probeMisses {
			continue
		}
		delete(misses, id)
		n.sweep(ctx, kv, id, rev)
	}
}

// register writes this node's registration again if it is gone: other
// nodes took this one for dead and swept its records (resync).
func (n *Node) register(ctx context.Context, kv jetstream.KeyValue) error {
	k := nodeKey(n.selfID)
	_, err := kv.Get(ctx, k)
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	val, _ := json.Marshal(nodeRec{Node: n.selfID})
	if _, err := kv.Create(ctx, k, val); err != nil {
		return err
	}
	n.cfg.Log.Warn("cluster: this node was taken for dead by the others; writing its client ids' records again", "node", n.selfID)
	n.resync(ctx, kv)
	return nil
}

// listNodes returns the registered nodes and their registrations'
// revisions.
func listNodes(ctx context.Context, kv jetstream.KeyValue) (map[string]uint64, error) {
	l, err := kv.ListKeysFiltered(ctx, "n.>")
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Stop() }()
	out := map[string]uint64{}
	for k := range l.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var r nodeRec
		if json.Unmarshal(e.Value(), &r) == nil && r.Node != "" {
			out[r.Node] = e.Revision()
		}
	}
	return out, nil
}

// sweep removes the records of node id, which died (see the top of the
// file); its registration (at revision rev) goes last, unless a step
// failed and the next probe must sweep again.
func (n *Node) sweep(ctx context.Context, kv jetstream.KeyValue, id string, rev uint64) {
	type held struct {
		e jetstream.KeyValueEntry
		h holderRec
	}
	var list []held
	w, err := kv.WatchFiltered(ctx, []string{"c.>"}, jetstream.IgnoreDeletes())
	if err != nil {
		n.cfg.Log.Warn("cluster: records of a dead node not read", "node", id, "err", err)
		return
	}
read:
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return // cut short: the next probe sweeps again
			}
			if e == nil {
				break read // all read
			}
			var h holderRec
			if json.Unmarshal(e.Value(), &h) == nil && h.Node == id {
				list = append(list, held{e, h})
			}
		case <-ctx.Done():
			_ = w.Stop()
			return
		}
	}
	_ = w.Stop()
	failed, sessions := false, 0
	for _, x := range list {
		err := kv.Delete(ctx, x.e.Key(), jetstream.LastRevision(x.e.Revision()))
		if casConflict(err) {
			continue // taken since by a connection elsewhere
		}
		if err != nil {
			failed = true
			continue
		}
		if n.heldLive(x.h.Key) {
			continue // opened on a live node whose record write failed (an election): its session
		}
		var offSince time.Time
		if x.h.Offline {
			offSince = x.e.Created() // the holder record's write, as the bucket's leader timed it
		}
		switch ok, err := n.orphanSession(ctx, x.h.Key, offSince); {
		case err != nil:
			failed = true
		case ok:
			sessions++
		}
	}
	if !failed {
		if err := kv.Delete(ctx, nodeKey(id), jetstream.LastRevision(rev)); err != nil && !casConflict(err) {
			failed = true
		}
	}
	n.cfg.Log.Info("cluster: a node died; its client ids are free and its persistent sessions expire as their expiry runs out",
		"node", id, "client_ids", len(list), "sessions", sessions, "complete", !failed)
}

// heldLive reports whether a live node holds key: this one, or one
// that answers on the key's claim subject (session.go), which the holder
// subscribes. A node that answers late holds it too.
func (n *Node) heldLive(key string) bool {
	n.sess.mu.Lock()
	here := n.sess.held[key] > 0 // NoEcho: this node's own ping does not reach it
	n.sess.mu.Unlock()
	if here {
		return true
	}
	ping := nats.NewMsg(n.sessionSubject(key))
	ping.Header.Set(hdrOp, opPing)
	_, err := n.nc.RequestMsg(ping, durableTimeout)
	return !errors.Is(err, nats.ErrNoResponders)
}

// orphanSession marks the record of the session claimed as key orphaned
// (or deletes it: Session Expiry 0, or what was left of it when the node
// died is gone); see the top of the file. offSince is when the session
// went offline, zero if it was connected. ok reports a record changed.
func (n *Node) orphanSession(ctx context.Context, key string, offSince time.Time) (ok bool, err error) {
	d := &n.dur
	sk := broker.SessionRecordKey(key)
	if sk == "" || !d.on.Load() {
		return false, nil
	}
	rec, rev, err := n.getSession(ctx, sk)
	if err != nil || rec == nil || rec.Orphaned {
		return false, err
	}
	left := rec.Expiry // online when its node died: all of it
	if !offSince.IsZero() && rec.Expiry < neverExpires {
		left -= time.Since(offSince) // it keeps counting
	}
	if left < time.Second {
		err := d.kv.Purge(ctx, sk, jetstream.LastRevision(rev))
		if casConflict(err) {
			return false, nil // resumed since
		}
		if err != nil {
			return false, err
		}
		for name := range durableSubs(sk, &rec.SessionRecord) {
			if err := d.st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				n.cfg.Log.Warn("cluster: consumer of an ended session not deleted", "consumer", name, "err", err)
			}
			n.deleteRel(ctx, name)
		}
		return true, nil
	}
	rec.Orphaned = true
	body, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if rec.Expiry < neverExpires {
		opts = append(opts, jetstream.WithMsgTTL(left))
	}
	_, err = d.js.PublishMsg(ctx, &nats.Msg{Subject: "$KV." + d.kv.Bucket() + "." + sk, Data: body}, opts...)
	if casConflict(err) {
		return false, nil // resumed since
	}
	if err != nil {
		return false, err
	}
	// A connection that read the record before this write resumed the
	// session without seeing the mark; it wrote its holder record
	// before it read (or holds the key by now, its write having failed).
	// It keeps the session.
	if _, err := n.sess.cl.clientsKV().Get(ctx, holderKey(key)); err == nil || n.heldLive(key) {
		n.adopt(ctx, sk)
	}
	return true, nil
}

// resync writes the holder records of the keys this node holds again and
// takes back the records of its persistent sessions (register).
func (n *Node) resync(ctx context.Context, kv jetstream.KeyValue) {
	ss := &n.sess
	ss.mu.Lock()
	keys := make([]string, 0, len(ss.held))
	for k := range ss.held {
		keys = append(keys, k)
	}
	ss.mu.Unlock()
	for _, k := range keys {
		val, _ := json.Marshal(holderRec{Node: n.selfID, Key: k})
		rev, err := kv.Create(ctx, holderKey(k), val)
		switch {
		case err == nil:
			ss.cl.wrote(k, rev)
		case casConflict(err):
			// Another node opened it while this one was cut off: both
			// stay open until the id is claimed again.
			n.cfg.Log.Warn("cluster: a client id held here was opened on another node meanwhile", "key", k)
		default:
			n.cfg.Log.Warn("cluster: holder record not written again", "key", k, "err", err)
		}
		if sk := broker.SessionRecordKey(k); sk != "" && n.dur.on.Load() {
			n.adopt(ctx, sk)
		}
	}
}
