package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// Client ids unique in the cluster without the claim race (issue 11
// Build 3).
//
// session.go's claim goes to a client id's own subject, which the holding
// node subscribes once the id opened there. That subscription reaches the
// other NATS servers a moment later, so two connections opening one id on
// two nodes within that moment found no holder, and both stayed open. A
// holder record closes the gap: the KV bucket duplex_<name>_clients keeps,
// per claim key, the node that opened it last (key c.<hash of the claim
// key>), written by compare-and-set:
//
//   - Claim on node B creates the record (Create: only if there is none).
//     If there is one (revision r, holder A), B sends A a claim on A's own
//     subject, duplex.<name>.node.<A>, which A subscribed when it started
//     (no propagation race), then writes itself over revision r (Update).
//     A write that finds another revision (a third connection wrote
//     meanwhile) starts again from the read, until the claim's wait is
//     over.
//   - So the writes of one key are in one order, and every writer claimed
//     the holder it replaced. A node registers the keys it is opening
//     before it writes them; a claim that arrives for such a key waits
//     until that Open is done with it (broker.ClaimEnder), then releases
//     the session as any claim does: the connection gets the takeover
//     notice (MQTT 5 DISCONNECT 0x8E, MQTT 3.1.1 close [MQTT-3.1.4-3],
//     STOMP ERROR). Only the last writer's connection stays.
//   - The record goes (deleted at the revision this node wrote) when the
//     key leaves its node. A node that died leaves its records; the
//     others remove them (claim_sweep.go).
//
// Cost, with JetStream only: one KV write per claimed Open (one read, one
// claim and one write more when the id is held somewhere), and one delete
// when the id leaves its node. Without JetStream the claim is session.go's
// alone, with its race.

// claimWarnEvery spaces claimWarn's lines; claimFloor is the least a
// claim on a holder's own subject waits for its answer.
const (
	claimWarnEvery = 10 * time.Second
	claimFloor     = 500 * time.Millisecond
)

// Operations on a node's own subject (hdrOp).
const (
	hdrOp   = "Duplex-Op"
	opClaim = "claim"
	opPing  = "ping" // claim_sweep.go
)

// claimLink is a node's side of the holder records.
type claimLink struct {
	mu      sync.Mutex
	kv      jetstream.KeyValue   // duplex_<name>_clients; nil until JetStream is ready
	opening map[string]*inFlight // claim keys an Open is under way for here
	revs    map[string]uint64    // the revision this node wrote per key it holds

	warned     time.Time // claimWarn's last line
	suppressed int
}

// inFlight counts the Opens under way for one key on this node.
type inFlight struct {
	n    int
	done chan struct{} // closed when n drops to 0
}

// holderRec is a holder record's value.
type holderRec struct {
	Node string `json:"node"` // selfID of the node that opened the key last
	Key  string `json:"key"`  // the claim key ("m" + MQTT client id, "s" + STOMP client-id)
	// Offline: the persistent session's connection closed when this
	// was written (its expiry runs from then; claim_sweep.go).
	Offline bool `json:"off,omitempty"`
}

// holderKey is the KV key of claim key k's holder record.
func holderKey(k string) string {
	h := sha256.Sum256([]byte(k))
	return "c." + hex.EncodeToString(h[:16])
}

// nodeSubject is the subject node id (a selfID) answers claims and
// pings on.
func (n *Node) nodeSubject(id string) string {
	return strings.TrimSuffix(n.subs.Prefix, "t.") + "node." + id
}

// clientsKV returns the holder records' bucket, nil before JetStream is
// ready or without it.
func (cl *claimLink) clientsKV() jetstream.KeyValue {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.kv
}

// begin registers an Open of key under way here.
func (cl *claimLink) begin(key string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.opening == nil {
		cl.opening = map[string]*inFlight{}
	}
	f := cl.opening[key]
	if f == nil {
		f = &inFlight{done: make(chan struct{})}
		cl.opening[key] = f
	}
	f.n++
}

