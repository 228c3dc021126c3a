// Package crash_test checks Duplex's durability promise against the real
// binary: once the broker has acknowledged a message (MQTT PUBACK/PUBREC,
// STOMP RECEIPT), it reaches every durable subscriber and queue it was
// routed to, across graceful restarts and kill -9.
//
// TestMain builds cmd/duplex (without -race, for speed) once; every test
// runs it as a child process on loopback ports it picked, with its own data
// folder, and drives it over the plain TCP listeners (MQTT and STOMP).
//
//   - TestOfflineAcrossRestart: durable subscribers of every kind offline
//     across a SIGTERM and a SIGKILL restart; retained and /queue messages.
//   - TestKill9: sustained streams, SIGKILL at seeded random points, then
//     at-least-once / in-order / exactly-once checks (make soak: 30 kills).
//   - TestInFlightAcrossKill: each MQTT QoS 1/2 in-flight state, packet by
//     packet. TestStompUnackedAcrossKill, TestStompUnsubscribeAcrossKill:
//     STOMP redelivery and durable subscription lifetime.
//
// A SIGKILL loses the process, not the OS page cache: these tests cannot
// tell an fsync from none, so they do not prove the power-cut half of the
// promise (-sync always); they do prove what the broker writes, and when it
// acknowledges relative to writing.
//
// Environment:
//
//	DUPLEX_CRASH_KILLS  kill points in TestKill9 (default 3; make soak: 30)
//	DUPLEX_CRASH_SEED   seed of TestKill9's random kill delays (default: time)
//	DUPLEX_CRASH_LOG    set: print every broker log at the end of each test
//	DUPLEX_CRASH_BIN    a broker binary to test instead of building one
package crash_test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duplexmq/duplex/internal/testutil"
)

// Bounds. Every wait in these tests ends after one of them.
const (
	waitShort   = 5 * time.Second  // one connect, one publish, one receipt
	waitStart   = 30 * time.Second // the broker loading its store and listening
	waitExit    = 20 * time.Second // the broker exiting after a signal
	waitDrain   = 60 * time.Second // subscribers receiving a whole backlog
	waitStall   = 10 * time.Second // ...unless nothing at all arrives for this long
	pollEvery   = 10 * time.Millisecond
	retryDelay  = 50 * time.Millisecond // between reconnect attempts
	startTries  = 8                     // broker starts before giving up
	dataDBName  = "duplex.db"
	barrierDest = "/topic/crash/barrier"
)

// duplexBin is the broker binary TestMain built.
var duplexBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("crash tests skipped in -short mode (they build and run the broker)")
		os.Exit(0)
	}
	code := func() int {
		if bin := os.Getenv("DUPLEX_CRASH_BIN"); bin != "" {
			duplexBin = bin
			return m.Run()
		}
		defer testutil.RemoveBinaries()
		bin, err := testutil.Build(testutil.NoRace)
		if err != nil {
			fmt.Fprintln(os.Stderr, "crash:", err)
			return 1
		}
		duplexBin = bin
		return m.Run()
	}()
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// The broker process

// proc is one run of the broker binary.
type proc struct {
	*testutil.Proc
	gen int
	how string // how it ended: "SIGKILL", "SIGTERM", or "" (by itself)
}

// server runs the broker binary: the same addresses and data folder across
// restarts, so reconnecting clients find it again.
type server struct {
	t       testing.TB
	name    string
	dataDir string
	args    []string // extra flags

	addr, stompAddr, mqttAddr string
	started                   bool // once started, the addresses are fixed

	mu    sync.Mutex
	cur   *proc
	procs []*proc
}

// startServer starts the broker with a fresh data folder; extra flags are
// appended to the command line. The process is killed when the test ends,
// and its logs are reported if the test failed.
func startServer(t testing.TB, name string, args ...string) *server {
	t.Helper()
	s := &server{t: t, name: name, dataDir: filepath.Join(t.TempDir(), "data"), args: args}
	t.Cleanup(s.cleanup)
	s.start()
	return s
}

