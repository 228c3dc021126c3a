package cluster

import (
	"context"
	"sync"

	"github.com/duplexmq/duplex/broker"
)

// One copy for overlapping subscriptions of a cluster-durable session
// (broker.OverlapPeers, broker/peers_overlap.go): the broker asks where
// each subscription's consumer starts, to know which of them hold a
// message.

var _ broker.OverlapPeers = (*Node)(nil)

// consumerStarts caches the consumers' start sequences by consumer name:
// those the session's record names (SaveSession writes them as it makes
// the consumers; an attach reads them, LoadSession), else asked of the
// consumer (a record written before the starts were kept). A consumer's
// start never changes while it exists; one removed and made again under
// the same name (a subscription removed and made again) is written anew.
type consumerStarts struct {
	mu sync.Mutex
	m  map[string]uint64
}

// ConsumerStart implements broker.OverlapPeers: the consumer's
// OptStartSeq (makeConsumer starts it after the stream's last message),
// from the cache, or asked of the consumer.
func (n *Node) ConsumerStart(key, subKey string) (uint64, bool) {
	cs := &n.sess.starts
	name := consumerName(key, subKey)
	cs.mu.Lock()
	start, ok := cs.m[name]
	cs.mu.Unlock()
	if ok {
		return start, true
	}
	if !n.dur.on.Load() {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
	defer cancel()
	c, err := n.dur.st.Consumer(ctx, name)
	if err != nil {
		return 0, false
	}
	start = c.CachedInfo().Config.OptStartSeq
	cs.mu.Lock()
	if cs.m == nil {
		cs.m = map[string]uint64{}
	}
	cs.m[name] = start
	cs.mu.Unlock()
	return start, true
}

// learnStarts caches the starts a session's stored record names (an
// attach reads it), and forgets those of its other consumers.
func (n *Node) learnStarts(key string, sr *storedRecord) {
	cs := &n.sess.starts
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for name := range durableSubs(key, &sr.SessionRecord) {
		if st, ok := sr.Starts[name]; ok {
			if cs.m == nil {
				cs.m = map[string]uint64{}
			}
			cs.m[name] = st
		} else {
			delete(cs.m, name)
		}
	}
}

// forgetStarts drops the cached starts of the consumers of the session
// key's record rec.
func (n *Node) forgetStarts(key string, rec *broker.SessionRecord) {
	cs := &n.sess.starts
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for name := range durableSubs(key, rec) {
		delete(cs.m, name)
	}
}
