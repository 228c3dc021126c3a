package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/duplexmq/duplex/broker"
)

// Sessions across nodes (broker.SessionPeers): a client id is unique in
// the cluster.
//
// Each node subscribes, for every client id it holds (a connected or
// detached session, or a will waiting for its delay), to that id's own
// subject, duplex.<name>.session.<key> (the key's token encoding; a key
// whose subject would be too long goes by its SHA-256 on
// duplex.<name>.sessionh.<hex>). Open on another node sends a request
// there (Claim): the holder closes its connection with the protocol's
// takeover notice, cancels the pending will, and answers with the
// persistent session's state, which the claiming node installs as a local
// resume would. A request that no node holds ends at once (NATS "no
// responders"), so a new client id costs one round trip to the local NATS
// server and no wait.
//
// The hand-over is a request and its reply: the state lives in memory on
// its way and on the new node. If the node that held the session is dead,
// nobody answers and the session starts as this node knows it: from its
// record in JetStream when it is a cluster-durable persistent session
// (durable.go), new otherwise.
//
// A claim and the holder's subscription race: the subscription on the
// holder's subject reaches the other NATS servers a round trip after the
// session opened, so the same id opening on two nodes within that time
// would stay open on both. With JetStream the holder records close that
// race (claim.go); without it, it stays open.

// DefaultClaimWait bounds how long Open waits for the node that holds a
// client id (Config.ClaimWait).
const DefaultClaimWait = 2 * time.Second

// Claim answers (the Duplex-Claim header of a reply).
const (
	hdrClaim    = "Duplex-Claim"
	hdrParts    = "Duplex-Parts" // a state's body in n messages, in order
	hdrFrom     = "Duplex-From"  // the answering node (selfID)
	claimNone   = "none"         // nothing to hand over (none held, or discarded)
	claimOwned  = "owned"        // another owner's: refused
	claimState  = "state"        // the body is the session's state
	claimFailed = "error"
)

// SessionRouter is what a Node needs of broker.Router to answer claims.
type SessionRouter interface {
	ReleaseToPeer(c broker.SessionClaim) (*broker.SessionState, error)
	HeldKeys() []string
}

var _ broker.SessionPeers = (*Node)(nil)

// sessions is a node's part of the session claims: the keys held here
// (reference-counted: a session and a pending will, or several STOMP
// connections with one client-id) and the ones whose subscription the
// session loop must reconcile.
type sessions struct {
	mu    sync.Mutex
	held  map[string]int
	dirty map[string]struct{}
	wake  chan struct{}
	in    chan *nats.Msg

	cl     claimLink      // claim.go: the holder records (lock order: mu, then cl.mu)
	starts consumerStarts // overlap.go: a leaf
}

func (ss *sessions) init() {
	if ss.held == nil {
		ss.held = map[string]int{}
		ss.dirty = map[string]struct{}{}
		ss.wake = make(chan struct{}, 1)
	}
}

// sessionSubject is the subject claims for key go to.
func (n *Node) sessionSubject(key string) string {
	base := strings.TrimSuffix(n.subs.Prefix, "t.")
	s := base + "session." + esc(key)
	if len(s) > MaxSubject {
		h := sha256.Sum256([]byte(key))
		s = base + "sessionh." + hex.EncodeToString(h[:])
	}
	return s
}

