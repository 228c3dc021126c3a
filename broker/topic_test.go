package broker

import (
	"errors"
	"strings"
	"testing"
)

// topicMatchCases are filter/topic pairs from MQTT 3.1.1 §4.7 and its examples.
// Index and MatchTopic must both agree with every row.
var topicMatchCases = []struct {
	filter, topic string
	want          bool
	why           string
}{
	// §4.7.1.2 multi-level wildcard, non-normative examples.
	{"sport/tennis/player1/#", "sport/tennis/player1", true, "§4.7.1.2 # matches the parent level"},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "§4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "§4.7.1.2 any number of levels"},
	{"sport/tennis/player1/#", "sport/tennis/player2", false, "§4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis", false, "§4.7.1.2 only the parent, not the grandparent"},
	{"sport/#", "sport", true, "§4.7.1.2 \"sport/#\" also matches the singular \"sport\""},
	{"sport/#", "sport/", true, "§4.7.1.2 with a trailing empty level"},
	{"sport/#", "sports", false, "§4.7.1.2 levels, not prefixes"},
	{"#", "sport/tennis/player1", true, "§4.7.1.2 # matches everything"},
	{"#", "a", true, "§4.7.1.2"},
	{"#", "/", true, "§4.7.1.2 two empty levels"},
	{"#", "/finance", true, "§4.7.1.2"},
	{"#", "a//b", true, "§4.7.1.2"},
	{"a/#", "a", true, "§4.7.1.2"},
	{"a/#", "a/b/c/d/e", true, "§4.7.1.2"},
	{"a/#", "b/a", false, "§4.7.1.2"},

	// §4.7.1.3 single-level wildcard, non-normative examples.
	{"sport/tennis/+", "sport/tennis/player1", true, "§4.7.1.3"},
	{"sport/tennis/+", "sport/tennis/player2", true, "§4.7.1.3"},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false, "§4.7.1.3 exactly one level"},
	{"sport/+", "sport", false, "§4.7.1.3 \"sport/+\" does not match \"sport\""},
	{"sport/+", "sport/", true, "§4.7.1.3 \"sport/+\" matches \"sport/\""},
	{"+/+", "/finance", true, "§4.7.1.3 \"+/+\" matches \"/finance\""},
	{"/+", "/finance", true, "§4.7.1.3 \"/+\" matches \"/finance\""},
	{"+", "/finance", false, "§4.7.1.3 \"+\" does not match \"/finance\""},
	{"+", "finance", true, "§4.7.1.3"},
	{"+/tennis/#", "sport/tennis", true, "§4.7.1.3 with §4.7.1.2"},
	{"+/tennis/#", "sport/tennis/player1/ranking", true, "§4.7.1.3 with §4.7.1.2"},
	{"+/#", "a", true, "§4.7.1.2 # after + matches zero levels"},
	{"sport/+/player1", "sport/tennis/player1", true, "§4.7.1.3 in the middle"},
	{"sport/+/player1", "sport/tennis/player2", false, "§4.7.1.3"},
	{"+/+/+", "a/b", false, "§4.7.1.3 one level each"},

	// §4.7.1.1 empty levels are legal and compared like any other.
	{"a/+/b", "a//b", true, "§4.7.1.1 + matches an empty level"},
	{"a//b", "a//b", true, "§4.7.1.1 literal empty level"},
	{"a//b", "a/b", false, "§4.7.1.1 empty level is a level"},
	{"a/b", "a//b", false, "§4.7.1.1"},
	{"/", "/", true, "§4.7.1.1"},
	{"+", "", true, "§4.7.1.3 (topic would be invalid, but the matcher is total)"},
	{"a/", "a", false, "§4.7.1.1 trailing empty level"},
	{"a/+", "a/", true, "§4.7.1.1"},
	{"/#", "/", true, "§4.7.1.2"},
	{"/#", "a", false, "§4.7.1.2"},

	// §4.7.2 topics beginning with $.
	{"#", "$SYS", false, "[MQTT-4.7.2-1] # does not match $ topics"},
	{"#", "$SYS/broker/clients", false, "[MQTT-4.7.2-1]"},
	{"+", "$SYS", false, "[MQTT-4.7.2-1]"},
	{"+/#", "$SYS/x", false, "[MQTT-4.7.2-1]"},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false, "[MQTT-4.7.2-1] §4.7.2 example"},
	{"$SYS/#", "$SYS/monitor/Clients", true, "§4.7.2 example"},
	{"$SYS/#", "$SYS", true, "§4.7.2 with §4.7.1.2 parent"},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true, "§4.7.2 example"},
	{"$SYS/+", "$SYS/a/b", false, "§4.7.1.3"},
	{"$SYS", "$SYS", true, "§4.7.2 literal"},
	{"a/+", "a/$b", true, "[MQTT-4.7.2-1] applies only to the first level"},
	{"a/#", "a/$b/c", true, "[MQTT-4.7.2-1] applies only to the first level"},
	{"$", "$", true, "literal"},
	{"x/#", "$x", false, "literal mismatch"},

	// §4.7.3 case-sensitive, byte-wise.
	{"ACCOUNTS", "Accounts", false, "§4.7.3 case-sensitive"},
	{"Accounts payable", "Accounts payable", true, "§4.7.3 spaces are legal"},
	{"caf\u00e9/+", "caf\u00e9/x", true, "§4.7.3 UTF-8 levels"},
	{"a/b", "a/b/c", false, "more topic levels"},
	{"a/b/c", "a/b", false, "fewer topic levels"},
}

