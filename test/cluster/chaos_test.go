package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duplexmq/duplex/internal/testutil"
)

// Chaos settings. Environment:
//
//	DUPLEX_CHAOS_KILLS  SIGKILLs in TestClusterChaos (default 2; make soak: 20)
//	DUPLEX_CHAOS_SEED   seed of the victims and kill delays (default: time)
//	DUPLEX_CHAOS_ALL    set: every kind must lose nothing, not only those
//	                    marked holds (make soak)
//	DUPLEX_CHAOS_BIN    a duplex binary to run instead of building the
//	                    working tree's (say, one built from a commit)
//	DUPLEX_CHAOS_LOG    set: log the end of every node's stderr
const (
	chaosDefaultKills = 2
	chaosPace         = 40 * time.Millisecond // at most one publish per pace per publisher
	chaosMinDelay     = 200 * time.Millisecond
	chaosDelaySpan    = 2 * time.Second // random part of the delay before a kill
	chaosMinProgress  = 5               // acknowledgements per publisher between kills
	chaosWaitProgress = 60 * time.Second
	chaosWaitReady    = 60 * time.Second
	chaosDrain        = 150 * time.Second // the end: subscribers receiving what is left...
	// ...unless nothing arrives for this long: longer than the longest
	// redelivery timer (a /queue/ message a killed node had fetched comes
	// again after cluster.queue_ack_wait, chaosQueueAckWait here)
	chaosStall  = 30 * time.Second
	chaosReport = 3 * time.Second // (this long when only kinds not asserted miss some)
	// chaosQueueAckWait is the nodes' -cluster-queue-ack-wait (default
	// 30 s): how long a /queue/ message fetched by a node that died waits
	// before another node's consumer gets it.
	chaosQueueAckWait = "5s"
)

// chaosNode is one duplex process of a cluster whose nodes are killed and
// restarted on the same addresses and data folder.
type chaosNode struct {
	idx                            int
	http, mqtt, stomp, route, data string
	peers                          []string // route addresses it dials

	mu    sync.Mutex
	p     *testutil.Proc
	procs []*testutil.Proc
}

type chaosCluster struct {
	t     *testing.T
	bin   string
	name  string
	nodes []*chaosNode
	book  *chaosBook
}

// newChaosCluster starts three nodes on fixed loopback addresses. routes,
// when not nil, are the nodes' route addresses, and peers node i's route
// peers (a partition test routes some through proxies); else each node
// dials the other two directly.
func newChaosCluster(t *testing.T, name string, routes []string, peers func(i int, routes []string) []string) *chaosCluster {
	t.Helper()
	bin := os.Getenv("DUPLEX_CHAOS_BIN")
	if bin == "" {
		bin = testutil.BuildBinary(t)
	}
	c := &chaosCluster{t: t, bin: bin, name: name, book: &chaosBook{}}
	if routes == nil {
		routes = []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	}
	for i := range 3 {
		n := &chaosNode{idx: i, http: freeAddr(t), mqtt: freeAddr(t), stomp: freeAddr(t), route: routes[i],
			data: filepath.Join(t.TempDir(), "data")}
		if peers != nil {
			n.peers = peers(i, routes)
		} else {
			for j, r := range routes {
				if j != i {
					n.peers = append(n.peers, r)
				}
			}
		}
		c.nodes = append(c.nodes, n)
		c.book.mqtt = append(c.book.mqtt, n.mqtt)
		c.book.stomp = append(c.book.stomp, n.stomp)
	}
	t.Cleanup(c.cleanup)
	for _, n := range c.nodes {
		c.start(n)
	}
	for _, n := range c.nodes {
		c.waitReady(n, chaosWaitReady)
	}
	return c
}

