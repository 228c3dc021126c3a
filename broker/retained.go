package broker

import (
	"strings"
	"sync"
	"time"
)

// Retained holds the last retained message of each topic (MQTT 3.1.1
// §3.3.1.3) in a topic trie, so a new subscription's filter can be walked
// to the matching messages without scanning every topic (the reverse of
// Index). A message with an empty payload clears its topic
// [MQTT-3.3.1-10]. The zero value is ready to use.
//
// Locking: one RWMutex, a leaf lock like Index's.
type Retained struct {
	mu     sync.RWMutex
	root   rnode
	n      int
	bytes  int64                   // payload bytes of all retained messages
	owners map[string]*retainedUse // by owner key ("" is not counted here)
	// sys counts the broker's own $SYS values (owner sysRetainOwner): they
	// are outside every quota, and the quotas' totals leave them out.
	sys   retainedUse
	swept time.Time // last sweepExpired
}

// retainedUse is what one owner has retained.
type retainedUse struct {
	n     int
	bytes int64
}

// sysRetainOwner is the owner of the broker's own $SYS retained values
// (Router.retain): a fixed, small set the broker bounds itself.
const sysRetainOwner = "\x00sys"

// retainLimits are the quotas a retained message is checked against; a
// value <= 0 is no limit.
type retainLimits struct {
	total, perOwner      int
	bytes, bytesPerOwner int64
}

// rnode is one topic level: its children by token and the message retained
// on the topic that ends here, with the owner it counts against.
type rnode struct {
	kids  map[string]*rnode
	msg   *Message
	owner string
	at    time.Time // when msg was stored (zero: restored from the store)
}

// Len reports how many topics hold a retained message.
func (t *Retained) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Bytes reports the payload bytes of all retained messages.
func (t *Retained) Bytes() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.bytes
}

// Usage reports the retained messages and payload bytes counted against
// owner.
func (t *Retained) Usage(owner string) (n int, bytes int64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if u := t.owners[owner]; u != nil {
		return u.n, u.bytes
	}
	return 0, 0
}

// Set stores m as its topic's retained message, or clears the topic when m
// has an empty payload. It refuses a new topic past max (0: no limit) and
// reports whether m was applied.
func (t *Retained) Set(m *Message, max int) bool {
	why, _ := t.put(m, "", retainLimits{total: max})
	return why == ""
}

// put is Set with an owner and quotas: m counts against owner ("" counts
// only in the totals). It returns "" when m was applied, or which limit
// refused it. A refused message that would have replaced one clears the
// topic (cleared), so a later subscriber never gets a value older than the
// last one published. A change that does not raise a usage past its limit
// is never refused (a smaller replacement, even by an owner over its
// quota after the limits were lowered).
func (t *Retained) put(m *Message, owner string, lim retainLimits) (why string, cleared bool) {
	return t.putAt(m, owner, lim, time.Now())
}

// putAt is put with the time the message is stored at (zero: unknown, for
// one restored from the store).
func (t *Retained) putAt(m *Message, owner string, lim retainLimits, at time.Time) (why string, cleared bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(m.Payload) == 0 {
		t.clear(&t.root, m.Topic)
		return "", false
	}
	old, oldOwner := t.lookupNode(m.Topic)
	why = t.refuse(old, oldOwner, int64(len(m.Payload)), owner, lim)
	if why != "" && t.sweepExpired(time.Now()) {
		// Expired messages held the quota: they are gone now.
		old, oldOwner = t.lookupNode(m.Topic)
		why = t.refuse(old, oldOwner, int64(len(m.Payload)), owner, lim)
	}
	if why != "" {
		if old != nil {
			t.clear(&t.root, m.Topic)
			cleared = true
		}
		return why, cleared
	}
	n := &t.root
	rest := m.Topic
	for {
		tok, more := cut(rest)
		child := n.kids[tok]
		if child == nil {
			if n.kids == nil {
				n.kids = make(map[string]*rnode)
			}
			child = &rnode{}
			n.kids[tok] = child
		}
		n = child
		if !more {
			break
		}
		rest = rest[len(tok)+1:]
	}
	if n.msg == nil {
		t.n++
	} else {
		t.uncount(n.owner, int64(len(n.msg.Payload)))
	}
	n.msg, n.owner, n.at = m, owner, at
	t.count(owner, int64(len(m.Payload)))
	return "", false
}

// retainedSweepEvery bounds how often a refusal sweeps the trie for expired
// messages (sweepExpired).
const retainedSweepEvery = 10 * time.Second

// sweepExpired removes expired messages (they count against the quotas
// until removed, though no subscriber gets them) and reports whether it
// removed any. It walks the whole trie, so it runs at most once per
// retainedSweepEvery: only when a quota refuses a message. Caller holds mu.
func (t *Retained) sweepExpired(now time.Time) bool {
	if !t.swept.IsZero() && now.Sub(t.swept) < retainedSweepEvery {
		return false
	}
	t.swept = now
	before := t.n
	t.sweep(&t.root, now)
	return t.n < before
}

// sweep removes expired messages at or below n and prunes empty nodes.
func (t *Retained) sweep(n *rnode, now time.Time) {
	for tok, c := range n.kids {
		t.sweep(c, now)
		if c.msg != nil && !c.msg.Expires.IsZero() && now.After(c.msg.Expires) {
			t.uncount(c.owner, int64(len(c.msg.Payload)))
			c.msg, c.owner = nil, ""
			t.n--
		}
		if c.msg == nil && len(c.kids) == 0 {
			delete(n.kids, tok)
		}
	}
}

