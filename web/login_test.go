package web

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/broker/auth"
	"github.com/duplexmq/duplex/store"
)

// loginDo sends method url with a JSON body (if any) and returns the
// response and its body.
func loginDo(t *testing.T, c *http.Client, method, url, body string, set func(*http.Request)) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if set != nil {
		set(req)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

func withCookie(c *http.Cookie, more ...func(*http.Request)) func(*http.Request) {
	return func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		for _, f := range more {
			f(r)
		}
	}
}

func header(k, v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

// login logs admin in and returns the cookie and the CSRF token.
func login(t *testing.T, base string) (*http.Cookie, string) {
	t.Helper()
	resp, body := loginDo(t, nil, "POST", base+"/api/v1/login", `{"user":"admin","password":"secret"}`, nil)
	var me Me
	if err := json.Unmarshal([]byte(body), &me); resp.StatusCode != 200 || err != nil {
		t.Fatalf("login: %d %q %v", resp.StatusCode, body, err)
	}
	c := sessionCookieOf(resp)
	if c == nil || me.CSRFToken == "" {
		t.Fatalf("login: cookie %v, me %+v", c, me)
	}
	return c, me.CSRFToken
}

func apiErrorOf(t *testing.T, resp *http.Response, body string) string {
	t.Helper()
	var e APIError
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q (%s)", ct, body)
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Errorf("error body %q: %v", body, err)
	}
	return e.Error
}

// TestLogin: POST /api/v1/login with an admin's password answers Me with
// a CSRF token and sets the session cookie (HttpOnly, SameSite=Strict,
// Path=/); bad passwords, non-admins, banned sources and bad bodies are
// refused without a cookie; the store keeps only the id's hash.
func TestLogin(t *testing.T) {
	s := newGW(t, Config{AdminAuth: fakeAuth{}, Version: "v9.9"})
	resp, body := loginDo(t, nil, "POST", s.hs.URL+"/api/v1/login", `{"user":"admin","password":"secret"}`, nil)
	var me Me
	if err := json.Unmarshal([]byte(body), &me); resp.StatusCode != 200 || err != nil {
		t.Fatalf("login: %d %q %v", resp.StatusCode, body, err)
	}
	if !me.AuthRequired || !me.LoggedIn || me.User != "admin" || len(me.CSRFToken) < 40 || me.Version != "v9.9" {
		t.Errorf("me %+v", me)
	}
	c := sessionCookieOf(resp)
	if c == nil {
		t.Fatalf("no cookie: %v", resp.Header["Set-Cookie"])
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || len(c.Value) < 43 {
		t.Errorf("cookie %+v", c)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	s.gw.logins.mu.Lock()
	if _, ok := s.gw.logins.m[sha256.Sum256([]byte(c.Value))]; !ok || len(s.gw.logins.m) != 1 {
		t.Errorf("store does not hold the id's hash")
	}
	for _, ls := range s.gw.logins.m {
		if ls.csrf != me.CSRFToken || ls.user != "admin" {
			t.Errorf("session %+v", ls)
		}
	}
	s.gw.logins.mu.Unlock()

	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"bad password", `{"user":"admin","password":"nope"}`, 401},
		{"unknown user", `{"user":"mallory","password":"x"}`, 401},
		{"not admin", `{"user":"bob","password":"pw"}`, 403},
		{"banned", `{"user":"banned","password":"x"}`, 403},
		{"internal error", `{"user":"broken","password":"x"}`, 500},
		{"bad json", `{"user":`, 400},
		{"not an object", `[1,2]`, 400},
		{"no user", `{"password":"secret"}`, 400},
		{"too big", `{"user":"admin","password":"` + strings.Repeat("x", maxLoginBody) + `"}`, 400},
	} {
		resp, body := loginDo(t, nil, "POST", s.hs.URL+"/api/v1/login", tc.body, nil)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
		apiErrorOf(t, resp, body)
		if sessionCookieOf(resp) != nil {
			t.Errorf("%s: cookie set", tc.name)
		}
		if strings.Contains(body, "secret") || strings.Contains(body, "password file") {
			t.Errorf("%s: body leaks %q", tc.name, body)
		}
	}
	if n := s.gw.logins.len(); n != 1 {
		t.Errorf("%d sessions after refused logins", n)
	}
	// Wrong method.
	if resp, _ := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/login", "", nil); resp.StatusCode != 405 {
		t.Errorf("GET /api/v1/login: %d", resp.StatusCode)
	}
	// A cross-site login form is refused.
	resp, _ = loginDo(t, nil, "POST", s.hs.URL+"/api/v1/login", `{"user":"admin","password":"secret"}`,
		header("Origin", "https://evil.example"))
	if resp.StatusCode != 403 || sessionCookieOf(resp) != nil {
		t.Errorf("cross-site login: %d", resp.StatusCode)
	}
	// A new login replaces the browser's session.
	resp, _ = loginDo(t, nil, "POST", s.hs.URL+"/api/v1/login", `{"user":"admin","password":"secret"}`, withCookie(c))
	if c2 := sessionCookieOf(resp); resp.StatusCode != 200 || c2 == nil || c2.Value == c.Value {
		t.Fatalf("second login: %d", resp.StatusCode)
	}
	if _, ok := s.gw.logins.lookup(c.Value); ok || s.gw.logins.len() != 1 {
		t.Errorf("old session kept after a new login")
	}
}