func (c *chaosCluster) start(n *chaosNode) {
	c.t.Helper()
	args := []string{"-addr", n.http, "-mqtt-tcp-addr", n.mqtt, "-stomp-tcp-addr", n.stomp, "-data", n.data,
		"-log-level", "info", "-max-session-queue", "1000000", "-cluster-queue-ack-wait", chaosQueueAckWait,
		"-cluster-name", c.name, "-cluster-listen", n.route, "-cluster-peers", strings.Join(n.peers, ",")}
	var err error
	for try := 0; try < 10; try++ {
		var p *testutil.Proc
		p, err = testutil.Launch(testutil.Config{Bin: c.bin, Args: args, Listeners: []string{"", "mqtt-tcp", "stomp-tcp"},
			StartTimeout: 60 * time.Second})
		if err == nil {
			n.mu.Lock()
			n.p = p
			n.procs = append(n.procs, p)
			n.mu.Unlock()
			return
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(200 * time.Millisecond) // a port of the killed process not free yet: not synchronisation, a retry
	}
	c.t.Fatalf("node %d did not start: %v", n.idx+1, err)
}

// kill SIGKILLs node n and waits for the process to end.
func (c *chaosCluster) kill(n *chaosNode) {
	c.t.Helper()
	n.mu.Lock()
	p := n.p
	n.p = nil
	n.mu.Unlock()
	if p == nil || !p.Running() {
		c.t.Fatalf("node %d: not running before the kill", n.idx+1)
	}
	_ = p.Signal(syscall.SIGKILL)
	if !p.Wait(30 * time.Second) {
		c.t.Fatalf("node %d still running 30 s after SIGKILL", n.idx+1)
	}
}

func (c *chaosCluster) waitReady(n *chaosNode, d time.Duration) {
	c.t.Helper()
	testutil.EventuallyErr(c.t, d, func() error {
		if err := c.alive(); err != nil {
			return fmt.Errorf("%w: %v", testutil.ErrStop, err)
		}
		if code, body := get("http://" + n.http + "/readyz"); code != http.StatusOK {
			return fmt.Errorf("node %d /readyz: %d %s", n.idx+1, code, body)
		}
		return nil
	})
}

// alive returns an error when a node exited by itself.
func (c *chaosCluster) alive() error {
	for _, n := range c.nodes {
		n.mu.Lock()
		p := n.p
		n.mu.Unlock()
		if p != nil && !p.Running() {
			return fmt.Errorf("node %d exited by itself: %v", n.idx+1, p.Err())
		}
	}
	return nil
}

func (c *chaosCluster) cleanup() {
	for _, n := range c.nodes {
		n.mu.Lock()
		p := n.p
		procs := n.procs
		n.mu.Unlock()
		if p != nil && p.Running() {
			if err := p.Stop(15 * time.Second); err != nil {
				c.t.Logf("node %d at the end: %v", n.idx+1, err)
			}
		}
		if c.t.Failed() || os.Getenv("DUPLEX_CHAOS_LOG") != "" {
			for g, p := range procs {
				c.t.Logf("node %d generation %d stderr:\n%s", n.idx+1, g+1, testutil.Tail(p.Stderr(), 40))
			}
		}
	}
}

// ---------------------------------------------------------------------------

// chaosKind is one kind of stream: publishers on all three nodes, and
// subscribers on all three.
type chaosKind struct {
	name string
	// holds: no acknowledged message of this kind is lost when a node
	// dies and none is out of order within a publisher connection,
	// asserted in every run; the others are asserted only with
	// DUPLEX_CHAOS_ALL and otherwise reported. onceHolds: neither is a
	// QoS 2 message duplicated (asserted when holds and exactlyOnce).
	holds, onceHolds bool
	exactlyOnce      bool // QoS 2: no duplicates
	queue            bool // competing consumers: each message to one of them

	pubs   []*chaosPubLog
	recs   []*chaosRec
	send   []func(payload string) (conn int, err error)
	closes []func()
	stops  []func()
	ready  func() bool // the subscribers are subscribed
	lost   func() int  // sessions found lost on reconnecting (MQTT)
	// resends describes the QoS 2 resends the MQTT 5 subscribers
	// acknowledged again without delivering ("" when none).
	resends func() string
}

// chaosKinds builds the four kinds on cluster c. The names are the table's.
func chaosKinds(c *chaosCluster, prefix string) []*chaosKind {
	book := c.book
	var kinds []*chaosKind
	mqttKind := func(name, topic string, qos byte) *chaosKind {
		k := &chaosKind{name: name, exactlyOnce: qos == 2}
		var subs []*chaosMQTTSub
		var v3 *chaosV3Sub
		for i := range 3 {
			id := fmt.Sprintf("%s-%s-sub%d", prefix, name, i+1)
			if qos == 1 && i == 1 {
				v3 = startChaosV3Sub(book, i, id, topic) // clean session 0, MQTT 3.1.1
				k.recs = append(k.recs, v3.rec)
				k.stops = append(k.stops, v3.halt)
				continue
			}
			s := startChaosMQTTSub(book, i, id, topic, qos)
			subs = append(subs, s)
			k.recs = append(k.recs, s.rec)
			k.stops = append(k.stops, s.halt)
		}
		k.ready = func() bool {
			for _, s := range subs {
				if !s.subscribed.Load() {
					return false
				}
			}
			return v3 == nil || v3.subscribed.Load()
		}
		k.lost = func() int {
			n := 0
			for _, s := range subs {
				n += int(s.lostSession.Load())
			}
			if v3 != nil {
				n += int(v3.lostSession.Load())
			}
			return n
		}
		k.resends = func() string {
			var per []string
			var odd []string
			for _, s := range subs {
				n, noDup, other, o := s.session.q.stats()
				if n > 0 {
					per = append(per, fmt.Sprintf("%s %d (%d without DUP, %d with another payload)", s.name, n, noDup, other))
				}
				odd = append(odd, o...)
			}
			if len(per) == 0 {
				return ""
			}
			out := strings.Join(per, "; ")
			if len(odd) > 0 {
				out += "; another payload under a held id: " + chaosFirstN(odd, 5)
			}
			return out
		}
		for i := range 3 {
			l := &chaosPubLog{name: fmt.Sprintf("%s-p%d", name, i+1)}
			// Clean start; after a failure, the next node.
			at := i
			p := &testutil.MQTTPub{Name: fmt.Sprintf("%s-%s-pub%d", prefix, name, i+1), PacketTimeout: chaosShort, KeepAlive: 10,
				Addr: func() string { return book.mqtt[at] }, Failed: func() { at = (at + 1) % len(book.mqtt) }}
			k.pubs = append(k.pubs, l)
			k.send = append(k.send, func(payload string) (int, error) {
				ctx, cancel := context.WithTimeout(context.Background(), chaosShort)
				defer cancel()
				err := p.Publish(ctx, topic, qos, false, payload)
				return p.Conns, err
			})
			k.closes = append(k.closes, p.Close)
		}
		return k
	}
	stompKind := func(name, dest string, hdrs func(id string) (conn, sub []string)) *chaosKind {
		k := &chaosKind{name: name, queue: strings.HasPrefix(dest, "/queue/")}
		var subs []*chaosStompSub
		for i := range 3 {
			id := fmt.Sprintf("%s-%s-sub%d", prefix, name, i+1)
			ch, sh := hdrs(id)
			s := startChaosStompSub(book, i, id, dest, ch, sh)
			subs = append(subs, s)
			k.recs = append(k.recs, s.rec)
			k.stops = append(k.stops, s.halt)
		}
		k.ready = func() bool {
			for _, s := range subs {
				if s.rec.connections() == 0 {
					return false
				}
			}
			return true
		}
		k.lost = func() int { return 0 }
		k.resends = func() string { return "" }
		for i := range 3 {
			l := &chaosPubLog{name: fmt.Sprintf("%s-p%d", name, i+1)}
			s := &chaosSender{book: book, at: i}
			k.pubs = append(k.pubs, l)
			k.send = append(k.send, func(payload string) (int, error) {
				err := s.send(dest, payload)
				return s.conns, err
			})
			k.closes = append(k.closes, s.close)
		}
		return k
	}
	kinds = append(kinds,
		mqttKind("mqtt-qos1", prefix+"/qos1", 1),
		mqttKind("mqtt-qos2", prefix+"/qos2", 2),
		stompKind("stomp-durable", "/topic/"+prefix+"/durable", func(id string) ([]string, []string) {
			return []string{"client-id", id}, []string{"activemq.subscriptionName", id + "-durable"}
		}),
		stompKind("stomp-queue", "/queue/"+prefix+"-queue", func(string) ([]string, []string) { return nil, nil }),
	)
	return kinds
}

// chaosHolds names the kinds that survive a node's SIGKILL today; the
// short run asserts them: "loss" no acknowledged message lost, "once"
// also no QoS 2 duplicate (order per publisher connection: only with
// DUPLEX_CHAOS_ALL, see TestClusterChaos). Enable a
// kind once it passes reliably (three runs in a row).
//
// 2026-12-07, at 950efa7 (S4Q's /queue/ and S4S's MQTT sessions on
// JetStream) plus S4S's STOMP durable work in the tree: stomp-queue
// passed 4 runs in a row (a few duplicates, allowed); mqtt-qos1 lost 1
// and had 185 out of order within a publisher connection in 1 of 3 (a
// session's unacknowledged messages came only at its next attach);
// mqtt-qos2 lost none but duplicated 100-170 each run.
//
// After S4S's 0cd362a (adc8d7c, 20 kills, every kind asserted): no kind lost
// anything, 3 QoS 2 duplicates. In the tree then, 3 short runs in a row:
// mqtt-qos1 and mqtt-qos2 lost nothing (no QoS 2 duplicate either), and
// stomp-durable lost 1 delivery in the first.
//
// At 4b2c484 (S4S's f9c68d8 in), mqtt-qos2 lost 188 deliveries at one
// subscriber in a 2-kill run (seed 1796620470070108751): taken out again.
//
// At 7ceb345, with the subscribers' inbound QoS 2 state kept across
// connections (chaosQoS2In), 8 kills, seeds 11 and 23: 5 and 6 QoS 2
// duplicates, every one a PUBLISH resent (DUP, same packet id) by another
// node after the client had the PUBREL for it from the node then killed:
// the node sends PUBREL before the cluster store's ack of the message is
// confirmed [MQTT-4.3.3-6] (S4D's report). Not "once" until that is fixed.
// At 1b843e2 (S4S: the QoS 2 ack confirmed before PUBREL), seeds 11, 23,
// 7, 1: 36, 0, 0, 66 duplicates, still all resent after their PUBREL.
//
// At bb58225 (S6O's QoS 2 release records, S6I's inbound de-duplication,
// S6C's claims, S6J's interest mirror), 20 kills, every kind asserted:
// seed 11 and seed 23 lost nothing in any kind and had no QoS 2
// duplicate (seed 23 acknowledged 6 resends of a held packet id without
// delivering them); seed 23 failed on stomp-durable order (390 deliveries
// out of order within a publisher connection: the binding's fetch loop
// hands on a message that comes back late). mqtt-qos2 is "once" from here.
//
// At 80aea16 (the binding's fetch loop resets its consumer after a lost
// delivery) and with per-filter skipping of the stream on (b410a72),
// 20 kills: seeds 23 and 11 twice each and both once more at 831d049,
// every kind 0 lost, 0 QoS 2 duplicates, 0 out of order within a
// publisher connection; four short runs too. stomp-durable is asserted
// in the short run from here.
var chaosHolds = map[string]string{"mqtt-qos1": "loss", "mqtt-qos2": "once", "stomp-durable": "loss", "stomp-queue": "loss"}

// setHolds marks the kinds as chaosHolds says.
func setHolds(kinds []*chaosKind) {
	for _, k := range kinds {
		k.holds = chaosHolds[k.name] != ""
		k.onceHolds = chaosHolds[k.name] == "once"
	}
}

// warmUp publishes unrecorded messages from every publisher until each
// reached every subscriber (a queue: any consumer), so that subscriptions
// and interest are in place on every node before the streams start.
func (k *chaosKind) warmUp(t *testing.T) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, k.name+" subscribers subscribed", k.ready)
	testutil.EventuallyErr(t, 60*time.Second, func() error {
		var missing []string
		for i, l := range k.pubs {
			prefix := "warm." + l.name + "-"
			_, _ = k.send[i](prefix + "0")
			got := 0
			for _, r := range k.recs {
				if r.hasPrefix(prefix) {
					got++
				}
			}
			if (k.queue && got == 0) || (!k.queue && got < len(k.recs)) {
				missing = append(missing, fmt.Sprintf("%s reached %d subscribers", l.name, got))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s warm-up: %s", k.name, strings.Join(missing, "; "))
		}
		return nil
	})
}