// end is begin's counterpart.
func (cl *claimLink) end(key string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	f := cl.opening[key]
	if f == nil {
		return
	}
	if f.n--; f.n == 0 {
		close(f.done)
		delete(cl.opening, key)
	}
}

// waitOpen waits until no Open of key is under way here, at most until
// deadline.
func (cl *claimLink) waitOpen(key string, deadline time.Time, done <-chan struct{}) {
	cl.mu.Lock()
	f := cl.opening[key]
	cl.mu.Unlock()
	if f == nil {
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
	case <-done:
	}
}

// ClaimEnded implements broker.ClaimEnder.
func (n *Node) ClaimEnded(key string) { n.sess.cl.end(key) }

var _ broker.ClaimEnder = (*Node)(nil)

// startNodeSub subscribes this node's own subject (Start): claims from
// nodes that read a holder record naming this node, and pings.
func (n *Node) startNodeSub(sr SessionRouter) {
	_, err := n.nc.Subscribe(n.nodeSubject(n.selfID), func(m *nats.Msg) {
		switch m.Header.Get(hdrOp) {
		case opPing:
			_ = m.Respond(nil)
		case opClaim:
			go n.answerNodeClaim(sr, m)
		}
	})
	if err != nil {
		n.cfg.Log.Warn("cluster: node subject not subscribed; connections racing for a client id may both stay open",
			"err", err)
	}
}

// answerNodeClaim answers a claim sent to this node because its holder
// record names it: an Open of the key under way here finishes first (it
// wrote the record), then the claim is answered as any claim.
func (n *Node) answerNodeClaim(sr SessionRouter, m *nats.Msg) {
	var req claimReq
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return
	}
	// Bounded by how long an Open may wait for the cluster store
	// (LoadSession retries for durableRetry).
	n.sess.cl.waitOpen(req.Key, time.Now().Add(2*durableRetry), n.done)
	n.answerClaim(sr, m)
}

// holdRecord makes this node the holder of c.Key in the holder records,
// claiming the key from the node each record it replaces names (see the
// top of this file). st is what the subject claim brought; the result is
// st or the state a node claimed here handed over. Claim registered the
// key as opening; it stays so until ClaimEnded, or ends here with an
// error. A failure to write leaves the claim as session.go's alone
// (logged).
func (n *Node) holdRecord(c broker.SessionClaim, st *broker.SessionState, deadline time.Time) (*broker.SessionState, error) {
	cl := &n.sess.cl
	kv := cl.clientsKV()
	if kv == nil {
		return st, nil
	}
	hk := holderKey(c.Key)
	val, _ := json.Marshal(holderRec{Node: n.selfID, Key: c.Key})
	// Bounded by the claim's wait (plus a second for the last write):
	// while the bucket elects a leader (a node died) a connection waits
	// that long, not the election's length.
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(time.Second))
	defer cancel()
	// ended reports whether a write ends the claim: it was written, or it
	// failed for another reason than a conflict (logged; the claim stands
	// as the broadcast left it).
	ended := func(rev uint64, err error) bool {
		switch {
		case err == nil:
			cl.wrote(c.Key, rev)
		case !casConflict(err):
			n.claimWarn(c.Key, err)
		default:
			return false
		}
		return true
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !backOff(ctx, attempt) {
			break
		}
		if ended(kv.Create(ctx, hk, val)) {
			return st, nil
		}
		e, err := kv.Get(ctx, hk)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile (or a replica's read is behind): create it
		}
		if err != nil {
			n.claimWarn(c.Key, err)
			return st, nil
		}
		var h holderRec
		_ = json.Unmarshal(e.Value(), &h)
		if h.Node != "" && h.Node != n.selfID {
			// (A local holder is the router's own takeover in Open.) The
			// claim goes even when the wait is over: the holder closes
			// its connection whether or not its answer is awaited.
			got, err := n.claimOn(n.nodeSubject(h.Node), opClaim, c, max(time.Until(deadline), claimFloor))
			if err != nil {
				cl.end(c.Key)
				return nil, err // ErrClientIDOwned
			}
			if st == nil {
				st = got
			}
		}
		if ended(kv.Update(ctx, hk, val, e.Revision())) {
			return st, nil
		}
		// Written again since: read it again, and claim the key from
		// whichever node wrote it.
	}
	n.claimWarn(c.Key, errors.New("the holder record kept changing"))
	return st, nil
}