// TestLoginSecureCookie: over TLS the cookie is Secure.
func TestLoginSecureCookie(t *testing.T) {
	gw := New(Config{AdminAuth: fakeAuth{}}, broker.New(broker.Config{}, nil), nil)
	hs := httptest.NewTLSServer(gw)
	t.Cleanup(func() { hs.Close(); _ = gw.Shutdown(context.Background()) })
	resp, body := loginDo(t, hs.Client(), "POST", hs.URL+"/api/v1/login", `{"user":"admin","password":"secret"}`, nil)
	c := sessionCookieOf(resp)
	if resp.StatusCode != 200 || c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("TLS login: %d %q cookie %+v", resp.StatusCode, body, c)
	}
	// Behind a TLS-terminating proxy.
	s := newGW(t, Config{AdminAuth: fakeAuth{}})
	resp, body = loginDo(t, nil, "POST", s.hs.URL+"/api/v1/login", `{"user":"admin","password":"secret"}`, header("X-Forwarded-Proto", "https"))
	if c := sessionCookieOf(resp); resp.StatusCode != 200 || c == nil || !c.Secure {
		t.Errorf("login behind a TLS proxy: %d %q cookie %+v", resp.StatusCode, body, c)
	}
}

// gateProbe wraps a handler that records the calls in adminGate.
func gateProbe(s *Server) (http.Handler, *int) {
	n := new(int)
	return s.adminGate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*n++
		_, _ = w.Write([]byte(`{"ok":true}`))
	})), n
}

