package cluster

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/duplexmq/duplex/broker"
)

var testSubjects = NewSubjects("c1")

// TestTopicSubject pins the encoding of the awkward levels.
func TestTopicSubject(t *testing.T) {
	for _, c := range []struct{ topic, want string }{
		{"a/b", "duplex.c1.t.a.b"},
		{"a//b", "duplex.c1.t.a.%.b"},
		{"/", "duplex.c1.t.%.%"},
		{"a.b/*/>", "duplex.c1.t.a%2Eb.%2A.%3E"},
		{"sp ace/t\tab", "duplex.c1.t.sp%20ace.t%09ab"},
		{"100%", "duplex.c1.t.100%25"},
		{"$SYS/x", "duplex.c1.t.$SYS.x"},
		{"é", "duplex.c1.t.%C3%A9"},
	} {
		got, long := testSubjects.Topic(c.topic)
		if got != c.want || long {
			t.Errorf("Topic(%q) = %q, %v; want %q", c.topic, got, long, c.want)
		}
		if !server.IsValidPublishSubject(got) {
			t.Errorf("Topic(%q) = %q is not a valid NATS publish subject", c.topic, got)
		}
		back, err := testSubjects.TopicOf(got)
		if err != nil || back != c.topic {
			t.Errorf("TopicOf(%q) = %q, %v; want %q", got, back, err, c.topic)
		}
	}
}

// TestFilterSubjects pins the filter mapping: '#' is the parent and '>',
// a wildcard filter also listens on the long subject.
func TestFilterSubjects(t *testing.T) {
	long := testSubjects.Long
	for _, c := range []struct {
		filter string
		want   []string
	}{
		{"a/b", []string{"duplex.c1.t.a.b"}},
		{"a/+", []string{"duplex.c1.t.a.*", long}},
		{"a/#", []string{"duplex.c1.t.a", "duplex.c1.t.a.>", long}},
		{"#", []string{"duplex.c1.t.>", long}},
		{"+/#", []string{"duplex.c1.t.*", "duplex.c1.t.*.>", long}},
		{"/#", []string{"duplex.c1.t.%", "duplex.c1.t.%.>", long}},
		{strings.Repeat("x", MaxSubject), []string{long}},
		{strings.Repeat("x", MaxSubject-len(testSubjects.Prefix)) + "/#",
			[]string{"duplex.c1.t." + strings.Repeat("x", MaxSubject-len(testSubjects.Prefix)), long}},
	} {
		got := testSubjects.Filter(nil, c.filter)
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("Filter(%.20q) = %.80q, want %.80q", c.filter, got, c.want)
		}
		for _, s := range got {
			if !server.IsValidSubject(s) {
				t.Errorf("Filter(%.20q): %.40q is not a valid NATS subject", c.filter, s)
			}
		}
	}
}

// TestLongTopic: a 64 KiB topic goes on the long subject and its header
// value decodes back.
func TestLongTopic(t *testing.T) {
	topic := strings.Repeat("é/", 16<<10) + "end"
	subj, long := testSubjects.Topic(topic)
	if !long || subj != testSubjects.Long {
		t.Fatalf("Topic(64 KiB) = %.40q, %v; want the long subject", subj, long)
	}
	back, err := DecodeTopic(EncodeTopic(topic))
	if err != nil || back != topic {
		t.Fatalf("long topic does not round-trip: %v", err)
	}
}

// TestDecodeRejects: what EncodeTopic never produces is refused.
func TestDecodeRejects(t *testing.T) {
	for _, s := range []string{"", "a..b", "a.*", "a.>", "%4", "%zz", "%4g", "a b", "%e9"} {
		if got, err := DecodeTopic(s); err == nil {
			t.Errorf("DecodeTopic(%q) = %q, want an error", s, got)
		}
	}
}

// natsMatch reports whether a message published on topic reaches a node
// subscribed to f's subjects, by nats-server's own subject matching.
func natsMatch(subs Subjects, topic, f string) bool {
	subj, _ := subs.Topic(topic)
	for _, s := range subs.Filter(nil, f) {
		if server.SubjectMatchesFilter(subj, s) {
			return true
		}
	}
	return false
}

