package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/store"
)

// The admin UI's login (issue 9).
//
// POST /api/v1/login checks a user name and password with Config.AdminAuth,
// the same Authenticator (user store, admin role, ban and delay of repeated
// failures) as the protocols, and needs an admin identity. It creates a
// server-side session: a random 32-byte id goes to the browser in the
// cookie duplex_session (HttpOnly, SameSite=Strict, Path=/, Secure over
// TLS, also behind a TLS-terminating proxy that sets X-Forwarded-Proto);
// the server keeps only its SHA-256, so a memory dump does not hold
// usable cookies. A session ends after 30 minutes without a request, 12
// hours after the login, at logout, or when 1000 newer sessions push it
// out. Each session has its own CSRF token, returned by login and GET
// /api/v1/me: requests with the cookie must carry it in the X-CSRF-Token
// header on POST, PUT, PATCH and DELETE.
//
// Scripts keep using HTTP Basic or a bearer token, without a CSRF token.
// A browser may replay cached Basic credentials on a request another site
// triggers, and in the open mode (Config.AdminAuth nil) there are no
// credentials at all, so every POST, PUT, PATCH and DELETE through
// adminGate (and login and logout) is refused when the browser says the
// request is cross-site: an Origin header that is neither this host nor
// in Config.AllowedOrigins, or Sec-Fetch-Site cross-site or same-site
// (another port of the same host is the same site). curl and other
// scripts send neither header.
//
// Nothing here logs a password, a token, a cookie or a CSRF token.

const (
	sessionCookie  = "duplex_session"
	csrfHeader     = "X-CSRF-Token"
	loginIdleTTL   = 30 * time.Minute
	loginMaxAge    = 12 * time.Hour
	maxLogins      = 1000
	maxLoginBody   = 16 << 10
	sessionIDBytes = 32
)

// loginSession is one logged-in browser.
type loginSession struct {
	user    string
	csrf    string
	created time.Time
	used    time.Time
}

// loginStore keeps the admin UI's sessions by the SHA-256 of their id.
type loginStore struct {
	mu  sync.Mutex
	now func() time.Time // time.Now; tests set a clock
	m   map[[sha256.Size]byte]*loginSession
}

func newLoginStore() *loginStore {
	return &loginStore{now: time.Now, m: make(map[[sha256.Size]byte]*loginSession)}
}

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for user and returns its cookie value and its
// CSRF token. At the cap, expired sessions go first, then the oldest.
func (l *loginStore) create(user string) (id, csrf string) {
	id, csrf = randomToken(sessionIDBytes), randomToken(sessionIDBytes)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= maxLogins {
		l.sweepLocked(now)
	}
	for len(l.m) >= maxLogins {
		var oldest [sha256.Size]byte
		var t time.Time
		first := true
		for k, s := range l.m {
			if first || s.created.Before(t) {
				oldest, t, first = k, s.created, false
			}
		}
		delete(l.m, oldest)
	}
	l.m[sha256.Sum256([]byte(id))] = &loginSession{user: user, csrf: csrf, created: now, used: now}
	return id, csrf
}

func (s *loginSession) expired(now time.Time) bool {
	return now.Sub(s.used) > loginIdleTTL || now.Sub(s.created) > loginMaxAge
}

func (l *loginStore) sweepLocked(now time.Time) {
	for k, s := range l.m {
		if s.expired(now) {
			delete(l.m, k)
		}
	}
}

// lookup returns a copy of the live session of cookie value id and marks
// it used; an expired one is deleted.
func (l *loginStore) lookup(id string) (loginSession, bool) {
	if id == "" || len(id) > 2*sessionIDBytes {
		return loginSession{}, false
	}
	k := sha256.Sum256([]byte(id))
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.m[k]
	if !ok {
		return loginSession{}, false
	}
	if s.expired(now) {
		delete(l.m, k)
		return loginSession{}, false
	}
	s.used = now
	return *s, true
}