func gateReq(h http.Handler, method, path string, set ...func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://duplex.test"+path, nil)
	r.RemoteAddr = "127.0.0.1:5555"
	for _, f := range set {
		f(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestAdminGateCSRF: with the session cookie, GET passes and unsafe
// methods need the session's X-CSRF-Token.
func TestAdminGateCSRF(t *testing.T) {
	s := newGW(t, Config{AdminAuth: fakeAuth{}})
	c, tok := login(t, s.hs.URL)
	_, other := login(t, s.hs.URL) // another session's token
	h, calls := gateProbe(s.gw)
	for _, tc := range []struct {
		name, method string
		set          []func(*http.Request)
		want         int
	}{
		{"GET", "GET", nil, 200},
		{"HEAD", "HEAD", nil, 200},
		{"POST without token", "POST", nil, 403},
		{"DELETE without token", "DELETE", nil, 403},
		{"POST wrong token", "POST", []func(*http.Request){header(csrfHeader, "forged")}, 403},
		{"POST other session's token", "POST", []func(*http.Request){header(csrfHeader, other)}, 403},
		{"POST right token", "POST", []func(*http.Request){header(csrfHeader, tok)}, 200},
		{"PUT right token", "PUT", []func(*http.Request){header(csrfHeader, tok)}, 200},
		{"PATCH right token", "PATCH", []func(*http.Request){header(csrfHeader, tok)}, 200},
		{"DELETE right token", "DELETE", []func(*http.Request){header(csrfHeader, tok)}, 200},
		{"POST right token, same origin", "POST", []func(*http.Request){header(csrfHeader, tok), header("Origin", "http://duplex.test")}, 200},
		{"POST right token, other port", "POST", []func(*http.Request){header(csrfHeader, tok), header("Origin", "http://duplex.test:3000"), header("Sec-Fetch-Site", "same-site")}, 403},
	} {
		before := *calls
		w := gateReq(h, tc.method, "/api/v1/x", withCookie(c, tc.set...))
		if w.Code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, w.Code, w.Body.String(), tc.want)
		}
		if passed := *calls > before; passed != (tc.want == 200) {
			t.Errorf("%s: handler called %v", tc.name, passed)
		}
		if tc.want == 403 {
			resp := w.Result()
			apiErrorOf(t, resp, w.Body.String())
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", tc.name, w.Header().Get("Cache-Control"))
		}
	}
	// A forged or unknown cookie is no login.
	w := gateReq(h, "GET", "/api/v1/x", withCookie(&http.Cookie{Name: sessionCookie, Value: "forged"}))
	if w.Code != 401 {
		t.Errorf("forged cookie: %d", w.Code)
	}
}

// TestAdminGateBasic: without a cookie, HTTP Basic and bearer tokens still
// work (no CSRF token needed), but unsafe methods that a browser marks as
// cross-site are refused; 401s are JSON under /api/v1 and leave out the
// Basic challenge for the UI's script requests.
func TestAdminGateBasic(t *testing.T) {
	s := newGW(t, Config{AdminAuth: fakeAuth{}, AllowedOrigins: []string{"https://console.example", "*"}})
	h, _ := gateProbe(s.gw)
	for _, tc := range []struct {
		name, method, path string
		set                []func(*http.Request)
		want               int
		challenge          bool
	}{
		{"basic GET", "GET", "/api/v1/x", []func(*http.Request){basic("admin", "secret")}, 200, false},
		{"bearer GET", "GET", "/api/v1/x", []func(*http.Request){bearer("tok-admin")}, 200, false},
		{"basic POST", "POST", "/api/v1/x", []func(*http.Request){basic("admin", "secret")}, 200, false},
		{"basic POST same origin", "POST", "/api/v1/x", []func(*http.Request){basic("admin", "secret"), header("Origin", "http://duplex.test")}, 200, false},
		{"basic POST allowed origin", "POST", "/api/v1/x", []func(*http.Request){basic("admin", "secret"), header("Origin", "https://console.example")}, 200, false},
		{"basic POST cross origin", "POST", "/api/v1/x", []func(*http.Request){basic("admin", "secret"), header("Origin", "https://evil.example")}, 403, false},
		{"basic POST null origin", "POST", "/api/v1/x", []func(*http.Request){basic("admin", "secret"), header("Origin", "null")}, 403, false},
		{"basic DELETE cross site", "DELETE", "/api/v1/x", []func(*http.Request){basic("admin", "secret"), header("Sec-Fetch-Site", "cross-site")}, 403, false},
		{"bad password POST cross origin", "POST", "/api/v1/x", []func(*http.Request){basic("admin", "nope"), header("Origin", "https://evil.example")}, 403, false},
		{"basic GET cross origin", "GET", "/api/v1/x", []func(*http.Request){basic("admin", "secret"), header("Origin", "https://evil.example")}, 200, false},
		{"bad password", "GET", "/api/v1/x", []func(*http.Request){basic("admin", "nope")}, 401, true},
		{"not admin", "GET", "/api/v1/x", []func(*http.Request){basic("bob", "pw")}, 403, false},
		{"banned", "GET", "/api/v1/x", []func(*http.Request){basic("banned", "x")}, 403, false},
		{"none, curl", "GET", "/api/v1/x", nil, 401, true},
		{"none, navigation", "GET", "/api/v1/x", []func(*http.Request){header("Sec-Fetch-Mode", "navigate")}, 401, true},
		{"none, fetch JSON", "GET", "/api/v1/x", []func(*http.Request){header("Accept", "application/json")}, 401, false},
		{"none, EventSource", "GET", "/api/v1/events", []func(*http.Request){header("Accept", "text/event-stream")}, 401, false},
		{"none, XHR", "GET", "/api/v1/x", []func(*http.Request){header("X-Requested-With", "XMLHttpRequest")}, 401, false},
		{"none, fetch mode cors", "GET", "/api/v1/x", []func(*http.Request){header("Sec-Fetch-Mode", "cors")}, 401, false},
		{"bad password, fetch JSON", "GET", "/api/v1/x", []func(*http.Request){basic("admin", "nope"), header("Accept", "application/json")}, 401, true},
		{"metrics none", "GET", "/metrics", []func(*http.Request){header("Accept", "application/json")}, 401, true},
	} {
		w := gateReq(h, tc.method, tc.path, tc.set...)
		if w.Code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, w.Code, w.Body.String(), tc.want)
		}
		if got := w.Header().Get("WWW-Authenticate") != ""; w.Code == 401 && got != tc.challenge {
			t.Errorf("%s: challenge %v, want %v", tc.name, got, tc.challenge)
		}
		if w.Code != 200 {
			if strings.HasPrefix(tc.path, "/api/v1/") {
				apiErrorOf(t, w.Result(), w.Body.String())
			} else if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("%s: Content-Type %q", tc.name, ct)
			}
		}
	}
}

