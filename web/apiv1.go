package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/duplexmq/duplex/broker"
)

// The management API's data endpoints and actions (docs/api.md). Every
// answer is JSON: the types of apiv1_types.go, or APIError with a 4xx/5xx
// status. Lists take ?limit=1..1000 (default 100), ?cursor= (the
// next_cursor of the previous page) and ?q= (a filter), and answer a
// Page whose items are never null. The router pages each list in O(limit)
// memory (broker/page.go), whatever the size of the table.

// Bounds of /api/v1 requests.
const (
	// maxAPIBody bounds a request body (the publish body may be larger,
	// see publishBodyLimit).
	maxAPIBody = 1 << 20
	// maxV1Cursor bounds ?cursor=: a session id, queue name or topic
	// (with the sort key for sorted client lists).
	maxV1Cursor = 4096
	// maxV1Query bounds ?q= and ?prefix=.
	maxV1Query = maxQueryLen
)

// apiV1Routes registers the management API's data endpoints and actions
// (docs/api.md). The console wraps mux in adminGate. ServeMux's method
// patterns answer a wrong method with 405 and an Allow header.
func (s *Server) apiV1Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/overview", s.v1Overview)

	mux.HandleFunc("GET /api/v1/clients", s.v1Clients)
	mux.HandleFunc("GET /api/v1/clients/{id}", s.v1Client)
	mux.HandleFunc("POST /api/v1/clients/{id}/disconnect", s.v1Disconnect)
	mux.HandleFunc("GET /api/v1/sessions", s.v1Sessions)
	mux.HandleFunc("DELETE /api/v1/sessions/{id}", s.v1DeleteSession)

	mux.HandleFunc("GET /api/v1/subscriptions", s.v1Subscriptions)
	mux.HandleFunc("GET /api/v1/topics", s.v1Topics)
	mux.HandleFunc("GET /api/v1/shares", s.v1Shares)

	mux.HandleFunc("GET /api/v1/queues", s.v1Queues)
	mux.HandleFunc("POST /api/v1/queues/{name}/purge", s.v1PurgeQueue)
	mux.HandleFunc("DELETE /api/v1/queues/{name}", s.v1DeleteQueue)

	mux.HandleFunc("GET /api/v1/retained", s.v1Retained)
	mux.HandleFunc("DELETE /api/v1/retained", s.v1DeleteRetained)

	mux.HandleFunc("POST /api/v1/publish", s.v1Publish)

	mux.HandleFunc("GET /api/v1/cluster", s.v1Cluster)
	mux.HandleFunc("GET /api/v1/cluster/clients", s.v1ClusterClients)
}

// apiError answers status with an APIError body.
func apiError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(APIError{Error: msg})
}

// apiJSON answers 200 with v.
func apiJSON(w http.ResponseWriter, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_ = json.NewEncoder(w).Encode(v)
}

// apiOK answers a successful action.
func apiOK(w http.ResponseWriter) { apiJSON(w, ActionResult{OK: true}) }

// page builds a Page whose items are [] rather than null when empty.
func page[T any](items []T, next string) Page[T] {
	if items == nil {
		items = []T{}
	}
	return Page[T]{Items: items, NextCursor: next}
}

// listQuery is a list request's ?limit=N&cursor=C&q=Q.
type listQuery struct {
	limit  int
	cursor string
	q      string
}

// parseList reads ?limit, ?cursor and ?q. A limit that is not a number
// from 1 to MaxPageLimit, or an oversized cursor or q, answers 400 and
// reports false.
func parseList(w http.ResponseWriter, r *http.Request) (listQuery, bool) {
	v := r.URL.Query()
	p := listQuery{limit: DefaultPageLimit, cursor: v.Get("cursor"), q: v.Get("q")}
	if s := v.Get("limit"); s != "" || v.Has("limit") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageLimit {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", MaxPageLimit))
			return p, false
		}
		p.limit = n
	}
	switch {
	case len(p.cursor) > maxV1Cursor:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("cursor longer than %d bytes", maxV1Cursor))
		return p, false
	case len(p.q) > maxV1Query:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("q longer than %d bytes", maxV1Query))
		return p, false
	case !utf8.ValidString(p.cursor) || !utf8.ValidString(p.q):
		apiError(w, http.StatusBadRequest, "cursor and q must be UTF-8")
		return p, false
	}
	return p, true
}

// parseOnline reads ?online=true|false: 1 connected only, -1 offline
// only, 0 both (absent or empty).
func parseOnline(w http.ResponseWriter, r *http.Request) (int, bool) {
	switch v := r.URL.Query().Get("online"); v {
	case "":
		return 0, true
	case "true", "1":
		return 1, true
	case "false", "0":
		return -1, true
	default:
		apiError(w, http.StatusBadRequest, "online must be true or false")
		return 0, false
	}
}

// decodeBody reads a JSON request body into v: at most limit bytes, no
// unknown fields, one value. Anything else answers 400 and reports false.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One JSON value and nothing after it but white space.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON value")
			if terr != nil {
				err = terr
			}
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		apiError(w, http.StatusBadRequest, fmt.Sprintf("request body larger than %d bytes", limit))
	case errors.Is(err, io.EOF):
		apiError(w, http.StatusBadRequest, "empty request body: a JSON object is expected")
	default:
		apiError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
	}
	return false
}

// actionError answers a failed admin action or publish with the status
// its broker error means.
func (s *Server) actionError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, broker.ErrNoSuchSession), errors.Is(err, broker.ErrNoSuchQueue),
		errors.Is(err, broker.ErrNoSuchRetained):
		apiError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, broker.ErrNotDurable), errors.Is(err, broker.ErrQueueFull),
		errors.Is(err, broker.ErrQuotaExceeded), errors.Is(err, broker.ErrRetainedQuota),
		errors.Is(err, broker.ErrQueueExclusive):
		apiError(w, http.StatusConflict, err.Error())
	case errors.Is(err, broker.ErrInvalidTopic), errors.Is(err, broker.ErrInvalidQueue),
		errors.Is(err, broker.ErrInvalidFilter):
		apiError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, broker.ErrNotAuthorized):
		apiError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, broker.ErrShuttingDown):
		apiError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.cfg.Log.Error("web: admin action failed", "path", r.URL.Path, "err", err)
		apiError(w, http.StatusInternalServerError, "internal error: "+err.Error())
	}
}

// pathValue reads a {id} or {name} path value (ServeMux has unescaped
// it): empty, oversized or not UTF-8 answers 400.
func pathValue(w http.ResponseWriter, r *http.Request, key string, max int) (string, bool) {
	v := r.PathValue(key)
	switch {
	case v == "":
		apiError(w, http.StatusBadRequest, "empty "+key)
		return "", false
	case len(v) > max:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("%s longer than %d bytes", key, max))
		return "", false
	case !utf8.ValidString(v):
		apiError(w, http.StatusBadRequest, key+" must be UTF-8")
		return "", false
	}
	return v, true
}

// rfc3339 formats t in UTC, "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