func (s *server) pickAddrs() {
	s.t.Helper()
	for _, p := range []*string{&s.addr, &s.stompAddr, &s.mqttAddr} {
		a, err := testutil.FreeAddr()
		if err != nil {
			s.t.Fatalf("free port: %v", err)
		}
		*p = a
	}
}

// start runs the broker and waits until it listens. Before the first
// successful start it picks new ports after a failed attempt; afterwards it
// retries the same ones (clients reconnect to them).
func (s *server) start() {
	s.t.Helper()
	s.mu.Lock()
	if s.cur != nil {
		s.mu.Unlock()
		s.t.Fatalf("%s: start while generation %d still runs", s.name, s.cur.gen)
	}
	s.mu.Unlock()
	var last string
	for try := 0; try < startTries; try++ {
		if !s.started {
			s.pickAddrs()
		} else if try > 0 {
			time.Sleep(200 * time.Millisecond) // backoff while another socket holds a port
		}
		_, err := s.launch()
		if err == nil {
			s.started = true
			return
		}
		last = err.Error()
		if !strings.Contains(last, "address already in use") {
			break
		}
	}
	s.t.Fatalf("%s: broker did not start: %s", s.name, last)
}

// launch starts one process and waits for its listening line or its exit.
func (s *server) launch() (*proc, error) {
	s.mu.Lock()
	gen := len(s.procs) + 1
	s.mu.Unlock()
	args := append([]string{
		"-addr", s.addr,
		"-stomp-tcp-addr", s.stompAddr,
		"-mqtt-tcp-addr", s.mqttAddr,
		"-data", s.dataDir,
		"-log-level", "info",
	}, s.args...)
	tp, err := testutil.Launch(testutil.Config{Bin: duplexBin, Args: args, Listeners: []string{""}, StartTimeout: waitStart})
	if err != nil {
		return nil, fmt.Errorf("generation %d: %w", gen, err)
	}
	p := &proc{Proc: tp, gen: gen}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.cur = p
	s.mu.Unlock()
	return p, nil
}

// gen is the current process's generation (1 for the first start).
func (s *server) gen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return s.cur.gen
}

// signal sends sig to the running broker and waits for it to exit.
func (s *server) signal(sig syscall.Signal, how string) *proc {
	s.t.Helper()
	s.mu.Lock()
	p := s.cur
	s.cur = nil
	s.mu.Unlock()
	if p == nil {
		s.t.Fatalf("%s: %s but no broker runs", s.name, how)
	}
	p.how = how
	if !p.Running() {
		s.t.Fatalf("%s: generation %d had already exited (%v) before %s", s.name, p.gen, p.Err(), how)
	}
	if err := p.Signal(sig); err != nil {
		s.t.Fatalf("%s: %s: %v", s.name, how, err)
	}
	if !p.Wait(waitExit) {
		p.Kill()
		s.t.Fatalf("%s: generation %d still running %v after %s", s.name, p.gen, waitExit, how)
	}
	return p
}

// kill9 kills the broker with SIGKILL and waits for the process to end
// (it holds the data file's lock until then).
func (s *server) kill9() {
	s.t.Helper()
	s.signal(syscall.SIGKILL, "SIGKILL")
}

// stop sends SIGTERM and expects a clean exit with status 0.
func (s *server) stop() {
	s.t.Helper()
	p := s.signal(syscall.SIGTERM, "SIGTERM")
	if err := p.Err(); err != nil {
		s.t.Errorf("%s: generation %d after SIGTERM: %v (exit code %d)", s.name, p.gen, err, p.ExitCode())
	}
}

// restart stops the broker (SIGKILL when kill, else SIGTERM) and starts it
// again on the same addresses and data.
func (s *server) restart(kill bool) {
	s.t.Helper()
	if kill {
		s.kill9()
	} else {
		s.stop()
	}
	s.start()
}