// TestAdminGateOpen: without AdminAuth everything passes, except unsafe
// methods a browser marks as cross-site (CSRF against the loopback UI).
func TestAdminGateOpen(t *testing.T) {
	s := newGW(t, Config{})
	h, _ := gateProbe(s.gw)
	for _, tc := range []struct {
		name, method string
		set          []func(*http.Request)
		want         int
	}{
		{"GET", "GET", nil, 200},
		{"POST", "POST", nil, 200},
		{"POST same origin", "POST", []func(*http.Request){header("Origin", "http://duplex.test"), header("Sec-Fetch-Site", "same-origin")}, 200},
		{"POST same origin, host case", "POST", []func(*http.Request){header("Origin", "http://DUPLEX.test")}, 200},
		{"POST cross origin", "POST", []func(*http.Request){header("Origin", "http://evil.example")}, 403},
		{"POST other port", "POST", []func(*http.Request){header("Origin", "http://duplex.test:8081")}, 403},
		{"DELETE cross site", "DELETE", []func(*http.Request){header("Sec-Fetch-Site", "cross-site")}, 403},
		{"POST same site", "POST", []func(*http.Request){header("Sec-Fetch-Site", "same-site")}, 403},
		{"GET cross origin", "GET", []func(*http.Request){header("Origin", "http://evil.example")}, 200},
	} {
		w := gateReq(h, tc.method, "/api/v1/x", tc.set...)
		if w.Code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, w.Code, w.Body.String(), tc.want)
		}
	}
}

// TestLogout: logout ends the session and clears the cookie.
func TestLogout(t *testing.T) {
	s := newGW(t, Config{AdminAuth: fakeAuth{}})
	c, _ := login(t, s.hs.URL)
	if resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/history", "", withCookie(c)); resp.StatusCode != 200 {
		t.Fatalf("history with cookie: %d %q", resp.StatusCode, body)
	}
	resp, body := loginDo(t, nil, "POST", s.hs.URL+"/api/v1/logout", "", withCookie(c))
	if resp.StatusCode != 200 || !strings.Contains(body, `"ok": true`) {
		t.Errorf("logout: %d %q", resp.StatusCode, body)
	}
	if cl := sessionCookieOf(resp); cl == nil || cl.MaxAge >= 0 || cl.Value != "" {
		t.Errorf("logout cookie %+v", cl)
	}
	resp, body = loginDo(t, nil, "GET", s.hs.URL+"/api/v1/history", "", withCookie(c, header("Accept", "application/json")))
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("history after logout: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if s.gw.logins.len() != 0 {
		t.Errorf("%d sessions after logout", s.gw.logins.len())
	}
	// Logout without a session is fine.
	if resp, _ := loginDo(t, nil, "POST", s.hs.URL+"/api/v1/logout", "", nil); resp.StatusCode != 200 {
		t.Errorf("logout without session: %d", resp.StatusCode)
	}
}