func (r *chaosRec) hasPrefix(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.count {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// chaosResult is one kind's row of the table.
type chaosResult struct {
	kind                                  string
	acked, expected, delivered            int // acknowledged messages; deliveries wanted; of those, arrived
	lost, dups, outOfOrder, lostSess      int
	acrossFailover                        int // out of order, across a publisher's failover
	perSub                                []string
	missingSample, orderSample, dupSample string
	dupList                               []string // every duplicate (a topic kind), described
}

// wanted is, per chaosRec, the acknowledged payloads it must get (a
// queue: nil per chaosRec; see check).
func (k *chaosKind) ackedPayloads() []string {
	var out []string
	for _, l := range k.pubs {
		for _, n := range l.ackedList() {
			out = append(out, fmt.Sprintf("%s-%d", l.name, n))
		}
	}
	return out
}

// missing counts the acknowledged deliveries not arrived yet.
func (k *chaosKind) missing() int {
	acked := k.ackedPayloads()
	n := 0
	if k.queue {
		for _, p := range acked {
			got := 0
			for _, r := range k.recs {
				got += r.times(p)
			}
			if got == 0 {
				n++
			}
		}
		return n
	}
	for _, r := range k.recs {
		for _, p := range acked {
			if r.times(p) == 0 {
				n++
			}
		}
	}
	return n
}

func (k *chaosKind) check() chaosResult {
	res := chaosResult{kind: k.name, lostSess: k.lost()}
	acked := k.ackedPayloads()
	res.acked = len(acked)
	known := map[string]*chaosPubLog{}
	for _, l := range k.pubs {
		known[l.name] = l
	}
	var missing []string
	count := func(p string) int {
		n := 0
		for _, r := range k.recs {
			n += r.times(p)
		}
		return n
	}
	if k.queue {
		res.expected = len(acked)
		for _, p := range acked {
			if count(p) == 0 {
				missing = append(missing, p)
			}
		}
	} else {
		res.expected = len(acked) * len(k.recs)
		for _, r := range k.recs {
			var per []string
			for _, l := range k.pubs {
				var seqs []int
				for _, n := range l.ackedList() {
					p := fmt.Sprintf("%s-%d", l.name, n)
					if r.times(p) == 0 {
						missing = append(missing, r.name+":"+p)
						seqs = append(seqs, n)
					}
				}
				if len(seqs) > 0 {
					per = append(per, fmt.Sprintf("%s %s", l.name, chaosRanges(seqs)))
				}
			}
			if len(per) > 0 {
				r.mu.Lock()
				node, conns := r.node, r.conn
				r.mu.Unlock()
				res.perSub = append(res.perSub, fmt.Sprintf("%s (now on node %d, %d connections, %d deliveries): %s",
					r.name, node+1, conns, r.len(), strings.Join(per, "; ")))
			}
		}
	}
	res.lost = len(missing)
	res.delivered = res.expected - res.lost
	res.missingSample = chaosFirstN(missing, 8)
	// Duplicates: deliveries past the first of a payload (a queue: in the
	// whole group), acknowledged or not.
	all := map[string]int{}
	var order []string
	var dupList []string
	for _, r := range k.recs {
		last := map[string]int{}
		seen := map[string]bool{}
		first := map[string]chaosDelivery{}
		for idx, d := range r.snapshot() {
			pub, n, ok := chaosParse(d.payload)
			if !ok || known[pub] == nil {
				continue
			}
			if k.queue {
				all[d.payload]++
			} else if seen[d.payload] {
				res.dups++
				dupList = append(dupList, chaosDescribeDup(r, idx, d, first[d.payload], k.exactlyOnce))
			}
			if _, ok := first[d.payload]; !ok {
				first[d.payload] = d
			}
			if seen[d.payload] {
				continue
			}
			seen[d.payload] = true
			if prev, ok := last[pub]; ok && n < prev {
				// Order is promised per publisher connection (MQTT
				// 4.6, STOMP 1.2 frames in order): a message of the
				// publisher's earlier connection, still on its way from
				// a killed node, may come after the first ones of its
				// next connection, elsewhere.
				pl := known[pub]
				same := pl.conn(n) == pl.conn(prev)
				if same {
					res.outOfOrder++
				} else {
					res.acrossFailover++
				}
				order = append(order, fmt.Sprintf("%s: %s after %s-%d (node %d, connection %d; publisher connections %d, %d)",
					r.name, d.payload, pub, prev, d.node+1, d.conn, pl.conn(n), pl.conn(prev)))
			} else {
				last[pub] = n
			}
		}
	}
	res.dupList = dupList
	for p, c := range all {
		res.dups += c - 1
		if c > 1 && len(dupList) < 5 {
			dupList = append(dupList, fmt.Sprintf("%s ×%d", p, c))
		}
	}
	res.dupSample = chaosFirstN(dupList, 5)
	res.orderSample = chaosFirstN(order, 5)
	return res
}

// chaosDescribeDup describes delivery d (number idx) of subscriber r, a
// copy of first: the node and connection of each, and for MQTT 5
// subscribers their packet ids and DUP flags and (QoS 2) the PUBRELs the
// client had received for the payload before d.
func chaosDescribeDup(r *chaosRec, idx int, d, first chaosDelivery, qos2 bool) string {
	at := func(d chaosDelivery) string {
		s := fmt.Sprintf("node %d, connection %d", d.node+1, d.conn)
		if d.pid != 0 {
			s += fmt.Sprintf(", packet id %d", d.pid)
			if d.dup {
				s += ", DUP"
			}
		}
		return s
	}
	s := fmt.Sprintf("%s: %s again (%s; first: %s)", r.name, d.payload, at(d), at(first))
	if qos2 && d.pid != 0 {
		rel := r.releases(d.payload, idx)
		if len(rel) == 0 {
			rel = []string{"none"}
		}
		s += "; PUBRELs before it: " + strings.Join(rel, "; ")
	}
	return s
}

// chaosRanges prints sorted ints compactly: 1-4,7,9-10 (at most 12 runs).
func chaosRanges(ns []int) string {
	var runs []string
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if j == i {
			runs = append(runs, strconv.Itoa(ns[i]))
		} else {
			runs = append(runs, fmt.Sprintf("%d-%d", ns[i], ns[j]))
		}
		i = j + 1
	}
	return chaosFirstN(runs, 12)
}

func chaosFirstN(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(", … %d more", len(s)-n)
}

func chaosEnv(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// TestClusterChaos is the kill -9 harness on a cluster: three nodes with
// embedded routes and JetStream, and per kind (MQTT QoS 1 and QoS 2 to
// persistent sessions, STOMP SEND with receipt to a durable topic
// subscription and to a /queue/) a publisher and a subscriber on each
// node. A random node is SIGKILLed at random points (seeded) and restarted
// on the same addresses and data folder; its clients fail over to the next
// node with the same client id. At the end, per kind: acknowledged,
// delivered, lost, duplicated, out of order (per publisher, first
// arrivals). A lost acknowledged message of a kind that holds, or a QoS 2
// duplicate, fails the test; so does any loss with DUPLEX_CHAOS_ALL. The
// failover time a subscriber saw (SIGKILL of its node to its first message
// through a new connection) is logged per protocol.
func TestClusterChaos(t *testing.T) {
	kills := int(chaosEnv(t, "DUPLEX_CHAOS_KILLS", chaosDefaultKills))
	seed := uint64(chaosEnv(t, "DUPLEX_CHAOS_SEED", time.Now().UnixNano()&(1<<62-1)))
	all := os.Getenv("DUPLEX_CHAOS_ALL") != ""
	rng := rand.New(rand.NewPCG(seed, 0x6475706c6578))
	t.Logf("seed %d, %d kills (replay: DUPLEX_CHAOS_SEED=%d DUPLEX_CHAOS_KILLS=%d go test -race -run TestClusterChaos -v ./test/cluster)",
		seed, kills, seed, kills)

	c := newChaosCluster(t, "chaos", nil, nil)
	kinds := chaosKinds(c, "chaos")
	setHolds(kinds)
	for _, k := range kinds {
		t.Cleanup(func() {
			for _, s := range k.stops {
				s()
			}
		})
	}
	for _, k := range kinds {
		k.warmUp(t)
	}

	stopPubs := runPublishers(t, kinds)
	var pubs []*chaosPubLog
	for _, k := range kinds {
		pubs = append(pubs, k.pubs...)
	}
	progress := func(what string) { t.Helper(); waitProgress(t, c, pubs, what) }

	began := time.Now()
	var killTimes []time.Time
	progress("before the first kill")
	var recs []*chaosRec
	for _, k := range kinds {
		recs = append(recs, k.recs...)
	}
	for i := range kills {
		delay := chaosMinDelay + chaosJitter(rng, chaosDelaySpan)
		victim := c.nodes[rng.IntN(len(c.nodes))]
		time.Sleep(delay) // the experiment: where in the streams the kill lands
		on := 0
		t0 := time.Now()
		for _, r := range recs {
			if r.on(victim.idx) {
				on++
			}
			r.killed(victim.idx, t0)
		}
		c.kill(victim)
		killTimes = append(killTimes, t0)
		t.Logf("kill #%d: node %d after %v (%d subscribers on it; %v into the run)", i+1, victim.idx+1, delay.Round(time.Millisecond), on, time.Since(began).Round(time.Second))
		c.start(victim)
		c.waitReady(victim, chaosWaitReady)
		progress(fmt.Sprintf("after kill #%d", i+1))
	}
	stopPubs()
	for _, l := range pubs {
		t.Logf("publisher %s", l)
	}
	if err := c.alive(); err != nil {
		t.Error(err)
	}
	// Order per publisher connection is asserted with DUPLEX_CHAOS_ALL
	// only: at 120e8bd a QoS 2 message came ~40 messages late now and
	// then (S4K's report, finding B).
	drainAndReport(t, kinds, all, all, fmt.Sprintf("cluster kill -9, %d kills (seed %d)", kills, seed))
	logFailover(t, recs)
	logPause(t, kinds, killTimes)
}

// logPause logs, per kind, how long the whole cluster acknowledged no
// publish of that kind after a kill: the longest gap between consecutive
// acknowledgements (any publisher, any node) in the 30 s after each kill,
// median and max over the kills. A subscriber's failover time cannot be
// shorter than its kind's pause.
func logPause(t *testing.T, kinds []*chaosKind, kills []time.Time) {
	if len(kills) == 0 {
		return
	}
	for _, k := range kinds {
		var acks []time.Time
		for _, l := range k.pubs {
			acks = append(acks, l.ackTimes()...)
		}
		slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
		var gaps []time.Duration
		worst, worstKill := time.Duration(0), 0
		for i, t0 := range kills {
			last, gap := t0, time.Duration(0)
			for _, a := range acks {
				if a.Before(t0) {
					continue
				}
				if a.After(t0.Add(30 * time.Second)) {
					break
				}
				gap = max(gap, a.Sub(last))
				last = a
			}
			gaps = append(gaps, gap)
			if gap > worst {
				worst, worstKill = gap, i+1
			}
		}
		slices.Sort(gaps)
		t.Logf("publish pause %s (longest gap between acknowledgements in the 30 s after a kill): median %v, max %v (after kill #%d), over %d kills",
			k.name, gaps[len(gaps)/2].Round(time.Millisecond), worst.Round(time.Millisecond), worstKill, len(gaps))
	}
}

// runPublishers starts every kind's publishers, each publishing at most
// once per chaosPace; the function it returns stops them (also at the
// test's end).
func runPublishers(t *testing.T, kinds []*chaosKind) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, k := range kinds {
		for i, l := range k.pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer k.closes[i]()
				tick := time.NewTicker(chaosPace)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					n, p := l.take()
					conn, err := k.send[i](p)
					l.result(n, err, conn)
				}
			}()
		}
	}
	stopped := false
	stopPubs := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopPubs)
	return stopPubs
}

