package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/duplexmq/duplex/internal/testutil"
)

// ---------------------------------------------------------------------------
// The real binary, for the operations tests (shutdown_test.go, ops_test.go)

// buildDuplex builds cmd/duplex (without -race, once per set of extra go
// build arguments such as -ldflags ...) and returns its path.
func buildDuplex(t testing.TB, args ...string) string {
	t.Helper()
	return testutil.BuildBinary(t, append([]string{testutil.NoRace}, args...)...)
}

// duplexProc is one running broker process.
type duplexProc struct {
	*testutil.Proc
}

// startDuplex runs bin with args and waits until it has printed wantLines
// listening lines on stdout (testutil.StartConfig: stopped when the test
// ends if it still runs, its stderr logged if the test failed).
func startDuplex(t testing.TB, bin string, wantLines int, args ...string) *duplexProc {
	t.Helper()
	return startDuplexEnv(t, bin, nil, wantLines, args...)
}

// startDuplexEnv is startDuplex with DUPLEX_* variables (KEY=VALUE) in the
// environment; the test's own DUPLEX_* variables are left out.
func startDuplexEnv(t testing.TB, bin string, env []string, wantLines int, args ...string) *duplexProc {
	t.Helper()
	return &duplexProc{testutil.StartConfig(t, testutil.Config{Bin: bin, Args: args, Env: env, Lines: wantLines})}
}

// waitExit waits up to timeout for the process to exit and returns its
// exit code and how long it took.
func (p *duplexProc) waitExit(t testing.TB, timeout time.Duration) (code int, took time.Duration) {
	t.Helper()
	start := time.Now()
	if !p.Wait(timeout) {
		t.Fatalf("duplex still running %v later\nstderr:\n%s", timeout, p.Stderr())
	}
	return p.ExitCode(), time.Since(start)
}

// jsonLogs parses every stderr line as a JSON object (log_format json).
func (p *duplexProc) jsonLogs(t testing.TB) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Stderr()))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not JSON (%v): %q", err, line)
			continue
		}
		recs = append(recs, rec)
	}
	return recs
}

