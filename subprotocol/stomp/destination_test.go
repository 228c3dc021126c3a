package stomp

import (
	"errors"
	"testing"
)

func TestParseDest(t *testing.T) {
	for _, tc := range []struct {
		d      string
		sep    byte
		filter bool
		want   dest
		errMsg string // protoError message when parsing fails
	}{
		// '/' separator: topic names pass through.
		{"/topic/a/b", '/', false, dest{topic: "a/b"}, ""},
		{"/topic/a.b", '/', false, dest{topic: "a.b"}, ""},
		{"/topic/a/+/c", '/', true, dest{topic: "a/+/c"}, ""},
		{"/topic/a/#", '/', true, dest{topic: "a/#"}, ""},
		{"/topic/a.*", '/', true, dest{topic: "a.*"}, ""},
		{"/topic/", '/', false, dest{topic: ""}, ""}, // the router rejects the empty topic
		{"/queue/jobs", '/', false, dest{queue: "jobs"}, ""},
		{"/queue/a/b.c", '/', false, dest{queue: "a/b.c"}, ""},
		{"/queue/jobs", '/', true, dest{queue: "jobs"}, ""},
		{"/reply-queue/tmp.0123", '/', false, dest{queue: "tmp.0123"}, ""},
		// '.' separator (RabbitMQ): '.' and '/' swap; '*' is '+' in filters.
		{"/topic/a.b", '.', false, dest{topic: "a/b"}, ""},
		{"/topic/a/b", '.', false, dest{topic: "a.b"}, ""},
		{"/topic/a.b/c", '.', false, dest{topic: "a/b.c"}, ""},
		{"/topic/a.*.c", '.', true, dest{topic: "a/+/c"}, ""},
		{"/topic/a.*", '.', false, dest{topic: "a/*"}, ""}, // '*' is literal outside filters
		{"/topic/a.#", '.', true, dest{topic: "a/#"}, ""},
		{"/topic/.a.", '.', false, dest{topic: "/a/"}, ""},
		{"/queue/a.b", '.', false, dest{queue: "a.b"}, ""}, // queues are never mapped
		{"/reply-queue/tmp.ab", '.', false, dest{queue: "tmp.ab"}, ""},
		// Errors.
		{"", '/', false, dest{}, "missing destination"},
		{"", '.', true, dest{}, "missing destination"},
		{"/exchange/x", '/', false, dest{}, "unknown destination"},
		{"topic/a", '/', false, dest{}, "unknown destination"},
		{"/topic", '/', false, dest{}, "unknown destination"},
		{"/temp-queue/x", '/', false, dest{}, "unknown destination"}, // only valid in reply-to
		{"/reply-queue/other", '/', false, dest{}, "unknown destination"},
		{"/reply-queue/tmp.ab", '/', true, dest{}, "unknown destination"}, // not subscribable
	} {
		got, err := parseDest(tc.d, tc.sep, tc.filter)
		if tc.errMsg != "" {
			var pe *protoError
			if !errors.As(err, &pe) || pe.message != tc.errMsg {
				t.Errorf("parseDest(%q, %q, %v) error = %v, want protocol error %q", tc.d, tc.sep, tc.filter, err, tc.errMsg)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseDest(%q, %q, %v) = %+v, %v; want %+v", tc.d, tc.sep, tc.filter, got, err, tc.want)
		}
	}
}

func TestTopicDest(t *testing.T) {
	for _, tc := range []struct {
		topic string
		sep   byte
		want  string
	}{
		{"a/b", '/', "/topic/a/b"},
		{"a.b", '/', "/topic/a.b"},
		{"a/b", '.', "/topic/a.b"},
		{"a.b", '.', "/topic/a/b"},
		{"a/b.c/d", '.', "/topic/a.b/c.d"},
		{"a/*", '.', "/topic/a.*"},
		{"x", '.', "/topic/x"},
	} {
		if got := topicDest(tc.topic, tc.sep); got != tc.want {
			t.Errorf("topicDest(%q, %q) = %q, want %q", tc.topic, tc.sep, got, tc.want)
		}
	}
}

// TestDestRoundTrip: a topic a client publishes to comes back in MESSAGE
// under the name it used, for both separators.
func TestDestRoundTrip(t *testing.T) {
	for _, sep := range []byte{'/', '.'} {
		for _, d := range []string{"/topic/a", "/topic/a/b.c", "/topic/a.b/c", "/topic//x.", "/topic/a.*"} {
			p, err := parseDest(d, sep, false)
			if err != nil {
				t.Fatalf("parseDest(%q): %v", d, err)
			}
			if back := topicDest(p.topic, sep); back != d {
				t.Errorf("sep %q: %q → topic %q → %q", sep, d, p.topic, back)
			}
		}
	}
}

func TestSwapSeparators(t *testing.T) {
	for _, tc := range []struct {
		in     string
		filter bool
		want   string
	}{
		{"", false, ""},
		{"a", false, "a"},
		{"a.b", false, "a/b"},
		{"a/b", false, "a.b"},
		{"a.b/c", false, "a/b.c"},
		{"..", false, "//"},
		{"*.x", false, "*/x"},
		{"*.x", true, "+/x"},
		{"a.*.*", true, "a/+/+"},
		{"a.#", true, "a/#"},
		{"+.x", true, "+/x"},
		{"é.ü", false, "é/ü"},
	} {
		if got := swapSeparators(tc.in, tc.filter); got != tc.want {
			t.Errorf("swapSeparators(%q, %v) = %q, want %q", tc.in, tc.filter, got, tc.want)
		}
		if !tc.filter {
			if back := swapSeparators(swapSeparators(tc.in, false), false); back != tc.in {
				t.Errorf("swapSeparators is not its own inverse on %q: %q", tc.in, back)
			}
		}
	}
}
