package web

import (
	"context"

	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/common/expfmt"
	"net/http"
	"time"
)

// newMetricsHandler builds /metrics. TODO(issue 9, helper C).
func (s *Server) newMetricsHandler() http.Handler { return http.NotFoundHandler() }

// RunSys publishes the $SYS/broker/... topics every interval until ctx
// ends (0: never). TODO(issue 9, helper C).
func (s *Server) RunSys(ctx context.Context, interval time.Duration) {}