// waitProgress waits until every publisher has had chaosMinProgress more
// acknowledgements.
func waitProgress(t *testing.T, c *chaosCluster, pubs []*chaosPubLog, what string) {
	t.Helper()
	base := make([]int, len(pubs))
	for i, l := range pubs {
		base[i] = l.ackedCount()
	}
	testutil.EventuallyErr(t, chaosWaitProgress, func() error {
		if err := c.alive(); err != nil {
			return fmt.Errorf("%w: %v", testutil.ErrStop, err)
		}
		var slow []string
		for i, l := range pubs {
			if l.ackedCount() < base[i]+chaosMinProgress {
				slow = append(slow, l.String())
			}
		}
		if len(slow) > 0 {
			return fmt.Errorf("%s: publishers without progress: %s", what, strings.Join(slow, "; "))
		}
		return nil
	})
}

// drainAndReport waits for what is left to arrive, then logs the table
// (title first) and fails the test for the kinds asserted.
func drainAndReport(t *testing.T, kinds []*chaosKind, all, order bool, title string) {
	t.Helper()
	var recs []*chaosRec
	for _, k := range kinds {
		recs = append(recs, k.recs...)
	}
	// The drain: until nothing acknowledged is missing, or nothing at all
	// arrives for chaosStall; a kind not asserted is waited for only
	// while something arrives at all in chaosReport.
	deadline := time.Now().Add(chaosDrain)
	lastTotal, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		miss, missAsserted, total := 0, 0, 0
		for _, k := range kinds {
			m := k.missing()
			miss += m
			if all || k.holds {
				missAsserted += m
			}
		}
		for _, r := range recs {
			total += r.len()
		}
		if miss == 0 {
			break
		}
		if total != lastTotal {
			lastTotal, lastChange = total, time.Now()
		} else if since := time.Since(lastChange); since > chaosStall || (missAsserted == 0 && since > chaosReport) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	var rows []string
	rows = append(rows, fmt.Sprintf("%-14s %8s %9s %9s %6s %5s %6s %7s %8s %s", "kind", "acked", "expected", "delivered", "lost", "dups", "order", "order-f", "sessions", "asserted"))
	for _, k := range kinds {
		res := k.check()
		asserted := all || k.holds
		label := "no"
		switch {
		case all || k.onceHolds:
			label = "all"
		case k.holds && order:
			label = "loss, order"
		case k.holds:
			label = "loss"
		}
		rows = append(rows, fmt.Sprintf("%-14s %8d %9d %9d %6d %5d %6d %7d %8d %s", res.kind, res.acked, res.expected, res.delivered,
			res.lost, res.dups, res.outOfOrder, res.acrossFailover, res.lostSess, label))
		if res.lost > 0 {
			t.Logf("%s: missing (subscriber:payload) %s", k.name, res.missingSample)
			for _, p := range res.perSub {
				t.Logf("%s: missing at %s", k.name, chaosFirstN([]string{p}, 1))
			}
		}
		if res.outOfOrder+res.acrossFailover > 0 {
			t.Logf("%s: out of order %s", k.name, res.orderSample)
		}
		if res.dups > 0 && k.exactlyOnce {
			for _, d := range res.dupList {
				t.Logf("%s: duplicate %s", k.name, d)
			}
		} else if res.dups > 0 {
			t.Logf("%s: duplicates, e.g. %s", k.name, res.dupSample)
		}
		if k.resends != nil {
			if rs := k.resends(); rs != "" {
				t.Logf("%s: resends of a held packet id acknowledged again, not delivered [MQTT-4.3.3-10]: %s", k.name, rs)
			}
		}
		if !asserted {
			continue
		}
		if res.lost > 0 {
			t.Errorf("%s: %d acknowledged deliveries lost", k.name, res.lost)
		}
		if k.exactlyOnce && res.dups > 0 && !(all || k.onceHolds) {
			t.Logf("%s: %d duplicates (exactly once expected; not asserted yet)", k.name, res.dups)
		}
		if k.exactlyOnce && res.dups > 0 && (all || k.onceHolds) {
			t.Errorf("%s: %d duplicates (exactly once)", k.name, res.dups)
		}
		if order && !k.queue && res.outOfOrder > 0 {
			t.Errorf("%s: %d messages out of order per publisher connection", k.name, res.outOfOrder)
		}
	}
	t.Logf("%s; lost/dups/order count deliveries (a topic kind: per subscriber, 3 each; a queue: the group); order = first arrivals out of order within one publisher connection, order-f = across a publisher's failover; sessions = reconnects that found the session gone:\n  %s",
		title, strings.Join(rows, "\n  "))
}

