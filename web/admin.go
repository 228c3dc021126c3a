package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// Pagination of list endpoints (/api/sessions, /api/queues): no request
// allocates more than MaxPageLimit entries.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
	maxCursorLen     = 1024
	maxQueryLen      = 256
)

// apiHandler is the management API: /api/stats, /api/sessions and
// /api/queues, behind requireAdmin.
func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/stats", s.serveStats)
	mux.HandleFunc("GET /api/sessions", s.serveSessions)
	mux.HandleFunc("GET /api/queues", s.serveQueues)
	return s.requireAdmin(mux)
}

// requireAdmin lets a request through when Config.AdminAuth is nil, or when
// it carries HTTP Basic credentials or a bearer token that AdminAuth accepts
// as an admin identity. Otherwise: 401 with a Basic challenge (no or bad
// credentials), 403 (a valid non-admin identity, or a banned source).
// It guards the legacy /api/; /api/v1 and /metrics go through adminGate
// (login.go), which also accepts the UI's session cookie.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminAuth == nil {
			next.ServeHTTP(w, r)
			return
		}
		if _, ok := s.authenticateAdmin(w, r, textErrors); ok {
			next.ServeHTTP(w, r)
		}
	})
}

// errorStyle is how authenticateAdmin answers a refusal.
type errorStyle int

const (
	// textErrors: text/plain bodies, and a Basic challenge with every 401
	// (the legacy /api/, /metrics, curl).
	textErrors errorStyle = iota
	// jsonErrors: APIError bodies (/api/v1); the Basic challenge is left
	// out for requests that come from the UI's scripts, so the browser
	// shows the UI's login form instead of its own dialog.
	jsonErrors
)

// authenticateAdmin checks a request's HTTP Basic credentials or bearer
// token against Config.AdminAuth (which must be set). It reports the
// identity and true for an admin; otherwise it has answered the request
// (401 no or bad credentials, 403 not an admin or banned, 500 internal
// failure) and reports false. Neither passwords nor tokens are logged.
func (s *Server) authenticateAdmin(w http.ResponseWriter, r *http.Request, style errorStyle) (broker.Identity, bool) {
	creds := broker.Credentials{Protocol: "http", RemoteAddr: r.RemoteAddr}
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		creds.Token = strings.TrimSpace(tok)
	} else if user, pass, ok := r.BasicAuth(); ok {
		creds.Login, creds.Passcode = user, pass
	} else {
		s.unauthorized(w, r, style, "Duplex: the management API needs an admin login (HTTP Basic or a bearer token)")
		return broker.Identity{}, false
	}
	id, err := s.cfg.AdminAuth.Authenticate(r.Context(), creds)
	switch {
	case err == nil && id.Admin:
		return id, true
	case err == nil:
		s.logAdminRefusal(r, creds, "not an admin")
		refuseAdmin(w, style, http.StatusForbidden, "Duplex: the management API is for admins only")
	case errors.Is(err, broker.ErrBadCredentials), errors.Is(err, broker.ErrCredentialExpired):
		s.logAdminRefusal(r, creds, err.Error())
		s.unauthorized(w, r, style, "Duplex: bad user name, password or token")
	case errors.Is(err, broker.ErrBanned), errors.Is(err, broker.ErrNotAuthorized):
		s.logAdminRefusal(r, creds, err.Error())
		refuseAdmin(w, style, http.StatusForbidden, "Duplex: access refused")
	default:
		s.cfg.Log.Error("web: admin authentication failed", "remote", r.RemoteAddr, "err", err)
		refuseAdmin(w, style, http.StatusInternalServerError, "Duplex: authentication failed")
	}
	return broker.Identity{}, false
}

