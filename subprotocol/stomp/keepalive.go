package stomp

import (
	"container/heap"
	"sync"
	"time"
)

// keepalives runs every STOMP connection's keep-alive tick (heart-beats,
// STOMP 1.2 §Heart-beating, or WebSocket pings) from one timer: a min-heap
// of due times, so an idle connection keeps a heap entry (16 B) instead of
// a time.AfterFunc timer and its closure (about 190 B). Each due tick runs
// on a goroutine of its own, as an AfterFunc's would, and the connection
// is scheduled again when its tick ends, so one connection's ticks never
// overlap.
var keepalives kaHeap

// kaEpoch is the base of the heap's monotonic due times.
var kaEpoch = time.Now()

func kaNow() int64 { return int64(time.Since(kaEpoch)) }

type kaEntry struct {
	due int64 // kaNow() units
	c   *conn
}

// kaHeap is a container/heap of connections by due time. conn.kaPos is
// the connection's index in h plus one (0: not scheduled; kaStopped: its
// write side ended, never again); mu guards it with h and armed.
type kaHeap struct {
	mu    sync.Mutex
	h     []kaEntry
	timer *time.Timer
	armed int64 // due time the timer is set for; 0: not set
}

const kaStopped = -1

func (k *kaHeap) Len() int           { return len(k.h) }
func (k *kaHeap) Less(i, j int) bool { return k.h[i].due < k.h[j].due }
func (k *kaHeap) Swap(i, j int) {
	k.h[i], k.h[j] = k.h[j], k.h[i]
	k.h[i].c.kaPos = int32(i + 1)
	k.h[j].c.kaPos = int32(j + 1)
}
func (k *kaHeap) Push(x any) {
	e := x.(kaEntry)
	e.c.kaPos = int32(len(k.h) + 1)
	k.h = append(k.h, e)
}
func (k *kaHeap) Pop() any {
	last := len(k.h) - 1
	e := k.h[last]
	k.h[last] = kaEntry{}
	k.h = k.h[:last]
	e.c.kaPos = 0
	if cap(k.h) > 64 && len(k.h) < cap(k.h)/4 {
		k.h = append([]kaEntry(nil), k.h...) // give back what a crowd left
	}
	return e
}

// schedule runs c's keep-alive tick after d, unless c's write side ended.
func (k *kaHeap) schedule(c *conn, d time.Duration) {
	due := kaNow() + int64(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.kaPos != 0 {
		return // stopped (or scheduled already)
	}
	heap.Push(k, kaEntry{due: due, c: c})
	if k.armed != 0 && k.armed <= due {
		return // the timer fires first; fire arms it for what is next
	}
	k.armed = due
	if k.timer == nil {
		k.timer = time.AfterFunc(d, k.fire)
	} else {
		k.timer.Reset(d)
	}
}

// stop takes c out for good (its write side ended).
func (k *kaHeap) stop(c *conn) {
	k.mu.Lock()
	if c.kaPos > 0 {
		heap.Remove(k, int(c.kaPos-1))
	}
	c.kaPos = kaStopped
	k.mu.Unlock()
}

// fire starts the ticks that are due and arms the timer for the next.
func (k *kaHeap) fire() {
	var due []*conn
	k.mu.Lock()
	now := kaNow()
	for len(k.h) > 0 && k.h[0].due <= now {
		due = append(due, heap.Pop(k).(kaEntry).c)
	}
	k.armed = 0
	if len(k.h) > 0 {
		k.armed = k.h[0].due
		k.timer.Reset(time.Duration(k.armed - now))
	}
	k.mu.Unlock()
	for _, c := range due {
		go c.keepaliveTick()
	}
}

// startKeepalive schedules the tick that marks heart-beats (server→client
// interval) or, when the client sends no heart-beats, WebSocket pings due.
// No goroutine exists between ticks.
func (c *conn) startKeepalive() {
	if c.readTimeout == c.cfg.IdleTimeout { // the client sends no heart-beats: keep alive with pings
		c.pingEvery = c.cfg.IdleTimeout * 9 / 10
	}
	tick := c.keepaliveEvery()
	if tick == 0 {
		return
	}
	c.lastWrite.Store(time.Now().UnixNano())
	c.lastPing = kaNow()
	keepalives.schedule(c, tick)
}

// keepaliveEvery is the tick: the heart-beat interval or the ping
// interval, whichever is shorter and set.
func (c *conn) keepaliveEvery() time.Duration {
	tick := c.sendInterval
	if tick == 0 || (c.pingEvery > 0 && c.pingEvery < tick) {
		tick = c.pingEvery
	}
	return tick
}

// keepaliveTick marks a heart-beat or a ping due and gets it written,
// then schedules the next tick. A closed session's ticks end.
func (c *conn) keepaliveTick() {
	if c.sess.Closed() {
		return
	}
	now := time.Now()
	due := false
	if c.sendInterval > 0 && now.Sub(time.Unix(0, c.lastWrite.Load())) >= c.sendInterval*9/10 {
		c.hbDue.Store(true)
		due = true
	}
	if mono := kaNow(); c.pingEvery > 0 && time.Duration(mono-c.lastPing) >= c.pingEvery*9/10 {
		c.lastPing = mono
		c.pingDue.Store(true)
		due = true
	}
	if due && !c.wr.TryInline() {
		c.sess.Outbox.Signal() // the running write goroutine sends it
	}
	keepalives.schedule(c, c.keepaliveEvery())
}
