package broker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// isEmpty reports whether the root of x has no children. Test helper.
func (x *Index) isEmpty() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.root.empty()
}

// checkIndex checks the structural invariants of x: every subscription sits
// at its pos, no node or level is empty (pruned), '#' nodes have no children,
// and the count matches Len.
func checkIndex(t testing.TB, x *Index) {
	t.Helper()
	x.mu.RLock()
	defer x.mu.RUnlock()
	count := 0
	var walkLevel func(l *level, path string)
	walkNode := func(n *node, path string, hash bool) {
		if len(n.subs) == 0 && n.next == nil {
			t.Errorf("node %q is empty and was not pruned", path)
		}
		if hash && n.next != nil {
			t.Errorf("node %q has children below '#'", path)
		}
		for i, s := range n.subs {
			if s.at.pos != i {
				t.Errorf("node %q: subs[%d].pos = %d", path, i, s.at.pos)
			}
			if s.Filter != path {
				t.Errorf("node %q holds filter %q", path, s.Filter)
			}
		}
		count += len(n.subs)
		if n.next != nil {
			if n.next.empty() {
				t.Errorf("level below %q is empty and was not pruned", path)
			}
			walkLevel(n.next, path+"/")
		}
	}
	walkLevel = func(l *level, path string) {
		for tok, n := range l.lits {
			if tok == "+" || tok == "#" {
				t.Errorf("wildcard %q stored as a literal under %q", tok, path)
			}
			walkNode(n, path+tok, false)
		}
		if l.lits != nil && len(l.lits) == 0 {
			t.Errorf("empty lits map under %q", path)
		}
		if l.plus != nil {
			walkNode(l.plus, path+"+", false)
		}
		if l.hash != nil {
			walkNode(l.hash, path+"#", true)
		}
	}
	walkLevel(&x.root, "")
	if count != x.n {
		t.Errorf("trie holds %d subscriptions, count says %d", count, x.n)
	}
}

func indexSub(filter string) *Subscription {
	return &Subscription{SubSpec: SubSpec{Filter: filter, Key: filter}}
}

// keys returns the sorted keys of subs.
func subKeys(subs []*Subscription) []string {
	k := make([]string, len(subs))
	for i, s := range subs {
		k[i] = s.Key
	}
	slices.Sort(k)
	return k
}

func TestIndexMatchCases(t *testing.T) {
	// Each row alone in an index.
	for _, c := range topicMatchCases {
		var x Index
		x.Insert(indexSub(c.filter))
		got := len(x.Match(c.topic, nil)) == 1
		if got != c.want {
			t.Errorf("Index{%q}.Match(%q) matched = %v, want %v (%s)", c.filter, c.topic, got, c.want, c.why)
		}
	}

	// All rows in one index: each topic gets exactly the filters that
	// MatchTopic accepts.
	x := NewIndex()
	seen := map[string]bool{}
	for _, c := range topicMatchCases {
		if !seen[c.filter] {
			seen[c.filter] = true
			x.Insert(indexSub(c.filter))
		}
	}
	checkIndex(t, x)
	var buf []*Subscription
	for _, c := range topicMatchCases {
		var want []string
		for f := range seen {
			if MatchTopic(f, c.topic) {
				want = append(want, f)
			}
		}
		slices.Sort(want)
		buf = x.Match(c.topic, buf[:0])
		if got := subKeys(buf); !slices.Equal(got, want) {
			t.Errorf("Match(%q) = %q, want %q", c.topic, got, want)
		}
	}
}

func TestIndexMatchAppends(t *testing.T) {
	x := NewIndex()
	a, b := indexSub("a/#"), indexSub("a/+")
	x.Insert(a)
	x.Insert(b)
	pre := indexSub("pre")
	dst := make([]*Subscription, 1, 8)
	dst[0] = pre
	dst = x.Match("a/b", dst)
	if len(dst) != 3 || dst[0] != pre {
		t.Fatalf("Match did not append to dst: %v", subKeys(dst))
	}
	if got := x.Match("b", dst[:0]); len(got) != 0 {
		t.Errorf("Match(b) = %v, want none", subKeys(got))
	}
}