func TestMatchTopic(t *testing.T) {
	for _, c := range topicMatchCases {
		if got := MatchTopic(c.filter, c.topic); got != c.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v (%s)", c.filter, c.topic, got, c.want, c.why)
		}
	}
}

func TestTopicValidCases(t *testing.T) {
	// Every row of topicMatchCases uses a valid filter, and a valid topic
	// unless it says otherwise.
	for _, c := range topicMatchCases {
		if err := ValidFilter(c.filter); err != nil {
			t.Errorf("ValidFilter(%q) = %v in match case (%s)", c.filter, err, c.why)
		}
		if err := ValidTopicName(c.topic); err != nil && c.topic != "" {
			t.Errorf("ValidTopicName(%q) = %v in match case (%s)", c.topic, err, c.why)
		}
	}
}

func TestValidTopicName(t *testing.T) {
	valid := []string{
		"a", "a/b/c", "/", "//", "/a", "a/", "a//b", "$SYS/broker", "$",
		"sport/tennis/player1", "Accounts payable", "caf\u00e9", "\U0001F600/x",
		"a.b.c", "a*b", "a>b", strings.Repeat("x", MaxTopicLen),
	}
	for _, s := range valid {
		if err := ValidTopicName(s); err != nil {
			t.Errorf("ValidTopicName(%.40q) = %v, want nil", s, err)
		}
	}
	invalid := []struct{ topic, why string }{
		{"", "[MQTT-4.7.3-1] empty"},
		{"+", "[MQTT-3.3.2-2]"},
		{"#", "[MQTT-3.3.2-2]"},
		{"a/+/c", "[MQTT-3.3.2-2]"},
		{"a/b+/c", "[MQTT-3.3.2-2] + inside a level"},
		{"a/b#", "[MQTT-3.3.2-2] # inside a level"},
		{"a/#", "[MQTT-3.3.2-2]"},
		{"a\x00b", "[MQTT-4.7.3-2] NUL"},
		{"\x00", "[MQTT-4.7.3-2] NUL"},
		{"a\xffb", "[MQTT-1.5.3-1] invalid UTF-8"},
		{"\xed\xa0\x80", "[MQTT-1.5.3-1] UTF-8 encoded surrogate"},
		{strings.Repeat("x", MaxTopicLen+1), "§1.5.3 too long"},
	}
	for _, c := range invalid {
		err := ValidTopicName(c.topic)
		if err == nil {
			t.Errorf("ValidTopicName(%.40q) = nil, want error (%s)", c.topic, c.why)
			continue
		}
		if !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidTopicName(%.40q) = %v, want ErrInvalidTopic", c.topic, err)
		}
	}
}

func TestTopicValidFilter(t *testing.T) {
	valid := []string{
		"a", "a/b/c", "#", "+", "+/+", "/+", "+/", "a/#", "a/+/b", "+/tennis/#",
		"/", "//", "a//b", "/#", "+/#", "$SYS/#", "$share", "a/b/c/d/e/f/#",
		"caf\u00e9/+", "\U0001F600", strings.Repeat("x", MaxTopicLen),
		strings.Repeat("+/", MaxTopicLen/2) + "#",
	}
	for _, s := range valid {
		if err := ValidFilter(s); err != nil {
			t.Errorf("ValidFilter(%.40q) = %v, want nil", s, err)
		}
	}
	invalid := []struct{ filter, why string }{
		{"", "[MQTT-4.7.3-1] empty"},
		{"a/b+/c", "[MQTT-4.7.1-3] + not a whole level"},
		{"+a", "[MQTT-4.7.1-3]"},
		{"a+", "[MQTT-4.7.1-3]"},
		{"++", "[MQTT-4.7.1-3]"},
		{"sport+", "[MQTT-4.7.1-3] §4.7.1.3 example"},
		{"a/b#", "[MQTT-4.7.1-2] # not a whole level"},
		{"sport/tennis#", "[MQTT-4.7.1-2] §4.7.1.2 example"},
		{"a/#/b", "[MQTT-4.7.1-2] # not last"},
		{"sport/tennis/#/ranking", "[MQTT-4.7.1-2] §4.7.1.2 example"},
		{"#/", "[MQTT-4.7.1-2] # followed by an empty level"},
		{"#/#", "[MQTT-4.7.1-2]"},
		{"##", "[MQTT-4.7.1-2]"},
		{"+#", "[MQTT-4.7.1-2]"},
		{"#+", "[MQTT-4.7.1-2]"},
		{"a\x00b", "[MQTT-4.7.3-2] NUL"},
		{"a/\x00", "[MQTT-4.7.3-2] NUL"},
		{"a/\xc3", "[MQTT-1.5.3-1] truncated UTF-8"},
		{"\xed\xbf\xbf/#", "[MQTT-1.5.3-1] UTF-8 encoded surrogate"},
		{strings.Repeat("x", MaxTopicLen+1), "§1.5.3 too long"},
	}
	for _, c := range invalid {
		err := ValidFilter(c.filter)
		if err == nil {
			t.Errorf("ValidFilter(%.40q) = nil, want error (%s)", c.filter, c.why)
			continue
		}
		if !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ValidFilter(%.40q) = %v, want ErrInvalidFilter", c.filter, err)
		}
	}
}

func TestTopicNameIsLiteralFilter(t *testing.T) {
	// A valid topic name is a valid filter that matches only itself.
	for _, s := range []string{"a", "a/b", "/", "a//b", "$SYS/x", "caf\u00e9"} {
		if err := ValidFilter(s); err != nil {
			t.Errorf("ValidFilter(%q) = %v", s, err)
		}
		if !MatchTopic(s, s) {
			t.Errorf("MatchTopic(%q, %q) = false", s, s)
		}
	}
}