// logRecord finds the first JSON log record with message msg.
func logRecord(recs []map[string]any, msg string) map[string]any {
	for _, r := range recs {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

// ---------------------------------------------------------------------------

// TestShutdownSIGTERM runs the real binary with log_format json, connects a
// go-stomp client and a paho.golang MQTT 5 client over WebSocket and a
// paho.mqtt.golang 3.1.1 client over TCP, leaves a QoS 1 message for an
// offline persistent session, and sends SIGTERM. The broker must stop
// accepting at once (a new connection is refused while it is still
// stopping), tell the clients (STOMP ERROR "server shutting down", MQTT 5
// DISCONNECT 0x8B, the 3.1.1 connection closed), exit 0 within
// shutdown_grace, and have flushed the store: after a restart on the same
// data folder the persistent session gets its message.
func TestShutdownSIGTERM(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildDuplex(t)
	data := filepath.Join(t.TempDir(), "data")
	const grace = 8 * time.Second
	args := []string{"-addr", "127.0.0.1:0", "-stomp-tcp-addr=", "-mqtt-tcp-addr", "127.0.0.1:0",
		"-data", data, "-log-format", "json", "-shutdown-grace", grace.String(), "-sys-interval", "1s"}
	p := startDuplex(t, bin, 2, args...)
	addr, mqttTCP := p.Addr(""), p.Addr("mqtt-tcp")
	if addr == "" || mqttTCP == "" {
		t.Fatalf("listeners %v", p.Addrs())
	}
	s := &testServer{URL: "ws://" + addr + "/ws", HTTPURL: "http://" + addr}
	ms := &mqttServer{testServer: s, WSURL: "ws://" + addr + "/mqtt", TCPAddr: mqttTCP}

	// A persistent 3.1.1 session (clean session 0) subscribed at QoS 1,
	// offline, and a QoS 1 message for it.
	const persistID = "shutdown-persist"
	offline := newV3(t, ms, v3Transports[1], persistID, false)
	offline.sub(t, "persist/#", 1)
	offline.c.Disconnect(250)

	// The clients that must be told.
	sc := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	ssub := sc.subscribe(t, "/topic/shutdown/stomp", stomp.AckAuto)
	v5 := newV5(t, ms, uniq("shutdown-v5"))
	v5.sub(t, "shutdown/#", 1)
	v3 := newV3(t, ms, v3Transports[1], uniq("shutdown-v3"), true)
	v3.sub(t, "shutdown/#", 1)
	v5.pubs(t, "persist/a", 1, "kept across the restart") // PUBACK: stored for the offline session
	v5.pubs(t, "shutdown/ping", 1, "ping")
	v5.expect(t, "shutdown/ping", "ping")
	v3.expect(t, "shutdown/ping", "ping")

	// A STOMP connection that never reads: the server waits for its
	// WebSocket close reply (a second), so the shutdown is still under way
	// when the new connection attempt below is made.
	slow := newRaw(t, s)
	slow.connect()

	// An admin UI's live feed (server-sent events, an HTTP request that
	// never ends by itself): it must end with the shutdown, not hold the
	// broker until the grace runs out.
	events, err := http.Get("http://" + addr + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer events.Body.Close()
	if events.StatusCode != http.StatusOK || !strings.HasPrefix(events.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("/api/v1/events: %s %q", events.Status, events.Header.Get("Content-Type"))
	}
	eventsEnded := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, events.Body)
		close(eventsEnded)
	}()

	sigterm := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Stop accepting first: a new connection is refused while the process
	// is still shutting down.
	checkFor(t, waitShort, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return errors.New("a new connection was accepted after SIGTERM")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("dial after SIGTERM: %v, want connection refused", err)
		}
		return nil
	})
	if c, err := net.DialTimeout("tcp", mqttTCP, time.Second); err == nil {
		c.Close()
		t.Errorf("the MQTT TCP listener accepted a connection after SIGTERM")
	}
	if !p.Running() {
		t.Errorf("duplex exited before the refused connection could be checked (shutdown took under a second?)")
	}

	// STOMP: ERROR "server shutting down".
	select {
	case msg, ok := <-ssub.C:
		var se *stomp.Error
		switch {
		case !ok:
			t.Errorf("STOMP subscription closed without the ERROR frame")
		case msg.Err == nil:
			t.Errorf("STOMP: got a message %q instead of the ERROR", msg.Body)
		case !errors.As(msg.Err, &se) || se.Frame == nil || se.Frame.Command != "ERROR" || se.Message != "server shutting down":
			t.Errorf("STOMP: error %#v, want an ERROR frame with message \"server shutting down\"", msg.Err)
		}
	case <-time.After(waitShort):
		t.Errorf("STOMP client not told of the shutdown within %v", waitShort)
	}
	// MQTT 5: DISCONNECT 0x8B (Server shutting down).
	select {
	case d := <-v5.serverDisc:
		if d.ReasonCode != 0x8B {
			t.Errorf("MQTT 5 DISCONNECT reason %#02x, want 0x8B", d.ReasonCode)
		}
	case <-time.After(waitShort):
		t.Errorf("MQTT 5 client got no DISCONNECT within %v", waitShort)
	}
	// MQTT 3.1.1 has no server DISCONNECT: the connection closes.
	v3.expectLost(t)

	code, _ := p.waitExit(t, grace+2*time.Second)
	took := p.ExitedAt().Sub(sigterm)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\nstderr:\n%s", code, p.Stderr())
	}
	// Nothing should have waited for the grace: the slowest part is the
	// never-reading STOMP connection's one-second close linger.
	if took > grace/2 {
		t.Errorf("exited %v after SIGTERM (shutdown_grace %v): something waited for the grace", took, grace)
	}
	select {
	case <-eventsEnded:
	case <-time.After(waitShort):
		t.Errorf("the /api/v1/events stream did not end with the shutdown")
	}

	// log_format json: every line is a JSON object; the shutdown is logged.
	recs := p.jsonLogs(t)
	for _, want := range []string{"duplex started", "duplex shutting down", "duplex stopped"} {
		if logRecord(recs, want) == nil {
			t.Errorf("no JSON log record %q in %d records", want, len(recs))
		}
	}
	if r := logRecord(recs, "duplex stopped"); r != nil {
		if _, ok := r["took"]; !ok || r["level"] != "INFO" {
			t.Errorf("duplex stopped record %v: want level INFO and took", r)
		}
	}
	if r := logRecord(recs, "duplex shutting down"); r != nil && !strings.Contains(fmt.Sprint(r["cause"]), "terminated") {
		t.Errorf("duplex shutting down record %v: want the signal as cause", r)
	}

	// Restart on the same data folder: the persistent session gets the
	// message that was stored before SIGTERM.
	p2 := startDuplex(t, bin, 2, args...)
	ms2 := &mqttServer{testServer: &testServer{URL: "ws://" + p2.Addr("") + "/ws"},
		WSURL: "ws://" + p2.Addr("") + "/mqtt", TCPAddr: p2.Addr("mqtt-tcp")}
	back := newV3(t, ms2, v3Transports[1], persistID, false)
	m := back.expect(t, "persist/a", "kept across the restart")
	if m.qos != 1 {
		t.Errorf("restored message QoS %d, want 1", m.qos)
	}
	back.c.Disconnect(250)
	if err := p2.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := p2.waitExit(t, grace+2*time.Second); code != 0 {
		t.Errorf("second run: exit code %d after SIGTERM", code)
	}
}

// TestShutdownGraceRunsOut: a client that keeps its connection open past
// the grace does not keep the broker from exiting. The client never
// answers the server's WebSocket close, so the server waits a second for
// it; with a 300ms shutdown_grace the broker logs that the grace ran out
// and exits 0 within about the grace. The default log_format is text.
func TestShutdownGraceRunsOut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildDuplex(t)
	const grace = 300 * time.Millisecond
	p := startDuplex(t, bin, 1, "-addr", "127.0.0.1:0", "-stomp-tcp-addr=", "-mqtt-tcp-addr=",
		"-data", filepath.Join(t.TempDir(), "data"), "-shutdown-grace", grace.String())
	s := &testServer{URL: "ws://" + p.Addr("") + "/ws"}
	slow := newRaw(t, s)
	slow.connect()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, took := p.waitExit(t, 5*time.Second)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took > grace+700*time.Millisecond {
		t.Errorf("exited %v after SIGTERM with a %v grace", took, grace)
	}
	logs := p.Stderr()
	if !strings.Contains(logs, "shutdown grace ran out") || !strings.Contains(logs, "duplex stopped") {
		t.Errorf("logs lack the grace running out or the stop:\n%s", logs)
	}
	if !strings.Contains(logs, "level=INFO") {
		t.Errorf("default log_format is not text:\n%s", logs)
	}
}

// TestShutdownSecondSignal: while a shutdown waits (here for an HTTP
// request whose body never finishes arriving), a second SIGINT ends the
// process at once, by the signal's default action.
func TestShutdownSecondSignal(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildDuplex(t)
	p := startDuplex(t, bin, 1, "-addr", "127.0.0.1:0", "-stomp-tcp-addr=", "-mqtt-tcp-addr=",
		"-data", filepath.Join(t.TempDir(), "data"), "-shutdown-grace", "30s")
	addr := p.Addr("")
	c, err := net.DialTimeout("tcp", addr, waitShort)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers and the first bytes of a body that never completes: a
	// request the HTTP server's graceful stop waits for (a connection
	// whose request has not been read yet is waited for too, up to 5 s).
	fmt.Fprintf(c, "POST /api/v1/publish HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"topic\":", addr)
	// The server must hold the connection before the signal: a socket
	// still in the kernel's accept queue is simply reset by the stop.
	// /api/stats counts accepted sockets (this one and the poll's own).
	poll := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitShort}
	checkFor(t, waitShort, func() error {
		res, err := poll.Get("http://" + addr + "/api/stats")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		var st struct{ Admission struct{ Sockets int } }
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
			return err
		}
		if st.Admission.Sockets < 2 {
			return fmt.Errorf("%d sockets accepted, want the held request's and the poll's", st.Admission.Sockets)
		}
		return nil
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	checkFor(t, waitShort, func() error {
		if !strings.Contains(p.Stderr(), "duplex shutting down") {
			return errors.New("no \"duplex shutting down\" line yet")
		}
		return nil
	})
	if !p.Running() {
		t.Fatalf("duplex exited before the second signal; stderr:\n%s", p.Stderr())
	}
	second := time.Now()
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t, waitShort)
	if took := p.ExitedAt().Sub(second); took > 2*time.Second {
		t.Errorf("exited %v after the second signal", took)
	}
	ws, ok := p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("process state %v, want killed by SIGINT", p.Cmd.ProcessState)
	}
	if strings.Contains(p.Stderr(), "duplex stopped") {
		t.Errorf("the graceful stop finished before the second signal (the request did not hold it)")
	}
}
