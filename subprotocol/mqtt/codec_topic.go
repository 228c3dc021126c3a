package mqtt

import (
	"strings"

	"github.com/duplexmq/duplex/broker"
)

// sharePrefix starts a Shared Subscription's Topic Filter (MQTT 5 §4.8.2).
const sharePrefix = "$share/"

// The topic rules are the broker's (broker.ValidTopicName,
// broker.ValidFilter: one definition for every protocol); the codec adds
// the reason code to send and the MQTT-only shared subscription syntax.

// ValidTopicName checks the syntax of a PUBLISH, Will or Response Topic
// Name with broker.ValidTopicName: at least one byte [MQTT-4.7.3-1] and no
// wildcard characters [MQTT-3.3.2-2] [MQTT-4.7.1-1] (the UTF-8 rules are
// also checked when the string is decoded). It returns an Error with
// CodeTopicNameInvalid.
func ValidTopicName(name string) error {
	if err := broker.ValidTopicName(name); err != nil {
		return Error{Code: CodeTopicNameInvalid, Reason: topicReason(err, broker.ErrInvalidTopic)}
	}
	return nil
}

// ValidTopicFilter checks the syntax of a SUBSCRIBE or UNSUBSCRIBE Topic
// Filter with broker.ValidFilter: at least one byte [MQTT-4.7.3-1]; '#'
// only as the whole last level [MQTT-4.7.1-2]; '+' only as a whole level
// [MQTT-4.7.1-3]. A filter starting "$share/" needs a non-empty share name
// without '/', '+' or '#', then '/' and a valid filter [MQTT-4.8.2-1]
// [MQTT-4.8.2-2]. It returns an Error with CodeTopicFilterInvalid.
func ValidTopicFilter(filter string) error {
	if strings.HasPrefix(filter, sharePrefix) {
		group, rest, ok := strings.Cut(filter[len(sharePrefix):], "/")
		if !ok || group == "" || strings.ContainsAny(group, "+#") {
			return Error{Code: CodeTopicFilterInvalid, Reason: "shared subscription needs $share/<name>/<filter> with a name free of '+' and '#' [MQTT-4.8.2-1]"}
		}
		if rest == "" {
			return Error{Code: CodeTopicFilterInvalid, Reason: "shared subscription with an empty topic filter [MQTT-4.8.2-2]"}
		}
		filter = rest
	}
	if err := broker.ValidFilter(filter); err != nil {
		return Error{Code: CodeTopicFilterInvalid, Reason: topicReason(err, broker.ErrInvalidFilter)}
	}
	return nil
}

// topicReason is the failed check of a broker topic error, without the
// sentinel's text: "wildcard '+' at byte 3 [MQTT-3.3.2-2]".
func topicReason(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

// SharedFilter splits a Shared Subscription's Topic Filter
// "$share/<name>/<filter>" into its share name and filter (MQTT 5 §4.8.2).
// ok is false for an ordinary filter. It does not validate; ReadPacket has
// already done so for every filter it returns.
func SharedFilter(filter string) (name, topicFilter string, ok bool) {
	if !strings.HasPrefix(filter, sharePrefix) {
		return "", filter, false
	}
	name, topicFilter, ok = strings.Cut(filter[len(sharePrefix):], "/")
	if !ok {
		return "", filter, false
	}
	return name, topicFilter, true
}
