package web

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/duplexmq/duplex/broker"
)

// maxContentType bounds PublishRequest.ContentType.
const maxContentType = 256

// maxPublishPayload is the largest payload POST /api/v1/publish takes:
// the largest message a WebSocket client may send (Config.MaxMessageSize).
func (s *Server) maxPublishPayload() int {
	return int(s.cfg.MaxMessageSize)
}

// publishBodyLimit bounds the publish request body: 1 MiB, or enough for
// the largest payload in base64 plus the other fields.
func (s *Server) publishBodyLimit() int64 {
	n := int64(base64.StdEncoding.EncodedLen(s.maxPublishPayload())) + 64<<10
	return max(n, maxAPIBody)
}

// v1Publish answers POST /api/v1/publish with a PublishRequest: the
// message goes through Router.Publish as if a client had sent it, with no
// publishing session (so no ACL applies: the caller is an admin) and an
// empty Origin. A retained message with an empty payload clears the
// topic's retained message.
func (s *Server) v1Publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if !decodeBody(w, r, s.publishBodyLimit(), &req) {
		return
	}
	m, status, msg := s.publishMessage(&req)
	if status != 0 {
		apiError(w, status, msg)
		return
	}
	if err := s.router.Publish(r.Context(), nil, m); err != nil {
		s.actionError(w, r, err)
		return
	}
	apiOK(w)
}

// publishMessage checks req and builds its message, or returns the
// status and text of the refusal.
func (s *Server) publishMessage(req *PublishRequest) (*broker.Message, int, string) {
	bad := func(format string, args ...any) (*broker.Message, int, string) {
		return nil, http.StatusBadRequest, fmt.Sprintf(format, args...)
	}
	m := &broker.Message{Topic: req.Topic, Queue: req.Queue, ContentType: req.ContentType, Retain: req.Retain}
	switch {
	case (req.Topic == "") == (req.Queue == ""):
		return bad("exactly one of topic and queue must be set")
	case req.QoS < 0 || req.QoS > 2:
		return bad("qos must be 0, 1 or 2")
	case len(req.ContentType) > maxContentType:
		return bad("content_type longer than %d bytes", maxContentType)
	case strings.ContainsAny(req.ContentType, "\x00\r\n"):
		return bad("content_type must not contain NUL, CR or LF")
	}
	m.QoS = broker.QoS(req.QoS)
	if req.Topic != "" {
		if err := broker.ValidTopicName(req.Topic); err != nil {
			return bad("topic: %v", err)
		}
	} else {
		if err := broker.ValidQueueName(req.Queue); err != nil {
			return bad("queue: %v", err)
		}
		switch {
		case req.Retain:
			return bad("retain applies to topics, not queues")
		case strings.HasPrefix(req.Queue, broker.DurableQueuePrefix):
			return bad("queue: %s names a durable subscription's queue; publish to its topic", broker.DurableQueuePrefix)
		case strings.HasPrefix(req.Queue, broker.TempQueuePrefix):
			// The router drops a message for a temporary queue that is
			// gone without a word: say so.
			if _, ok := s.router.Queue(req.Queue); !ok {
				return nil, http.StatusNotFound, broker.ErrNoSuchQueue.Error() + ": " + req.Queue
			}
		}
	}
	switch req.PayloadEncoding {
	case "", encText:
		m.Payload = []byte(req.Payload)
	case encBase64:
		b, err := base64.StdEncoding.DecodeString(req.Payload)
		if err != nil {
			return bad("payload is not valid base64: %v", err)
		}
		m.Payload = b
	default:
		return bad("payload_encoding must be text or base64")
	}
	if max := s.maxPublishPayload(); len(m.Payload) > max {
		return bad("payload of %d bytes is larger than the %d allowed", len(m.Payload), max)
	}
	return m, 0, ""
}