// FuzzSubjectRoundTrip proves, for any valid MQTT topic, that the subject
// is a valid NATS publish subject (or the long subject), that it decodes
// back to the topic, and that matching is preserved: a filter's subjects
// receive every message the MQTT filter matches (broker.MatchTopic), and,
// for topics and filters short enough for a subject, only those, except
// the '$' rule [MQTT-4.7.2-1] that the receiving router applies.
//
// The subjects' length limit is 48 bytes rather than MaxSubject, so that
// short inputs (which the fuzzer minimises quickly) reach the long subject
// too; TestLongTopic and TestFilterSubjects cover the real limit.
//
// The filter is built from the topic (mask: per level keep it, '+', another
// level, or '#' and stop) or taken as given, so that both matching and
// near-miss pairs are common.
func FuzzSubjectRoundTrip(f *testing.F) {
	for _, s := range []struct {
		topic, other string
		mask         []byte
	}{
		{"a/b/c", "x", []byte{0, 1, 0}},
		{"a//b", "", []byte{0, 0, 3}},
		{"/", "#", nil},
		{"a.b/*/>", "+/*/#", []byte{1, 0, 2}},
		{"$SYS/broker", "#", nil},
		{"$SYS/broker", "+/broker", nil},
		{"sport", "sport/#", nil},
		{"sp ace/t\tab/\r\n", "sp ace/+/#", nil},
		{"100%/%25/%", "100%/%25/%", nil},
		{"日本/語", "日本/+", nil},
		{strings.Repeat("x", 40), "#", nil},
		{strings.Repeat("ab/", 20), "ab/+/#", nil},
		{"abcdefghijklmnopqrstuvwxyz0123/x", "abcdefghijklmnopqrstuvwxyz0123/#", nil},
	} {
		f.Add(s.topic, s.other, s.mask)
	}
	subs := testSubjects
	subs.max = 48
	f.Fuzz(func(t *testing.T, topic, other string, mask []byte) {
		if broker.ValidTopicName(topic) != nil {
			return
		}
		subj, long := subs.Topic(topic)
		if long {
			if subj != subs.Long {
				t.Fatalf("long topic on %q", subj)
			}
		} else if len(subj) > subs.max || !server.IsValidPublishSubject(subj) {
			t.Fatalf("Topic(%q) = %q: not a valid publish subject", topic, subj)
		}
		enc := EncodeTopic(topic)
		if back, err := DecodeTopic(enc); err != nil || back != topic {
			t.Fatalf("DecodeTopic(EncodeTopic(%q)) = %q, %v", topic, back, err)
		}
		if !long {
			if back, err := subs.TopicOf(subj); err != nil || back != topic {
				t.Fatalf("TopicOf(%q) = %q, %v; want %q", subj, back, err, topic)
			}
		}
		filter := other
		if len(mask) > 0 {
			filter = filterFrom(topic, other, mask)
		}
		if broker.ValidFilter(filter) != nil {
			return
		}
		fsubs := subs.Filter(nil, filter)
		for _, s := range fsubs {
			if len(s) > subs.max && s != subs.Long || !server.IsValidSubject(s) {
				t.Fatalf("Filter(%q): %q is not a valid subject", filter, s)
			}
		}
		mqtt, nats := broker.MatchTopic(filter, topic), natsMatch(subs, topic, filter)
		if mqtt && !nats {
			t.Fatalf("filter %q matches topic %q in MQTT but not in NATS (subject %q, subjects %q)", filter, topic, subj, fsubs)
		}
		dollar := strings.HasPrefix(topic, "$") && (filter[0] == '+' || filter[0] == '#')
		if nats && !mqtt && !long && !dollar {
			t.Fatalf("filter %q does not match topic %q in MQTT but does in NATS (subject %q, subjects %q)", filter, topic, subj, fsubs)
		}
	})
}

// filterFrom builds a filter from topic's levels: mask[i]%4 is 0 keep the
// level, 1 '+', 2 the level other instead, 3 '#' (and stop).
func filterFrom(topic, other string, mask []byte) string {
	levels := strings.Split(topic, "/")
	out := make([]string, 0, len(levels))
	for i, lvl := range levels {
		m := byte(0)
		if i < len(mask) {
			m = mask[i] % 4
		}
		switch m {
		case 1:
			lvl = "+"
		case 2:
			lvl = other
		case 3:
			return strings.Join(append(out, "#"), "/")
		}
		out = append(out, lvl)
	}
	if len(mask) > len(levels) && mask[len(levels)]%4 == 3 {
		out = append(out, "#") // '#' after the last level: matches the parent
	}
	return strings.Join(out, "/")
}
