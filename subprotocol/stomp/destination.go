package stomp

import (
	"strings"

	"github.com/duplexmq/duplex/broker"
)

// Destination prefixes (RabbitMQ Web-STOMP names).
const (
	topicPrefix      = "/topic/"
	queuePrefix      = "/queue/"
	tempQueuePrefix  = "/temp-queue/"
	replyQueuePrefix = "/reply-queue/"
)

// supportedPrefixes is quoted in errors about unknown destinations.
const supportedPrefixes = "/topic/<name>, /queue/<name>, /temp-queue/<name> (in reply-to), /reply-queue/<name>"

// dest is a parsed destination: exactly one of topic and queue is set.
type dest struct {
	topic string // router topic or filter (MQTT form)
	queue string // router queue name
}

// parseDest maps a STOMP destination to the router's names. filter allows
// wildcards (SUBSCRIBE). With sep '.', RabbitMQ's mapping applies: '.' and
// '/' swap and '*' is '+' (ARCHITECTURE §3.3), which is lossless.
func parseDest(d string, sep byte, filter bool) (dest, error) {
	switch {
	case strings.HasPrefix(d, topicPrefix):
		t := d[len(topicPrefix):]
		if sep == '.' {
			t = swapSeparators(t, filter)
		}
		return dest{topic: t}, nil
	case strings.HasPrefix(d, queuePrefix):
		return dest{queue: d[len(queuePrefix):]}, nil
	case strings.HasPrefix(d, replyQueuePrefix) && !filter:
		name := d[len(replyQueuePrefix):]
		if !strings.HasPrefix(name, broker.TempQueuePrefix) {
			return dest{}, protocolErr("unknown destination", "%q is not a reply queue this server issued", d)
		}
		return dest{queue: name}, nil
	case d == "":
		return dest{}, protocolErr("missing destination", "the frame needs a destination header; supported: %s", supportedPrefixes)
	}
	return dest{}, protocolErr("unknown destination", "%q is not supported; use %s", d, supportedPrefixes)
}

// topicDest is the STOMP destination of a router topic.
func topicDest(topic string, sep byte) string {
	if sep == '.' {
		return topicPrefix + swapSeparators(topic, false)
	}
	return topicPrefix + topic
}

// swapSeparators exchanges '.' and '/', and with filter maps '*' to '+'.
func swapSeparators(s string, filter bool) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '.':
			b[i] = '/'
		case c == '/':
			b[i] = '.'
		case c == '*' && filter:
			b[i] = '+'
		}
	}
	return string(b)
}