// fakeClock is a settable clock for the login store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestLoginExpiry: a session ends after 30 minutes idle, and 12 hours
// after the login however busy.
func TestLoginExpiry(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLoginStore()
	l.now = clk.now
	idle, _ := l.create("admin")
	clk.add(29 * time.Minute)
	if _, ok := l.lookup(idle); !ok {
		t.Fatal("expired after 29 min")
	}
	clk.add(29 * time.Minute) // 29 min after the last use
	if _, ok := l.lookup(idle); !ok {
		t.Fatal("a use did not refresh the idle timer")
	}
	clk.add(31 * time.Minute)
	if _, ok := l.lookup(idle); ok {
		t.Fatal("alive after 31 min idle")
	}
	if l.len() != 0 {
		t.Errorf("expired session kept")
	}

	busy, _ := l.create("admin")
	for i := 0; i < 12*3; i++ {
		clk.add(20 * time.Minute)
		if _, ok := l.lookup(busy); !ok {
			t.Fatalf("busy session ended after %v", time.Duration(i+1)*20*time.Minute)
		}
	}
	clk.add(time.Minute)
	if _, ok := l.lookup(busy); ok {
		t.Fatal("alive after 12 h")
	}

	// Through the gate, with the server's store on the fake clock.
	s := newGW(t, Config{AdminAuth: fakeAuth{}})
	s.gw.logins.now = clk.now
	c, _ := login(t, s.hs.URL)
	if resp, _ := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/me", "", withCookie(c)); resp.StatusCode != 200 {
		t.Fatalf("me: %d", resp.StatusCode)
	}
	clk.add(31 * time.Minute)
	resp, body := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/me", "", withCookie(c))
	var me Me
	_ = json.Unmarshal([]byte(body), &me)
	if resp.StatusCode != 200 || me.LoggedIn || me.CSRFToken != "" || !me.AuthRequired {
		t.Errorf("me after expiry: %d %+v", resp.StatusCode, me)
	}
	if resp, _ := loginDo(t, nil, "GET", s.hs.URL+"/api/v1/history", "", withCookie(c)); resp.StatusCode != 401 {
		t.Errorf("history after expiry: %d", resp.StatusCode)
	}
}

// TestLoginCap: at most maxLogins sessions; the oldest go first.
func TestLoginCap(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLoginStore()
	l.now = clk.now
	var ids []string
	for i := 0; i < maxLogins+10; i++ {
		id, _ := l.create("admin")
		ids = append(ids, id)
		clk.add(time.Millisecond)
	}
	if n := l.len(); n != maxLogins {
		t.Errorf("%d sessions, want %d", n, maxLogins)
	}
	for i, id := range ids {
		_, ok := l.lookup(id)
		if want := i >= 10; ok != want {
			t.Errorf("session %d alive %v, want %v", i, ok, want)
		}
	}
	// Expired sessions make room before live ones are evicted.
	clk.add(31 * time.Minute)
	keep, _ := l.create("admin")
	if l.len() != 1 {
		t.Errorf("%d sessions after the sweep", l.len())
	}
	if _, ok := l.lookup(keep); !ok {
		t.Error("new session missing")
	}
}

