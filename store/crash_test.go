package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBoltSurvivesKill runs a child process (this test binary) that
// enqueues messages from 4 goroutines and prints each sequence number once
// Enqueue has returned, kills it with SIGKILL mid-stream, reopens the file
// and checks that every printed (acknowledged) message is there. A kill -9
// does not exercise fsync (the page cache survives), but it does check that
// an acknowledged write is committed and that a torn process leaves a file
// that opens.
func TestBoltSurvivesKill(t *testing.T) {
	if path := os.Getenv("DUPLEX_STORE_KILL_HELPER"); path != "" {
		b, err := Open(path, Options{})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		out := make(chan uint64, 1024)
		for w := range 4 {
			go func() {
				for i := 0; ; i++ {
					seqs, err := b.Enqueue(sampleMsg(w*1_000_000+i), []string{"s"})
					if err != nil {
						fmt.Println("enqueue:", err)
						os.Exit(1)
					}
					out <- seqs[0]
				}
			}()
		}
		for seq := range out {
			fmt.Println("acked", seq)
		}
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "duplex.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltSurvivesKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DUPLEX_STORE_KILL_HELPER="+path)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	acked := map[uint64]bool{}
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(10 * time.Second)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "acked" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			must(t, err)
			acked[n] = true
		}
		if len(acked) >= 300 || time.Now().After(deadline) {
			break
		}
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	for sc.Scan() { // acknowledgements printed before the kill landed
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "acked" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			acked[n] = true
		}
	}
	_ = cmd.Wait()
	if len(acked) == 0 {
		t.Fatal("child acknowledged nothing")
	}

	b, err := Open(path, Options{})
	must(t, err)
	defer b.Close()
	q, err := b.Pending("s", 0, 0)
	must(t, err)
	have := map[uint64]bool{}
	for _, e := range q {
		have[e.Seq] = true
	}
	for seq := range acked {
		if !have[seq] {
			t.Errorf("acknowledged seq %d lost", seq)
		}
	}
	t.Logf("killed after %d acknowledged enqueues; %d on disk after reopen", len(acked), len(q))
}
