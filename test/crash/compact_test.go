package crash_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duplexmq/duplex/internal/testutil"
)

// TestCompactKill9: `duplex compact` killed with SIGKILL at random points
// (seeded, logged) leaves a data file the broker starts from with every
// acknowledged message; a compaction run to its end afterwards (over the
// temporary file a killed run left behind) keeps them too.
func TestCompactKill9(t *testing.T) {
	const n = 2000
	seed := int64(envInt(t, "DUPLEX_CRASH_SEED", int(time.Now().UnixNano()&(1<<62-1))))
	rng := rand.New(rand.NewPCG(uint64(seed), 0x636f6d70616374))
	t.Logf("seed %d (reproduce with DUPLEX_CRASH_SEED=%d)", seed, seed)
	const topic = "crash/compact"
	srv := startServer(t, "compact", "-max-session-queue", "1000000")

	// A persistent session goes offline; n messages are queued for it,
	// published on eight lanes of one connection.
	sub := newV5Sub(srv, "compact-sub", topic, 1)
	if err := sub.online(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.offline() })
	if err := sub.offline(); err != nil {
		t.Fatal(err)
	}
	sp := &sharedPub{p: newMQTTPub("compact-pub", srv)}
	const lanes = 8
	logs := make([]*pubLog, lanes)
	errs := make(chan error, lanes)
	for i := range logs {
		logs[i] = &pubLog{name: fmt.Sprintf("c%d", i)}
		go func(l *pubLog) {
			for range n / lanes {
				m, p := l.take()
				ctx, cancel := context.WithTimeout(context.Background(), waitShort)
				err := sp.publish(ctx, topic, 1, p)
				cancel()
				l.result(m, err)
				if err != nil {
					errs <- fmt.Errorf("publish %s (broker up): %w", p, err)
					return
				}
			}
			errs <- nil
		}(logs[i])
	}
	for range lanes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	sp.close()
	srv.stop()

	db := filepath.Join(srv.dataDir, dataDBName)
	// Small compaction transactions make the run long enough for the kills
	// to land inside it.
	compact := func(killAfter time.Duration, args ...string) (finished bool, out string) {
		t.Helper()
		if len(args) == 0 {
			args = []string{"-data", srv.dataDir}
		}
		p, err := testutil.Spawn(testutil.Config{Bin: duplexBin, Args: append([]string{"compact", "-tx-max-size", "4096"}, args...)})
		if err != nil {
			t.Fatal(err)
		}
		if killAfter >= 0 && !p.Wait(killAfter) {
			p.Kill()
		}
		if !p.Wait(waitExit) {
			p.Kill()
			t.Fatalf("duplex compact still running after %v: %s%s", waitExit, p.Stdout(), p.Stderr())
		}
		return p.Err() == nil, p.Stdout() + p.Stderr()
	}
	// How long a whole run takes, on a copy.
	probe := filepath.Join(t.TempDir(), dataDBName)
	if err := copyFile(db, probe); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if ok, out := compact(-1, "-db", probe); !ok {
		t.Fatalf("duplex compact on a copy: %s", out)
	}
	whole := time.Since(t0)
	for i := range 3 {
		before, _ := os.Stat(db)
		d := time.Duration(rng.Int64N(int64(whole)))
		finished, out := compact(d)
		tmps, _ := filepath.Glob(db + ".compact*")
		t.Logf("compact #%d, SIGKILL after %v of a %v run: finished before the kill %v (%q); data file %d bytes before; left behind: %v",
			i+1, d.Round(time.Microsecond), whole.Round(time.Microsecond), finished, strings.TrimSpace(out), before.Size(), tmps)
		// The broker starts from what the killed run left, with every
		// message stored (its startup summary counts them).
		srv.start()
		if got, ok := srv.storeLoaded("queued"); !ok {
			t.Logf("no queued= count in the broker's startup summary; the final drain checks instead")
		} else if got != n {
			t.Errorf("after compact #%d killed after %v: the broker loaded %d queued messages, want %d", i+1, d, got, n)
		}
		srv.kill9()
	}
	if ok, out := compact(-1); !ok || !strings.Contains(out, "compacted") {
		t.Errorf("duplex compact after killed runs: finished %v, output %q", ok, out)
	}

	srv.start()
	if err := sub.online(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range logs {
		want = append(want, l.ackedPayloads()...)
	}
	drainAll([]*recorder{sub.rec}, [][]string{want}, time.Now().Add(waitDrain))
	for _, p := range checkStream(sub.rec, logs, checkOptions{ordered: true}) {
		t.Errorf("after killed compactions: %s", p)
	}
	for _, p := range sub.getProblems() {
		t.Error(p)
	}
}
