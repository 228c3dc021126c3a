package stomp

import "testing"

// TestAppendTopicDest: the MESSAGE destination header built in place is
// the one hdr(dst, "destination", topicDest(topic, sep)) built from a
// string, for every version and separator, escapes and swaps included.
func TestAppendTopicDest(t *testing.T) {
	topics := []string{"a/b", "a.b/c", "x:y", "back\\slash", "line\nfeed", "cr\r", "", "/", ".."}
	for _, v := range []version{v10, v11, v12} {
		for _, sep := range []byte{'/', '.'} {
			for _, topic := range topics {
				want := "destination:"
				val := topicDest(topic, sep)
				if v == v10 {
					want += val
				} else {
					want += string(appendEscaped(nil, val, v))
				}
				want += "\n"
				if got := string(appendTopicDest([]byte("x"), topic, sep, v)[1:]); got != want {
					t.Errorf("version %d sep %q topic %q: %q, want %q", v, sep, topic, got, want)
				}
			}
		}
	}
}
