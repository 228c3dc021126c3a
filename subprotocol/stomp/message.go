package stomp

import (
	"strconv"
	"unicode/utf8"

	"github.com/duplexmq/duplex/broker"
)

// appendMessage encodes a delivery as a MESSAGE frame (STOMP 1.2 §MESSAGE)
// straight into dst, without building a frame.Frame: destination,
// message-id, subscription, ack (1.2, client ack modes), content-type,
// reply-to, redelivered, the sender's own headers, content-length, body.
// It reports whether the body must go in a binary WebSocket message.
func (c *conn) appendMessage(dst []byte, d broker.Delivery, id uint64) ([]byte, bool) {
	m, st := d.Msg, d.Sub.Data.(*subState)
	v := parseVersion(c.version)
	hdr := func(dst []byte, k, val string) []byte {
		if v == v10 {
			dst = append(dst, k...)
			dst = append(dst, ':')
			dst = append(dst, val...)
		} else {
			dst = appendEscaped(dst, k, v)
			dst = append(dst, ':')
			dst = appendEscaped(dst, val, v)
		}
		return append(dst, '\n')
	}
	dst = append(dst, "MESSAGE\n"...)
	switch {
	case m.Queue == "":
		dst = appendTopicDest(dst, m.Topic, c.cfg.TopicSeparator, v)
	case st.dest != "" && st.dest == st.id && d.Sub.Queue != "" && len(st.dest) > len(tempQueuePrefix) && st.dest[:len(tempQueuePrefix)] == tempQueuePrefix:
		dst = hdr(dst, "destination", st.dest) // reply on a temp queue
	default:
		dst = hdr(dst, "destination", queuePrefix+m.Queue)
	}
	var num [20]byte
	idStr := strconv.AppendUint(num[:0], id, 10)
	dst = append(dst, "message-id:"...)
	dst = append(dst, idStr...)
	dst = append(dst, '\n')
	dst = hdr(dst, "subscription", st.id)
	if st.ack != broker.AckAuto && v == v12 {
		dst = append(dst, "ack:"...)
		dst = append(dst, idStr...)
		dst = append(dst, '\n')
	}
	if m.ContentType != "" {
		dst = hdr(dst, "content-type", m.ContentType)
	}
	if m.ResponseTopic != "" {
		dst = hdr(dst, "reply-to", topicDest(m.ResponseTopic, c.cfg.TopicSeparator))
	} else if m.ReplyTo != "" {
		dst = hdr(dst, "reply-to", m.ReplyTo)
	}
	if len(m.CorrelationData) > 0 {
		dst = hdr(dst, "correlation-id", string(m.CorrelationData))
	}
	// Always there, as RabbitMQ sends it: false on a first delivery.
	if d.Redelivered {
		dst = append(dst, "redelivered:true\n"...)
	} else {
		dst = append(dst, "redelivered:false\n"...)
	}
	// A message from another protocol carries at most MaxOutboundHeaders
	// user headers (an MQTT 5 PUBLISH may hold thousands of user
	// properties); the rest are dropped and counted.
	limit := len(m.Props)
	if m.Origin != "stomp" && c.cfg.MaxOutboundHeaders >= 0 {
		limit = c.cfg.MaxOutboundHeaders
	}
	n := 0
	for i, p := range m.Props {
		// A user property named like one of STOMP's own headers (an MQTT 5
		// publisher may send "content-length") would come first and win
		// (STOMP 1.2 §Repeated Header Entries), breaking the frame: drop it.
		if reservedHeaders[p.Key] {
			continue
		}
		if n == limit {
			c.p.ctr.HeadersDropped(countUserHeaders(m.Props[i:]))
			break
		}
		dst = hdr(dst, p.Key, p.Value)
		n++
	}
	dst = append(dst, "content-length:"...)
	dst = strconv.AppendInt(dst, int64(len(m.Payload)), 10)
	dst = append(dst, "\n\n"...)
	dst = append(dst, m.Payload...)
	dst = append(dst, 0)
	return dst, !utf8.Valid(m.Payload)
}

// appendTopicDest appends the destination header of a topic message,
// hdr(dst, "destination", topicDest(topic, sep)) without building the
// string: each byte of topic swapped when sep is '.' (swapSeparators),
// then escaped for v (appendEscaped; the prefix needs none).
func appendTopicDest(dst []byte, topic string, sep byte, v version) []byte {
	dst = append(dst, "destination:"+topicPrefix...)
	if sep != '.' && v == v10 {
		dst = append(dst, topic...)
		return append(dst, '\n')
	}
	for i := 0; i < len(topic); i++ {
		b := topic[i]
		if sep == '.' {
			switch b {
			case '.':
				b = '/'
			case '/':
				b = '.'
			}
		}
		if v != v10 {
			switch {
			case b == '\\':
				dst = append(dst, '\\', '\\')
				continue
			case b == '\n':
				dst = append(dst, '\\', 'n')
				continue
			case b == ':':
				dst = append(dst, '\\', 'c')
				continue
			case b == '\r' && v == v12:
				dst = append(dst, '\\', 'r')
				continue
			}
		}
		dst = append(dst, b)
	}
	return append(dst, '\n')
}

// countUserHeaders counts the properties that would be user headers (not
// named like STOMP's own).
func countUserHeaders(props []broker.Property) int {
	n := 0
	for _, p := range props {
		if !reservedHeaders[p.Key] {
			n++
		}
	}
	return n
}
