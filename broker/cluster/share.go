package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/duplexmq/duplex/broker"
)

// MQTT shared subscriptions across nodes ($share/<group>/<filter>,
// MQTT 5 §4.8.2): each message goes to one member of a group in the whole
// cluster. The node implements broker.SharePeers:
//
//   - A node with local members of group G on filter F holds, on a second
//     NATS connection (share.nc), queue subscriptions named after
//     (cluster, G, F) (queueName) on F's subjects (Subjects.Filter) and on
//     the retained subjects, where retained publications travel. NATS
//     gives each message to one queue subscriber per queue name, chosen
//     at random among every node that holds one, across routes.
//   - The second connection is not NoEcho, so the publishing node's own
//     members compete as well; its own messages are not dropped there.
//   - The receiving node hands the message to router.PublishToShare for
//     that group only, which picks one local member (round robin); plain
//     subscribers got it through the ordinary interest path.
//
// The choice is one node per message, uniform over the nodes that have
// members (not over members: a node with one member and a node with ten
// get the same share). Like the rest of the link it is at most once: a
// message whose chosen node loses its last member on the way is dropped
// (counted), and while a node's share connection is down its groups get
// nothing, its local members included.

// shareRouter is what the share path needs of broker.Router.
type shareRouter interface {
	PublishToShare(group, filter string, m *broker.Message) error
}

// groupKey names a share group.
type groupKey struct{ group, filter string }

// shareLink is a node's share-group state: the second connection, the
// groups with local members, and the queue subscriptions held for them.
type shareLink struct {
	nc *nats.Conn
	in chan *nats.Msg

	// mu guards count (local members' groups as ShareInterest reported
	// them, reference-counted), dirty (groups whose subscriptions
	// shareSubLoop must reconcile) and names (queue name → group, for
	// the receiver).
	mu    sync.Mutex
	count map[groupKey]int
	dirty map[groupKey]struct{}
	names map[string]groupKey
	wake  chan struct{}

	Received   atomic.Uint64 // messages handed to a local member
	NoMember   atomic.Uint64 // the group had no member here any more
	Malformed  atomic.Uint64 // not decodable
	Subscribed atomic.Int64  // NATS queue subscriptions held
}

// init makes the maps on first use (ShareInterest may come before Start).
// Called with mu held.
func (s *shareLink) init() {
	if s.count == nil {
		s.count = map[groupKey]int{}
		s.dirty = map[groupKey]struct{}{}
		s.names = map[string]groupKey{}
		s.wake = make(chan struct{}, 1)
	}
}

// ShareStats returns the share path's counters: messages delivered to a
// local member, dropped for want of one, and not decodable, and the NATS
// queue subscriptions held.
func (n *Node) ShareStats() (received, noMember, malformed uint64, subscriptions int64) {
	s := &n.share
	return s.Received.Load(), s.NoMember.Load(), s.Malformed.Load(), s.Subscribed.Load()
}

// queueName is the NATS queue group of the share group (group, filter) in
// this cluster: readable for ops while short, a hash when the filter is
// long (a SUB line must stay under NATS's max_control_line beside a
// 3072-byte subject).
func (n *Node) queueName(k groupKey) string {
	name := "duplex." + esc(n.cfg.Name) + ".share." + esc(k.group) + "." + EncodeTopic(k.filter)
	if len(name) <= 256 {
		return name
	}
	h := sha256.Sum256([]byte(k.group + "\x00" + k.filter))
	return "duplex." + esc(n.cfg.Name) + ".share.h." + hex.EncodeToString(h[:])
}

