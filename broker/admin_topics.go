package broker

import (
	"bytes"
	"strings"
	"time"
)

// The subscription tree and retained messages for the admin API
// (admin.go has the types).

// TopicTree returns the level below prefix ("" for the root) of the
// subscription tree: one node per distinct next level, in name order, at
// most limit of them after cursor (a level name).
//
// The tree is the Index's: a share group counts once (its entry in the
// index) and so does a durable subscription, whatever their members;
// queue consumers are not in it. The empty level (a filter such as "/a")
// is the first name; as a cursor it is "\x00". Cost: one level's names
// under the index's read lock (the index keeps each node's total), with
// O(limit) memory.
func (r *Router) TopicTree(prefix, cursor string, limit int) (nodes []TopicNode, next string) {
	return r.idx.tree(prefix, cursor, limit)
}

func (x *Index) tree(prefix, cursor string, limit int) (nodes []TopicNode, next string) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l := &x.root
	for rest, more := prefix, prefix != ""; more; {
		var tok string
		tok, rest, more = strings.Cut(rest, "/")
		n := l.child(tok)
		if n == nil || n.next == nil {
			return nil, ""
		}
		l = n.next
	}
	// The names are the keys (no string is made); the empty name is
	// offered on the first page only, and as a cursor it is "\x00",
	// before every other name (none holds a NUL).
	p := newPager("", limit, func(e keyed[*node]) string { return e.key })
	offer := func(tok string, n *node) {
		if n == nil || (cursor != "" && tok <= cursor) {
			return
		}
		if w, full := p.worst(); full && tok >= w.key {
			return
		}
		p.add(keyed[*node]{tok, n})
	}
	for tok, n := range l.lits {
		offer(tok, n)
	}
	offer("+", l.plus)
	offer("#", l.hash)
	more := len(p.h.items) > p.limit
	items, next := p.page()
	if more && next == "" {
		next = "\x00" // the page ends with the empty name
	}
	nodes = make([]TopicNode, len(items))
	for i, e := range items {
		path := e.key
		if prefix != "" {
			path = prefix + "/" + path
		}
		nodes[i] = TopicNode{Path: path, Subscriptions: len(e.v.subs), Total: e.v.total, Children: e.v.children()}
	}
	return nodes, next
}

// children counts the distinct levels below n. Caller holds the lock.
func (n *node) children() int {
	l := n.next
	if l == nil {
		return 0
	}
	c := len(l.lits)
	if l.plus != nil {
		c++
	}
	if l.hash != nil {
		c++
	}
	return c
}

// RetainedPage lists retained messages in topic order after cursor whose
// topic starts with prefix. Expired messages are left out.
//
// Cost: a walk of the retained trie under its read lock that skips the
// subtrees outside prefix, at or before cursor, or past a full page;
// O(limit) memory. The cursor is the last topic of the page.
func (r *Router) RetainedPage(cursor string, limit int, prefix string) (page []RetainedInfo, next string) {
	p := newPager(cursor, limit, func(e keyed[*rnode]) string { return e.key })
	w := retainedWalk{p: p, prefix: []byte(prefix), cursor: cursor, cursorB: []byte(cursor), now: time.Now()}
	t := &r.retained
	t.mu.RLock()
	buf := make([]byte, 0, 256)
	for tok, c := range t.root.kids {
		buf = append(buf[:0], tok...)
		w.walk(buf, c)
	}
	// Copy under the lock: put replaces a node's message in place.
	items, next := p.page()
	page = make([]RetainedInfo, len(items))
	for i, e := range items {
		m := e.v.msg
		n := min(len(m.Payload), RetainedPreviewBytes)
		page[i] = RetainedInfo{
			Topic: e.key, Size: len(m.Payload), QoS: m.QoS, ContentType: m.ContentType,
			StoredAt: e.v.at, Expires: m.Expires, Preview: bytes.Clone(m.Payload[:n]),
		}
	}
	t.mu.RUnlock()
	return page, next
}

type retainedWalk struct {
	p               *pager[keyed[*rnode]]
	prefix, cursorB []byte
	cursor          string
	now             time.Time
}

// walk offers n (topic path) and its subtree, in which every topic
// starts with path + "/". Only a topic that enters the page's heap gets
// a string.
func (w *retainedWalk) walk(path []byte, n *rnode) {
	switch {
	case len(path) >= len(w.prefix) && !bytes.HasPrefix(path, w.prefix):
		return // nothing below matches prefix
	case len(path) < len(w.prefix) && !bytes.HasPrefix(w.prefix, path):
		return
	case bytes.Compare(path, w.cursorB) < 0 && !bytes.HasPrefix(w.cursorB, path):
		return // all of it sorts before the cursor
	}
	if worst, full := w.p.worst(); full && string(path) >= worst.key {
		return // past a full page, and so is everything below
	}
	if n.msg != nil && bytes.Compare(path, w.cursorB) > 0 && bytes.HasPrefix(path, w.prefix) && !expiredAt(n.msg, w.now) {
		w.p.add(keyed[*rnode]{string(path), n})
	}
	for tok, c := range n.kids {
		w.walk(append(append(path, '/'), tok...), c)
	}
}

func expiredAt(m *Message, now time.Time) bool {
	return !m.Expires.IsZero() && now.After(m.Expires)
}
