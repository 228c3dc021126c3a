package broker

import (
	"context"
	"slices"
	"sync"
	"testing"
)

// tapped takes what is waiting in t's channel.
func tapped(t *Tap) []string {
	var out []string
	for {
		select {
		case m, ok := <-t.C:
			if !ok {
				return out
			}
			out = append(out, m.Topic+m.Queue+"="+string(m.Payload))
		default:
			return out
		}
	}
}

func TestTapFilters(t *testing.T) {
	r := New(Config{}, nil)
	plus, err := r.Tap("s/+", 10)
	if err != nil {
		t.Fatal(err)
	}
	every, _ := r.Tap("", 10)
	hash, _ := r.Tap("#", 10)
	jobs, _ := r.Tap(TapQueuePrefix+"jobs", 10)
	if _, err := r.Tap("a/#/b", 10); err == nil {
		t.Fatal("an invalid filter was accepted")
	}
	publishQoS(t, r, "s/1", "a", AtMostOnce)
	publishQoS(t, r, "s/x/y", "b", AtMostOnce)
	publishQoS(t, r, "$SYS/up", "c", AtMostOnce)
	publishQueue(t, r, nil, "jobs", "d")
	r.PublishBatch(nil, []PublishReq{{Msg: &Message{Topic: "s/2", Payload: []byte("e")}}, {Msg: &Message{Queue: "jobs", Payload: []byte("f")}}})
	// Refused messages are not tapped.
	_ = r.Publish(context.Background(), nil, &Message{Topic: "bad/#", Payload: []byte("x")})

	for _, tc := range []struct {
		tap  *Tap
		want []string
	}{
		{plus, []string{"s/1=a", "s/2=e"}},
		{every, []string{"s/1=a", "s/x/y=b", "$SYS/up=c", "jobs=d", "s/2=e", "jobs=f"}},
		{hash, []string{"s/1=a", "s/x/y=b", "s/2=e"}}, // no '$' topics, so no queues [MQTT-4.7.2-1]
		{jobs, []string{"jobs=d", "jobs=f"}},
	} {
		if got := tapped(tc.tap); !slices.Equal(got, tc.want) {
			t.Errorf("tap %q: %v, want %v", tc.tap.filter, got, tc.want)
		}
	}
	for _, tp := range []*Tap{plus, every, hash, jobs} {
		tp.Close()
	}
	if r.taps.Load() != nil {
		t.Fatal("taps left after closing them all")
	}
}

// A full channel drops and counts; the publisher never waits. Close
// closes C once and later publishes do not reach it.
func TestTapDropsAndClose(t *testing.T) {
	r := New(Config{}, nil)
	tp, _ := r.Tap("#", 1)
	other, _ := r.Tap("#", 10)
	for _, b := range []string{"1", "2", "3"} {
		publishQoS(t, r, "t", b, AtMostOnce)
	}
	if tp.Dropped() != 2 || other.Dropped() != 0 {
		t.Fatalf("dropped %d and %d, want 2 and 0", tp.Dropped(), other.Dropped())
	}
	if got := tapped(tp); !slices.Equal(got, []string{"t=1"}) {
		t.Fatalf("tapped %v", got)
	}
	tp.Close()
	tp.Close()
	publishQoS(t, r, "t", "4", AtMostOnce)
	if _, ok := <-tp.C; ok {
		t.Fatal("C is open after Close")
	}
	if got := tapped(other); len(got) != 4 {
		t.Fatalf("the other tap got %v", got)
	}
	other.Close()
}

// With no tap (none yet, or all closed) a publish pays one atomic load:
// still no allocation.
func TestTapZeroCost(t *testing.T) {
	r := New(Config{}, nil)
	m := &Message{Topic: "nobody/listens", Payload: []byte("x")}
	ctx := context.Background()
	pub := func() { _ = r.Publish(ctx, nil, m) }
	pub()
	if n := testing.AllocsPerRun(100, pub); n != 0 {
		t.Fatalf("Publish without taps: %v allocations, want 0", n)
	}
	tp, _ := r.Tap("x", 1)
	if n := testing.AllocsPerRun(100, pub); n != 0 {
		t.Fatalf("Publish with a tap that does not match: %v allocations, want 0", n)
	}
	tp.Close()
	if n := testing.AllocsPerRun(100, pub); n != 0 {
		t.Fatalf("Publish after the last tap closed: %v allocations, want 0", n)
	}
}

// Taps open and close while publishers run (go test -race).
func TestTapConcurrent(t *testing.T) {
	r := New(Config{}, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_ = r.Publish(context.Background(), nil, &Message{Topic: "c/1", Payload: []byte("x")})
				}
			}
		}()
	}
	for range 200 {
		tp, err := r.Tap("c/#", 4)
		if err != nil {
			t.Fatal(err)
		}
		tapped(tp)
		tp.Close()
		for range tp.C { // drain until closed
		}
	}
	close(stop)
	wg.Wait()
}

func TestTapMatchTopic(t *testing.T) {
	filters := []string{"#", "+", "a", "a/#", "a/+", "+/+", "/+", "a/b", "a/b/#", "a/+/c", "+/b/#", "$SYS/#", "$queue/q", "a//b", "/", "+/#"}
	topics := []string{"a", "a/b", "a/b/c", "a/", "/a", "/", "//", "a//b", "b", "$SYS/x", "$queue/q", "a/x/c", "x/b"}
	for _, f := range filters {
		for _, topic := range topics {
			if got, want := matchTopic(f, topic), MatchTopic(f, topic); got != want {
				t.Errorf("matchTopic(%q, %q) = %v, MatchTopic says %v", f, topic, got, want)
			}
		}
	}
	// Queue messages match as "$queue/<name>".
	for _, f := range []string{"$queue/#", "$queue/+", "$queue/q", "$queue/$x", "$queue/a/+", "#", "+/q", "$queue"} {
		for _, name := range []string{"q", "$x", "a/b", "a"} {
			tp := &Tap{filter: f}
			if got, want := tp.matches(&Message{Queue: name}), MatchTopic(f, TapQueuePrefix+name); got != want {
				t.Errorf("tap %q, queue %q: %v, MatchTopic says %v", f, name, got, want)
			}
		}
	}
	if n := testing.AllocsPerRun(10, func() { matchTopic("a/+/c/#", "a/b/c/d/e") }); n != 0 {
		t.Fatalf("matchTopic allocates %v times", n)
	}
}
