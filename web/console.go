package web

import "net/http"

// The management plane's wiring (issue 9): which handler serves which
// path, on the public listener (unless Config.SeparateAdmin) and on the
// admin listener.
//
//	/                   the admin UI (ui.go): static, embedded; no data
//	/api/v1/login …     login, logout, me (login.go): outside the gate
//	/api/v1/…           the API (apiv1*.go) and live feeds (live.go), behind adminGate
//	/metrics            Prometheus (metrics.go), behind adminGate
//	/healthz, /readyz   health (server.go, login.go)
//
// adminGate (login.go) lets a request through when Config.AdminAuth is
// nil, or with an admin session cookie (plus the X-CSRF-Token header on
// POST, PUT, PATCH and DELETE), or with HTTP Basic or bearer credentials
// of an admin.
func (s *Server) consoleRoutes(mux *http.ServeMux) {
	v1 := http.NewServeMux()
	s.apiV1Routes(v1)
	s.liveRoutes(v1)
	mux.Handle("/api/v1/", s.adminGate(v1))
	s.loginRoutes(mux)
	mux.Handle("GET /metrics", s.adminGate(s.metrics))
	mux.Handle("/", s.uiHandler())
}

// initConsole builds the management plane's state; New calls it.
func (s *Server) initConsole() {
	s.hist = newHistory(s)
	s.logins = newLoginStore()
	s.metrics = s.newMetricsHandler()
	s.initCluster() // last: other nodes may ask at once
}

// SetReady marks the listeners as up (or down): /readyz answers 200 only
// while ready and the store answers.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }
