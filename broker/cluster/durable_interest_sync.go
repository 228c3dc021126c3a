package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/broker"
)

// How the mirrors of durable_interest.go are kept: announcements with
// their answers, and relists against the stream's consumers.

// ensureConsumer returns the consumer name, made for sp if there is none
// (makeConsumer), once the other nodes' mirrors have it: a consumer this
// node has not seen announced and answered is announced, and the caller
// (SUBSCRIBE, attach) waits for the answers (tellInterest) before its
// SUBACK or RECEIPT.
func (n *Node) ensureConsumer(ctx context.Context, name string, sp broker.SubSpec, expiry, ackWait time.Duration) (jetstream.Consumer, error) {
	c, err := n.makeConsumer(ctx, name, sp, expiry, ackWait)
	if err != nil {
		return nil, err
	}
	created := c.CachedInfo().Created
	x := &n.dur.in
	if x.learn(name, sp.Filter, created, false) {
		return c, nil // announced before, and answered
	}
	answered, expected := n.tellInterest(ctx, interestBody(name, created, sp.Filter))
	if answered < expected {
		// Not counted as told: the next attach announces it again.
		n.cfg.Log.Warn("cluster: not every node confirmed a new durable subscription; "+
			"they store its messages once they compare with the stream", "node", n.cfg.NodeID,
			"filter", sp.Filter, "answered", answered, "expected", expected)
		return c, nil
	}
	x.learn(name, sp.Filter, created, true)
	return c, nil
}

// interestBody is an announcement: name, creation time (Unix ns) and
// filter, one per line (the filter last: it may hold anything).
func interestBody(name string, created time.Time, filter string) []byte {
	b := make([]byte, 0, len(name)+len(filter)+24)
	b = append(append(b, name...), '\n')
	b = strconv.AppendInt(b, created.UnixNano(), 10)
	return append(append(b, '\n'), filter...)
}

// answerInterest is this node's answer to an announcement (an admin
// handler, on nats.go's subscription goroutine): the mirror has the
// filter once it returns, so its DurablePublish of any later publish
// matches it. An empty request is a ping (tellInterest(nil)).
func (n *Node) answerInterest(req []byte) []byte {
	if len(req) == 0 {
		return []byte("ok")
	}
	name, rest, ok1 := strings.Cut(string(req), "\n")
	ns, filter, ok2 := strings.Cut(rest, "\n")
	at, err := strconv.ParseInt(ns, 10, 64)
	if !ok1 || !ok2 || err != nil || name == "" || broker.ValidFilter(filter) != nil {
		n.stats.Malformed.Add(1)
		return []byte("malformed")
	}
	n.dur.in.learn(name, filter, time.Unix(0, at), true)
	return []byte("ok")
}

// expectedPeers are the nodes an announcement waits for: the route peers
// in embedded mode, the directory's nodes seen within interestFresh and
// not stopped in external mode.
func (n *Node) expectedPeers() map[string]bool {
	if expect := n.routedPeers(); expect != nil {
		return expect
	}
	expect := map[string]bool{}
	for _, p := range n.Peers() {
		if !p.Stopped && time.Since(p.LastSeen) < interestFresh {
			expect[p.ID] = true
		}
	}
	return expect
}

// tellInterest sends body (an announcement, or nil: a ping) to every
// other node and waits until each node it expects has answered: in
// rounds of interestWait, the request sent again at each round while a
// silent node is still expected, interestRounds at most, or until ctx
// ends. It reports how many of the expected nodes answered.
func (n *Node) tellInterest(ctx context.Context, body []byte) (answered, expected int) {
	if !n.running.Load() || !n.nc.IsConnected() {
		return 0, 0
	}
	expect := n.expectedPeers()
	m := nats.NewMsg(n.adminSubject(interestKind))
	m.Header.Set(headerNode, n.cfg.NodeID)
	m.Data = body
	if len(expect) == 0 {
		_ = n.nc.PublishMsg(m) // a node the directory does not know yet may listen
		return 0, 0
	}
	inbox := n.nc.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := n.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return 0, len(expect)
	}
	defer func() { _ = sub.Unsubscribe() }()
	m.Reply = inbox
	got := map[string]bool{}
	timer := time.NewTimer(interestWait)
	defer timer.Stop()
	for round := 1; ; round++ {
		if err := n.nc.PublishMsg(m); err != nil {
			return countIn(expect, got), len(expect)
		}
		timer.Reset(interestWait)
	wait:
		for !allIn(expect, got) {
			select {
			case r := <-ch:
				n.newAnswer(r, got)
			case <-timer.C:
				break wait
			case <-ctx.Done():
				return countIn(expect, got), len(expect)
			}
		}
		if allIn(expect, got) || round == interestRounds {
			return countIn(expect, got), len(expect)
		}
		// A node that is no longer expected (its route went: it relists
		// when it is back) is not waited for.
		now := n.expectedPeers()
		for id := range expect {
			if !now[id] && !got[id] {
				delete(expect, id)
			}
		}
		if allIn(expect, got) {
			return countIn(expect, got), len(expect)
		}
	}
}

