package mqtt

import "strings"

// sharePrefix starts a Shared Subscription's Topic Filter (MQTT 5 §4.8.2).
const sharePrefix = "$share/"

// ValidTopicName checks the syntax of a PUBLISH or Will Topic Name: at least
// one byte [MQTT-4.7.3-1] and no wildcard characters [MQTT-3.3.2-2]
// [MQTT-4.7.1-1]. The UTF-8 rules are checked when the string is decoded.
// It returns an Error with CodeTopicNameInvalid.
func ValidTopicName(name string) error {
	if name == "" {
		return Error{Code: CodeTopicNameInvalid, Reason: "empty topic name [MQTT-4.7.3-1]"}
	}
	if strings.ContainsAny(name, "+#") {
		return Error{Code: CodeTopicNameInvalid, Reason: "wildcard in topic name [MQTT-3.3.2-2]"}
	}
	return nil
}

// ValidTopicFilter checks the syntax of a SUBSCRIBE or UNSUBSCRIBE Topic
// Filter: at least one byte [MQTT-4.7.3-1]; '#' only as the whole last level
// [MQTT-4.7.1-2]; '+' only as a whole level [MQTT-4.7.1-3]; and for a
// filter starting "$share/", a non-empty share name without '/', '+' or '#'
// followed by '/' and a valid filter [MQTT-4.8.2-1] [MQTT-4.8.2-2]. It
// returns an Error with CodeTopicFilterInvalid.
func ValidTopicFilter(filter string) error {
	if filter == "" {
		return Error{Code: CodeTopicFilterInvalid, Reason: "empty topic filter [MQTT-4.7.3-1]"}
	}
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
	for i := 0; i < len(filter); i++ {
		switch filter[i] {
		case '#':
			// [MQTT-4.7.1-2] the multi-level wildcard is a whole level and the last one.
			if i != len(filter)-1 || (i > 0 && filter[i-1] != '/') {
				return Error{Code: CodeTopicFilterInvalid, Reason: "'#' is not the whole last level [MQTT-4.7.1-2]"}
			}
		case '+':
			// [MQTT-4.7.1-3] the single-level wildcard fills a whole level.
			if (i > 0 && filter[i-1] != '/') || (i < len(filter)-1 && filter[i+1] != '/') {
				return Error{Code: CodeTopicFilterInvalid, Reason: "'+' is not a whole level [MQTT-4.7.1-3]"}
			}
		}
	}
	return nil
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