// alive returns an error when the current broker process has exited by
// itself (a crash of its own, not one of ours).
func (s *server) alive() error {
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	if !p.Running() {
		return fmt.Errorf("broker generation %d exited by itself: %v", p.gen, p.Err())
	}
	return nil
}

// storeLoaded returns a count from the current generation's startup
// summary ("store loaded ... key=N"), waiting briefly for the line (stderr
// and stdout are copied separately).
func (s *server) storeLoaded(key string) (int, bool) {
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	if p == nil {
		return 0, false
	}
	re := regexp.MustCompile(`msg="store loaded".* ` + regexp.QuoteMeta(key) + `=(\d+)`)
	var m []string
	_ = waitFor(waitShort, func() error {
		if m = re.FindStringSubmatch(p.Stderr()); m == nil {
			return errors.New("no summary yet")
		}
		return nil
	})
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

// logs returns every generation's stderr, in order.
func (s *server) logs() []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*proc(nil), s.procs...)
}

// cleanup kills a broker still running and reports logs on failure.
func (s *server) cleanup() {
	s.mu.Lock()
	p := s.cur
	s.cur = nil
	s.mu.Unlock()
	if p != nil {
		p.Kill()
	}
	if s.t.Failed() || os.Getenv("DUPLEX_CRASH_LOG") != "" {
		s.reportLogs()
	}
}

// interesting picks the log lines worth showing after a failure: warnings,
// errors, the store summary and anything about shutdown.
var interesting = regexp.MustCompile(`level=(WARN|ERROR)|store loaded|shutting down|panic|fatal`)

// reportLogs keeps the logs and the data file in a folder that outlives the
// test and prints an excerpt of each generation.
func (s *server) reportLogs() {
	keep, err := os.MkdirTemp("", "duplex-crash-"+s.name+"-")
	if err != nil {
		s.t.Logf("%s: cannot keep logs: %v", s.name, err)
	}
	full := os.Getenv("DUPLEX_CRASH_LOG") != ""
	for _, p := range s.logs() {
		text := p.Stderr()
		if keep != "" {
			_ = os.WriteFile(filepath.Join(keep, fmt.Sprintf("gen%02d.log", p.gen)), []byte(text), 0o644)
		}
		how := p.how
		if how == "" {
			how = "still running at the end"
		}
		lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
		if full {
			s.t.Logf("%s: broker generation %d (%s), %d log lines:\n%s", s.name, p.gen, how, len(lines), text)
			continue
		}
		var pick []string
		for _, l := range lines {
			if interesting.MatchString(l) {
				pick = append(pick, l)
			}
		}
		const maxPick = 40
		if len(pick) > maxPick {
			pick = append(pick[:maxPick/2], append([]string{fmt.Sprintf("… %d more …", len(pick)-maxPick)}, pick[len(pick)-maxPick/2:]...)...)
		}
		tail := lines
		if len(tail) > 8 {
			tail = tail[len(tail)-8:]
		}
		s.t.Logf("%s: broker generation %d (%s), %d log lines; warnings/errors/summary:\n  %s\n last lines:\n  %s",
			s.name, p.gen, how, len(lines), strings.Join(pick, "\n  "), strings.Join(tail, "\n  "))
	}
	if keep != "" {
		if err := copyFile(filepath.Join(s.dataDir, dataDBName), filepath.Join(keep, dataDBName)); err != nil {
			s.t.Logf("%s: data file not kept: %v", s.name, err)
		}
		s.t.Logf("%s: full broker logs and the data file kept in %s", s.name, keep)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ---------------------------------------------------------------------------
// Polling

// waitFor calls f until it returns nil or timeout passes; it returns f's
// last error then.
func waitFor(timeout time.Duration, f func() error) error { return testutil.Poll(timeout, f) }

// sleepOrStop waits d unless stop closes first; it reports whether stop closed.
func sleepOrStop(d time.Duration, stop <-chan struct{}) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-stop:
		return true
	case <-tm.C:
		return false
	}
}
