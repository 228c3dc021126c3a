package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// Live feeds of the admin UI (issue 9), behind adminGate:
//
//	GET /api/v1/history       []Sample, the last 15 minutes, oldest first
//	                          (?since=T: those taken after Unix second T)
//	GET /api/v1/events        server-sent events: "sample" (Sample) every second,
//	                          with the sample's time as the event id (a
//	                          reconnecting EventSource gets the samples it missed)
//	GET /api/v1/tail?filter=F server-sent events: "message" (TailMessage) per
//	                          message published on a topic matching F, and
//	                          "dropped" {"dropped": N} when the tap's total of
//	                          lost messages grew (N is the total)
//
// Both streams send a comment line every 15 s so proxies keep them open,
// and end when the client goes, the server shuts down, or the login
// session they were opened with ends (an open stream counts as activity,
// so it keeps its session up to the 12-hour limit). At most 100 event
// streams and 20 tails run at once (503 past that).
const (
	sseHeartbeat  = 15 * time.Second
	maxTails      = 20
	tailBuffer    = 256
	tailBatch     = 64 // messages written before a flush
	tailDropEvery = time.Second
)

// liveRoutes registers GET /api/v1/history, /api/v1/events (SSE) and
// /api/v1/tail (SSE), and starts the history's sampler.
func (s *Server) liveRoutes(mux *http.ServeMux) {
	s.hist.start(s.ctx)
	mux.HandleFunc("GET /api/v1/history", s.serveHistory)
	mux.HandleFunc("GET /api/v1/events", s.serveEvents)
	mux.HandleFunc("GET /api/v1/tail", s.serveTail)
}

// serveHistory answers GET /api/v1/history[?since=T]: the samples kept
// (taken after Unix second T), oldest first.
func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			gateError(w, http.StatusBadRequest, "Duplex: since must be a Unix time in seconds")
			return
		}
		since = n
	}
	writeJSON(w, s.hist.since(since))
}

// sseWriter writes server-sent events, each under its own write deadline
// (the HTTP server may have a write timeout; a stream outlives it).
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	wt time.Duration
}

// startSSE sends the stream's header; the caller ends the stream with
// sw.end() whatever the error.
func (s *Server) startSSE(w http.ResponseWriter) (*sseWriter, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), wt: s.cfg.WriteTimeout}
	sw.deadline()
	// The client retries after 3 s when the stream breaks.
	if _, err := w.Write([]byte("retry: 3000\n\n")); err != nil {
		return sw, err
	}
	return sw, sw.flush()
}

// end lifts the write deadline: the connection may serve more requests,
// and the HTTP server (without a WriteTimeout) would not reset it.
func (sw *sseWriter) end() { _ = sw.rc.SetWriteDeadline(time.Time{}) }

func (sw *sseWriter) deadline() {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.wt)) // ErrNotSupported: no deadline to extend
}

