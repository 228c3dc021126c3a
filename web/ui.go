package web

import "net/http"

// uiHandler serves the embedded admin UI (web/ui). TODO(issue 9, helper B2).
func (s *Server) uiHandler() http.Handler { return http.NotFoundHandler() }
