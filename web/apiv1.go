package web

import "net/http"

// apiV1Routes registers the management API's data endpoints and actions
// (docs/api.md). TODO(issue 9, helper B1).
func (s *Server) apiV1Routes(mux *http.ServeMux) {}
