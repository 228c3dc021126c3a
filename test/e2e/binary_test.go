package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
)

// lockedBuffer is an io.Writer safe for the exec copier and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listeningLine = regexp.MustCompile(`^duplex listening on (127\.0\.0\.1:\d+)\n`)

// otherListener is the startup line of a listener besides the plain one.
var otherListener = regexp.MustCompile(`^duplex [a-z]+(-[a-z]+)? listening on 127\.0\.0\.1:\d+$`)

// TestRealBinary builds cmd/duplex, runs it on a random port, checks the
// one stdout line, does STOMP and MQTT send/receive through it (paho.golang
// over WebSocket, paho.mqtt.golang over the MQTT TCP listener) and stops it
// with SIGTERM, expecting exit status 0.
func TestRealBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "duplex")
	bctx, bcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer bcancel()
	build := exec.CommandContext(bctx, "go", "build", "-o", bin, "./cmd/duplex")
	build.Dir = filepath.Join("..", "..") // module root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/duplex: %v\n%s", err, out)
	}

	// A free loopback port for the MQTT TCP listener (the binary prints
	// only its HTTP address). Another process could take it in between;
	// then the binary exits early and the test says so.
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mqttTCP := pl.Addr().String()
	pl.Close()

	var stdout, stderr lockedBuffer
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-stomp-tcp-addr=", "-mqtt-tcp-addr", mqttTCP, "-data", filepath.Join(dir, "data"), "-log-level", "info")
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.Env = envWithoutDuplex()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("duplex stderr:\n%s", stderr.String())
		}
	})

	var addr string
	checkFor(t, 10*time.Second, func() error {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("duplex exited early: %v\nstdout %q\nstderr %s", err, stdout.String(), stderr.String())
		default:
		}
		m := listeningLine.FindStringSubmatch(stdout.String())
		if m == nil {
			return fmt.Errorf("stdout so far %q", stdout.String())
		}
		addr = m[1]
		return nil
	})

	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("data folder not created: %v", err)
	}

	s := &testServer{URL: "ws://" + addr + "/ws", HTTPURL: "http://" + addr}
	sub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	ssub := sub.subscribe(t, "/topic/real/binary", stomp.AckAuto)
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V11, stomp.V12))
	pub.send(t, "/topic/real/binary", "through the real binary", stomp.SendOpt.Receipt)
	m := recvBody(t, ssub, "through the real binary")
	if m.Destination != "/topic/real/binary" {
		t.Errorf("destination %q", m.Destination)
	}
	qsub := sub.subscribe(t, "/queue/real", stomp.AckClientIndividual)
	pub.send(t, "/queue/real", "queued")
	qm := recvBody(t, qsub, "queued")
	if err := sub.Ack(qm); err != nil {
		t.Fatal(err)
	}
	if err := pub.Disconnect(); err != nil {
		t.Errorf("disconnect: %v", err)
	}

	// MQTT through the same binary: paho.golang (v5) over WebSocket,
	// paho.mqtt.golang (3.1.1) over TCP, and across to the STOMP subscriber.
	ms := &mqttServer{testServer: s, WSURL: "ws://" + addr + "/mqtt", TCPAddr: mqttTCP}
	v5 := newV5(t, ms, uniq("bin-v5"))
	v5.sub(t, "real/mqtt/#", 2)
	v3 := newV3(t, ms, v3Transports[1], uniq("bin-v3"), true)
	v3.sub(t, "real/mqtt/#", 2)
	v3.pub(t, "real/mqtt/a", 1, false, []byte("from 3.1.1 over tcp"))
	v5.expect(t, "real/mqtt/a", "from 3.1.1 over tcp")
	v3.expect(t, "real/mqtt/a", "from 3.1.1 over tcp")
	v5.pubs(t, "real/binary", 2, "from v5 to stomp")
	recvBody(t, ssub, "from v5 to stomp")
	v5.pubs(t, "real/mqtt/b", 2, "exactly once")
	v3.expect(t, "real/mqtt/b", "exactly once")
	v5.expect(t, "real/mqtt/b", "exactly once")

	// SIGTERM with a client still connected: graceful shutdown, exit 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("after SIGTERM: %v (exit code %d)\nstderr:\n%s", err, cmd.ProcessState.ExitCode(), stderr.String())
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("duplex still running 15s after SIGTERM")
	}
	// The connected subscriber learns the server went away.
	select {
	case msg, ok := <-ssub.C:
		if ok && msg.Err == nil {
			t.Errorf("after shutdown the subscriber got a message %q", msg.Body)
		}
	case <-time.After(waitShort):
		t.Errorf("subscriber not told of the shutdown within %v", waitShort)
	}
	// Standard output holds the listening lines only: the plain one first,
	// then one per other listener ("duplex mqtt-tcp listening on ...").
	out := stdout.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !listeningLine.MatchString(out) {
		t.Errorf("stdout must begin with the listening line, got %q", out)
	}
	for _, l := range lines[1:] {
		if !otherListener.MatchString(l) {
			t.Errorf("stdout line %q is not a listening line", l)
		}
	}
}

// envWithoutDuplex is the environment minus DUPLEX_* settings, so the
// binary runs with its flags and defaults only.
func envWithoutDuplex() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DUPLEX_") {
			env = append(env, kv)
		}
	}
	return env
}