// unauthorized answers 401, with a Basic challenge unless the request is
// a /api/v1 call from a script (fromScript).
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, style errorStyle, msg string) {
	if style == textErrors || !fromScript(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="duplex"`)
	}
	refuseAdmin(w, style, http.StatusUnauthorized, msg)
}

// fromScript reports whether a request without an Authorization header
// was made by a page's script (fetch, EventSource) rather than typed into
// the address bar or sent by curl: it has X-Requested-With, or accepts
// JSON or an event stream, or the browser says it is not a navigation.
// Such a request gets no Basic challenge, which would make the browser
// pop up its own login dialog over the UI.
func fromScript(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return true
	}
	if a := r.Header.Get("Accept"); strings.Contains(a, "application/json") || strings.Contains(a, "text/event-stream") {
		return true
	}
	m := r.Header.Get("Sec-Fetch-Mode")
	return m != "" && m != "navigate"
}

// refuseAdmin answers an error in style.
func refuseAdmin(w http.ResponseWriter, style errorStyle, code int, msg string) {
	if style == jsonErrors {
		gateError(w, code, msg)
		return
	}
	http.Error(w, msg, code)
}

// gateError answers code with an APIError body.
func gateError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(APIError{Error: msg})
}

// logAdminRefusal logs a refused API request, at most one line per source
// per 10 s.
func (s *Server) logAdminRefusal(r *http.Request, c broker.Credentials, why string) {
	s.logRequest(r, "web: management API refused", "user", c.Login, "token", c.Token != "", "why", why)
}

// APIStats is the body of GET /api/stats: the router's counters, with
// admission control's and each protocol's (refusals, drops) beside them.
type APIStats struct {
	broker.Stats
	Admission AdmissionStats
	// Protocols holds each protocol's counters by name ("stomp", "mqtt"),
	// for protocols that keep them.
	Protocols map[string]subprotocol.Stats `json:",omitempty"`
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	st := APIStats{Stats: s.router.Stats(), Admission: s.AdmissionStats()}
	for _, p := range s.reg {
		if sp, ok := p.(interface{ Stats() subprotocol.Stats }); ok {
			if st.Protocols == nil {
				st.Protocols = make(map[string]subprotocol.Stats)
			}
			st.Protocols[p.Name()] = sp.Stats()
		}
	}
	writeJSON(w, st)
}

// SessionsPage is the body of GET /api/sessions.
type SessionsPage struct {
	Sessions []broker.SessionInfo `json:"sessions"`
	// NextCursor, when not empty, is the cursor parameter of the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// pageQuery is a list request's ?limit=N&cursor=C&q=Q.
type pageQuery struct {
	limit          int
	cursor, filter string
}

// parsePageQuery reads a list request's paging parameters: limit default
// 100, at most 1000. A bad limit or an oversized cursor or q answers 400
// and reports false.
func parsePageQuery(w http.ResponseWriter, r *http.Request) (pageQuery, bool) {
	q := r.URL.Query()
	p := pageQuery{limit: DefaultPageLimit, cursor: q.Get("cursor"), filter: q.Get("q")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageLimit {
			http.Error(w, "Duplex: limit must be a number from 1 to "+strconv.Itoa(MaxPageLimit), http.StatusBadRequest)
			return p, false
		}
		p.limit = n
	}
	if len(p.cursor) > maxCursorLen || len(p.filter) > maxQueryLen {
		http.Error(w, "Duplex: cursor or q too long", http.StatusBadRequest)
		return p, false
	}
	return p, true
}

// serveSessions answers GET /api/sessions?limit=N&cursor=C&q=Q: at most
// limit sessions in session-id order after cursor, those whose id, user or
// owner contains q. Router.SessionPage keeps only limit sessions in
// memory, whatever the number of sessions.
func (s *Server) serveSessions(w http.ResponseWriter, r *http.Request) {
	p, ok := parsePageQuery(w, r)
	if !ok {
		return
	}
	page, next := s.router.SessionPage(p.cursor, p.limit, p.filter)
	writeJSON(w, SessionsPage{Sessions: page, NextCursor: next})
}

// QueuesPage is the body of GET /api/queues.
type QueuesPage struct {
	Queues []broker.QueueInfo `json:"queues"`
	// NextCursor, when not empty, is the cursor parameter of the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// serveQueues answers GET /api/queues?limit=N&cursor=C&q=Q: at most limit
// queues (point-to-point queues and durable subscriptions) in name order
// after cursor, those whose name contains q.
func (s *Server) serveQueues(w http.ResponseWriter, r *http.Request) {
	p, ok := parsePageQuery(w, r)
	if !ok {
		return
	}
	page, next := s.router.QueuePage(p.cursor, p.limit, p.filter)
	writeJSON(w, QueuesPage{Queues: page, NextCursor: next})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
