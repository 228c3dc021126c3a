package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
)

var listeningLine = regexp.MustCompile(`^duplex listening on (127\.0\.0\.1:\d+)\n`)

// otherListener is the startup line of a listener besides the plain one.
var otherListener = regexp.MustCompile(`^duplex [a-z]+(-[a-z]+)? listening on 127\.0\.0\.1:\d+$`)

// TestRealBinary builds cmd/duplex, runs it on random ports, checks the
// one stdout line, does STOMP and MQTT send/receive through it (paho.golang
// over WebSocket, paho.mqtt.golang over the MQTT TCP listener) and stops it
// with SIGTERM, expecting exit status 0.
func TestRealBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildDuplex(t)
	dir := t.TempDir()
	p := startDuplex(t, bin, 2, "-addr", "127.0.0.1:0", "-stomp-tcp-addr=", "-mqtt-tcp-addr", "127.0.0.1:0",
		"-data", filepath.Join(dir, "data"), "-log-level", "info")
	addr, mqttTCP := p.Addr(""), p.Addr("mqtt-tcp")
	if addr == "" || mqttTCP == "" {
		t.Fatalf("listeners %v", p.Addrs())
	}

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
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("after SIGTERM: %v (exit code %d)\nstderr:\n%s", p.Err(), code, p.Stderr())
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
	out := p.Stdout()
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
