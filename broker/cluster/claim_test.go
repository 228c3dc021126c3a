package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// holdRouter is a router whose sessions are bare claim keys: openKey
// opens one as Router.Open does, a claim from another node closes it.
type holdRouter struct {
	fakeRouter
	n    *Node
	mu   sync.Mutex
	open map[string]bool
}

func (r *holdRouter) ReleaseToPeer(c broker.SessionClaim) (*broker.SessionState, error) {
	r.mu.Lock()
	was := r.open[c.Key]
	delete(r.open, c.Key)
	r.mu.Unlock()
	if was {
		r.n.Hold(c.Key, false)
	}
	return nil, nil
}

func (r *holdRouter) HeldKeys() []string { return nil }

// openKey claims key, takes it, then ends the claim (Router.Open's order).
func (r *holdRouter) openKey(t *testing.T, key string) {
	if _, err := r.n.Claim(broker.SessionClaim{Key: key}); err != nil {
		t.Error(err)
		return
	}
	r.mu.Lock()
	r.open[key] = true
	r.mu.Unlock()
	r.n.Hold(key, true)
	r.n.ClaimEnded(key)
}

func (r *holdRouter) isOpen(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open[key]
}

// startJetStreamNodes starts three embedded nodes with JetStream, each
// with a holdRouter.
func startJetStreamNodes(t *testing.T, name string) []*holdRouter {
	t.Helper()
	dir := t.TempDir()
	listen := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	rs := make([]*holdRouter, 3)
	for i := range rs {
		var peers []string
		for j, l := range listen {
			if j != i {
				peers = append(peers, l)
			}
		}
		n, err := New(Config{Name: name, Listen: listen[i], Peers: peers, StoreDir: filepath.Join(dir, fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = &holdRouter{n: n, open: map[string]bool{}}
		if err := n.Start(rs[i]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
	}
	testutil.EventuallyErr(t, 60*time.Second, func() error {
		return errorsJoin(rs[0].n.Ready(), rs[1].n.Ready(), rs[2].n.Ready())
	})
	return rs
}

// TestClaimRace: one key opened on two nodes at the same moment ends open
// on exactly one (claim.go's holder records). Without them both claims
// find no holder (the other's subscription is on its way) and both stay.
func TestClaimRace(t *testing.T) {
	rs := startJetStreamNodes(t, "cr")
	for round := range 20 {
		key := fmt.Sprintf("mrace%d", round)
		var wg sync.WaitGroup
		for _, r := range rs[:2] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.openKey(t, key)
			}()
		}
		wg.Wait()
		testutil.EventuallyErr(t, 20*time.Second, func() error {
			n := 0
			for _, r := range rs {
				if r.isOpen(key) {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("round %d: %s open on %d nodes, want 1", round, key, n)
			}
			return nil
		})
	}
}

// TestClaimResync: a node whose registration and holder records were
// swept while it lived (the others took it for dead: a partition)
// registers again and writes the holder records of the keys it holds
// again (claim_sweep.go register, resync).
func TestClaimResync(t *testing.T) {
	rs := startJetStreamNodes(t, "rs")
	r := rs[2]
	r.openKey(t, "mheld")
	kv := r.n.sess.cl.clientsKV()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// KV reads may come from a replica that has not the write yet: poll.
	testutil.EventuallyErr(t, 20*time.Second, func() error {
		if _, err := kv.Get(ctx, holderKey("mheld")); err != nil {
			return fmt.Errorf("holder record: %v", err)
		}
		return nil
	})
	// What a sweep of node 3 by the others does.
	for _, k := range []string{holderKey("mheld"), nodeKey(r.n.selfID)} {
		if err := kv.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	testutil.EventuallyErr(t, time.Minute, func() error {
		for _, k := range []string{nodeKey(r.n.selfID), holderKey("mheld")} {
			e, err := kv.Get(ctx, k)
			if err != nil {
				return fmt.Errorf("%s: %v", k, err)
			}
			var h holderRec
			if err := json.Unmarshal(e.Value(), &h); err != nil || h.Node != r.n.selfID {
				return fmt.Errorf("%s: %s", k, e.Value())
			}
		}
		return nil
	})
	if !r.isOpen("mheld") {
		t.Fatal("the key was closed")
	}
}
