package broker

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicLen is the longest topic name or filter in bytes: an MQTT UTF-8
// encoded string carries a two-byte length (MQTT 3.1.1 §1.5.3).
const MaxTopicLen = 65535

// ValidTopicName reports whether t may be published to, in the canonical
// (MQTT) form of ARCHITECTURE §3.3. The error wraps ErrInvalidTopic and says
// why. The rules are MQTT 3.1.1 §4.7.3 and §1.5.3:
//
//   - at least one character [MQTT-4.7.3-1];
//   - no wildcard characters '+' or '#' [MQTT-3.3.2-2];
//   - no U+0000 [MQTT-4.7.3-2];
//   - well-formed UTF-8 [MQTT-1.5.3-1], at most 65535 bytes (§1.5.3).
//
// Empty levels ("a//b", "/a", "a/") are legal (§4.7.1.1). A leading '$' is
// legal too; such topics are only reachable from filters that do not start
// with a wildcard [MQTT-4.7.2-1].
func ValidTopicName(t string) error {
	if t == "" {
		return fmt.Errorf("%w: empty [MQTT-4.7.3-1]", ErrInvalidTopic)
	}
	if len(t) > MaxTopicLen {
		return fmt.Errorf("%w: %d bytes, limit %d (MQTT 3.1.1 §1.5.3)", ErrInvalidTopic, len(t), MaxTopicLen)
	}
	// One pass (every MQTT PUBLISH is checked twice: by the codec and by
	// Publish); UTF-8 is decoded only when a byte is not ASCII.
	nul, wild, ascii := -1, -1, true
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c >= utf8.RuneSelf:
			ascii = false
		case c == 0:
			if nul < 0 {
				nul = i
			}
		case c == '+' || c == '#':
			if wild < 0 {
				wild = i
			}
		}
	}
	if !ascii && !utf8.ValidString(t) {
		return fmt.Errorf("%w: not valid UTF-8 [MQTT-1.5.3-1]", ErrInvalidTopic)
	}
	if nul >= 0 {
		return fmt.Errorf("%w: U+0000 at byte %d [MQTT-4.7.3-2]", ErrInvalidTopic, nul)
	}
	if wild >= 0 {
		return fmt.Errorf("%w: wildcard %q at byte %d [MQTT-3.3.2-2]", ErrInvalidTopic, t[wild], wild)
	}
	return nil
}

// ValidFilter reports whether f is a well-formed topic filter in the
// canonical (MQTT) form. The error wraps ErrInvalidFilter and says why. The
// rules are MQTT 3.1.1 §4.7.1 and §4.7.3:
//
//   - at least one character [MQTT-4.7.3-1];
//   - no U+0000 [MQTT-4.7.3-2];
//   - well-formed UTF-8 [MQTT-1.5.3-1], at most 65535 bytes (§1.5.3);
//   - '#' only as a whole level, and only as the last level [MQTT-4.7.1-2];
//   - '+' only as a whole level [MQTT-4.7.1-3].
//
// Shared subscriptions ("$share/<group>/<filter>", MQTT 5 §4.8.2) are not
// recognised here: the caller strips the prefix first. Empty levels are legal.
func ValidFilter(f string) error {
	if f == "" {
		return fmt.Errorf("%w: empty [MQTT-4.7.3-1]", ErrInvalidFilter)
	}
	if len(f) > MaxTopicLen {
		return fmt.Errorf("%w: %d bytes, limit %d (MQTT 3.1.1 §1.5.3)", ErrInvalidFilter, len(f), MaxTopicLen)
	}
	if !utf8.ValidString(f) {
		return fmt.Errorf("%w: not valid UTF-8 [MQTT-1.5.3-1]", ErrInvalidFilter)
	}
	if i := strings.IndexByte(f, 0); i >= 0 {
		return fmt.Errorf("%w: U+0000 at byte %d [MQTT-4.7.3-2]", ErrInvalidFilter, i)
	}
	for start, rest := 0, f; ; {
		lvl, tail, more := strings.Cut(rest, "/")
		if i := strings.IndexByte(lvl, '#'); i >= 0 {
			if len(lvl) != 1 {
				return fmt.Errorf("%w: '#' at byte %d is not a whole level [MQTT-4.7.1-2]", ErrInvalidFilter, start+i)
			}
			if more {
				return fmt.Errorf("%w: '#' at byte %d is not the last level [MQTT-4.7.1-2]", ErrInvalidFilter, start+i)
			}
		}
		if i := strings.IndexByte(lvl, '+'); i >= 0 && len(lvl) != 1 {
			return fmt.Errorf("%w: '+' at byte %d is not a whole level [MQTT-4.7.1-3]", ErrInvalidFilter, start+i)
		}
		if !more {
			return nil
		}
		start += len(lvl) + 1
		rest = tail
	}
}

// MatchTopic reports whether the topic name topic matches the topic filter
// filter. It is the naive reference matcher, written straight from MQTT 3.1.1
// §4.7 for clarity rather than speed; Index must agree with it (FuzzIndex).
// Both arguments are assumed valid (ValidFilter, ValidTopicName).
func MatchTopic(filter, topic string) bool {
	// [MQTT-4.7.2-1] The Server MUST NOT match Topic Filters starting with a
	// wildcard character (# or +) with Topic Names beginning with a $
	// character.
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	// §4.7.1.1: the forward slash separates levels; adjacent slashes and
	// leading or trailing slashes make zero-length levels, which are legal
	// and compared like any other.
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	for i, f := range fl {
		// §4.7.1.2: '#' matches the parent level and any number of child
		// levels, so "sport/#" matches "sport" and "sport/a/b". It is
		// always last [MQTT-4.7.1-2], so whatever remains of the topic,
		// including nothing, matches.
		if f == "#" {
			return true
		}
		// The topic ran out of levels before the filter did: "sport/+"
		// does not match "sport" (§4.7.1.3).
		if i >= len(tl) {
			return false
		}
		// §4.7.1.3: '+' matches exactly one level, the empty level
		// included ("+/+" matches "/finance").
		if f == "+" {
			continue
		}
		// §4.7.3: a literal level matches only the identical level;
		// comparison is case-sensitive and byte-wise.
		if f != tl[i] {
			return false
		}
	}
	// Every filter level matched one topic level; the topic must not have
	// more levels ("sport/tennis" does not match "sport/tennis/player1").
	return len(fl) == len(tl)
}