// Hold implements broker.SessionPeers. It never blocks on NATS.
func (n *Node) Hold(key string, add bool) {
	ss := &n.sess
	ss.mu.Lock()
	ss.init()
	d := 1
	if !add {
		d = -1
	}
	c := ss.held[key] + d
	if c <= 0 {
		delete(ss.held, key)
	} else {
		ss.held[key] = c
	}
	if c == 0 || (c == 1 && add) {
		ss.dirty[key] = struct{}{}
	}
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// startSessions starts answering claims (Start). A router that cannot
// release sessions still claims them.
func (n *Node) startSessions() {
	sr, ok := n.router.(SessionRouter)
	if !ok {
		return
	}
	// Before any client: the router's sessions and wills are those
	// Restore made, which it may have told Hold about in part (a delayed
	// will): count them afresh.
	keys := sr.HeldKeys()
	ss := &n.sess
	ss.mu.Lock()
	ss.init()
	ss.in = make(chan *nats.Msg, 1024)
	clear(ss.held)
	for _, k := range keys {
		ss.held[k]++
		ss.dirty[k] = struct{}{}
	}
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
	n.startNodeSub(sr) // claim.go
	n.wg.Add(1)
	go n.sessionLoop(sr)
	if n.cfg.jetStreamWanted() {
		n.wg.Add(1)
		go n.sweepLoop() // claim_sweep.go
	}
}

// sessionLoop keeps one subscription per held key and answers the claims
// that arrive on them, each on its own goroutine (a takeover waits for the
// old connection to finish writing).
func (n *Node) sessionLoop(sr SessionRouter) {
	defer n.wg.Done()
	ss := &n.sess
	subs := map[string]*nats.Subscription{}
	for {
		select {
		case <-n.done:
			return
		case m := <-ss.in:
			go n.answerClaim(sr, m)
			continue
		case <-ss.wake:
		}
		ss.mu.Lock()
		type change struct {
			key  string
			want bool
		}
		changes := make([]change, 0, len(ss.dirty))
		for k := range ss.dirty {
			changes = append(changes, change{k, ss.held[k] > 0})
		}
		clear(ss.dirty)
		ss.mu.Unlock()
		for _, ch := range changes {
			sub := subs[ch.key]
			switch {
			case ch.want && sub == nil:
				sub, err := n.nc.ChanSubscribe(n.sessionSubject(ch.key), ss.in)
				if err != nil {
					n.cfg.Log.Warn("cluster: session subscribe failed", "err", err)
					continue
				}
				subs[ch.key] = sub
			case !ch.want && sub != nil:
				_ = sub.Unsubscribe()
				delete(subs, ch.key)
			}
			if !ch.want {
				go n.dropRecord(ch.key) // claim.go
			}
		}
	}
}

// claimReq is a claim's body.
type claimReq struct {
	Key    string `json:"key"`
	Owner  string `json:"owner"`
	Resume bool   `json:"resume"`
	From   string `json:"from"`
	// WaitMS is how long the holder may wait for its connection to
	// finish writing: half the claimant's wait, so that the answer has
	// the other half to arrive.
	WaitMS int64 `json:"wait_ms"`
}

// answerClaim releases what the claim names and replies.
func (n *Node) answerClaim(sr SessionRouter, m *nats.Msg) {
	if m.Header.Get(hdrOp) == opPing {
		_ = m.Respond(nil) // held here (claim_sweep.go heldLive)
		return
	}
	var req claimReq
	if err := json.Unmarshal(m.Data, &req); err != nil || req.From == n.selfID {
		return
	}
	start := time.Now()
	answer := claimNone
	defer func() {
		n.cfg.Log.Info("cluster: session taken over by another node", "key", req.Key, "by", req.From,
			"answer", answer, "took", time.Since(start))
	}()
	st, err := sr.ReleaseToPeer(broker.SessionClaim{Key: req.Key, Owner: req.Owner, Resume: req.Resume,
		Wait: time.Duration(req.WaitMS) * time.Millisecond})
	var body []byte
	switch {
	case errors.Is(err, broker.ErrClientIDOwned):
		answer = claimOwned
	case err != nil:
		answer = claimFailed
	case st != nil:
		if body, err = json.Marshal(toWire(st, time.Now())); err != nil {
			answer = claimFailed
			break
		}
		answer = claimState
	}
	if m.Reply == "" {
		return
	}
	// A long backlog may exceed NATS's max_payload (1 MiB on an external
	// server by default): the body goes in parts, in order on one
	// connection and one route.
	size := max(4096, int(n.nc.MaxPayload())-1024)
	parts := max(1, (len(body)+size-1)/size)
	for i := range parts {
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set(hdrClaim, answer)
		reply.Header.Set(hdrParts, strconv.Itoa(parts))
		reply.Header.Set(hdrFrom, n.selfID)
		reply.Data = body[min(i*size, len(body)):min((i+1)*size, len(body))]
		if err := n.nc.PublishMsg(reply); err != nil {
			n.cfg.Log.Warn("cluster: claim answer not sent; the session's state is lost", "key", req.Key, "err", err)
			return
		}
	}
}

// Claim implements broker.SessionPeers: one request on the key's subject,
// answered by the node that holds it (no responders means no node does),
// then the key's holder record (claim.go). The key is registered as
// opening here until ClaimEnded (broker.ClaimEnder) unless an error is
// returned.
func (n *Node) Claim(c broker.SessionClaim) (*broker.SessionState, error) {
	n.sess.cl.begin(c.Key)
	if !n.running.Load() || !n.nc.IsConnected() {
		return nil, nil
	}
	wait := n.cfg.ClaimWait
	if wait <= 0 {
		wait = DefaultClaimWait
	}
	deadline := time.Now().Add(wait)
	st, err := n.claimOn(n.sessionSubject(c.Key), "", c, wait)
	if err != nil {
		n.sess.cl.end(c.Key)
		return nil, err
	}
	return n.holdRecord(c, st, deadline)
}

// claimOn sends claim c to subject (op in hdrOp when not empty) and
// waits up to wait for the answer of the node that holds it.
func (n *Node) claimOn(subject, op string, c broker.SessionClaim, wait time.Duration) (*broker.SessionState, error) {
	if wait <= 0 {
		return nil, nil
	}
	deadline := time.Now().Add(wait)
	body, _ := json.Marshal(claimReq{Key: c.Key, Owner: c.Owner, Resume: c.Resume, From: n.selfID,
		WaitMS: max(1, wait.Milliseconds()/2)})
	// The holder waits for its connection to finish writing (at most half
	// of wait) before it answers, in one or more parts.
	inbox := n.nc.NewInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	req := &nats.Msg{Subject: subject, Reply: inbox, Data: body}
	if op != "" {
		req.Header = nats.Header{hdrOp: []string{op}}
	}
	if err := n.nc.PublishMsg(req); err != nil {
		return nil, nil
	}
	var data []byte
	var from string // the first answer's node: two holders are a race's leftover
	for part, parts := 0, 1; part < parts; part++ {
		rep, err := sub.NextMsg(time.Until(deadline))
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, nil // no node holds it
		}
		if err != nil {
			n.cfg.Log.Warn("cluster: no answer to a session claim; the session starts as this node knows it",
				"key", c.Key, "err", err)
			return nil, nil
		}
		if rep.Header.Get("Status") == "503" {
			return nil, nil // no responders (as NextMsg reports it)
		}
		if f := rep.Header.Get(hdrFrom); from == "" {
			from = f
		} else if f != from {
			part--
			continue
		}
		switch rep.Header.Get(hdrClaim) {
		case claimOwned:
			return nil, broker.ErrClientIDOwned
		case claimState:
		default:
			return nil, nil
		}
		if p, err := strconv.Atoi(rep.Header.Get(hdrParts)); err == nil && p > parts {
			parts = p
		}
		data = append(data, rep.Data...)
	}
	var w wireState
	if err := json.Unmarshal(data, &w); err != nil {
		n.cfg.Log.Error("cluster: a session's state from another node is malformed; starting afresh", "key", c.Key, "err", err)
		return nil, nil
	}
	return w.state(time.Now()), nil
}