// remove ends the session of cookie value id.
func (l *loginStore) remove(id string) {
	k := sha256.Sum256([]byte(id))
	l.mu.Lock()
	delete(l.m, k)
	l.mu.Unlock()
}

// len counts the sessions kept (expired ones included until swept).
func (l *loginStore) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// sessionOf returns the request's live login session and its cookie value.
func (s *Server) sessionOf(r *http.Request) (loginSession, string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return loginSession{}, "", false
	}
	ls, ok := s.logins.lookup(c.Value)
	return ls, c.Value, ok
}

// setSessionCookie sets (or, with maxAge -1, clears) the session cookie.
// It is Secure when the browser reached us over TLS: directly, or through
// a proxy that says so (X-Forwarded-Proto: https). The header is believed
// from anyone: a client that lies only gets a cookie its plain-HTTP
// browser will not send back.
func setSessionCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	secure := r.TLS != nil || strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	})
}

// unsafeMethod reports whether a method changes state (needs CSRF care).
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// crossSite reports whether the browser says a request comes from another
// site: an Origin that is neither this Host nor listed in
// Config.AllowedOrigins ("*" does not count here), or a Sec-Fetch-Site of
// cross-site or same-site. Requests without these headers (scripts) are
// not cross-site.
func (s *Server) crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return false
	}
	return !slices.Contains(s.cfg.AllowedOrigins, origin)
}

// refuseCrossSite answers 403 and reports true for an unsafe cross-site
// request.
func (s *Server) refuseCrossSite(w http.ResponseWriter, r *http.Request) bool {
	if !unsafeMethod(r.Method) || !s.crossSite(r) {
		return false
	}
	s.logRequest(r, "web: cross-site request refused", "method", r.Method)
	gateError(w, http.StatusForbidden, "Duplex: cross-site request refused")
	return true
}

// adminGate: see console.go and the comment at the top of this file.
// Errors under /api/v1 are APIError JSON; elsewhere (/metrics) text.
func (s *Server) adminGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		style := textErrors
		if strings.HasPrefix(r.URL.Path, "/api/v1/") {
			style = jsonErrors
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Content-Type-Options", "nosniff")
		}
		if s.refuseCrossSite(w, r) {
			return
		}
		if s.cfg.AdminAuth == nil {
			next.ServeHTTP(w, r)
			return
		}
		if ls, id, ok := s.sessionOf(r); ok {
			if unsafeMethod(r.Method) {
				got := r.Header.Get(csrfHeader)
				if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(ls.csrf)) != 1 {
					s.logRequest(r, "web: CSRF token missing or wrong", "method", r.Method, "user", ls.user)
					refuseAdmin(w, style, http.StatusForbidden, "Duplex: missing or wrong X-CSRF-Token header")
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), loginKey{}, id)))
			return
		}
		if _, ok := s.authenticateAdmin(w, r, style); ok {
			next.ServeHTTP(w, r)
		}
	})
}

// loginKey is the request context key of the session cookie's value, for
// requests adminGate let through by their cookie.
type loginKey struct{}

// sessionAlive reports whether the login session a request came with is
// still there (not logged out, not expired), and counts the call as a use
// of it: the live streams call it every second, so an open stream keeps
// its session and a logout ends the session's streams. Requests that came
// without a cookie (HTTP Basic, bearer, the open mode) are always alive.
func (s *Server) sessionAlive(r *http.Request) bool {
	id, ok := r.Context().Value(loginKey{}).(string)
	if !ok {
		return true
	}
	_, ok = s.logins.lookup(id)
	return ok
}

// loginRoutes registers POST /api/v1/login, POST /api/v1/logout and GET
// /api/v1/me, outside adminGate.
func (s *Server) loginRoutes(mux *http.ServeMux) {
	mux.Handle("/api/v1/login", onlyMethod("POST", s.serveLogin))
	mux.Handle("/api/v1/logout", onlyMethod("POST", s.serveLogout))
	mux.Handle("/api/v1/me", onlyMethod("GET", s.serveMe))
}

