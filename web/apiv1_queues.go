package web

import (
	"net/http"
	"strings"

	"github.com/duplexmq/duplex/broker"
)

// Queue kinds of GET /api/v1/queues?kind=.
const (
	kindQueue   = "queue"   // a point-to-point queue
	kindDurable = "durable" // a durable subscription's queue
)

// The durable subscriptions' queues are one contiguous run of names in
// byte order: every one is > durableLow (the prefix itself names none)
// and < durableHigh (valid UTF-8 never holds the byte 0xff).
const (
	durableLow  = broker.DurableQueuePrefix
	durableHigh = broker.DurableQueuePrefix + "\xff"
)

// v1Queues answers GET /api/v1/queues?limit&cursor&q&kind=queue|durable:
// queues and durable subscriptions in name order, whose name contains q.
func (s *Server) v1Queues(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	kind := r.URL.Query().Get("kind")
	if kind != "" && kind != kindQueue && kind != kindDurable {
		apiError(w, http.StatusBadRequest, "kind must be queue or durable")
		return
	}
	infos, next := s.queuePage(p.cursor, p.limit, p.q, kind)
	items := make([]Queue, len(infos))
	for i, q := range infos {
		items[i] = Queue{Name: q.Name, Kind: queueKind(q.Name), Ready: q.Ready, Unacked: q.Unacked, Consumers: q.Consumers}
	}
	apiJSON(w, page(items, next))
}

func queueKind(name string) string {
	if strings.HasPrefix(name, broker.DurableQueuePrefix) {
		return kindDurable
	}
	return kindQueue
}

// queuePage pages the queues of one kind ("" both) with at most three
// calls of Router.QueuePage: the durable ones are the run of names
// between durableLow and durableHigh, the plain ones are those before it
// and those after it.
func (s *Server) queuePage(cursor string, limit int, q, kind string) ([]broker.QueueInfo, string) {
	switch kind {
	case "":
		return s.router.QueuePage(cursor, limit, q)
	case kindDurable:
		items, more := s.queueSpan(max(cursor, durableLow), durableHigh, limit, q)
		return items, nextOf(items, more)
	}
	var items []broker.QueueInfo
	if cursor < durableLow {
		below, more := s.queueSpan(cursor, durableLow, limit, q)
		if more {
			return below, nextOf(below, true)
		}
		items = below
	}
	cursor = max(cursor, durableHigh)
	if rest := limit - len(items); rest > 0 {
		above, more := s.queueSpan(cursor, "", rest, q)
		items = append(items, above...)
		return items, nextOf(items, more)
	}
	// A full page from below the run: is there anything after it?
	probe, _ := s.router.QueuePage(cursor, 1, q)
	return items, nextOf(items, len(probe) > 0)
}

// queueSpan returns up to limit queues with from < name < to (to ""
// for no bound) whose name contains q, and whether more follow in the
// span. It looks one item ahead, so the last page of a span is not
// followed by an empty one (except when limit is MaxPage).
func (s *Server) queueSpan(from, to string, limit int, q string) ([]broker.QueueInfo, bool) {
	ask := min(limit+1, MaxPageLimit, broker.MaxPage)
	got, next := s.router.QueuePage(from, ask, q)
	in := got[:0]
	beyond := false
	for _, qi := range got {
		if to != "" && qi.Name >= to {
			beyond = true
			break
		}
		in = append(in, qi)
	}
	if len(in) > limit {
		return in[:limit], true
	}
	return in, !beyond && next != "" && len(in) == limit
}

// nextOf is the next-page cursor after items: the last name when more
// follow.
func nextOf(items []broker.QueueInfo, more bool) string {
	if !more || len(items) == 0 {
		return ""
	}
	return items[len(items)-1].Name
}

// v1PurgeQueue answers POST /api/v1/queues/{name}/purge: the ready
// messages go (unacknowledged ones stay with their consumers);
// ActionResult.Purged counts them.
func (s *Server) v1PurgeQueue(w http.ResponseWriter, r *http.Request) {
	name, ok := pathValue(w, r, "name", maxV1Cursor)
	if !ok {
		return
	}
	n, err := s.router.PurgeQueue(name)
	if err != nil {
		s.actionError(w, r, err)
		return
	}
	s.cfg.Log.Info("web: admin purged a queue", "queue", name, "purged", n, "remote", r.RemoteAddr)
	apiJSON(w, ActionResult{OK: true, Purged: n})
}

// v1DeleteQueue answers DELETE /api/v1/queues/{name}: a durable
// subscription goes with its stored messages; a point-to-point queue is
// 409 (it lives as long as it is used).
func (s *Server) v1DeleteQueue(w http.ResponseWriter, r *http.Request) {
	name, ok := pathValue(w, r, "name", maxV1Cursor)
	if !ok {
		return
	}
	if queueKind(name) != kindDurable {
		if _, exists := s.router.Queue(name); exists {
			apiError(w, http.StatusConflict, broker.ErrNotDurable.Error()+": "+name+
				" is a point-to-point queue; purge it instead")
		} else {
			apiError(w, http.StatusNotFound, broker.ErrNoSuchQueue.Error()+": "+name)
		}
		return
	}
	if err := s.router.DeleteDurable(name); err != nil {
		s.actionError(w, r, err)
		return
	}
	s.cfg.Log.Info("web: admin deleted a durable subscription", "queue", name, "remote", r.RemoteAddr)
	apiOK(w)
}
