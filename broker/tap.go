package broker

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Taps (the admin UI's Tail) see every message the router accepts. The
// router keeps them in a copy-on-write slice behind an atomic pointer, so
// with no tap a publish pays one atomic load; each tap costs a match and a
// non-blocking channel send, never a wait.

// TapQueuePrefix is the topic a queue message matches a tap's filter as:
// "$queue/" + the queue's name.
const TapQueuePrefix = "$queue/"

// MaxTapBuffer bounds a tap's channel.
const MaxTapBuffer = 1 << 16

// Tap is a live copy of the messages published on topics matching a
// filter, for the admin UI's Tail: it never slows a publisher (a full
// channel drops and counts). Close it when done.
//
// The messages are the router's own, shared with every delivery: a reader
// must not modify them.
type Tap struct {
	C <-chan *Message

	r       *Router
	filter  string // "" matches every message, queue messages included
	c       chan *Message
	dropped atomic.Uint64

	mu     sync.RWMutex // senders hold it for reading; Close for writing
	closed bool
}

// Tap starts a tap on filter (an MQTT topic filter; "" or "#" for every
// topic; queue messages match as "$queue/<name>") with a channel of buf
// messages. No tap costs Publish one atomic load.
//
// "" also matches queue messages and '$' topics; "#", like every filter
// starting with a wildcard, matches neither [MQTT-4.7.2-1]. buf is
// clamped to 1..MaxTapBuffer.
func (r *Router) Tap(filter string, buf int) (*Tap, error) {
	if filter != "" {
		if err := ValidFilter(filter); err != nil {
			return nil, err
		}
	}
	c := make(chan *Message, max(1, min(buf, MaxTapBuffer)))
	t := &Tap{C: c, r: r, filter: filter, c: c}
	r.tapMu.Lock()
	var next []*Tap
	if cur := r.taps.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, t)
	r.taps.Store(&next)
	r.tapMu.Unlock()
	return t, nil
}

// Dropped counts the messages the tap lost to a full channel.
func (t *Tap) Dropped() uint64 { return t.dropped.Load() }

// Close ends the tap and closes C. Idempotent.
func (t *Tap) Close() {
	r := t.r
	r.tapMu.Lock()
	if cur := r.taps.Load(); cur != nil {
		next := slices.DeleteFunc(slices.Clone(*cur), func(x *Tap) bool { return x == t })
		if len(next) == 0 {
			r.taps.Store(nil)
		} else {
			r.taps.Store(&next)
		}
	}
	r.tapMu.Unlock()
	// A publisher that loaded the old slice may still be sending: the
	// write lock waits for it, and later senders see closed.
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.c)
	}
	t.mu.Unlock()
}

// tapMessage offers m to the taps; one atomic load when there are none.
func (r *Router) tapMessage(m *Message) {
	if ts := r.taps.Load(); ts != nil {
		sendTaps(*ts, m)
	}
}

func sendTaps(ts []*Tap, m *Message) {
	for _, t := range ts {
		if !t.matches(m) {
			continue
		}
		t.mu.RLock()
		if !t.closed {
			select {
			case t.c <- m:
			default:
				t.dropped.Add(1)
			}
		}
		t.mu.RUnlock()
	}
}

// matches reports whether m's topic, or "$queue/<name>" for a queue
// message, matches the tap's filter, without building that topic.
func (t *Tap) matches(m *Message) bool {
	switch {
	case t.filter == "":
		return true
	case m.Queue == "":
		return matchTopic(t.filter, m.Topic)
	}
	rest, ok := strings.CutPrefix(t.filter, TapQueuePrefix)
	return ok && matchLevels(rest, m.Queue)
}

// matchTopic is MatchTopic without allocating (the Tail runs it on every
// message); TestTapMatchTopic checks that they agree.
func matchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false // [MQTT-4.7.2-1]
	}
	return matchLevels(filter, topic)
}

// matchLevels matches filter's levels against topic's (§4.7.1).
func matchLevels(filter, topic string) bool {
	for ended := false; ; {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true // this level and below, the parent included
		}
		if ended {
			return false
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore {
			return !tmore
		}
		filter, topic, ended = frest, trest, !tmore
	}
}
