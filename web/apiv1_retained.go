package web

import (
	"encoding/base64"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/duplexmq/duplex/broker"
)

// Encodings of Retained.PreviewEncoding and PublishRequest.PayloadEncoding.
const (
	encText   = "text"
	encBase64 = "base64"
)

// v1Retained answers GET /api/v1/retained?limit&cursor&q: retained
// messages in topic order whose topic starts with q, each with a preview
// of its payload.
func (s *Server) v1Retained(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	infos, next := s.router.RetainedPage(p.cursor, p.limit, p.q)
	now := time.Now()
	items := make([]Retained, len(infos))
	for i := range infos {
		items[i] = retainedOf(&infos[i], now)
	}
	apiJSON(w, page(items, next))
}

func retainedOf(m *broker.RetainedInfo, now time.Time) Retained {
	out := Retained{
		Topic:       m.Topic,
		Size:        m.Size,
		QoS:         int(m.QoS),
		ContentType: m.ContentType,
		ExpiresAt:   rfc3339(m.Expires),
		Truncated:   len(m.Preview) < m.Size,
	}
	if !m.StoredAt.IsZero() {
		out.AgeSeconds = max(0, now.Sub(m.StoredAt).Seconds())
	}
	out.Preview, out.PreviewEncoding = preview(m.Preview, out.Truncated)
	return out
}

// preview shows b as text when it is UTF-8 (a rune cut by the truncation
// at the end does not count), as base64 otherwise.
func preview(b []byte, truncated bool) (string, string) {
	if truncated {
		// Drop an incomplete last rune: at most utf8.UTFMax-1 bytes.
		for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
			c := b[len(b)-i]
			if utf8.RuneStart(c) {
				if !utf8.FullRune(b[len(b)-i:]) {
					b = b[:len(b)-i]
				}
				break
			}
		}
	}
	if utf8.Valid(b) {
		return string(b), encText
	}
	return base64.StdEncoding.EncodeToString(b), encBase64
}

// v1DeleteRetained answers DELETE /api/v1/retained?topic=T: the retained
// message of T goes, in memory and in the store; 404 when T has none.
func (s *Server) v1DeleteRetained(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if err := broker.ValidTopicName(topic); err != nil {
		apiError(w, http.StatusBadRequest, "topic: "+err.Error())
		return
	}
	if err := s.router.DeleteRetained(topic); err != nil {
		s.actionError(w, r, err)
		return
	}
	s.cfg.Log.Info("web: admin deleted a retained message", "topic", topic, "remote", r.RemoteAddr)
	apiOK(w)
}
