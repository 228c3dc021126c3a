package cluster

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/duplexmq/duplex/broker"
)

// Router is what a Node needs of broker.Router.
type Router interface {
	PublishFromPeer(m *broker.Message) error
}

// Node is one Duplex node's link to the cluster: it implements
// broker.Peers. Make it with New, put it in broker.Config.Peers, and
// Start it with the router once the router exists.
//
// Goroutines: Forward hands messages to the sender (sendLoop), Interest
// hands subject changes to the subscriber (interestLoop), and the receiver
// (receiveLoop) routes what arrives; none of them holds a lock while it
// talks to NATS or the router.
type Node struct {
	cfg    Config
	subs   Subjects
	self   origin
	selfID string // self as the header carries it

	srv    *server.Server // embedded mode; nil external
	nc     *nats.Conn
	router Router

	out chan *broker.Message
	in  chan *nats.Msg

	// mu guards wanted and dirty: Interest's reference counts per
	// subject (two filters may share one: "a/+" and "a/#" both want
	// Long) and the subjects whose subscription interestLoop must
	// reconcile.
	mu     sync.Mutex
	wanted map[string]int
	dirty  map[string]struct{}
	wake   chan struct{}

	sess sessions // session.go: client ids held here, claims

	dir directory // admin.go: the other nodes, admin request handlers

	share shareLink // share.go: MQTT share groups across nodes

	ql queueLink // queue.go: STOMP /queue/ destinations across nodes

	// JetStream (jetstream.go, retained.go): jsOff, the NATS has none;
	// retainedOn, retained messages go to the stream; retainedLoaded,
	// the node has read the stream up to date.
	jsOff, retainedOn, retainedLoaded atomic.Bool
	retainedOut                       chan retainedJob // set before retainedOn
	retainedWait                      sync.Map         // *broker.Message → *retainedWaiter (StoreRetained)

	dur durableLink // durable.go: persistent sessions in JetStream
	q2  inboundLink // qos2in.go: inbound QoS 2 packet ids of persistent sessions

	stats    Stats
	started  atomic.Bool // Start was called
	running  atomic.Bool // Start succeeded: nc is set
	done     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// Stats are a node's cluster counters (/metrics duplex_cluster_*).
type Stats struct {
	Forwarded      atomic.Uint64 // messages published to NATS
	ForwardDropped atomic.Uint64 // not published: queue full, NATS down, too large
	Received       atomic.Uint64 // messages from other nodes routed here
	ReceiveDropped atomic.Uint64 // dropped by NATS as a slow consumer, or refused by the router
	Malformed      atomic.Uint64 // not decodable (a foreign publisher on the subjects)
	Duplicates     atomic.Uint64 // copies for overlapping subscriptions, own messages
	Subscriptions  atomic.Int64  // NATS subscriptions held
}

// New checks cfg and returns an unstarted node. Interest and Forward may be
// called before Start: interest is kept and declared at Start, messages
// are dropped (counted).
func New(cfg Config) (*Node, error) {
	if !cfg.Enabled() {
		return nil, errors.New("cluster: not configured")
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:    cfg,
		subs:   NewSubjects(cfg.Name),
		self:   origin{node: esc(cfg.NodeID), boot: randomHex(4)},
		out:    make(chan *broker.Message, cfg.ForwardQueue),
		in:     make(chan *nats.Msg, cfg.ReceiveQueue),
		wanted: map[string]int{},
		dirty:  map[string]struct{}{},
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	n.selfID = n.self.node + "." + n.self.boot
	// Other nodes wait for this one's answer to their durable
	// consumers' announcements (durable_interest.go) from its start.
	_ = n.HandleAdmin(interestKind, n.answerInterest)
	// Every node keeps every retained message: the retained subject is
	// wanted whatever the local filters.
	n.wanted[n.subs.Retained] = 1
	n.dirty[n.subs.Retained] = struct{}{}
	return n, nil
}

// ID is the node's id (Config.NodeID or its default).
func (n *Node) ID() string { return n.cfg.NodeID }

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Start starts the embedded NATS server (embedded mode), connects to NATS
// and starts routing with r. In external mode an unreachable NATS is not
// an error: the node keeps trying and Ready says why it is not joined.
func (n *Node) Start(r Router) error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("cluster: started twice")
	}
	n.router = r
	c := n.cfg
	opts := []nats.Option{
		nats.Name("duplex " + c.NodeID),
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectBufSize(-1), // while down, publishing fails at once: counted, dropped
		nats.ConnectHandler(func(*nats.Conn) { n.connected("connected") }),
		nats.ReconnectHandler(func(*nats.Conn) { n.connected("reconnected") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { n.disconnected(err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.stats.ReceiveDropped.Add(1)
				return
			}
			c.Log.Warn("cluster: NATS error", "err", err)
		}),
	}
	var err error
	var url string
	if c.Embedded() {
		user, pass := "node", randomHex(16)
		if n.srv, err = startEmbedded(c, user, pass); err != nil {
			return err
		}
		opts = append(opts, nats.InProcessServer(n.srv), nats.UserInfo(user, pass))
		url = "in-process"
	} else {
		opts = append(opts, nats.RetryOnFailedConnect(true))
		if c.User != "" {
			opts = append(opts, nats.UserInfo(c.User, c.Password))
		}
		if c.Credentials != "" {
			opts = append(opts, nats.UserCredentials(c.Credentials))
		}
		if c.TLSCA != "" {
			opts = append(opts, nats.RootCAs(c.TLSCA))
		}
		if c.TLSCert != "" {
			opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
		}
		url = strings.Join(c.NATSURLs, ",")
	}
	if n.nc, err = nats.Connect(url, opts...); err != nil {
		if n.srv != nil {
			n.srv.Shutdown()
		}
		return fmt.Errorf("cluster: connecting to NATS (%s): %w", url, err)
	}
	if err := n.startShare(url, opts); err != nil { // share.go
		return err
	}
	n.running.Store(true)
	n.startAdmin() // admin.go
	n.announce("hello")
	if n.srv != nil && len(c.Peers) > 0 {
		n.wg.Add(1)
		go n.helloUntilHeard() // admin.go
	}
	n.wg.Add(3)
	go n.sendLoop()
	go n.receiveLoop()
	go n.interestLoop()
	n.startSessions() // session.go
	if c.jetStreamWanted() {
		n.wg.Add(1)
		go n.jsLoop()
	}
	c.Log.Info("cluster node started", "node", c.NodeID, "cluster", c.Name, "embedded", c.Embedded(),
		"listen", c.Listen, "peers", c.Peers, "nats_urls", c.NATSURLs)
	return nil
}

// connected redeclares every wanted subject: nats.go resends the
// subscriptions it holds after a reconnect, and the reconcile catches any
// that failed while the connection was down.
func (n *Node) connected(what string) {
	n.mu.Lock()
	for s := range n.wanted {
		n.dirty[s] = struct{}{}
	}
	n.mu.Unlock()
	n.signal()
	if what == "reconnected" && n.running.Load() {
		n.announce("hello") // admin.go
	}
	n.cfg.Log.Info("cluster: NATS "+what, "node", n.cfg.NodeID)
}

func (n *Node) disconnected(err error) {
	select {
	case <-n.done:
		return
	default:
	}
	n.cfg.Log.Warn("cluster: NATS connection lost; messages to and from other nodes are dropped until it is back",
		"node", n.cfg.NodeID, "err", err)
}

// Ready returns nil when the node is joined: connected to NATS and, in
// embedded mode with peers configured, routed to at least one of them
// that has answered this node's hello (admin.go: heardPeer). /readyz
// fails with its error otherwise.
func (n *Node) Ready() error {
	switch {
	case !n.running.Load():
		return errors.New("cluster: not started")
	case !n.nc.IsConnected():
		return errors.New("cluster: not connected to NATS")
	case n.srv != nil && len(n.cfg.Peers) > 0 && n.srv.NumRoutes() == 0:
		return errors.New("cluster: no route to any peer yet")
	case n.srv != nil && len(n.cfg.Peers) > 0 && !n.heardPeer():
		return errors.New("cluster: no other node has answered over the routes yet")
	case n.cfg.jetStreamWanted() && !n.jsOff.Load() && !n.retainedLoaded.Load():
		return errors.New("cluster: retained messages not loaded from JetStream yet")
	case n.cfg.jetStreamWanted() && !n.jsOff.Load() && !n.dur.on.Load():
		return errors.New("cluster: the durable stream is not ready yet")
	case n.cfg.jetStreamWanted() && !n.jsOff.Load() && !n.ql.on.Load():
		return errors.New("cluster: queue stream not ready in JetStream yet")
	}
	return nil
}

// Routes is the number of NATS routes of the embedded server (0 in
// external mode).
func (n *Node) Routes() int {
	if n.srv == nil || !n.running.Load() {
		return 0
	}
	return n.srv.NumRoutes()
}

// Close disconnects from NATS and stops the embedded server. Forward and
// Interest may still be called; they do nothing that matters.
func (n *Node) Close() {
	n.stopOnce.Do(func() {
		close(n.done)
		if n.nc != nil {
			if n.running.Load() {
				n.announce("bye") // admin.go
			}
			n.nc.Close()
		}
		n.closeShare() // share.go
		n.wg.Wait()
		if n.srv != nil {
			n.srv.Shutdown()
			n.srv.WaitForShutdown()
		}
	})
}

func (n *Node) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Interest implements broker.Peers: it counts filter's subjects and marks
// those whose count left or reached zero for interestLoop. It never
// blocks on NATS.
func (n *Node) Interest(filter string, add bool) {
	var buf [3]string
	subjects := n.subs.Filter(buf[:0], filter)
	d := 1
	if !add {
		d = -1
	}
	n.mu.Lock()
	for _, s := range subjects {
		c := n.wanted[s] + d
		if c <= 0 {
			delete(n.wanted, s)
		} else {
			n.wanted[s] = c
		}
		if c == 0 || (c == 1 && add) {
			n.dirty[s] = struct{}{}
		}
	}
	n.mu.Unlock()
	n.signal()
}

// interestLoop subscribes to and unsubscribes from the subjects Interest
// marked, all into the one receive channel.
func (n *Node) interestLoop() {
	defer n.wg.Done()
	held := map[string]*nats.Subscription{}
	for {
		select {
		case <-n.wake:
		case <-n.done:
			return
		}
		n.mu.Lock()
		type change struct {
			subject string
			want    bool
		}
		changes := make([]change, 0, len(n.dirty))
		for s := range n.dirty {
			changes = append(changes, change{s, n.wanted[s] > 0})
		}
		clear(n.dirty)
		n.mu.Unlock()
		for _, ch := range changes {
			sub := held[ch.subject]
			switch {
			case ch.want && sub == nil:
				sub, err := n.nc.ChanSubscribe(ch.subject, n.in)
				if err != nil {
					n.cfg.Log.Warn("cluster: subscribe failed; retried on reconnect", "subject", ch.subject, "err", err)
					continue
				}
				held[ch.subject] = sub
				n.stats.Subscriptions.Add(1)
			case !ch.want && sub != nil:
				_ = sub.Unsubscribe()
				delete(held, ch.subject)
				n.stats.Subscriptions.Add(-1)
			}
		}
	}
}

// Forward implements broker.Peers: it queues m for sendLoop, or drops it
// (counted) when the queue is full. It never blocks.
func (n *Node) Forward(m *broker.Message) {
	select {
	case n.out <- m:
	default:
		n.stats.ForwardDropped.Add(1)
	}
}

// sendLoop publishes the forwarded messages. nats.go's Publish only
// appends to the connection's buffer, but may write it out when full;
// doing that here keeps the publisher's goroutine off the network.
func (n *Node) sendLoop() {
	defer n.wg.Done()
	var seq uint64
	var lastErr time.Time
	for {
		var m *broker.Message
		select {
		case m = <-n.out:
		case <-n.done:
			return
		}
		if !n.nc.IsConnected() {
			n.stats.ForwardDropped.Add(1)
			n.retainedDropped(m, errRetainedNotStored) // retained.go
			continue
		}
		seq++
		nm := encodeMsg(n.subs, n.self, seq, m, time.Now())
		if nm == nil {
			n.retainedDropped(m, nil)
			continue // expired on the way
		}
		if n.toRetainedStream(nm, m) {
			continue // retained.go
		}
		if err := n.nc.PublishMsg(nm); err != nil {
			n.stats.ForwardDropped.Add(1)
			if time.Since(lastErr) > 10*time.Second {
				lastErr = time.Now()
				n.cfg.Log.Warn("cluster: publish to NATS failed; message dropped", "topic_bytes", len(m.Topic),
					"payload_bytes", len(m.Payload), "err", err)
			}
			continue
		}
		n.stats.Forwarded.Add(1)
	}
}

// receiveLoop routes what other nodes published. A message reaches this
// connection once per subscription it matches ("a/+" and "a/b" overlap);
// the copies of one message arrive one after the other from one sending
// node (one connection, one route), so a node's message number that is
// not above the last one seen from it is a copy.
func (n *Node) receiveLoop() {
	defer n.wg.Done()
	last := map[string]uint64{}
	var lastErr time.Time
	for {
		var nm *nats.Msg
		select {
		case nm = <-n.in:
		case <-n.done:
			return
		}
		m, from, seq, err := decodeMsg(n.subs, nm, time.Now())
		if err == nil {
			// What another Duplex node sends is valid; a foreign
			// publisher on an external NATS could send "a/+" or
			// invalid UTF-8 ([MQTT-3.3.2-2], [MQTT-1.5.3-1]).
			err = broker.ValidTopicName(m.Topic)
		}
		if err != nil {
			n.stats.Malformed.Add(1)
			continue
		}
		if from == n.selfID || seq <= last[from] {
			n.stats.Duplicates.Add(1)
			continue
		}
		if len(last) > 4096 {
			clear(last) // nodes that restarted many times; a copy may pass once
		}
		last[from] = seq
		if err := n.router.PublishFromPeer(m); err != nil {
			n.stats.ReceiveDropped.Add(1)
			if time.Since(lastErr) > 10*time.Second {
				lastErr = time.Now()
				n.cfg.Log.Warn("cluster: message from a peer refused", "from", from, "err", err)
			}
			continue
		}
		n.stats.Received.Add(1)
	}
}