// countIn counts the expected nodes in got.
func countIn(expect, got map[string]bool) int {
	k := 0
	for id := range expect {
		if got[id] {
			k++
		}
	}
	return k
}

// loadInterest fills the mirror from the stream's consumers (startDurable
// calls it before DurableOn) and, the first time, starts the relist loop.
func (n *Node) loadInterest(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 4*durableTimeout)
	defer cancel()
	x := &n.dur.in
	routes := routeKey(n.routedPeers())
	if err := n.relistInto(cctx, x); err != nil {
		return err
	}
	x.settle(routes)
	x.start.Do(func() {
		x.wake = make(chan struct{}, 1)
		n.wg.Add(1)
		go n.relistLoop(ctx, routes)
	})
	return nil
}

// relistLoop compares the mirror with the stream's consumers every
// interestRelist, soon after a signal, and at once when the node's route
// peers or NATS connection changed (everything is stored until then:
// announcements made meanwhile may have missed this node); every second
// it checks that the embedded server has a route to every node of the
// directory that has not said it stopped (degraded: everything is
// stored). In external mode it pings the other nodes with each relist, so
// that their directories know this one is alive (tellInterest).
func (n *Node) relistLoop(ctx context.Context, routes string) {
	defer n.wg.Done()
	x := &n.dur.in
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	soon := false
	reconnects := n.nc.Stats().Reconnects
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.done:
			return
		case <-x.wake:
			soon = true
			continue
		case <-tick.C:
		}
		peers := n.routedPeers()
		r, c := routeKey(peers), n.nc.Stats().Reconnects
		changed := r != routes || c != reconnects
		if changed {
			x.setStale(true)
		}
		x.setDegraded(n.degraded(peers))
		since := time.Since(last)
		due := changed || since >= interestRelist || (soon || x.hasUnknown()) && since >= interestSoon
		if !due {
			continue
		}
		routes, reconnects, soon, last = r, c, false, time.Now()
		cctx, cancel := context.WithTimeout(ctx, 4*durableTimeout)
		if err := n.relistInto(cctx, x); err != nil {
			if ctx.Err() == nil {
				n.cfg.Log.Debug("cluster: durable consumers not listed", "node", n.cfg.NodeID, "err", err)
			}
			last = time.Now().Add(interestSoon - interestRelist) // again in interestSoon; stale stays
		} else {
			x.settle(r)
		}
		if n.srv == nil && since >= interestRelist {
			n.tellInterest(cctx, nil)
		}
		cancel()
	}
}

// routeKey is a set of route peers as one comparable string.
func routeKey(peers map[string]bool) string {
	ids := make([]string, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return strings.Join(ids, "\n")
}

// degraded reports an embedded node without a route to some node of its
// directory that has not said it stopped: a node killed, or cut off.
// Announcements cannot reach it, nor its answers come, so every node
// stores everything until the routes are whole again.
func (n *Node) degraded(routed map[string]bool) bool {
	if n.srv == nil {
		return false
	}
	for _, p := range n.Peers() {
		if !p.Stopped && !routed[p.ID] {
			return true
		}
	}
	return false
}

// relistInto compares the mirror x with the stream's consumer names
// (answered by the meta leader, complete) and reads the filters of the
// names it does not know.
func (n *Node) relistInto(ctx context.Context, x *durableInterest) error {
	d := &n.dur
	g := x.begin()
	listed := map[string]bool{}
	names := d.st.ConsumerNames(ctx)
	for name := range names.Name() {
		listed[name] = true
	}
	if err := names.Err(); err != nil {
		return err
	}
	// A list shorter than the stream's count of consumers is not applied
	// (an answer during a leader change; a consumer made meanwhile: the
	// next relist has it).
	info, err := d.st.Info(ctx)
	if err != nil {
		return err
	}
	if len(listed) < info.State.Consumers {
		return fmt.Errorf("cluster: %d consumer names listed, the stream counts %d", len(listed), info.State.Consumers)
	}
	missing := x.end(g, listed)
	if len(missing) == 0 {
		return nil
	}
	need := make(map[string]bool, len(missing))
	for _, name := range missing {
		need[name] = true
	}
	if len(missing) > interestBulk {
		// Many (a node starting): one list of infos, a page per 256
		// consumers; what it leaves out is looked up one by one.
		infos := d.st.ListConsumers(ctx)
		for info := range infos.Info() {
			if need[info.Name] {
				delete(need, info.Name)
				learnConsumer(x, info)
			}
		}
	}
	for name := range need {
		c, err := d.st.Consumer(ctx, name)
		if err != nil {
			// Deleted meanwhile, or its leader being elected ("not
			// found" too): everything is stored until a relist
			// settles it.
			x.markUnknown(name)
			continue
		}
		learnConsumer(x, c.CachedInfo())
	}
	return nil
}

// learnConsumer puts a listed consumer into the mirror x, its filter read
// from its description.
func learnConsumer(x *durableInterest, info *jetstream.ConsumerInfo) {
	filter, ok := strings.CutPrefix(info.Config.Description, consumerDesc)
	if !ok || broker.ValidFilter(filter) != nil {
		x.markUnknown(info.Name) // not one of ours: it may want anything
		return
	}
	x.learn(info.Name, filter, info.Created, false)
}
