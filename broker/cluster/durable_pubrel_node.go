package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// The node's side of the QoS 2 release records (durable_pubrel.go has
// the design): broker.QoS2Releaser.

var _ broker.QoS2Releaser = (*Node)(nil)

// relGet reads key of the session bucket from the bucket stream's
// leader, not a replica: KV reads are direct gets, which a replica that
// lags may answer without the last write, and a record read without its
// last entries would let a released message through once more. rev is 0
// when there is no record (none, or deleted).
func (n *Node) relGet(ctx context.Context, key string) (b []byte, rev uint64, err error) {
	bucket := n.dur.kv.Bucket()
	req, _ := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{"$KV." + bucket + "." + key})
	msg, err := n.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, 0, err
	}
	var resp struct {
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Seq    uint64 `json:"seq"`
			Header []byte `json:"hdrs"`
			Data   []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errRelGet, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == int(jetstream.JSErrCodeMessageNotFound):
		return nil, 0, nil
	case resp.Error != nil:
		return nil, 0, fmt.Errorf("%w: %s", errRelGet, resp.Error.Description)
	case resp.Message == nil:
		return nil, 0, errRelGet
	}
	if len(resp.Message.Header) > 0 {
		if h, err := nats.DecodeHeadersMsg(resp.Message.Header); err == nil && h.Get("KV-Operation") != "" {
			return nil, 0, nil // a delete or purge marker
		}
	}
	return resp.Message.Data, resp.Message.Seq, nil
}

// relRead reads key from the leader (relGet), within half of ctx's
// time, and else from any replica: under a node's SIGKILL the leader's
// answer may not come for seconds (TestClusterChaos: consumers that
// waited for it delivered nothing for the rest of the run), and a
// replica's is stale only for a write made in the last moments.
func (n *Node) relRead(ctx context.Context, key string) ([]byte, uint64, error) {
	wait := relLeaderWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	b, rev, err := n.relGet(lctx, key)
	cancel()
	if err == nil {
		return b, rev, nil
	}
	e, gerr := n.dur.kv.Get(ctx, key)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
		return nil, 0, nil
	case gerr != nil:
		return nil, 0, errors.Join(err, gerr)
	}
	return e.Value(), e.Revision(), nil
}

// relLeaderWait bounds a leader read before relRead asks a replica.
const relLeaderWait = 2 * time.Second

// ReleaseQoS2 implements broker.QoS2Releaser: one record write per
// consumer, in parallel, then the acks.
func (n *Node) ReleaseQoS2(key string, hs []broker.PeerMsg, ids []uint16) (recorded []bool, err error) {
	type group struct {
		rs  *relSet
		es  []relEntry
		idx []int
	}
	recorded = make([]bool, len(hs))
	var groups []*group
	for i, h := range hs {
		sm, ok := h.(*sessMsg)
		if !ok || sm.rel == nil {
			h.Ack() // not a session consumer's: nothing comes again
			recorded[i] = true
			continue
		}
		var g *group
		for _, x := range groups {
			if x.rs == sm.rel {
				g = x
			}
		}
		if g == nil {
			g = &group{rs: sm.rel}
			groups = append(groups, g)
		}
		g.es = append(g.es, relEntry{Seq: sm.seq, ID: ids[i]})
		g.idx = append(g.idx, i)
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.rs.record(g.es)
		}()
	}
	wg.Wait()
	for i, g := range groups {
		if errs[i] != nil {
			continue // not acked either: it comes again, with DUP, to the next connection
		}
		for _, j := range g.idx {
			recorded[j] = true
			hs[j].(*sessMsg).ackReleased()
		}
	}
	return recorded, errors.Join(errs...)
}

// CompletedQoS2 implements broker.QoS2Releaser: the entry is marked in
// memory; the next write of the record keeps it (or none: one more
// PUBREL at the next resume elsewhere, which the client answers with
// PUBCOMP [MQTT-4.3.3-11]).
func (n *Node) CompletedQoS2(key string, id uint16) {
	d := &n.dur
	d.mu.Lock()
	a := d.att[key]
	d.mu.Unlock()
	if a == nil {
		return
	}
	a.mu.Lock()
	sets := make([]*relSet, 0, len(a.rels))
	for _, rs := range a.rels {
		sets = append(sets, rs)
	}
	a.mu.Unlock()
	for _, rs := range sets {
		if rs.done(id) {
			return
		}
	}
	// Not loaded yet (the consumers start after the connection's first
	// packets): marked when they load.
	a.mu.Lock()
	if a.early == nil {
		a.early = map[uint16]bool{}
	}
	a.early[id] = true
	a.mu.Unlock()
}

// ReleasedQoS2 implements broker.QoS2Releaser for the QoS 2
// subscriptions of rec (a QoS 1 one has no record), with one attempt
// bounded by relResumeWait in all: the CONNECT waits for it, and a
// resume that waits out an election invites the client to try another
// node meanwhile (in TestClusterChaos, retried reads here lost QoS 1 and
// 2 messages by the thousand through such races). A record not read costs
// a PUBREL the client waits for (its packet id stays held), never a
// duplicate: the consumer reads the record again, retried, before its
// first message.
func (n *Node) ReleasedQoS2(key string, rec *broker.SessionRecord) []uint16 {
	if !n.dur.on.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), relResumeWait)
	defer cancel()
	var ids []uint16
	seen := map[uint16]bool{}
	for name, sp := range durableSubs(key, rec) {
		if sp.QoS < broker.ExactlyOnce {
			continue
		}
		rs, err := n.loadRel(ctx, name, 0)
		if err != nil {
			n.cfg.Log.Warn("cluster: QoS 2 release record not read; its PUBRELs are not resent", "consumer", name, "err", err)
			continue
		}
		for _, id := range rs.openIDs() {
			if !seen[id] { // a packet id is in flight once [MQTT-2.2.1-3]
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// relResumeWait bounds the record reads of a resume (ReleasedQoS2).
const relResumeWait = time.Second

// deleteRel deletes consumer name's record (the consumer is gone), and
// the set an attachment of its session on this node keeps (a takeover
// here hands it on: AttachSession).
func (n *Node) deleteRel(ctx context.Context, name string) {
	if i := strings.LastIndexByte(name, '-'); strings.HasPrefix(name, "s") && i > 1 {
		d := &n.dur
		d.mu.Lock()
		a := d.att[name[1:i]] // consumerName: "s" + key + "-" + hash
		d.mu.Unlock()
		if a != nil {
			a.mu.Lock()
			delete(a.rels, name)
			a.mu.Unlock()
		}
	}
	if _, err := n.dur.kv.Get(ctx, relKey(name)); err != nil {
		return // none (most sessions have no QoS 2), or no answer
	}
	if err := n.dur.kv.Purge(ctx, relKey(name)); err != nil {
		n.cfg.Log.Debug("cluster: QoS 2 release record not deleted", "consumer", name, "err", err)
	}
}
