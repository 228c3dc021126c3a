package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the process helpers.
const (
	buildTimeout = 5 * time.Minute  // go build ./cmd/duplex, -race included
	startTimeout = 20 * time.Second // Config.StartTimeout's default
	stopTimeout  = 10 * time.Second // the cleanup's wait after SIGTERM
	logTail      = 100              // stderr lines logged after a failure
)

// ---------------------------------------------------------------------------
// Building

// NoRace, among BuildBinary's or Build's flags, builds the broker without
// -race even when the test binary has it (a faster broker, for tests that
// stress it rather than check it).
const NoRace = "-race=false"

var builds struct {
	mu   sync.Mutex
	dir  string                 // made on the first build; RemoveBinaries removes it
	bins map[string]*buildEntry // by the go build flags, joined
}

type buildEntry struct {
	once sync.Once
	bin  string
	err  error
}

// BuildBinary builds ./cmd/duplex with the extra go build flags (such as
// "-ldflags", "-X main.version=v1") and returns the binary's path, failing
// the test when the build fails. The binary is built once per test binary
// and set of flags; it gets -race when the test binary was built with
// -race, unless the flags hold NoRace.
func BuildBinary(t testing.TB, flags ...string) string {
	t.Helper()
	bin, err := Build(flags...)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Build is BuildBinary without a test, for TestMain.
func Build(flags ...string) (string, error) {
	race := raceEnabled
	var args []string
	for _, f := range flags {
		if f == NoRace {
			race = false
			continue
		}
		args = append(args, f)
	}
	if race {
		args = append([]string{"-race"}, args...)
	}
	key := strings.Join(args, "\x00")
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*buildEntry{}
	}
	e := builds.bins[key]
	if e == nil {
		e = &buildEntry{}
		builds.bins[key] = e
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "duplex-testutil-bin-")
		if err != nil {
			builds.mu.Unlock()
			return "", err
		}
		builds.dir = dir
	}
	bin := filepath.Join(builds.dir, fmt.Sprintf("duplex-%d", len(builds.bins)))
	builds.mu.Unlock()
	e.once.Do(func() { e.bin, e.err = build(bin, args) })
	return e.bin, e.err
}

func build(bin string, args []string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"build", "-o", bin}, args...), "./cmd/duplex")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s ./cmd/duplex: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// RemoveBinaries removes what BuildBinary built; TestMain calls it after
// m.Run.
func RemoveBinaries() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir, builds.bins = "", nil
	}
}

// ModuleRoot is the folder of the go.mod the current directory belongs to.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// ---------------------------------------------------------------------------
// Running

// Config says how to run the broker.
type Config struct {
	Bin  string   // the binary
	Args []string // its arguments

	// Cmd, when set, is run instead of Bin with Args (a shell that sets
	// limits first, say); Launch sets its Stdout, Stderr, Env and Dir.
	Cmd *exec.Cmd

	// Env is added to the environment, which otherwise is the test's
	// minus its DUPLEX_* variables, so the broker runs with its flags and
	// defaults only.
	Env []string
	Dir string // the working directory; "" = the test's

	// Listeners are the startup lines to wait for, by name ("" is the
	// plain "duplex listening on ADDR" line); Lines is how many listening
	// lines to wait for at least. With neither, the first line will do.
	Listeners []string
	Lines     int

	StartTimeout time.Duration // for the startup lines; 0 = 20 s

	NoWait bool // return at once, without waiting for startup lines
	Log    bool // StartConfig: log the end of stderr even when the test passed
}

// Proc is one run of the broker binary (or of Config.Cmd).
type Proc struct {
	Cmd  *exec.Cmd
	Args []string // as given in Config (for messages)

	stdout, stderr Buffer

	exited   chan struct{} // closed after Cmd.Wait returned
	err      error         // Cmd.Wait's result, set before exited is closed
	exitedAt time.Time     // set before exited is closed

	addrs map[string]string // listener name → address, from the startup lines
}

// startupLine is one complete "duplex [NAME ]listening on ADDR" line.
var startupLine = regexp.MustCompile(`(?m)^duplex (?:([a-z-]+) )?listening on (\S+)\n`)

// Listening parses the startup lines in out: listener name ("" for the
// plain listener) → address, and the number of lines.
func Listening(out string) (map[string]string, int) {
	m := map[string]string{}
	lines := startupLine.FindAllStringSubmatch(out, -1)
	for _, l := range lines {
		m[l[1]] = l[2]
	}
	return m, len(lines)
}

// Spawn starts the broker and returns at once.
func Spawn(cfg Config) (*Proc, error) {
	p := &Proc{Cmd: cfg.Cmd, Args: cfg.Args, exited: make(chan struct{})}
	if p.Cmd == nil {
		p.Cmd = exec.Command(cfg.Bin, cfg.Args...)
	} else if p.Args == nil {
		p.Args = p.Cmd.Args
	}
	p.Cmd.Stdout = &p.stdout
	p.Cmd.Stderr = &p.stderr
	p.Cmd.Env = append(EnvWithoutDuplex(), cfg.Env...)
	p.Cmd.Dir = cfg.Dir
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		err := p.Cmd.Wait()
		p.err, p.exitedAt = err, time.Now()
		close(p.exited)
	}()
	return p, nil
}

