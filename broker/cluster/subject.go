package cluster

import (
	"errors"
	"strings"
)

// The topic ⇄ subject encoding.
//
// An MQTT topic is levels separated by '/'; a level may be empty and may
// hold any UTF-8 but U+0000 (MQTT 3.1.1 §4.7.1.1, §4.7.3). A NATS subject
// is tokens separated by '.'; a token must be non-empty, must not hold '.',
// ' ', '\t', '\r', '\n' or '\f' (nats-server isValidSubject, nats.go
// badSubject), and a whole token "*" or ">" is a wildcard. So each level is
// encoded on its own into exactly one token:
//
//   - the bytes 0x21..0x7e other than '.', '*', '>' and '%' stand for
//     themselves;
//   - every other byte (controls, space, DEL, the three NATS specials, '%'
//     and every byte of a non-ASCII character) is '%' and two upper-case
//     hex digits;
//   - the empty level is the token "%" alone (no escape is that short).
//
// Tokens are then printable ASCII: valid in any NATS subject, header value
// or JetStream subject filter, never a wildcard. Because the mapping is
// per level and one-to-one, '+' ↔ '*' keeps its one-level meaning and
// matching is preserved (FuzzSubjectRoundTrip).
//
// Non-ASCII levels grow threefold. A subject longer than MaxSubject (an
// MQTT topic may be 65535 bytes; a NATS client's control line, which
// carries the subject, is 4096 bytes by default) is not used: such a
// message is published on the node's long subject with its encoded topic
// in a header, and every node with a wildcard filter (which could match
// it) or a filter itself too long listens there. The receiving router
// matches it locally, so nothing is lost and only long topics are
// broadcast beyond interest.

// MaxSubject is the longest subject used for a topic or filter: under
// NATS's default max_control_line (4096 bytes: "HPUB <subject> <sizes>"
// and "SUB <subject> <sid>" lines must fit) with room to spare, so an
// external NATS needs no special setting.
const MaxSubject = 3072

const escape = '%'

const hexDigits = "0123456789ABCDEF"

// plain reports whether c stands for itself in a token.
func plain(c byte) bool {
	return c > ' ' && c < 0x7f && c != '.' && c != '*' && c != '>' && c != escape
}

