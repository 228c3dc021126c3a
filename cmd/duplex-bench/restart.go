package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// listeningPrefix starts the line the broker prints on standard output
// once it serves, after loading its store.
const listeningPrefix = "duplex listening on "

// brokerProc is a broker process the generator started (restart scenario).
// The generator stays a separate process: it only reads the broker's output.
type brokerProc struct {
	cmd     *exec.Cmd
	began   time.Time // just before exec
	ready   chan time.Time
	addr    string // from the listening line, once ready
	loaded  chan string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // its exit status, once exited

	mu   sync.Mutex
	log  io.Writer // -broker-log, or io.Discard
	tail []string  // its last lines of standard error
}

// tailLines is how many lines of the broker's standard error a failure
// quotes.
const tailLines = 5

// startBroker execs the broker command line. The broker gets SIGKILL if the
// generator dies first.
func startBroker(argv []string, logFile string) (*brokerProc, error) {
	b := &brokerProc{
		ready:  make(chan time.Time, 1),
		loaded: make(chan string, 1),
		exited: make(chan struct{}),
		log:    io.Discard,
	}
	var logf *os.File
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		logf, b.log = f, f
	}
	b.cmd = exec.Command(argv[0], argv[1:]...)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err1 := b.cmd.StdoutPipe()
	stderr, err2 := b.cmd.StderrPipe()
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("broker pipes: %v %v", err1, err2)
	}
	b.began = time.Now()
	if err := b.cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, err
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		b.scan(stdout, func(line string) {
			if addr, ok := strings.CutPrefix(line, listeningPrefix); ok && b.addr == "" {
				b.addr = strings.TrimSpace(addr)
				b.ready <- time.Now()
			}
		})
	}()
	go func() {
		defer readers.Done()
		b.scan(stderr, func(line string) {
			b.mu.Lock()
			b.tail = append(b.tail, line)
			if len(b.tail) > tailLines {
				b.tail = b.tail[1:]
			}
			b.mu.Unlock()
			if isStoreLoaded(line) {
				select {
				case b.loaded <- line:
				default:
				}
			}
		})
	}()
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		b.waitErr = b.cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(b.exited)
	}()
	return b, nil
}

// scan copies r's lines to the log, passing each to fn.
func (b *brokerProc) scan(r io.Reader, fn func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		b.mu.Lock()
		fmt.Fprintln(b.log, line)
		b.mu.Unlock()
		fn(line)
	}
	io.Copy(io.Discard, r) // a line too long: keep the broker writing
}

// lastLines returns the broker's last lines of standard error, for a
// failure.
func (b *brokerProc) lastLines() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.tail) == 0 {
		return "no output on standard error"
	}
	return "last output: " + strings.Join(b.tail, " | ")
}

// waitReady waits up to timeout for the listening line and returns the
// time from exec to it.
func (b *brokerProc) waitReady(timeout time.Duration) (time.Duration, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case at := <-b.ready:
		return at.Sub(b.began), nil
	case <-b.exited:
		return 0, fmt.Errorf("the broker exited (%v) before its listening line; %s", b.waitErr, b.lastLines())
	case <-t.C:
		return 0, fmt.Errorf("no listening line from the broker within %s; %s", timeout, b.lastLines())
	}
}

// terminate sends SIGTERM and waits up to timeout for the broker to exit,
// then kills it. It returns the time from the signal to the exit and an
// error when the exit was not clean.
func (b *brokerProc) terminate(timeout time.Duration) (time.Duration, error) {
	began := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("SIGTERM: %v", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-b.exited:
		took := time.Since(began)
		if b.waitErr != nil {
			return took, fmt.Errorf("the broker exited with %v after SIGTERM (want status 0); %s", b.waitErr, b.lastLines())
		}
		return took, nil
	case <-t.C:
		b.kill()
		return 0, fmt.Errorf("the broker still ran %s after SIGTERM; killed", timeout)
	}
}

// kill ends the broker at once, if it still runs, and waits for it.
func (b *brokerProc) kill() {
	select {
	case <-b.exited:
		return
	default:
	}
	b.cmd.Process.Kill()
	<-b.exited
}

// brokerURL is -url with its host replaced by addr, the address the broker
// printed.
func brokerURL(raw, addr string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.Host = addr
	return u.String(), nil
}

// shutdownTimeout bounds the broker's exit after SIGTERM.
const shutdownTimeout = 60 * time.Second

// runRestart is the restart scenario: it execs the broker command line
// (whose store should hold -msgs messages queued for the persistent session
// -client-id), reports the time from exec to the listening line and the
// fields of the broker's "store loaded" line, then, unless -msgs is 0,
// drains the session as the drain scenario does (on -url's path at the
// address the broker printed), and finally stops the broker with SIGTERM,
// which must end it with status 0.
func runRestart(ctx context.Context, cfg *config, r *result) {
	b, err := startBroker(cfg.brokerCmd, cfg.brokerLog)
	if err != nil {
		r.fail("exec %s: %v", cfg.brokerCmd[0], err)
		return
	}
	defer b.kill()
	ready, err := b.waitReady(cfg.startTimeout)
	if err != nil {
		r.fail("%v", err)
		return
	}
	r.add("listening %s after exec", fmtDur(ready))
	select {
	case line := <-b.loaded:
		if pairs, err := parseLogfmt(line); err != nil {
			r.fail("store loaded line %q: %v", line, err)
		} else {
			r.add("store loaded: %s", storeLoadedFields(pairs))
		}
	case <-time.After(2 * time.Second):
		r.fail("no \"store loaded\" line on the broker's standard error")
	}
	if rss, err := procRSS(b.cmd.Process.Pid); err == nil {
		r.add("broker RSS %s", fmtBytes(float64(rss)))
	}
	if cfg.msgs > 0 {
		u, err := brokerURL(cfg.url, b.addr)
		if err != nil {
			r.fail("%v", err)
			return
		}
		dc := *cfg
		dc.url = u
		d, err := newDialer(&dc, false)
		if err != nil {
			r.fail("%v", err)
			return
		}
		drainSession(ctx, d, cfg, r)
	}
	took, err := b.terminate(shutdownTimeout)
	if err != nil {
		r.fail("%v", err)
		return
	}
	r.add("exit %s after SIGTERM", fmtDur(took))
}
