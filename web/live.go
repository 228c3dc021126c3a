package web

import "net/http"

// history samples the router once a second and keeps the last 15 minutes
// for the charts. TODO(issue 9, helper B2).
type history struct{}

func newHistory(s *Server) *history { return &history{} }

// liveRoutes registers GET /api/v1/history, /api/v1/events (SSE) and
// /api/v1/tail (SSE). TODO(issue 9, helper B2).
func (s *Server) liveRoutes(mux *http.ServeMux) {}
