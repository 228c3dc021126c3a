package broker

import (
	"strings"
	"sync"
)

// Index maps topic filters to subscriptions and answers "who matches this
// topic" (ARCHITECTURE §3.6). It is a map-per-level trie in the shape of
// nats-server's sublist/gsl, with MQTT 3.1.1 §4.7 semantics built in:
//
//   - empty levels are ordinary levels (§4.7.1.1);
//   - '+' matches exactly one level (§4.7.1.3);
//   - '#' matches the remaining zero or more levels, so "a/#" also matches
//     "a" (§4.7.1.2);
//   - a filter whose first level is a wildcard never matches a topic that
//     starts with '$' [MQTT-4.7.2-1].
//
// The zero value is an empty index ready to use. An Index must not be copied
// after first use.
//
// Locking: one sync.RWMutex guards the whole trie and every indexed
// Subscription's at.pos. It is a leaf lock: no method calls out of the
// package, into a Session or into a callback while holding it, so it may be
// taken while holding any other broker lock.
type Index struct {
	mu   sync.RWMutex
	root level
	n    int // number of indexed subscriptions
}

// level is one topic level of the trie: the literal children by token, and
// the single-level and multi-level wildcard children.
type level struct {
	lits map[string]*node
	plus *node // filter level "+"
	hash *node // filter level "#"; never has a next level [MQTT-4.7.1-2]
}

// node is the end of one filter level: the subscriptions whose filter ends
// here, and the level below it for longer filters.
type node struct {
	next *level
	subs []*Subscription // each sub's pos is its slot here
	// total counts the subscriptions at and below this node (the admin
	// API's topic tree reads it instead of walking the subtree).
	total int
}

// NewIndex returns an empty Index. It is the same as new(Index).
func NewIndex() *Index { return new(Index) }

// Len returns the number of subscriptions in x. It takes the read lock.
func (x *Index) Len() int {
	x.mu.RLock()
	n := x.n
	x.mu.RUnlock()
	return n
}

// Insert adds sub under sub.Filter. It takes the write lock.
//
// Preconditions: sub.Filter has passed ValidFilter (with any "$share/<group>/"
// prefix already stripped); sub.Filter does not change while sub is indexed;
// and sub is not already in this or any other Index, because Insert stores
// the slot in sub.at.pos. Inserting the same *Subscription twice is a caller bug;
// Insert detects it when it is cheap to (sub already sits at its recorded
// slot) and then does nothing, so the index stays consistent: it reports
// whether sub was added.
func (x *Index) Insert(sub *Subscription) bool {
	x.mu.Lock()
	defer x.mu.Unlock()

	var stack [16]*node
	path := stack[:0] // the nodes along the filter, for their totals
	l := &x.root
	rest := sub.Filter
	for {
		tok, tail, more := strings.Cut(rest, "/")
		n := l.child(tok)
		if n == nil {
			n = new(node)
			l.setChild(tok, n)
		}
		path = append(path, n)
		if !more {
			if sub.at.pos < len(n.subs) && n.subs[sub.at.pos] == sub {
				return false // already indexed here
			}
			sub.at.pos = len(n.subs)
			n.subs = append(n.subs, sub)
			x.n++
			for _, p := range path {
				p.total++
			}
			return true
		}
		if n.next == nil {
			n.next = new(level)
		}
		l = n.next
		rest = tail
	}
}

// Replace puts next in old's slot in one step under the write lock, so no
// Match sees both or neither (a session takeover moves its subscriptions
// this way). next must have old's Filter and not be indexed. It reports
// whether old was there; if not, nothing changes.
func (x *Index) Replace(old, next *Subscription) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	l := &x.root
	rest := old.Filter
	for {
		tok, tail, more := strings.Cut(rest, "/")
		n := l.child(tok)
		if n == nil {
			return false
		}
		if !more {
			i := old.at.pos
			if i < 0 || i >= len(n.subs) || n.subs[i] != old {
				return false
			}
			n.subs[i] = next
			next.at.pos = i
			return true
		}
		if n.next == nil {
			return false
		}
		l = n.next
		rest = tail
	}
}

// Remove deletes sub, which was added with Insert, and reports whether it was
// there. It takes the write lock. The delete is O(1) in the number of
// subscribers sharing the filter: sub's slot is filled with the node's last
// subscription, whose pos is updated. Nodes and levels left empty are pruned
// on the way back to the root (nats-server's pruneNode), so an index whose
// subscriptions have all been removed holds no memory besides the Index.
func (x *Index) Remove(sub *Subscription) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.root.remove(sub.Filter, sub) {
		return false
	}
	x.n--
	return true
}