// onlyMethod answers 405 (APIError) to other methods than m (and HEAD for
// GET). The routes are registered without a method so that a wrong one
// does not fall through to the gated /api/v1/ tree.
func onlyMethod(m string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m && !(m == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", m)
			gateError(w, http.StatusMethodNotAllowed, "Duplex: use "+m)
			return
		}
		h(w, r)
	})
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

// serveLogin answers POST /api/v1/login: LoginRequest in, Me out with the
// cookie set. 400 bad JSON, 401 bad credentials, 403 not an admin or
// banned, 403 cross-site; in the open mode it answers Me without a
// session.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if s.refuseCrossSite(w, r) {
		return
	}
	var req LoginRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxLoginBody))
	if err := dec.Decode(&req); err != nil {
		gateError(w, http.StatusBadRequest, "Duplex: the body must be JSON {\"user\": ..., \"password\": ...}")
		return
	}
	auth := s.cfg.AdminAuth
	if auth == nil {
		writeJSON(w, Me{Version: s.cfg.Version})
		return
	}
	if req.User == "" {
		gateError(w, http.StatusBadRequest, "Duplex: user is required")
		return
	}
	creds := broker.Credentials{Protocol: "http", RemoteAddr: r.RemoteAddr, Login: req.User, Passcode: req.Password}
	id, err := auth.Authenticate(r.Context(), creds)
	switch {
	case err == nil && id.Admin:
	case err == nil:
		s.logAdminRefusal(r, creds, "login: not an admin")
		gateError(w, http.StatusForbidden, "Duplex: the admin console is for admins only")
		return
	case errors.Is(err, broker.ErrBadCredentials), errors.Is(err, broker.ErrCredentialExpired):
		s.logAdminRefusal(r, creds, "login: "+err.Error())
		gateError(w, http.StatusUnauthorized, "Duplex: bad user name or password")
		return
	case errors.Is(err, broker.ErrBanned), errors.Is(err, broker.ErrNotAuthorized):
		s.logAdminRefusal(r, creds, "login: "+err.Error())
		gateError(w, http.StatusForbidden, "Duplex: access refused")
		return
	default:
		s.cfg.Log.Error("web: admin login failed", "remote", r.RemoteAddr, "err", err)
		gateError(w, http.StatusInternalServerError, "Duplex: authentication failed")
		return
	}
	user := id.Name
	if user == "" {
		user = req.User
	}
	// A login replaces the session the browser had (no fixation).
	if _, old, ok := s.sessionOf(r); ok {
		s.logins.remove(old)
	}
	sid, csrf := s.logins.create(user)
	setSessionCookie(w, r, sid, 0)
	s.cfg.Log.Info("web: admin login", "remote", r.RemoteAddr, "user", user)
	writeJSON(w, Me{AuthRequired: true, LoggedIn: true, User: user, CSRFToken: csrf, Version: s.cfg.Version})
}

// serveLogout answers POST /api/v1/logout: the session ends and the
// cookie is cleared.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if s.refuseCrossSite(w, r) {
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		s.logins.remove(c.Value)
		setSessionCookie(w, r, "", -1)
	}
	writeJSON(w, ActionResult{OK: true})
}

// serveMe answers GET /api/v1/me, with or without a login.
func (s *Server) serveMe(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	me := Me{AuthRequired: s.cfg.AdminAuth != nil, Version: s.cfg.Version}
	if me.AuthRequired {
		if ls, _, ok := s.sessionOf(r); ok {
			me.LoggedIn, me.User, me.CSRFToken = true, ls.user, ls.csrf
		}
	}
	writeJSON(w, me)
}

// readyProbe is the session id /readyz reads: the read answers "not
// found" (or finds nothing of interest) when the store works.
const readyProbe = "\x01duplex-readyz"

// serveReadyz answers 200 "ready" while SetReady(true) holds and the store
// answers a read, 503 otherwise.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if !s.ready.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	if st := s.cfg.Store; st != nil {
		if _, _, err := st.GetSession(readyProbe); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.logRequest(r, "web: readyz: store does not answer", "err", err)
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}