func TestIndexSharedFilter(t *testing.T) {
	// Many subscribers on one filter; remove from the middle, the ends and
	// in random order, and check the others keep matching.
	const n = 100
	x := NewIndex()
	subs := make([]*Subscription, n)
	for i := range subs {
		subs[i] = &Subscription{SubSpec: SubSpec{Filter: "sensors/+/temp", Key: strconv.Itoa(i)}}
		x.Insert(subs[i])
	}
	if x.Len() != n {
		t.Fatalf("Len = %d, want %d", x.Len(), n)
	}
	live := map[*Subscription]bool{}
	for _, s := range subs {
		live[s] = true
	}
	check := func() {
		t.Helper()
		checkIndex(t, x)
		got := x.Match("sensors/kitchen/temp", nil)
		if len(got) != len(live) {
			t.Fatalf("Match returned %d, want %d", len(got), len(live))
		}
		for _, s := range got {
			if !live[s] {
				t.Fatalf("Match returned removed subscription %s", s.Key)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(n)
	// Middle, first, last first; then the rest in random order.
	order = append([]int{n / 2, 0, n - 1}, slices.DeleteFunc(order, func(i int) bool {
		return i == n/2 || i == 0 || i == n-1
	})...)
	for _, i := range order {
		if !x.Remove(subs[i]) {
			t.Fatalf("Remove(%d) = false", i)
		}
		delete(live, subs[i])
		if x.Remove(subs[i]) {
			t.Fatalf("second Remove(%d) = true", i)
		}
		check()
	}
	if x.Len() != 0 || !x.isEmpty() {
		t.Fatalf("after removing all: Len = %d, empty = %v", x.Len(), x.isEmpty())
	}
}

func TestIndexInsertRemove(t *testing.T) {
	filters := []string{
		"a", "a/b", "a/b/c", "a/+", "a/+/c", "a/#", "+", "+/+", "+/#", "#",
		"/", "//", "/#", "a//b", "$SYS/#", "$SYS/+/x", "a/b/c/d/e/f/g/h",
		"a/b", "a/#", "#", // shared filters
	}
	x := NewIndex()
	var subs []*Subscription
	for i, f := range filters {
		s := &Subscription{SubSpec: SubSpec{Filter: f, Key: fmt.Sprintf("%d:%s", i, f)}}
		subs = append(subs, s)
		x.Insert(s)
	}
	checkIndex(t, x)
	if x.Len() != len(filters) {
		t.Fatalf("Len = %d, want %d", x.Len(), len(filters))
	}
	topics := []string{"a", "a/b", "a/b/c", "a//b", "/", "//", "$SYS/a/x", "$SYS", "a/b/c/d/e/f/g/h", "x/y/z"}
	verify := func(live []*Subscription) {
		t.Helper()
		checkIndex(t, x)
		for _, topic := range topics {
			var want []string
			for _, s := range live {
				if MatchTopic(s.Filter, topic) {
					want = append(want, s.Key)
				}
			}
			slices.Sort(want)
			if got := subKeys(x.Match(topic, nil)); !slices.Equal(got, want) {
				t.Fatalf("Match(%q) = %q, want %q", topic, got, want)
			}
		}
	}
	verify(subs)

	// Removing a subscription that was never inserted fails and changes
	// nothing, even when its pos points at a live slot of its filter.
	if x.Remove(indexSub("a/b")) || x.Remove(indexSub("nope/x")) || x.Remove(indexSub("a/b/c/d")) {
		t.Fatal("Remove of a foreign subscription = true")
	}
	verify(subs)

	// Inserting the same subscription again is a no-op.
	x.Insert(subs[0])
	if x.Len() != len(filters) {
		t.Fatalf("double Insert changed Len to %d", x.Len())
	}

	// Remove from the middle: the rest keep matching.
	live := slices.Clone(subs)
	for len(live) > 0 {
		i := len(live) / 2
		if !x.Remove(live[i]) {
			t.Fatalf("Remove(%q) = false", live[i].Key)
		}
		live = slices.Delete(live, i, i+1)
		verify(live)
	}
	if x.Len() != 0 || !x.isEmpty() {
		t.Fatalf("after removing all: Len = %d, empty = %v", x.Len(), x.isEmpty())
	}

	// The index is reusable after being emptied.
	s := indexSub("a/#")
	x.Insert(s)
	if got := x.Match("a", nil); len(got) != 1 || got[0] != s {
		t.Fatalf("Match after refill = %v", subKeys(got))
	}
}

func TestIndexDeepTopic(t *testing.T) {
	// Deeper than the stack array in Match.
	levels := make([]string, 100)
	for i := range levels {
		levels[i] = strconv.Itoa(i)
	}
	topic := strings.Join(levels, "/")
	filters := []string{topic, "#", "0/#", strings.Join(levels[:99], "/") + "/+", strings.Repeat("+/", 99) + "+", strings.Repeat("+/", 98) + "+"}
	x := NewIndex()
	for _, f := range filters {
		x.Insert(indexSub(f))
	}
	got := subKeys(x.Match(topic, nil))
	want := subKeys([]*Subscription{indexSub(filters[0]), indexSub(filters[1]), indexSub(filters[2]), indexSub(filters[3]), indexSub(filters[4])})
	if !slices.Equal(got, want) {
		t.Fatalf("Match(deep) = %d subs, want %d", len(got), len(want))
	}
}

func TestIndexMatchAllocs(t *testing.T) {
	x := NewIndex()
	for _, f := range []string{"a/b/c", "a/+/c", "a/#", "#", "+/+/+"} {
		x.Insert(indexSub(f))
	}
	dst := make([]*Subscription, 0, 16)
	allocs := testing.AllocsPerRun(100, func() {
		dst = x.Match("a/b/c", dst[:0])
	})
	if len(dst) != 5 {
		t.Fatalf("Match = %d subs, want 5", len(dst))
	}
	if allocs != 0 {
		t.Errorf("Match allocates %v times per call with a big enough dst", allocs)
	}
}

func TestIndexConcurrent(t *testing.T) {
	// Run with -race: readers match while writers insert and remove.
	x := NewIndex()
	stable := indexSub("s/+")
	x.Insert(stable)
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 500 {
				s := indexSub(fmt.Sprintf("s/%d/#", (w*500+i)%37))
				x.Insert(s)
				if !x.Remove(s) {
					t.Error("Remove = false")
					return
				}
			}
		}()
	}
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			var buf []*Subscription
			for range 500 {
				buf = x.Match("s/x", buf[:0])
				if !slices.Contains(buf, stable) {
					t.Error("stable subscription missing")
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	if !x.Remove(stable) || x.Len() != 0 || !x.isEmpty() {
		t.Fatalf("after concurrent use: Len = %d, empty = %v", x.Len(), x.isEmpty())
	}
}

// FuzzIndex checks Index against the reference matcher MatchTopic. The
// inputs are newline-separated lists of filters and topics; invalid entries
// are skipped. Besides the given topics it also checks topics derived from
// each filter (wildcards filled in), so that positive matches are common.
func FuzzIndex(f *testing.F) {
	f.Add("sport/tennis/player1/#\nsport/#\n+/+\n/+\n+\n$SYS/#\n#\n+/monitor/Clients\na/+/b",
		"sport/tennis/player1\nsport/tennis/player1/ranking\nsport\n/finance\n$SYS/monitor/Clients\na//b\nsport/tennis/player1/score/wimbledon")
	f.Add("a/#\na/+\na\n+/#\n#\n/#\n//\n+//+", "a\na/\na/b\n/\n//\n$a\n$a/b")
	f.Add("$SYS/+\n$SYS\n+/#\n$\n$/#", "$SYS\n$SYS/x\n$\n$/\nx")
	f.Add("a/b/c\na/b/c\na/+/c\na/b/+\n+/b/c\na/#\na/b/#\na/b/c/#", "a/b/c\na/b\na/b/c/d\nb/b/c")
	f.Add("#/\na/b#\na+\n\x00\n", "a/+\n#\n\x00\n\xff")
	f.Add("caf\u00e9/+\n\U0001F600/#", "caf\u00e9/x\n\U0001F600")
	f.Fuzz(func(t *testing.T, filters, topics string) {
		const maxEntries = 64
		var subs []*Subscription
		for i, fl := range strings.Split(filters, "\n") {
			if i == maxEntries {
				break
			}
			if ValidFilter(fl) == nil {
				subs = append(subs, &Subscription{SubSpec: SubSpec{Filter: fl, Key: strconv.Itoa(i)}})
			}
		}
		var tops []string
		for i, tp := range strings.Split(topics, "\n") {
			if i == maxEntries {
				break
			}
			if ValidTopicName(tp) == nil {
				tops = append(tops, tp)
			}
		}
		for _, s := range subs {
			for _, fill := range []string{"x", ""} {
				tp := strings.ReplaceAll(s.Filter, "+", fill)
				tp2 := strings.TrimSuffix(tp, "#")
				for _, cand := range []string{tp2 + fill, tp2 + fill + "/y", strings.TrimSuffix(tp2, "/")} {
					if ValidTopicName(cand) == nil {
						tops = append(tops, cand)
					}
				}
			}
		}

		x := NewIndex()
		for _, s := range subs {
			x.Insert(s)
		}
		var buf []*Subscription
		check := func(live []*Subscription) {
			t.Helper()
			if x.Len() != len(live) {
				t.Fatalf("Len = %d, want %d", x.Len(), len(live))
			}
			checkIndex(t, x)
			for _, tp := range tops {
				buf = x.Match(tp, buf[:0])
				got := map[*Subscription]int{}
				for _, s := range buf {
					got[s]++
				}
				for _, s := range live {
					want := MatchTopic(s.Filter, tp)
					switch n := got[s]; {
					case want && n != 1:
						t.Fatalf("Match(%q) returned filter %q %d times, want once", tp, s.Filter, n)
					case !want && n != 0:
						t.Fatalf("Match(%q) returned filter %q, which does not match", tp, s.Filter)
					}
					delete(got, s)
				}
				for s := range got {
					t.Fatalf("Match(%q) returned filter %q, which is not in the index", tp, s.Filter)
				}
			}
		}
		check(subs)

		// Remove every other subscription, then the rest.
		var kept []*Subscription
		for i, s := range subs {
			if i%2 == 0 {
				if !x.Remove(s) {
					t.Fatalf("Remove(%q) = false", s.Filter)
				}
				if x.Remove(s) {
					t.Fatalf("second Remove(%q) = true", s.Filter)
				}
			} else {
				kept = append(kept, s)
			}
		}
		check(kept)
		for _, s := range kept {
			if !x.Remove(s) {
				t.Fatalf("Remove(%q) = false", s.Filter)
			}
		}
		check(nil)
		if !x.isEmpty() {
			t.Fatal("index not empty after removing everything")
		}
	})
}

// indexWorkload builds n synthetic subscriptions and a set of publish topics
// of the form "t/<a>/<b>/<c>" with a, b < 100 and c < 10. The filter mix is
// 60% literal, 20% "t/a/+/c", 15% "t/a/b/#", 4% "t/a/#" and 1% "+/+/b/+",
// about 0.7 matches per 1000 subscriptions per publish (ARCHITECTURE §0 item 4
// used ~1 per 1000).
func indexWorkload(n int) (subs []*Subscription, topics []string) {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	subs = make([]*Subscription, n)
	for i := range subs {
		a, b, c := rng.IntN(100), rng.IntN(100), rng.IntN(10)
		var f string
		switch p := rng.IntN(100); {
		case p < 60:
			f = fmt.Sprintf("t/%d/%d/%d", a, b, c)
		case p < 80:
			f = fmt.Sprintf("t/%d/+/%d", a, c)
		case p < 95:
			f = fmt.Sprintf("t/%d/%d/#", a, b)
		case p < 99:
			f = fmt.Sprintf("t/%d/#", a)
		default:
			f = fmt.Sprintf("+/+/%d/+", b)
		}
		subs[i] = &Subscription{SubSpec: SubSpec{Filter: f, Key: f}}
	}
	topics = make([]string, 4096)
	for i := range topics {
		topics[i] = fmt.Sprintf("t/%d/%d/%d", rng.IntN(100), rng.IntN(100), rng.IntN(10))
	}
	return subs, topics
}

func benchmarkMatch(b *testing.B, n int) {
	subs, topics := indexWorkload(n)
	x := NewIndex()
	for _, s := range subs {
		x.Insert(s)
	}
	dst := make([]*Subscription, 0, 1024)
	matches := 0
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		dst = x.Match(topics[i%len(topics)], dst[:0])
		matches += len(dst)
		i++
	}
	b.ReportMetric(float64(matches)/float64(i), "matches/op")
}

func BenchmarkMatch10k(b *testing.B)  { benchmarkMatch(b, 10_000) }
func BenchmarkMatch50k(b *testing.B)  { benchmarkMatch(b, 50_000) }
func BenchmarkMatch200k(b *testing.B) { benchmarkMatch(b, 200_000) }

// BenchmarkMatch200kParallel measures Match under the read lock from all
// procs at once.
func BenchmarkMatch200kParallel(b *testing.B) {
	subs, topics := indexWorkload(200_000)
	x := NewIndex()
	for _, s := range subs {
		x.Insert(s)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]*Subscription, 0, 1024)
		i := 0
		for pb.Next() {
			dst = x.Match(topics[i%len(topics)], dst[:0])
			i++
		}
	})
}

// BenchmarkInsertRemove inserts and removes one subscription into an index
// holding 50k others.
func BenchmarkInsertRemove(b *testing.B) {
	subs, _ := indexWorkload(50_000)
	x := NewIndex()
	for _, s := range subs {
		x.Insert(s)
	}
	extra, _ := indexWorkload(4096)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		s := extra[i%len(extra)]
		x.Insert(s)
		x.Remove(s)
		i++
	}
}