// appendToken appends level's token to dst.
func appendToken(dst []byte, level string) []byte {
	if level == "" {
		return append(dst, escape)
	}
	for i := 0; i < len(level); i++ {
		c := level[i]
		if plain(c) {
			dst = append(dst, c)
		} else {
			dst = append(dst, escape, hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return dst
}

// errToken is a token that encode never produces.
var errToken = errors.New("cluster: malformed subject token")

// decodeToken returns the level a token stands for.
func decodeToken(tok string) (string, error) {
	if tok == string(escape) {
		return "", nil
	}
	if tok == "" {
		return "", errToken
	}
	if strings.IndexByte(tok, escape) < 0 {
		for i := 0; i < len(tok); i++ {
			if !plain(tok[i]) {
				return "", errToken
			}
		}
		return tok, nil
	}
	var b strings.Builder
	b.Grow(len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case plain(c):
			b.WriteByte(c)
		case c == escape && i+2 < len(tok) && unhex(tok[i+1]) >= 0 && unhex(tok[i+2]) >= 0:
			b.WriteByte(byte(unhex(tok[i+1])<<4 | unhex(tok[i+2])))
			i += 2
		default:
			return "", errToken
		}
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// appendLevels appends the tokens of every level of an MQTT topic (or of a
// filter without wildcards), joined with '.'.
func appendLevels(dst []byte, topic string) []byte {
	for i := 0; ; i++ {
		lvl, rest, more := strings.Cut(topic, "/")
		if i > 0 {
			dst = append(dst, '.')
		}
		dst = appendToken(dst, lvl)
		if !more {
			return dst
		}
		topic = rest
	}
}

// EncodeTopic returns the tokens of topic joined with '.', without a
// prefix: the part of a subject after the prefix, and the value of the
// long-topic header.
func EncodeTopic(topic string) string {
	return string(appendLevels(make([]byte, 0, len(topic)+8), topic))
}

// DecodeTopic is EncodeTopic's inverse. It fails on anything EncodeTopic
// does not produce (a foreign publisher on an external NATS).
func DecodeTopic(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; ; i++ {
		tok, rest, more := strings.Cut(s, ".")
		lvl, err := decodeToken(tok)
		if err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(lvl)
		if !more {
			return b.String(), nil
		}
		s = rest
	}
}

// Subjects maps topics and filters to the subjects of one cluster.
type Subjects struct {
	// Prefix precedes every topic subject, '.' included: "duplex.<name>.t.".
	Prefix string
	// Long is the subject of the messages whose topic subject would be
	// longer than max (MaxSubject; tests make it small).
	Long string
	// Retained is the subject of every message with Retain set, whatever
	// its topic (in a header, as on Long): every node listens there, so
	// that each keeps every retained message [MQTT-3.3.1-5] and a new
	// subscriber on any node gets it, not only on the nodes that had a
	// matching subscription when it was published.
	Retained string
	max      int
}

// NewSubjects returns the subjects of the cluster name (tokens
// "duplex", name's token, then "t" for topics, "long" or "retained").
func NewSubjects(name string) Subjects {
	base := "duplex." + string(appendToken(nil, name)) + "."
	return Subjects{Prefix: base + "t.", Long: base + "long", Retained: base + "retained", max: MaxSubject}
}

// Topic returns the subject a message on topic is published on, and
// whether that is the long subject (the topic then travels in a header).
func (s Subjects) Topic(topic string) (subject string, long bool) {
	b := make([]byte, 0, len(s.Prefix)+len(topic)+8)
	b = appendLevels(append(b, s.Prefix...), topic)
	if len(b) > s.max {
		return s.Long, true
	}
	return string(b), false
}

// TopicOf returns the topic of a subject under Prefix (not Long).
func (s Subjects) TopicOf(subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, s.Prefix)
	if !ok {
		return "", errToken
	}
	return DecodeTopic(rest)
}

// Filter appends to dst the subjects that together carry every message
// matching the MQTT filter f (valid, broker.ValidFilter; a share group's
// filter without its $share prefix):
//
//   - '+' is '*' (one level, the empty level included [MQTT-4.7.1-3]);
//   - a final '#' is '>' and the parent level itself: "a/#" matches "a"
//     [MQTT-4.7.1-2], so it needs "<a>" and "<a>.>"; a bare "#" is
//     "<prefix>>";
//   - a filter with a wildcard may also match topics too long for a
//     subject, and a filter whose own subject is too long matches only
//     those: both add Long.
//
// A filter starting with a wildcard also matches '$' topics in NATS,
// which MQTT excludes [MQTT-4.7.2-1]: the receiving router's local match
// drops them. The subjects are distinct and never overlap each other
// except through Long.
func (s Subjects) Filter(dst []string, f string) []string {
	b := make([]byte, 0, len(s.Prefix)+len(f)+8)
	b = append(b, s.Prefix...)
	wild := false
	parent := -1 // length of b before the final '#' level, its '.' excluded
	for i := 0; ; i++ {
		lvl, rest, more := strings.Cut(f, "/")
		if i > 0 {
			b = append(b, '.')
		}
		switch lvl {
		case "+":
			b = append(b, '*')
			wild = true
		case "#":
			if i > 0 {
				parent = len(b) - 1
			}
			b = append(b, '>')
			wild = true
		default:
			b = appendToken(b, lvl)
		}
		if !more {
			break
		}
		f = rest
	}
	if len(b) > s.max {
		// Every topic this matches has a subject at least as long ('*'
		// and '>' are one byte, a token at least one), so it travels on
		// Long; but "a/#" also matches "a", whose subject is shorter.
		if parent >= 0 && parent <= s.max {
			dst = append(dst, string(b[:parent]))
		}
		return append(dst, s.Long)
	}
	if parent >= 0 {
		dst = append(dst, string(b[:parent]))
	}
	dst = append(dst, string(b))
	if wild {
		dst = append(dst, s.Long)
	}
	return dst
}
