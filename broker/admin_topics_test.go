package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTopicTree(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	for i, f := range []string{"a/b", "a/+", "a/b/c", "x", "/y", "#", "a/b"} {
		topicSub(t, r, s, string(rune('0'+i)), f)
	}
	type n struct {
		path              string
		subs, total, kids int
	}
	tree := func(prefix, cursor string, limit int) ([]n, string) {
		nodes, next := r.TopicTree(prefix, cursor, limit)
		var out []n
		for _, x := range nodes {
			out = append(out, n{x.Path, x.Subscriptions, x.Total, x.Children})
		}
		return out, next
	}
	got, next := tree("", "", 10)
	want := []n{{"", 0, 1, 1}, {"#", 1, 1, 0}, {"a", 0, 4, 2}, {"x", 1, 1, 0}}
	if !slices.Equal(got, want) || next != "" {
		t.Fatalf("root = %v %q, want %v", got, next, want)
	}
	// One at a time, through the empty level's cursor.
	var paged []n
	cursor := ""
	for range 10 {
		page, next := tree("", cursor, 1)
		paged = append(paged, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("root one at a time = %v, want %v", paged, want)
	}
	got, _ = tree("a", "", 10)
	if want := []n{{"a/+", 1, 1, 0}, {"a/b", 2, 3, 1}}; !slices.Equal(got, want) {
		t.Fatalf("a = %v, want %v", got, want)
	}
	got, _ = tree("a/b", "", 10)
	if want := []n{{"a/b/c", 1, 1, 0}}; !slices.Equal(got, want) {
		t.Fatalf("a/b = %v, want %v", got, want)
	}
	if got, next := tree("nope/x", "", 10); got != nil || next != "" {
		t.Fatalf("unknown prefix: %v %q", got, next)
	}
	if got, _ := tree("a", "b", 10); got != nil {
		t.Fatalf("after the last: %v", got)
	}
}

func TestRetainedPage(t *testing.T) {
	r := New(Config{}, nil)
	big := strings.Repeat("z", 1000)
	for _, topic := range []string{"s/1", "s/2", "s/1/deep", "sx", "t", "$SYS/x"} {
		m := &Message{Topic: topic, Payload: []byte(topic), Retain: true, QoS: AtLeastOnce, ContentType: "text/plain"}
		if topic == "t" {
			m.Payload = []byte(big)
		}
		if err := r.Publish(context.Background(), nil, m); err != nil {
			t.Fatal(err)
		}
	}
	expired := &Message{Topic: "s/old", Payload: []byte("x"), Retain: true, Expires: time.Now().Add(-time.Second)}
	_ = r.Publish(context.Background(), nil, expired)
	topics := func(prefix string, limit int) []string {
		var out []string
		cursor := ""
		for range 20 {
			page, next := r.RetainedPage(cursor, limit, prefix)
			for _, ri := range page {
				out = append(out, ri.Topic)
			}
			if next == "" {
				return out
			}
			cursor = next
		}
		t.Fatal("RetainedPage does not end")
		return nil
	}
	all := []string{"$SYS/x", "s/1", "s/1/deep", "s/2", "sx", "t"}
	for _, limit := range []int{1, 2, 100} {
		if got := topics("", limit); !slices.Equal(got, all) {
			t.Errorf("limit %d: %v, want %v", limit, got, all)
		}
	}
	for prefix, want := range map[string][]string{
		"s": {"s/1", "s/1/deep", "s/2", "sx"}, "s/": {"s/1", "s/1/deep", "s/2"}, "s/1": {"s/1", "s/1/deep"},
		"s/1/": {"s/1/deep"}, "$": {"$SYS/x"}, "u": nil,
	} {
		if got := topics(prefix, 1); !slices.Equal(got, want) {
			t.Errorf("prefix %q: %v, want %v", prefix, got, want)
		}
	}
	page, _ := r.RetainedPage("sx", 10, "")
	if len(page) != 1 || page[0].Topic != "t" {
		t.Fatalf("after sx: %+v", page)
	}
	ri := page[0]
	if ri.Size != 1000 || len(ri.Preview) != RetainedPreviewBytes || ri.QoS != AtLeastOnce ||
		ri.ContentType != "text/plain" || ri.StoredAt.IsZero() || time.Since(ri.StoredAt) > time.Minute {
		t.Fatalf("RetainedInfo = %+v", ri)
	}
	ri.Preview[0] = 'X' // a copy
	if got := r.Retained("t"); got[0].Payload[0] != 'z' {
		t.Fatal("the preview shares the retained payload")
	}
	if page, next := r.RetainedPage("t", 10, ""); len(page) != 0 || next != "" {
		t.Fatalf("after the last: %+v %q", page, next)
	}
}

// A page of retained messages allocates for the topics that enter its
// heap (O(limit log n) in a random walk order), not for every topic.
func TestRetainedPageAllocs(t *testing.T) {
	allocs := func(n int) float64 {
		r := New(Config{MaxRetained: -1}, nil)
		for i := range n {
			r.retained.Set(&Message{Topic: fmt.Sprintf("dev/%d/state", i), Payload: []byte("v")}, 0)
		}
		return testing.AllocsPerRun(5, func() { r.RetainedPage("", 10, "dev/") })
	}
	if small, large := allocs(100), allocs(10_000); large > 1000 {
		t.Fatalf("RetainedPage allocations: %v with 100 topics, %v with 10000; want far fewer than the topics", small, large)
	}
}

// The index keeps every node's total right through inserts, replaces and
// removes (TopicTree reads it).
func TestIndexTotals(t *testing.T) {
	var x Index
	filters := []string{"a", "a/b", "a/+", "a/#", "#", "+/b", "/", "//x", "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s"}
	var subs []*Subscription
	check := func(step int) {
		t.Helper()
		var walk func(l *level) int
		walk = func(l *level) int {
			sum := 0
			nodes := []*node{l.plus, l.hash}
			for _, n := range l.lits {
				nodes = append(nodes, n)
			}
			for _, n := range nodes {
				if n == nil {
					continue
				}
				below := len(n.subs)
				if n.next != nil {
					below += walk(n.next)
				}
				if n.total != below {
					t.Fatalf("step %d: a node's total is %d, its subtree holds %d", step, n.total, below)
				}
				sum += below
			}
			return sum
		}
		if got := walk(&x.root); got != x.Len() {
			t.Fatalf("step %d: totals add up to %d, Len %d", step, got, x.Len())
		}
	}
	for i := range 400 {
		switch f := filters[(i*7)%len(filters)]; {
		case i%5 == 3 && len(subs) > 0:
			j := (i * 13) % len(subs)
			x.Remove(subs[j])
			subs = slices.Delete(subs, j, j+1)
		case i%11 == 5 && len(subs) > 0:
			old := subs[0]
			nu := &Subscription{SubSpec: SubSpec{Filter: old.Filter}}
			x.Replace(old, nu)
			subs[0] = nu
		default:
			sub := &Subscription{SubSpec: SubSpec{Filter: f}}
			x.Insert(sub)
			x.Insert(sub) // a second insert does nothing
			subs = append(subs, sub)
		}
		check(i)
	}
	for _, sub := range subs {
		x.Remove(sub)
	}
	check(-1)
	if !x.root.empty() {
		t.Fatal("the index is not empty after removing everything")
	}
}
