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
