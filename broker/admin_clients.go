package broker

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Clients and sessions for the admin API (admin.go has the types).

// ClientPage returns up to limit sessions (connected, and persistent ones
// kept offline) in sort order after cursor, whose id, client id, user or
// remote address contains q, and the next page's cursor ("" on the last).
// sort is one of the SortBy constants, optionally prefixed with "-"
// (descending); "" is SortByID. An unknown sort key is an error. online:
// 1 only connected, -1 only offline, 0 both; persistentOnly keeps only
// persistent sessions (the Sessions page).
//
// The cursor is opaque: for SortByID it is the last id, as in
// SessionPage; otherwise a sort key (clientSort), and one that does not
// fit the sort order is an error. Cost: SessionPage's; a sort key string
// is made only for a session that goes into the page's heap, and sorting
// by queued reads each outbox under the router's read lock (doc.go).
func (r *Router) ClientPage(cursor string, limit int, q, sort string, online int, persistentOnly bool) (page []ClientInfo, next string, err error) {
	cs, err := clientSortOf(sort)
	if err != nil {
		return nil, "", err
	}
	after, err := cs.parse(cursor)
	if err != nil {
		return nil, "", err
	}
	p := newPager(cursor, limit, func(e clientEntry) string { return e.key })
	r.mu.RLock()
	for id, s := range r.sessions {
		if online != 0 && (online > 0) == s.Closed() {
			continue
		}
		if persistentOnly && s.Expiry() == 0 {
			continue
		}
		if q != "" && !clientMatches(s, q) {
			continue
		}
		e := clientEntry{s: s, id: string(id)}
		if cs.num != nil {
			if e.n = cs.num(s); cs.desc {
				e.n = ^e.n
			}
		}
		if cursor != "" && !cs.before(after, e) {
			continue
		}
		if w, full := p.worst(); full && !cs.before(e, w) {
			continue
		}
		e.key = cs.key(e)
		p.add(e)
	}
	r.mu.RUnlock()
	items, next := p.page()
	page = make([]ClientInfo, len(items))
	for i, e := range items {
		page[i] = r.clientInfo(e.s)
	}
	return page, next, nil
}

// keyed is a pager item with its sort key computed once.
type keyed[T any] struct {
	key string
	v   T
}

func clientMatches(s *Session, q string) bool {
	return strings.Contains(string(s.ID), q) || strings.Contains(s.ClientID, q) ||
		strings.Contains(userOf(s), q) || strings.Contains(s.RemoteAddr, q)
}

// clientEntry is a session in ClientPage's heap: its sort value (n, bit
// inverted when descending; 0 for the id sorts) and id, and the key
// string they make.
type clientEntry struct {
	key string
	n   uint64
	id  string
	s   *Session
}

// clientSort is a ClientPage order. Keys are strings whose byte order is
// the sort order, unique by ending in the id: for SortByID the id; for
// "-id" the hex of the id's inverted bytes ended by '~' (a longer id
// sorts before its prefix); for a number 20 zero-padded digits, a NUL and
// the id. before compares entries in the same order without the strings,
// so most sessions never get one.
type clientSort struct {
	desc bool
	num  func(*Session) uint64 // nil: by id
}

func clientSortOf(by string) (clientSort, error) {
	cs := clientSort{desc: strings.HasPrefix(by, "-")}
	switch strings.TrimPrefix(by, "-") {
	case "", SortByID:
	case SortByConnectedAt:
		cs.num = func(s *Session) uint64 {
			if s.ConnectedAt.IsZero() {
				return 0
			}
			return uint64(max(0, s.ConnectedAt.UnixNano()))
		}
	case SortByMsgsIn:
		cs.num = func(s *Session) uint64 { return s.msgsIn.Load() }
	case SortByMsgsOut:
		cs.num = func(s *Session) uint64 { return s.msgsOut.Load() }
	case SortByQueued:
		cs.num = func(s *Session) uint64 { n, _ := s.Outbox.Pending(); return uint64(n) }
	case SortByBytesIn:
		cs.num = func(s *Session) uint64 { return s.bytesIn.Load() }
	case SortByBytesOut:
		cs.num = func(s *Session) uint64 { return s.bytesOut.Load() }
	default:
		return cs, fmt.Errorf("unknown sort key %q", by)
	}
	return cs, nil
}

// before reports whether a sorts before b.
func (cs clientSort) before(a, b clientEntry) bool {
	switch {
	case cs.num == nil && cs.desc:
		return a.id > b.id
	case a.n != b.n:
		return a.n < b.n
	}
	return a.id < b.id
}

func (cs clientSort) key(e clientEntry) string {
	switch {
	case cs.num != nil:
		b := make([]byte, 0, 21+len(e.id))
		for range 20 - digits(e.n) {
			b = append(b, '0')
		}
		b = strconv.AppendUint(b, e.n, 10)
		b = append(b, 0)
		return string(append(b, e.id...))
	case cs.desc:
		const hexDigits = "0123456789abcdef"
		b := make([]byte, 0, 2*len(e.id)+1)
		for i := 0; i < len(e.id); i++ {
			c := ^e.id[i]
			b = append(b, hexDigits[c>>4], hexDigits[c&15])
		}
		return string(append(b, '~'))
	}
	return e.id
}

var errSortCursor = errors.New("cursor does not fit this sort order")