// wire forms: a message's expiry travels as the milliseconds left, so the
// nodes' clocks need not agree.
type wireMsg struct {
	*broker.Message
	TTL int64 `json:"ttl,omitempty"`
}

type wireDelivery struct {
	M           *wireMsg `json:"m,omitempty"`
	SubKey      string   `json:"k,omitempty"`
	QoS         uint8    `json:"q"`
	Redelivered bool     `json:"r,omitempty"`
	Retained    bool     `json:"ret,omitempty"`
}

type wireFlight struct {
	ID       uint16       `json:"id"`
	D        wireDelivery `json:"d"`
	Released bool         `json:"rel,omitempty"`
}

type wireState struct {
	Subs       []broker.SubSpec `json:"subs"`
	Flights    []wireFlight     `json:"flights,omitempty"`
	Queue      []wireDelivery   `json:"queue,omitempty"`
	InboundIDs []uint16         `json:"in,omitempty"`
	NextID     uint16           `json:"next"`
	Pending    []wireDelivery   `json:"pending,omitempty"`
}

func toWireDelivery(d broker.MovedDelivery, now time.Time) wireDelivery {
	w := wireDelivery{SubKey: d.SubKey, QoS: uint8(d.QoS), Redelivered: d.Redelivered, Retained: d.Retained}
	if d.Msg != nil {
		cp := *d.Msg
		wm := &wireMsg{Message: &cp}
		if !cp.Expires.IsZero() {
			wm.TTL = max(1, cp.Expires.Sub(now).Milliseconds())
			cp.Expires = time.Time{}
		}
		w.M = wm
	}
	return w
}

func (w wireDelivery) moved(now time.Time) broker.MovedDelivery {
	d := broker.MovedDelivery{SubKey: w.SubKey, QoS: broker.QoS(w.QoS), Redelivered: w.Redelivered, Retained: w.Retained}
	if w.M != nil && w.M.Message != nil {
		d.Msg = w.M.Message
		if w.M.TTL > 0 {
			d.Msg.Expires = now.Add(time.Duration(w.M.TTL) * time.Millisecond)
		}
	}
	return d
}

func toWire(st *broker.SessionState, now time.Time) wireState {
	w := wireState{Subs: st.Subs, InboundIDs: st.InboundIDs, NextID: st.NextID}
	for _, f := range st.Flights {
		w.Flights = append(w.Flights, wireFlight{ID: f.ID, D: toWireDelivery(f.D, now), Released: f.Released})
	}
	for _, d := range st.Queue {
		w.Queue = append(w.Queue, toWireDelivery(d, now))
	}
	for _, d := range st.Pending {
		w.Pending = append(w.Pending, toWireDelivery(d, now))
	}
	return w
}

func (w wireState) state(now time.Time) *broker.SessionState {
	st := &broker.SessionState{Subs: w.Subs, InboundIDs: w.InboundIDs, NextID: w.NextID}
	for _, f := range w.Flights {
		st.Flights = append(st.Flights, broker.MovedFlight{ID: f.ID, D: f.D.moved(now), Released: f.Released})
	}
	for _, d := range w.Queue {
		st.Queue = append(st.Queue, d.moved(now))
	}
	for _, d := range w.Pending {
		st.Pending = append(st.Pending, d.moved(now))
	}
	return st
}