// WaitListening waits up to timeout (0: 20 s) for at least lines startup
// lines (at least one) including those of the listeners named, and makes
// their addresses those of Addr. It returns an error when the process
// exits first or the lines do not come in time; the process is left as it
// is.
func (p *Proc) WaitListening(timeout time.Duration, lines int, names ...string) error {
	if timeout == 0 {
		timeout = startTimeout
	}
	err := Poll(timeout, func() error {
		if !p.Running() {
			return fmt.Errorf("%w: exited early (%v)", ErrStop, p.err)
		}
		out := p.stdout.String()
		addrs, n := Listening(out)
		if n == 0 || n < lines {
			return fmt.Errorf("%d of %d listening lines; stdout so far %q", n, max(lines, 1), out)
		}
		for _, name := range names {
			if addrs[name] == "" {
				return fmt.Errorf("no %q listening line; stdout so far %q", name, out)
			}
		}
		p.addrs = addrs
		return nil
	})
	if err != nil {
		return fmt.Errorf("duplex %v did not start: %v\nstderr:\n%s", p.Args, err, Tail(p.Stderr(), logTail))
	}
	return nil
}

// Launch starts the broker and waits for its startup lines (unless
// cfg.NoWait). When it exits first, or the lines do not come within the
// start timeout, it is killed and the error says why, with the end of its
// stderr.
func Launch(cfg Config) (*Proc, error) {
	p, err := Spawn(cfg)
	if err != nil || cfg.NoWait {
		return p, err
	}
	if err := p.WaitListening(cfg.StartTimeout, cfg.Lines, cfg.Listeners...); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// Start runs bin with args and waits for its first startup line.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return StartConfig(t, Config{Bin: bin, Args: args})
}

// StartConfig is Launch that fails the test when the broker does not
// start. When the test ends the broker is stopped if it still runs
// (SIGTERM; SIGKILL and a test error when it does not exit within 10 s),
// and the end of its stderr is logged if the test failed (or cfg.Log).
func StartConfig(t testing.TB, cfg Config) *Proc {
	t.Helper()
	p, err := Spawn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.Running() {
			_ = p.Signal(syscall.SIGTERM)
			if !p.Wait(stopTimeout) {
				p.Kill()
				t.Errorf("duplex %v still running %v after SIGTERM; killed", p.Args, stopTimeout)
			}
		}
		if t.Failed() || cfg.Log {
			t.Logf("duplex %v stderr:\n%s", p.Args, Tail(p.Stderr(), logTail))
		}
	})
	if !cfg.NoWait {
		if err := p.WaitListening(cfg.StartTimeout, cfg.Lines, cfg.Listeners...); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Addr is the address of listener name ("" for the plain listener, else
// "mqtt-tcp", "stomp-tcp", "admin", "wss", ...) from the startup lines;
// "" when it did not print one.
func (p *Proc) Addr(name string) string { return p.addrs[name] }

// Addrs is every listener's address by name, as Addr.
func (p *Proc) Addrs() map[string]string {
	m := make(map[string]string, len(p.addrs))
	for k, v := range p.addrs {
		m[k] = v
	}
	return m
}

// Stdout is everything the broker printed on stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr is everything the broker logged on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Running says whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is the exit status as exec.Cmd.Wait returned it (nil: exit status
// 0); nil while the process runs.
func (p *Proc) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// ExitCode is the exit status, -1 while running or after a signal.
func (p *Proc) ExitCode() int {
	if p.Running() {
		return -1
	}
	return p.Cmd.ProcessState.ExitCode()
}

// ExitedAt is when the process was seen to exit; zero while it runs.
func (p *Proc) ExitedAt() time.Time {
	if p.Running() {
		return time.Time{}
	}
	return p.exitedAt
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to exit and reports whether it
// did.
func (p *Proc) Wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	}
}

// Stop sends SIGTERM and waits up to timeout for the exit, and returns
// the exit status as Err does. A process still running then is killed
// (SIGKILL) and Stop returns an error saying so. A process that had
// already exited is not signalled.
func (p *Proc) Stop(timeout time.Duration) error {
	if p.Running() {
		_ = p.Signal(syscall.SIGTERM)
	}
	if !p.Wait(timeout) {
		p.Kill()
		return fmt.Errorf("duplex %v still running %v after SIGTERM; killed", p.Args, timeout)
	}
	return p.err
}

// Kill sends SIGKILL and waits for the process to end (the broker holds
// its data file's lock until then).
func (p *Proc) Kill() {
	if p.Running() {
		_ = p.Cmd.Process.Kill()
	}
	<-p.exited
}

// ---------------------------------------------------------------------------
// Odds and ends

// EnvWithoutDuplex is the environment minus DUPLEX_* settings.
func EnvWithoutDuplex() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "DUPLEX_") })
}

// Tail is the last n lines of s, saying how many came before.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d lines before …", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Buffer is a bytes.Buffer safe for concurrent writes and reads: a log
// destination, or a child process's output that exec's copier writes while
// the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
