package broker

import (
	"strings"
	"sync"
)

// Retained holds the last retained message of each topic (MQTT 3.1.1
// §3.3.1.3) in a topic trie, so a new subscription's filter can be walked
// to the matching messages without scanning every topic (the reverse of
// Index). A message with an empty payload clears its topic
// [MQTT-3.3.1-10]. The zero value is ready to use.
//
// Locking: one RWMutex, a leaf lock like Index's.
type Retained struct {
	mu   sync.RWMutex
	root rnode
	n    int
}

// rnode is one topic level: its children by token and the message retained
// on the topic that ends here.
type rnode struct {
	kids map[string]*rnode
	msg  *Message
}

// Len reports how many topics hold a retained message.
func (t *Retained) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Set stores m as its topic's retained message, or clears the topic when m
// has an empty payload. It refuses a new topic past max (0: no limit) and
// reports whether m was applied.
func (t *Retained) Set(m *Message, max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(m.Payload) == 0 {
		t.clear(&t.root, m.Topic)
		return true
	}
	if max > 0 && t.n >= max && t.lookup(m.Topic) == nil {
		return false // a new topic past the limit; replacing one is fine
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
	}
	n.msg = m
	return true
}

// lookup returns the message retained on topic, or nil. Caller holds mu.
func (t *Retained) lookup(topic string) *Message {
	n := &t.root
	for rest := topic; ; {
		tok, more := cut(rest)
		if n = n.kids[tok]; n == nil {
			return nil
		}
		if !more {
			return n.msg
		}
		rest = rest[len(tok)+1:]
	}
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
		child.msg = nil
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
