package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// shareRouterFake records what the share path hands to each group.
type shareRouterFake struct {
	fakeRouter
	smu sync.Mutex
	got map[string][]string // "group/filter" → payloads
}

func (r *shareRouterFake) PublishToShare(group, filter string, m *broker.Message) error {
	if !broker.MatchTopic(filter, m.Topic) {
		return nil
	}
	r.smu.Lock()
	defer r.smu.Unlock()
	if r.got == nil {
		r.got = map[string][]string{}
	}
	r.got[group+"/"+filter] = append(r.got[group+"/"+filter], string(m.Payload))
	return nil
}

func (r *shareRouterFake) payloads(key string) []string {
	r.smu.Lock()
	defer r.smu.Unlock()
	return append([]string(nil), r.got[key]...)
}

// TestNodesShareGroup: a group with members on two nodes gets each
// message once between them, the publishing node's own members
// included; when the last member on one node leaves, its queue
// subscription goes and the other node gets everything; when one joins
// again, both share again.
func TestNodesShareGroup(t *testing.T) {
	la, lb := freeAddr(t), freeAddr(t)
	a, err := New(Config{Name: "t", Listen: la, Peers: []string{lb}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Name: "t", Listen: lb, Peers: []string{la}})
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := &shareRouterFake{}, &shareRouterFake{}
	a.ShareInterest("g", "s/+", true) // before Start: declared at Start
	if err := a.Start(ra); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if err := b.Start(rb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	testutil.EventuallyErr(t, 10*time.Second, func() error { return errorsJoin(a.Ready(), b.Ready()) })

	// The queue subscriptions a's server knows of for s/x: its own, and
	// b's through the route when b has members.
	interest := func(want int) {
		t.Helper()
		testutil.EventuallyErr(t, 10*time.Second, func() error {
			if got := a.srv.GlobalAccount().Interest(a.subs.Prefix + "s.x"); got != want {
				return fmt.Errorf("a's server has %d subscriptions on s/x, want %d", got, want)
			}
			return nil
		})
	}
	seq := 0
	send := func(n int) map[string]int {
		t.Helper()
		ka, kb := len(ra.payloads("g/s/+")), len(rb.payloads("g/s/+"))
		for range n {
			seq++
			a.Forward(&broker.Message{Topic: "s/x", Payload: []byte(fmt.Sprint(seq))})
		}
		testutil.EventuallyErr(t, 10*time.Second, func() error {
			if got := len(ra.payloads("g/s/+")) - ka + len(rb.payloads("g/s/+")) - kb; got < n {
				return fmt.Errorf("%d of %d messages through", got, n)
			}
			return nil
		})
		seen := map[string]int{}
		for _, p := range ra.payloads("g/s/+")[ka:] {
			seen[p]++
		}
		na := len(seen)
		for _, p := range rb.payloads("g/s/+")[kb:] {
			seen[p]++
		}
		for p, c := range seen {
			if c != 1 {
				t.Fatalf("message %s reached the group %d times", p, c)
			}
		}
		if len(seen) != n {
			t.Fatalf("%d distinct messages of %d", len(seen), n)
		}
		return map[string]int{"a": na, "b": n - na}
	}

	b.ShareInterest("g", "s/+", true)
	b.ShareInterest("g", "s/+", true) // counted: one leave below keeps it
	interest(2)
	if got := send(200); got["a"] == 0 || got["b"] == 0 {
		t.Fatalf("members on both nodes: a got %d, b got %d; want some each", got["a"], got["b"])
	}
	b.ShareInterest("g", "s/+", false)
	b.ShareInterest("g", "s/+", false)
	interest(1)
	if got := send(50); got["b"] != 0 {
		t.Fatalf("b has no member but got %d", got["b"])
	}
	b.ShareInterest("g", "s/+", true)
	interest(2)
	if got := send(200); got["a"] == 0 || got["b"] == 0 {
		t.Fatalf("b joined again: a got %d, b got %d; want some each", got["a"], got["b"])
	}
	if got := ra.topics(); len(got) != 0 {
		t.Fatalf("the plain path got %v: nothing has plain interest", got)
	}
	if _, noMember, malformed, _ := b.ShareStats(); noMember+malformed != 0 {
		t.Fatalf("b dropped %d (no member) and %d (malformed)", noMember, malformed)
	}
}