// remove deletes sub from the subtree of l, where rest is what remains of
// sub's filter, and prunes the node it leaves empty. Caller holds x.mu for
// writing. The recursion depth is the number of filter levels.
func (l *level) remove(rest string, sub *Subscription) bool {
	tok, tail, more := strings.Cut(rest, "/")
	n := l.child(tok)
	if n == nil {
		return false
	}
	if more {
		if n.next == nil || !n.next.remove(tail, sub) {
			return false
		}
		n.total--
		if n.next.empty() {
			n.next = nil
		}
	} else {
		i := sub.at.pos
		if i < 0 || i >= len(n.subs) || n.subs[i] != sub {
			return false
		}
		last := len(n.subs) - 1
		moved := n.subs[last]
		n.subs[i] = moved
		moved.at.pos = i
		n.subs[last] = nil // drop the reference for the garbage collector
		n.subs = n.subs[:last]
		if last == 0 {
			n.subs = nil // release the backing array of a once-popular filter
		}
		n.total--
	}
	if len(n.subs) == 0 && n.next == nil {
		l.setChild(tok, nil)
	}
	return true
}

// Match appends to dst every subscription whose filter matches topic and
// returns the extended slice. It takes the read lock. topic must have passed
// ValidTopicName. Each matching subscription is appended exactly once, in no
// particular order; the caller must not modify the subscriptions' indexed
// fields.
//
// Match splits topic into a stack array, so when dst has enough capacity and
// topic has at most 32 levels it does not allocate. A caller keeps one dst
// buffer and passes dst[:0] on every publish (ARCHITECTURE §3.6).
func (x *Index) Match(topic string, dst []*Subscription) []*Subscription {
	var buf [32]string
	toks := buf[:0]
	for {
		i := strings.IndexByte(topic, '/')
		if i < 0 {
			toks = append(toks, topic)
			break
		}
		toks = append(toks, topic[:i])
		topic = topic[i+1:]
	}

	x.mu.RLock()
	defer x.mu.RUnlock()
	// [MQTT-4.7.2-1]: at the root, wildcards never match a topic that
	// starts with '$' (such as "$SYS/..."); only literal levels can.
	if t := toks[0]; len(t) > 0 && t[0] == '$' {
		if n := x.root.lits[t]; n != nil {
			dst = n.match(toks[1:], dst)
		}
		return dst
	}
	return x.root.match(toks, dst)
}

// match appends the subscriptions in the subtree of l that match toks, which
// holds at least one token. Caller holds x.mu.
func (l *level) match(toks []string, dst []*Subscription) []*Subscription {
	// §4.7.1.2: '#' matches this level and everything below it.
	if l.hash != nil {
		dst = append(dst, l.hash.subs...)
	}
	// §4.7.1.3: '+' matches exactly this one level, whatever it holds
	// (the empty level included).
	if l.plus != nil {
		dst = l.plus.match(toks[1:], dst)
	}
	// A lookup in a nil map yields nil.
	if n := l.lits[toks[0]]; n != nil {
		dst = n.match(toks[1:], dst)
	}
	return dst
}

// match appends the subscriptions at or below n that match rest, the topic
// levels after the one n matched. Caller holds x.mu.
func (n *node) match(rest []string, dst []*Subscription) []*Subscription {
	if len(rest) > 0 {
		if n.next == nil {
			return dst
		}
		return n.next.match(rest, dst)
	}
	// The topic ends at n: n's own subscribers match, and so does a '#'
	// right below n, because "a/#" matches "a" (§4.7.1.2).
	dst = append(dst, n.subs...)
	if n.next != nil && n.next.hash != nil {
		dst = append(dst, n.next.hash.subs...)
	}
	return dst
}

// child returns the node for filter level tok, or nil.
func (l *level) child(tok string) *node {
	switch tok {
	case "+":
		return l.plus
	case "#":
		return l.hash
	}
	return l.lits[tok]
}

// setChild sets the node for filter level tok; a nil n deletes it.
func (l *level) setChild(tok string, n *node) {
	switch tok {
	case "+":
		l.plus = n
	case "#":
		l.hash = n
	default:
		if n == nil {
			delete(l.lits, tok)
			if len(l.lits) == 0 {
				l.lits = nil
			}
			return
		}
		if l.lits == nil {
			l.lits = make(map[string]*node)
		}
		l.lits[tok] = n
	}
}

// empty reports whether l has no children.
func (l *level) empty() bool {
	return len(l.lits) == 0 && l.plus == nil && l.hash == nil
}
