package web

import "net/http"

// loginStore keeps the admin UI's sessions. TODO(issue 9, helper B2).
type loginStore struct{}

func newLoginStore() *loginStore { return &loginStore{} }

// adminGate: see console.go. TODO(issue 9, helper B2).
func (s *Server) adminGate(next http.Handler) http.Handler { return s.requireAdmin(next) }

// loginRoutes registers POST /api/v1/login, POST /api/v1/logout and GET
// /api/v1/me. TODO(issue 9, helper B2).
func (s *Server) loginRoutes(mux *http.ServeMux) {}

// serveReadyz answers 200 "ready" while SetReady(true) holds and the store
// answers, 503 otherwise. TODO(issue 9, helper B2).
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}