// event writes one event (not flushed) with an id unless id is ""; data
// is JSON, one line.
func (sw *sseWriter) event(name, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sw.deadline()
	buf := make([]byte, 0, len(name)+len(id)+len(data)+24)
	if id != "" {
		buf = append(buf, "id: "...)
		buf = append(buf, id...)
		buf = append(buf, '\n')
	}
	buf = append(buf, "event: "...)
	buf = append(buf, name...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	_, err = sw.w.Write(buf)
	return err
}

// comment writes a comment line (a heartbeat) and flushes.
func (sw *sseWriter) comment(text string) error {
	sw.deadline()
	if _, err := sw.w.Write([]byte(": " + text + "\n\n")); err != nil {
		return err
	}
	return sw.flush()
}

func (sw *sseWriter) flush() error {
	err := sw.rc.Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// serveEvents streams a "sample" event every second, starting with the
// latest sample.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.hist.subscribe()
	if !ok {
		w.Header().Set("Retry-After", "10")
		gateError(w, http.StatusServiceUnavailable, "Duplex: too many event streams open ("+strconv.Itoa(maxEventStreams)+")")
		return
	}
	defer s.hist.unsubscribe(ch)
	sw, err := s.startSSE(w)
	defer sw.end()
	if err != nil {
		return
	}
	// A reconnecting EventSource sends the id of the last sample it got:
	// the samples since then fill the gap. Otherwise the latest comes at
	// once.
	start := []Sample{s.hist.last()}
	if id, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && id > 0 {
		start = s.hist.since(id)
	}
	var sent int64 // the latest sample's time sent
	send := func(smp Sample) error {
		if smp.Time <= sent {
			return nil
		}
		sent = smp.Time
		return sw.event("sample", strconv.FormatInt(smp.Time, 10), smp)
	}
	for _, smp := range start {
		if send(smp) != nil {
			return
		}
	}
	if sw.flush() != nil {
		return
	}
	hb := time.NewTicker(sseHeartbeat)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case smp := <-ch:
			if !s.sessionAlive(r) {
				return
			}
			if err := send(smp); err != nil || sw.flush() != nil {
				return
			}
		case <-hb.C:
			if sw.comment("heartbeat") != nil {
				return
			}
		}
	}
}

// serveTail streams the messages published on topics matching ?filter=
// ("" or "#": all topics; "$queue/NAME" for a queue's messages).
func (s *Server) serveTail(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("filter")
	if filter != "" {
		if err := broker.ValidFilter(filter); err != nil {
			gateError(w, http.StatusBadRequest, "Duplex: bad filter: "+err.Error())
			return
		}
	}
	if s.hist.tails.Add(1) > maxTails {
		s.hist.tails.Add(-1)
		w.Header().Set("Retry-After", "10")
		gateError(w, http.StatusServiceUnavailable, "Duplex: too many tails open ("+strconv.Itoa(maxTails)+")")
		return
	}
	defer s.hist.tails.Add(-1)
	tap, err := s.router.Tap(filter, tailBuffer)
	if err != nil {
		gateError(w, http.StatusBadRequest, "Duplex: "+err.Error())
		return
	}
	defer tap.Close()
	sw, err := s.startSSE(w)
	defer sw.end()
	if err != nil {
		return
	}
	hb := time.NewTicker(sseHeartbeat)
	defer hb.Stop()
	dt := time.NewTicker(tailDropEvery)
	defer dt.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case m, ok := <-tap.C:
			if !ok {
				return
			}
			// Write what is waiting, up to tailBatch, then flush once.
			for n := 1; ; n++ {
				if sw.event("message", "", tailMessage(m)) != nil {
					return
				}
				if n == tailBatch {
					break
				}
				select {
				case m = <-tap.C: // nil once closed
				default:
					m = nil
				}
				if m == nil {
					break
				}
			}
			if sw.flush() != nil {
				return
			}
		case <-dt.C:
			if !s.sessionAlive(r) {
				return
			}
			if d := tap.Dropped(); d > reported {
				reported = d
				if sw.event("dropped", "", map[string]uint64{"dropped": d}) != nil || sw.flush() != nil {
					return
				}
			}
		case <-hb.C:
			if sw.comment("heartbeat") != nil {
				return
			}
		}
	}
}

// tailMessage converts a tapped message, with at most TailPayloadBytes of
// its payload.
func tailMessage(m *broker.Message) TailMessage {
	p := m.Payload
	tm := TailMessage{
		Time: time.Now().UnixMilli(), Topic: m.Topic, Queue: m.Queue, QoS: int(m.QoS), Retain: m.Retain,
		ContentType: m.ContentType, From: string(m.From), Size: len(p),
	}
	if len(p) > TailPayloadBytes {
		p, tm.Truncated = p[:TailPayloadBytes], true
	}
	tm.Payload = base64.StdEncoding.EncodeToString(p)
	return tm
}