// backOff waits before round attempt of holdRecord, longer each round
// (10 ms doubling, at most 200 ms), and reports false once ctx is done.
// A round fails when another connection wrote the key, or when a read
// served by a replica is behind the leader's last write (KV reads are
// direct gets): both pass within milliseconds.
func backOff(ctx context.Context, attempt int) bool {
	t := time.NewTimer(min(10*time.Millisecond<<min(attempt-1, 5), 200*time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// claimWarn logs a holder record not written, at most once per
// claimWarnEvery (a bucket without a leader fails every Open for seconds).
func (n *Node) claimWarn(key string, err error) {
	cl := &n.sess.cl
	cl.mu.Lock()
	now := time.Now()
	if now.Sub(cl.warned) < claimWarnEvery {
		cl.suppressed++
		cl.mu.Unlock()
		return
	}
	suppressed := cl.suppressed
	cl.warned, cl.suppressed = now, 0
	cl.mu.Unlock()
	n.cfg.Log.Warn("cluster: client id holder record not written; a connection opening the same id on another node at this moment may stay open too",
		"key", key, "err", err, "suppressed", suppressed)
}

// wrote records the revision of the holder record written for key (the
// highest: two writes of this node may finish in either order).
func (cl *claimLink) wrote(key string, rev uint64) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.revs == nil {
		cl.revs = map[string]uint64{}
	}
	cl.revs[key] = max(cl.revs[key], rev)
}

// Offline implements broker.SessionOffliner: the holder record of key is
// written again, marked offline, so that the time of that write is when
// the session's expiry began if this node dies (claim_sweep.go). Not
// waited for.
func (n *Node) Offline(key string) {
	cl := &n.sess.cl
	cl.mu.Lock()
	rev, kv := cl.revs[key], cl.kv
	cl.mu.Unlock()
	if rev == 0 || kv == nil {
		return
	}
	go func() {
		val, _ := json.Marshal(holderRec{Node: n.selfID, Key: key, Offline: true})
		ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
		defer cancel()
		if nrev, err := kv.Update(ctx, holderKey(key), val, rev); err == nil {
			cl.wrote(key, nrev)
		} else if !casConflict(err) {
			n.cfg.Log.Debug("cluster: holder record not marked offline", "key", key, "err", err)
		}
	}()
}

var _ broker.SessionOffliner = (*Node)(nil)

// dropRecord deletes the holder record of key, which left this node,
// if it is still the one this node wrote (a newer one is another
// connection's). An Open of key under way here keeps it: it wrote it, or
// will.
func (n *Node) dropRecord(key string) {
	ss, cl := &n.sess, &n.sess.cl
	ss.mu.Lock() // lock order: sessions.mu, then claimLink.mu
	cl.mu.Lock()
	rev, kv := cl.revs[key], cl.kv
	busy := ss.held[key] > 0 || cl.opening[key] != nil // held again since, or about to be
	if !busy {
		delete(cl.revs, key)
	}
	cl.mu.Unlock()
	ss.mu.Unlock()
	if busy || rev == 0 || kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
	defer cancel()
	err := kv.Delete(ctx, holderKey(key), jetstream.LastRevision(rev))
	if err != nil && !casConflict(err) {
		n.cfg.Log.Debug("cluster: holder record not deleted", "key", key, "err", err)
	}
}

// casConflict reports a compare-and-set write that found another revision
// (KV Create on an existing key, Update or Delete at a revision that is
// not the last; replicated streams answer 10164 instead of 10071).
func casConflict(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
