package crash_test

// Checking what subscribers received against what publishers had
// acknowledged. Payloads are "<publisher>-<n>"; anything else (markers,
// warm-up messages) is ignored by the checks.

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// pubLog is one publisher's record: which sequence numbers the broker
// acknowledged, and how many publishes failed.
type pubLog struct {
	name string

	mu      sync.Mutex
	next    int
	acked   []int
	failed  int
	lastErr string
}

// take returns the next sequence number and its payload.
func (l *pubLog) take() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	l.next++
	return n, fmt.Sprintf("%s-%d", l.name, n)
}

func (l *pubLog) result(n int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.acked = append(l.acked, n)
		return
	}
	l.failed++
	l.lastErr = err.Error()
}

func (l *pubLog) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// ackedPayloads returns the payloads of every acknowledged message.
func (l *pubLog) ackedPayloads() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.acked))
	for i, n := range l.acked {
		out[i] = fmt.Sprintf("%s-%d", l.name, n)
	}
	return out
}

func (l *pubLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := fmt.Sprintf("%s: %d attempted, %d acknowledged, %d failed", l.name, l.next, len(l.acked), l.failed)
	if l.lastErr != "" {
		s += fmt.Sprintf(" (last error: %s)", l.lastErr)
	}
	return s
}

// parsePayload splits "<publisher>-<n>".
func parsePayload(p string) (pub string, n int, ok bool) {
	i := strings.LastIndexByte(p, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(p[i+1:])
	if err != nil {
		return "", 0, false
	}
	return p[:i], n, true
}

// checkOptions says what a stream guarantees.
type checkOptions struct {
	exactlyOnce bool // QoS 2: no payload more than once
	ordered     bool // first occurrences in increasing order per publisher
}

// checkStream compares one subscriber's deliveries with the publishers'
// acknowledgements and returns every violation, described.
func checkStream(rec *recorder, pubs []*pubLog, opt checkOptions) []string {
	got := rec.snapshot()
	known := make(map[string]*pubLog, len(pubs))
	for _, p := range pubs {
		known[p.name] = p
	}
	var problems []string

	// Missing: acknowledged, never received.
	for _, p := range pubs {
		var missing []int
		p.mu.Lock()
		acked := append([]int(nil), p.acked...)
		p.mu.Unlock()
		for _, n := range acked {
			if rec.times(fmt.Sprintf("%s-%d", p.name, n)) == 0 {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d of %d acknowledged messages from %s never arrived: %s",
				rec.name, len(missing), len(acked), p.name, ranges(missing)))
		}
	}

	// Order of first occurrences, per publisher.
	if opt.ordered {
		last := make(map[string]int)
		seen := make(map[string]bool)
		var bad []string
		for i, d := range got {
			pub, n, ok := parsePayload(d.payload)
			if !ok || known[pub] == nil || seen[d.payload] {
				continue
			}
			seen[d.payload] = true
			prev, ok := last[pub]
			if ok && n < prev {
				bad = append(bad, fmt.Sprintf("%s first arrived (delivery #%d, broker generation %d) after %s-%d", d.payload, i, d.gen, pub, prev))
			}
			if !ok || n > prev {
				last[pub] = n
			}
		}
		if len(bad) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d messages out of order: %s", rec.name, len(bad), firstN(bad, 10)))
		}
	}

	// Duplicates (exactly once only), acknowledged or not.
	if opt.exactlyOnce {
		count := make(map[string][]delivery)
		for _, d := range got {
			if pub, _, ok := parsePayload(d.payload); ok && known[pub] != nil {
				count[d.payload] = append(count[d.payload], d)
			}
		}
		var dups []string
		for p, ds := range count {
			if len(ds) > 1 {
				var how []string
				for _, d := range ds {
					how = append(how, fmt.Sprintf("gen %d dup=%v", d.gen, d.dup))
				}
				dups = append(dups, fmt.Sprintf("%s ×%d (%s)", p, len(ds), strings.Join(how, ", ")))
			}
		}
		sort.Strings(dups)
		if len(dups) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d messages delivered more than once (exactly once expected): %s", rec.name, len(dups), firstN(dups, 10)))
		}
	}
	return problems
}

// ranges prints sorted ints compactly: 1-4,7,9-10.
func ranges(ns []int) string {
	ns = append([]int(nil), ns...)
	sort.Ints(ns)
	var b strings.Builder
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j == i {
			fmt.Fprintf(&b, "%d", ns[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", ns[i], ns[j])
		}
		i = j + 1
	}
	return b.String()
}

func firstN(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, "; ")
	}
	return strings.Join(s[:n], "; ") + fmt.Sprintf("; … %d more", len(s)-n)
}

// TestCheckStream shows the checks can fail: a missing acknowledged
// message, a message out of order, and a duplicate under exactly once.
func TestCheckStream(t *testing.T) {
	pub := &pubLog{name: "p"}
	for range 5 {
		n, _ := pub.take()
		pub.result(n, nil) // p-0 … p-4 acknowledged
	}
	n, _ := pub.take()
	pub.result(n, errors.New("lost")) // p-5 not acknowledged
	feed := func(payloads ...string) *recorder {
		r := newRecorder("sub", nil)
		for _, p := range payloads {
			r.add(p, false)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		got  []string
		opt  checkOptions
		want []string // substrings, one per problem; none: no problem
	}{
		{"all", []string{"p-0", "p-1", "p-2", "p-3", "p-4"}, checkOptions{ordered: true, exactlyOnce: true}, nil},
		{"unacknowledged may arrive", []string{"p-0", "p-1", "p-2", "p-3", "p-4", "p-5", "marker"}, checkOptions{ordered: true, exactlyOnce: true}, nil},
		{"redelivered", []string{"p-0", "p-1", "p-0", "p-1", "p-2", "p-3", "p-4"}, checkOptions{ordered: true}, nil},
		{"missing", []string{"p-0", "p-2", "p-4"}, checkOptions{ordered: true}, []string{"2 of 5 acknowledged messages from p never arrived: 1,3"}},
		{"out of order", []string{"p-0", "p-2", "p-1", "p-3", "p-4"}, checkOptions{ordered: true}, []string{"p-1 first arrived (delivery #2, broker generation 0) after p-2"}},
		{"order not checked", []string{"p-0", "p-2", "p-1", "p-3", "p-4"}, checkOptions{}, nil},
		{"duplicate", []string{"p-0", "p-1", "p-2", "p-3", "p-4", "p-3"}, checkOptions{ordered: true, exactlyOnce: true}, []string{"p-3 ×2"}},
		{"unacknowledged duplicate", []string{"p-0", "p-1", "p-2", "p-3", "p-4", "p-5", "p-5"}, checkOptions{exactlyOnce: true}, []string{"p-5 ×2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkStream(feed(tc.got...), []*pubLog{pub}, tc.opt)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %q does not contain %q", got[i], w)
				}
			}
		})
	}
}