// ShareInterest implements broker.SharePeers: it counts the group and
// marks it for shareSubLoop when its count leaves or reaches zero. It
// never blocks on NATS.
func (n *Node) ShareInterest(group, filter string, add bool) {
	s := &n.share
	k := groupKey{group, filter}
	s.mu.Lock()
	s.init()
	c := s.count[k]
	if add {
		c++
	} else {
		c--
	}
	if c <= 0 {
		delete(s.count, k)
	} else {
		s.count[k] = c
	}
	if c == 0 || (c == 1 && add) {
		s.dirty[k] = struct{}{}
	}
	wake := s.wake
	s.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

// startShare opens the share connection with the node's options (opts,
// to url) minus NoEcho, and starts its loops. Called by Start once the
// main connection is up; on failure it closes that connection and the
// embedded server, and Start fails.
func (n *Node) startShare(url string, opts []nats.Option) error {
	s := &n.share
	s.mu.Lock()
	s.init()
	s.mu.Unlock()
	s.in = make(chan *nats.Msg, n.cfg.ReceiveQueue)
	redeclare := func(*nats.Conn) {
		s.mu.Lock()
		for k := range s.count {
			s.dirty[k] = struct{}{}
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	opts = append(slices.Clone(opts),
		nats.Name("duplex "+n.cfg.NodeID+" share"),
		func(o *nats.Options) error { o.NoEcho = false; return nil }, // the node's own members compete
		nats.ConnectHandler(redeclare),
		nats.ReconnectHandler(redeclare),
		nats.DisconnectErrHandler(nil))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		n.nc.Close()
		if n.srv != nil {
			n.srv.Shutdown()
		}
		return fmt.Errorf("cluster: connecting to NATS for share groups (%s): %w", url, err)
	}
	s.nc = nc
	n.wg.Add(2)
	go n.shareSubLoop()
	go n.shareReceiveLoop()
	return nil
}

// closeShare closes the share connection (Close, before waiting for the
// loops).
func (n *Node) closeShare() {
	if n.share.nc != nil {
		n.share.nc.Close()
	}
}

// shareSubLoop holds one queue subscription per subject of each group
// with local members, all into the one share receive channel.
func (n *Node) shareSubLoop() {
	defer n.wg.Done()
	s := &n.share
	held := map[groupKey][]*nats.Subscription{}
	var buf [5]string
	for {
		select {
		case <-s.wake:
		case <-n.done:
			return
		}
		s.mu.Lock()
		type change struct {
			k    groupKey
			want bool
		}
		changes := make([]change, 0, len(s.dirty))
		for k := range s.dirty {
			changes = append(changes, change{k, s.count[k] > 0})
		}
		clear(s.dirty)
		s.mu.Unlock()
		for _, ch := range changes {
			subs, has := held[ch.k]
			switch {
			case ch.want && !has:
				q := n.queueName(ch.k)
				s.mu.Lock()
				s.names[q] = ch.k
				s.mu.Unlock()
				// Retained publications travel on the retained subject,
				// or under it once JetStream keeps them (retained.go).
				subjects := append(n.subs.Filter(buf[:0], ch.k.filter), n.subs.Retained, n.subs.Retained+".>")
				for _, subj := range subjects {
					sub, err := s.nc.ChanQueueSubscribe(subj, q, s.in)
					if err != nil {
						n.cfg.Log.Warn("cluster: share group subscribe failed; retried on reconnect", "group", ch.k.group,
							"filter", ch.k.filter, "subject", subj, "err", err)
						continue
					}
					subs = append(subs, sub)
				}
				if len(subs) > 0 { // else a reconnect's redeclare tries again
					held[ch.k] = subs
					s.Subscribed.Add(int64(len(subs)))
				}
			case !ch.want && has:
				for _, sub := range subs {
					_ = sub.Unsubscribe()
				}
				delete(held, ch.k)
				s.Subscribed.Add(-int64(len(subs)))
				s.mu.Lock()
				delete(s.names, n.queueName(ch.k))
				s.mu.Unlock()
			}
		}
	}
}

// shareReceiveLoop hands what the cluster picked this node for to one
// local member of the group it came for. Each message arrives once per
// queue group (NATS picks one subscriber per queue name, whichever of
// the group's subjects matched), so nothing here is a copy, and the
// node's own messages are wanted.
func (n *Node) shareReceiveLoop() {
	defer n.wg.Done()
	s := &n.share
	sr, _ := n.router.(shareRouter)
	for {
		var nm *nats.Msg
		select {
		case nm = <-s.in:
		case <-n.done:
			return
		}
		if strings.HasPrefix(nm.Subject, n.subs.Retained+".") {
			nm.Subject = n.subs.Retained // the stream's subject: the topic is in the header
		}
		m, _, _, err := decodeMsg(n.subs, nm, time.Now())
		if err == nil {
			err = broker.ValidTopicName(m.Topic) // a foreign publisher (receiveLoop)
		}
		if err != nil {
			s.Malformed.Add(1)
			continue
		}
		s.mu.Lock()
		k, ok := s.names[nm.Sub.Queue]
		s.mu.Unlock()
		if !ok || sr == nil {
			s.NoMember.Add(1) // unsubscribed meanwhile
			continue
		}
		if err := sr.PublishToShare(k.group, k.filter, m); err != nil {
			s.NoMember.Add(1)
			continue
		}
		s.Received.Add(1)
	}
}