// parse reads a cursor made by key back into an entry.
func (cs clientSort) parse(cursor string) (clientEntry, error) {
	e := clientEntry{key: cursor}
	bad := errSortCursor
	switch {
	case cursor == "" || (cs.num == nil && !cs.desc):
		e.id = cursor
	case cs.num != nil:
		if len(cursor) < 21 || cursor[20] != 0 {
			return e, bad
		}
		n, err := strconv.ParseUint(cursor[:20], 10, 64)
		if err != nil {
			return e, bad
		}
		e.n, e.id = n, cursor[21:]
	default:
		h, ok := strings.CutSuffix(cursor, "~")
		b, err := hex.DecodeString(h)
		if !ok || err != nil {
			return e, bad
		}
		for i := range b {
			b[i] = ^b[i]
		}
		e.id = string(b)
	}
	return e, nil
}

func digits(n uint64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// clientInfo copies s's state for the admin API.
func (r *Router) clientInfo(s *Session) ClientInfo {
	ci := ClientInfo{
		SessionInfo: s.Info(),
		ClientID:    s.AuthClientID(),
		KeepAlive:   s.KeepAlive,
		Inflight:    int(s.inflight.Load()),
		BytesIn:     s.bytesIn.Load(),
		BytesOut:    s.bytesOut.Load(),
		Slow:        SlowOK,
	}
	if ci.Online {
		ci.Transport = s.Transport
	}
	ci.Queued, ci.QueuedBytes = s.Outbox.Pending()
	switch {
	case s.Reason() == CloseSlowConsumer:
		ci.Slow = SlowClosed
	case ci.Queued > 0 && (2*ci.Queued >= r.cfg.MaxPendingMsgs || 2*ci.QueuedBytes >= r.cfg.MaxPendingBytes):
		ci.Slow = SlowBacklog
	}
	if d := s.Expiry(); d != 0 {
		ci.Persistent, ci.Expiry = true, d
		if s.p != nil {
			at, offline := s.p.offlineInfo()
			if !ci.Online && d > 0 {
				ci.ExpiresAt = at
			}
			ci.Backlog = int64(offline) + s.storedMsgs()
		}
	}
	return ci
}

// Client describes one session and its subscriptions, and reports
// whether it exists.
func (r *Router) Client(id SessionID) (ClientInfo, []SubscriptionInfo, bool) {
	r.mu.RLock()
	s := r.sessions[id]
	r.mu.RUnlock()
	if s == nil {
		return ClientInfo{}, nil, false
	}
	s.mu.Lock()
	subs := make([]*Subscription, 0, s.subs.len())
	for _, sub := range s.subs.all() {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	sort.Slice(subs, func(i, j int) bool { return subs[i].Key < subs[j].Key })
	infos := make([]SubscriptionInfo, len(subs))
	for i, sub := range subs {
		infos[i] = r.subscriptionInfo(sub)
	}
	return r.clientInfo(s), infos, true
}

// connKey is a ConnCounts group.
type connKey struct{ protocol, version, transport string }

// countConn counts s as connected; Open calls it once s is in the
// sessions map, before anyone else can reach s to close it.
func (r *Router) countConn(s *Session) {
	s.live.Store(true)
	r.connMu.Lock()
	r.conns[connKey{s.Protocol, s.Version, s.Transport}]++
	r.connMu.Unlock()
}

// uncountConn undoes countConn; Session.Close calls it once.
func (r *Router) uncountConn(s *Session) {
	k := connKey{s.Protocol, s.Version, s.Transport}
	r.connMu.Lock()
	if r.conns[k]--; r.conns[k] <= 0 {
		delete(r.conns, k)
	}
	r.connMu.Unlock()
}

// ConnCounts counts connected sessions by protocol, version and transport:
// O(groups), kept up to date at Open and Session.Close.
func (r *Router) ConnCounts() []ConnCount {
	r.connMu.Lock()
	out := make([]ConnCount, 0, len(r.conns))
	for c, n := range r.conns {
		out = append(out, ConnCount{Protocol: c.protocol, Version: c.version, Transport: c.transport, N: n})
	}
	r.connMu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Transport < b.Transport
	})
	return out
}

// Counters copies the running totals.
func (r *Router) Counters() Counters {
	return Counters{
		Published: r.published.Load(), Delivered: r.delivered.Load(),
		BytesIn: r.bytesIn.Load(), BytesOut: r.bytesOut.Load(),
		NoSubscriber: r.noSubscriber.Load(), Dropped: r.dropped.Load(),
		SlowConsumers: r.slowConsumers.Load(), OfflineDropped: r.offlineDropped.Load(),
		QuotaRefused: r.retainedRefused.Load() + r.sessionQuotaRefused.Load(),
		Denied:       r.publishDenied.Load() + r.subscribeDenied.Load(),
		DeadLettered: r.dl.moved.Load(), DeadLetterDropped: r.dl.dropped.Load(),
	}
}

// Session gauges the protocols keep (issue 9): bytes on the wire and
// deliveries in flight. Safe from any goroutine.

// AddBytesIn counts n bytes read from the client.
func (s *Session) AddBytesIn(n int) {
	s.bytesIn.Add(uint64(n))
	if s.router != nil {
		s.router.bytesIn.Add(uint64(n))
	}
}

// AddBytesOut counts n bytes written to the client.
func (s *Session) AddBytesOut(n int) {
	s.bytesOut.Add(uint64(n))
	if s.router != nil {
		s.router.bytesOut.Add(uint64(n))
	}
}

// SetInflight records the deliveries sent and not yet acknowledged.
func (s *Session) SetInflight(n int) { s.inflight.Store(int64(n)) }