// logFailover logs, per protocol, the failover times the subscribers saw.
func logFailover(t *testing.T, recs []*chaosRec) {
	byProto := map[string][]time.Duration{}
	reconn := map[string][]time.Duration{}
	unresolved := map[string]int{}
	for _, r := range recs {
		d, un, rc := r.failovers()
		byProto[r.proto] = append(byProto[r.proto], d...)
		reconn[r.proto] = append(reconn[r.proto], rc...)
		unresolved[r.proto] += un
	}
	for _, proto := range []string{"MQTT", "STOMP"} {
		d := byProto[proto]
		if len(d) == 0 {
			t.Logf("failover %s: no subscriber on a killed node received a message afterwards (%d kills of a subscriber's node)", proto, unresolved[proto])
			continue
		}
		slices.Sort(d)
		rc := reconn[proto]
		slices.Sort(rc)
		conn := "none"
		if len(rc) > 0 {
			conn = fmt.Sprintf("median %v, max %v, over %d", rc[len(rc)/2].Round(time.Millisecond), rc[len(rc)-1].Round(time.Millisecond), len(rc))
		}
		t.Logf("failover %s (SIGKILL of the subscriber's node to its first message through a new connection): median %v, max %v, over %d (and %d with no message before the next kill or the end); of which to the new connection's CONNACK/CONNECTED: %s",
			proto, d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond), len(d), unresolved[proto], conn)
	}
}