// refuse reports which limit a message of size bytes for owner breaks when
// it replaces old (owned by oldOwner; nil for a new topic), or "".
func (t *Retained) refuse(old *Message, oldOwner string, size int64, owner string, lim retainLimits) string {
	var oldSize int64
	if old != nil {
		oldSize = int64(len(old.Payload))
	}
	if owner == sysRetainOwner {
		return ""
	}
	n, bytes := t.n-t.sys.n, t.bytes-t.sys.bytes
	if old == nil && lim.total > 0 && n >= lim.total {
		return "max_retained"
	}
	if nb := bytes - oldSize + size; lim.bytes > 0 && nb > lim.bytes && nb > bytes {
		return "max_retained_bytes"
	}
	if owner == "" {
		return ""
	}
	var u retainedUse
	if p := t.owners[owner]; p != nil {
		u = *p
	}
	nn, nb := u.n+1, u.bytes+size
	if old != nil && oldOwner == owner {
		nn, nb = nn-1, nb-oldSize
	}
	if lim.perOwner > 0 && nn > lim.perOwner && nn > u.n {
		return "max_retained_per_user"
	}
	if lim.bytesPerOwner > 0 && nb > lim.bytesPerOwner && nb > u.bytes {
		return "max_retained_bytes_per_user"
	}
	return ""
}

// count and uncount keep the totals and owner usage. Caller holds mu.
func (t *Retained) count(owner string, size int64) {
	t.bytes += size
	if owner == sysRetainOwner {
		t.sys.n++
		t.sys.bytes += size
		return
	}
	if owner == "" {
		return
	}
	if t.owners == nil {
		t.owners = make(map[string]*retainedUse)
	}
	u := t.owners[owner]
	if u == nil {
		u = &retainedUse{}
		t.owners[owner] = u
	}
	u.n++
	u.bytes += size
}

func (t *Retained) uncount(owner string, size int64) {
	t.bytes -= size
	if owner == sysRetainOwner {
		t.sys.n--
		t.sys.bytes -= size
		return
	}
	if u := t.owners[owner]; u != nil {
		u.n--
		u.bytes -= size
		if u.n <= 0 {
			delete(t.owners, owner)
		}
	}
}

// lookupNode returns the message retained on topic and its owner. Caller
// holds mu.
func (t *Retained) lookupNode(topic string) (*Message, string) {
	n := &t.root
	for rest := topic; ; {
		tok, more := cut(rest)
		if n = n.kids[tok]; n == nil {
			return nil, ""
		}
		if !more {
			return n.msg, n.owner
		}
		rest = rest[len(tok)+1:]
	}
}

// remove clears topic's retained message and reports whether there was one.
func (t *Retained) remove(topic string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, _ := t.lookupNode(topic); m == nil {
		return false
	}
	t.clear(&t.root, topic)
	return true
}

// clear removes the message on topic and prunes empty nodes. Caller holds mu.
func (t *Retained) clear(n *rnode, rest string) bool {
	tok, more := cut(rest)
	child := n.kids[tok]
	if child == nil {
		return false
	}
	if more {
		t.clear(child, rest[len(tok)+1:])
	} else if child.msg != nil {
		t.uncount(child.owner, int64(len(child.msg.Payload)))
		child.msg, child.owner = nil, ""
		t.n--
	}
	if child.msg == nil && len(child.kids) == 0 {
		delete(n.kids, tok)
	}
	return true
}

// Match appends the retained messages whose topics match filter (MQTT
// wildcards; a leading wildcard never matches a '$' topic [MQTT-4.7.2-1])
// to dst. Expired messages are skipped.
func (t *Retained) Match(filter string, dst []*Message) []*Message {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.root.match(filter, true, dst)
}

func (n *rnode) match(filter string, root bool, dst []*Message) []*Message {
	tok, more := cut(filter)
	switch tok {
	case "#": // this level and everything below, the parent included [MQTT-4.7.1-2]
		if !root && n.msg != nil {
			dst = appendLive(dst, n.msg)
		}
		for k, c := range n.kids {
			if root && strings.HasPrefix(k, "$") {
				continue
			}
			dst = c.all(dst)
		}
	case "+":
		for k, c := range n.kids {
			if root && strings.HasPrefix(k, "$") {
				continue
			}
			dst = c.step(filter, more, len(tok), dst)
		}
	default:
		if c := n.kids[tok]; c != nil {
			dst = c.step(filter, more, len(tok), dst)
		}
	}
	return dst
}

// step continues a match below n after a filter token of length l.
func (n *rnode) step(filter string, more bool, l int, dst []*Message) []*Message {
	if !more {
		if n.msg != nil {
			dst = appendLive(dst, n.msg)
		}
		return dst
	}
	return n.match(filter[l+1:], false, dst)
}

// all appends every message at or below n.
func (n *rnode) all(dst []*Message) []*Message {
	if n.msg != nil {
		dst = appendLive(dst, n.msg)
	}
	for _, c := range n.kids {
		dst = c.all(dst)
	}
	return dst
}

func appendLive(dst []*Message, m *Message) []*Message {
	if m.Expired() {
		return dst
	}
	return append(dst, m)
}

// cut splits the first level off a topic or filter.
func cut(s string) (tok string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], true
	}
	return s, false
}