// TestMe: /api/v1/me answers with and without a login, in both modes.
func TestMe(t *testing.T) {
	open := newGW(t, Config{Version: "v1"})
	resp, body := loginDo(t, nil, "GET", open.hs.URL+"/api/v1/me", "", nil)
	var me Me
	if err := json.Unmarshal([]byte(body), &me); resp.StatusCode != 200 || err != nil || me.AuthRequired || me.CSRFToken != "" || me.Version != "v1" {
		t.Errorf("open me: %d %q", resp.StatusCode, body)
	}
	// Open mode: login answers Me without a session; actions need no token.
	resp, body = loginDo(t, nil, "POST", open.hs.URL+"/api/v1/login", `{"user":"x","password":"y"}`, nil)
	if resp.StatusCode != 200 || sessionCookieOf(resp) != nil || !strings.Contains(body, `"auth_required": false`) {
		t.Errorf("open login: %d %q", resp.StatusCode, body)
	}

	s := newGW(t, Config{AdminAuth: fakeAuth{}, Version: "v2"})
	resp, body = loginDo(t, nil, "GET", s.hs.URL+"/api/v1/me", "", nil)
	me = Me{}
	if err := json.Unmarshal([]byte(body), &me); resp.StatusCode != 200 || err != nil || !me.AuthRequired || me.LoggedIn || me.CSRFToken != "" || me.Version != "v2" {
		t.Errorf("me without login: %d %q", resp.StatusCode, body)
	}
	c, tok := login(t, s.hs.URL)
	resp, body = loginDo(t, nil, "GET", s.hs.URL+"/api/v1/me", "", withCookie(c))
	me = Me{}
	if err := json.Unmarshal([]byte(body), &me); resp.StatusCode != 200 || err != nil || !me.AuthRequired || !me.LoggedIn || me.User != "admin" || me.CSRFToken != tok {
		t.Errorf("me with login: %d %q", resp.StatusCode, body)
	}
}

// TestReadyz: /readyz is 503 until SetReady(true), and while the store
// does not answer.
func TestReadyz(t *testing.T) {
	st := store.NewMemory()
	s := newGW(t, Config{Store: st})
	get := func() (int, string) {
		resp, body := loginDo(t, nil, "GET", s.hs.URL+"/readyz", "", nil)
		return resp.StatusCode, body
	}
	if code, body := get(); code != 503 {
		t.Errorf("before SetReady: %d %q", code, body)
	}
	s.gw.SetReady(true)
	if code, body := get(); code != 200 || body != "ready\n" {
		t.Errorf("ready: %d %q", code, body)
	}
	_ = st.Close()
	if code, body := get(); code != 503 || !strings.Contains(body, "store") {
		t.Errorf("store closed: %d %q", code, body)
	}
	s.gw.SetReady(false)
	if code, _ := get(); code != 503 {
		t.Errorf("after SetReady(false): %d", code)
	}
	// Without a store, only the flag counts; the admin handler has it too.
	n := newGW(t, Config{SeparateAdmin: true})
	n.gw.SetReady(true)
	ah := httptest.NewServer(n.gw.AdminHandler())
	defer ah.Close()
	for _, u := range []string{n.hs.URL, ah.URL} {
		if resp, body := loginDo(t, nil, "GET", u+"/readyz", "", nil); resp.StatusCode != 200 {
			t.Errorf("%s/readyz: %d %q", u, resp.StatusCode, body)
		}
	}
}

// TestLoginRealAuth: the login goes through broker/auth's Service like
// the protocols: password file, admins, and the ban after repeated
// failures from one address.
func TestLoginRealAuth(t *testing.T) {
	dir := t.TempDir()
	var file strings.Builder
	for _, u := range []string{"root", "carol"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		file.WriteString(u + ":" + string(h) + "\n")
	}
	pf := filepath.Join(dir, "passwd")
	if err := os.WriteFile(pf, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	svc, err := auth.New(auth.Config{PasswordFile: pf, Admins: []string{"root"},
		Ban: auth.BanConfig{After: 3, Delay: time.Millisecond, DelayMax: time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := newGW(t, Config{AdminAuth: svc})
	try := func(user, pass string) int {
		resp, _ := loginDo(t, nil, "POST", s.hs.URL+"/api/v1/login", `{"user":"`+user+`","password":"`+pass+`"}`, nil)
		return resp.StatusCode
	}
	if code := try("root", "root-pw"); code != 200 {
		t.Errorf("admin login: %d", code)
	}
	if code := try("carol", "carol-pw"); code != 403 {
		t.Errorf("non-admin login: %d", code)
	}
	for i := 0; i < 3; i++ {
		if code := try("root", "wrong"); code != 401 {
			t.Errorf("bad password %d: %d", i, code)
		}
	}
	if code := try("root", "root-pw"); code != 403 {
		t.Errorf("login from a banned address: %d", code)
	}
}
