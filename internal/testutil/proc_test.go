package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

var runtimeGoexit = runtime.Goexit

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

// fake is a shell that prints the startup lines given, a log line on
// stderr and its DUPLEX_* environment, then runs the rest of script.
func fake(lines []string, script string) *exec.Cmd {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("echo '" + l + "'; ")
	}
	b.WriteString(`echo 'level=INFO msg=started' >&2; env | grep '^DUPLEX_' >&2; ` + script)
	return exec.Command("/bin/sh", "-c", b.String())
}

// TestListening parses complete startup lines only.
func TestListening(t *testing.T) {
	out := "duplex listening on 127.0.0.1:1\nduplex mqtt-tcp listening on 127.0.0.1:2\nsomething else\nduplex admin listening on 127.0.0.1:3\nduplex stomp-tcp listening on 127.0.0."
	addrs, n := Listening(out)
	if n != 3 || addrs[""] != "127.0.0.1:1" || addrs["mqtt-tcp"] != "127.0.0.1:2" || addrs["admin"] != "127.0.0.1:3" || addrs["stomp-tcp"] != "" {
		t.Fatalf("Listening: %v, %d lines", addrs, n)
	}
}

// TestStartStop: Start waits for the named lines, the environment has no
// DUPLEX_* variables of the test's own but those given, and Stop ends the
// process with SIGTERM.
func TestStartStop(t *testing.T) {
	t.Setenv("DUPLEX_FROM_TEST", "1")
	cmd := fake([]string{"duplex listening on 127.0.0.1:1", "duplex mqtt-tcp listening on 127.0.0.1:2"}, "exec sleep 60")
	p := StartConfig(t, Config{Cmd: cmd, Env: []string{"DUPLEX_GIVEN=2"}, Listeners: []string{"", "mqtt-tcp"}})
	if p.Addr("") != "127.0.0.1:1" || p.Addr("mqtt-tcp") != "127.0.0.1:2" || len(p.Addrs()) != 2 {
		t.Fatalf("addresses %v", p.Addrs())
	}
	if !p.Running() || p.ExitCode() != -1 || p.Err() != nil || !p.ExitedAt().IsZero() {
		t.Fatalf("running %v, exit code %d, err %v", p.Running(), p.ExitCode(), p.Err())
	}
	EventuallyErr(t, 10*time.Second, func() error {
		if !strings.Contains(p.Stderr(), "DUPLEX_GIVEN=2") {
			return os.ErrNotExist
		}
		return nil
	})
	if strings.Contains(p.Stderr(), "DUPLEX_FROM_TEST") {
		t.Errorf("the test's DUPLEX_ variables reached the process: %q", p.Stderr())
	}
	err := p.Stop(10 * time.Second)
	if err == nil || p.Running() || p.ExitedAt().IsZero() {
		t.Fatalf("Stop: %v (sleep ends on SIGTERM), running %v", err, p.Running())
	}
	if ws := p.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("ended by %v, want SIGTERM", ws)
	}
}

// TestKill: Kill ends a process that ignores SIGTERM; Stop of one that
// does not exit kills it and says so.
func TestKill(t *testing.T) {
	p := Start(t, "/bin/sh", "-c", `trap '' TERM; echo 'duplex listening on 127.0.0.1:1'; while :; do sleep 1; done`)
	if err := p.Stop(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") || p.Running() {
		t.Fatalf("Stop of a process ignoring SIGTERM: %v, running %v", err, p.Running())
	}
	q := Start(t, "/bin/sh", "-c", `trap '' TERM; echo 'duplex listening on 127.0.0.1:1'; while :; do sleep 1; done`)
	q.Kill()
	if q.Running() || q.ExitCode() != -1 {
		t.Fatalf("after Kill: running %v, exit code %d", q.Running(), q.ExitCode())
	}
}

// TestLaunchFails: a process that exits before its startup lines, or
// prints too few of them, is reported with its stderr.
func TestLaunchFails(t *testing.T) {
	_, err := Launch(Config{Cmd: fake(nil, "echo 'address already in use' >&2; exit 3")})
	if err == nil || !strings.Contains(err.Error(), "exited early") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("early exit: %v", err)
	}
	_, err = Launch(Config{Cmd: fake([]string{"duplex listening on 127.0.0.1:1"}, "exec sleep 60"), Lines: 2, StartTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 listening lines") || !strings.Contains(err.Error(), "msg=started") {
		t.Errorf("too few lines: %v", err)
	}
}

// TestBuildBinary builds the broker once for several callers, runs it and
// stops it with exit status 0.
func TestBuildBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := BuildBinary(t)
	if again := BuildBinary(t); again != bin {
		t.Errorf("second build at %s, first at %s", again, bin)
	}
	p := StartConfig(t, Config{Bin: bin, Args: []string{"-addr", "127.0.0.1:0", "-stomp-tcp-addr=", "-mqtt-tcp-addr", "127.0.0.1:0",
		"-data", filepath.Join(t.TempDir(), "data")}, Listeners: []string{"", "mqtt-tcp"}})
	if err := p.Stop(20 * time.Second); err != nil || p.ExitCode() != 0 {
		t.Fatalf("Stop: %v, exit code %d\nstderr:\n%s", err, p.ExitCode(), p.Stderr())
	}
}

// TestNoWait: a process started without waiting is watched to its end.
func TestNoWait(t *testing.T) {
	p := StartConfig(t, Config{Cmd: fake(nil, "echo checked; exit 2"), NoWait: true})
	if !p.Wait(10 * time.Second) {
		t.Fatal("still running")
	}
	if p.ExitCode() != 2 || p.Err() == nil || p.Stdout() != "checked\n" || !strings.Contains(p.Stderr(), "msg=started") {
		t.Fatalf("exit code %d (%v), stdout %q, stderr %q", p.ExitCode(), p.Err(), p.Stdout(), p.Stderr())
	}
	if err := p.WaitListening(time.Second, 1); err == nil || !strings.Contains(err.Error(), "exited early") {
		t.Fatalf("WaitListening after the exit: %v", err)
	}
}
