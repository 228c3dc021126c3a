package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/duplexmq/duplex/internal/testutil"
)

// TestGatherAdmin: a node gathers the other node's answer (with its id),
// never its own; once the other node stops cleanly the directory says so
// and a gather returns at once with no answer.
func TestGatherAdmin(t *testing.T) {
	a, b, _, _ := startPair(t)
	if err := a.HandleAdmin("nodes", func(req []byte) []byte { return []byte("a:" + string(req)) }); err != nil {
		t.Fatal(err)
	}
	if err := b.HandleAdmin("nodes", func(req []byte) []byte { return []byte("b:" + string(req)) }); err != nil {
		t.Fatal(err)
	}
	if err := a.HandleAdmin("no.dots", nil); err == nil {
		t.Fatal("HandleAdmin accepted a kind with a dot")
	}
	// The handler's subscription must reach the other server over the
	// route before a request finds it: poll.
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		got, err := a.GatherAdmin(context.Background(), "nodes", []byte("q"))
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Node != b.ID() || string(got[0].Data) != "b:q" {
			return fmt.Errorf("a gathered %+v, want b's answer only", got)
		}
		return nil
	})
	if p := a.Peers(); len(p) != 1 || p[0].ID != b.ID() || p[0].Stopped || p[0].LastSeen.IsZero() {
		t.Fatalf("a's directory: %+v", p)
	}
	// b learnt of a from the request (its header).
	if p := b.Peers(); len(p) != 1 || p[0].ID != a.ID() {
		t.Fatalf("b's directory: %+v", p)
	}

	b.Close()
	testutil.Eventually(t, 10*time.Second, "a marks b stopped", func() bool {
		p := a.Peers()
		return len(p) == 1 && p[0].Stopped
	})
	testutil.Eventually(t, 10*time.Second, "a's route to b gone", func() bool { return a.Routes() == 0 })
	got, err := a.GatherAdmin(context.Background(), "nodes", nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("gather with b gone: %+v, %v", got, err)
	}
}

// TestGatherAdminExternal: with an external NATS the directory learns the
// other nodes from their hello and their answers; a gather returns once
// every known node answered; a node that vanishes without a bye (its
// connection cut) stays known, and a gather then waits out its deadline
// and returns the answers it has.
func TestGatherAdminExternal(t *testing.T) {
	addr := freeAddr(t)
	s := runNATS(t, addr)
	t.Cleanup(s.Shutdown)
	cfg := Config{Name: "ext", NATSURLs: []string{"nats://" + addr}}
	var nodes []*Node
	for range 3 {
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		id := n.ID()
		if err := n.HandleAdmin("nodes", func([]byte) []byte { return []byte(id) }); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(&fakeRouter{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		nodes = append(nodes, n)
	}
	a := nodes[0]
	const wait = 20 * time.Second
	testutil.EventuallyErr(t, 10*time.Second, func() error {
		got, err := a.GatherAdmin(context.Background(), "nodes", nil)
		if err != nil {
			return err
		}
		if len(got) != 2 || len(a.Peers()) != 2 {
			return fmt.Errorf("answers %+v, directory %+v", got, a.Peers())
		}
		for _, g := range got {
			if string(g.Data) != g.Node {
				return fmt.Errorf("answer %q from %s", g.Data, g.Node)
			}
		}
		return nil
	})
	// All known nodes answered: it returns before the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if got, err := a.GatherAdmin(ctx, "nodes", nil); err != nil || len(got) != 2 || ctx.Err() != nil {
		t.Fatalf("gather: %+v, %v, deadline passed: %v", got, err, ctx.Err())
	}
	// Node 3's connection goes without a bye: it stays known and does
	// not answer; the gather ends at its deadline with node 2's answer.
	nodes[2].nc.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	got, err := a.GatherAdmin(ctx2, "nodes", nil)
	if err != nil || len(got) != 1 || got[0].Node != nodes[1].ID() {
		t.Fatalf("gather with node 3 gone: %+v, %v", got, err)
	}
	if p := a.Peers(); len(p) != 2 || p[0].Stopped || p[1].Stopped {
		t.Fatalf("directory: %+v", p)
	}
}
