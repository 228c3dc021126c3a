package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duplexmq/duplex/subprotocol/mqtt"
	"github.com/gorilla/websocket"
)

func TestDurableFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-protocol", "mqtt", "-scenario", "durable", "-pubs", "16", "-inflight", "32", "-label", "sync=always"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.qos != 1 {
		t.Errorf("durable: qos %d, want 1", cfg.qos)
	}
	if got, want := resultName(cfg), "mqtt durable 16 pubs 64B qos1 inflight 32/pub sync=always"; got != want {
		t.Errorf("name %q, want %q", got, want)
	}
	cfg, err = parseFlags([]string{"-protocol", "mqtt", "-scenario", "restart", "-msgs", "5", "--", "bin/duplex", "-data", "d", "-sync", "always"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.brokerCmd, " "); got != "bin/duplex -data d -sync always" {
		t.Errorf("broker command %q", got)
	}
	if cfg.deadline < cfg.startTimeout {
		t.Errorf("deadline %s shorter than -start-timeout %s", cfg.deadline, cfg.startTimeout)
	}
	for _, args := range [][]string{
		{"-scenario", "durable"}, // STOMP
		{"-protocol", "mqtt", "-scenario", "durable", "-inflight", "0"},
		{"-protocol", "mqtt", "-scenario", "durable", "-inflight", "65536"},
		{"-protocol", "mqtt", "-scenario", "fill"}, // no -msgs
		{"-protocol", "mqtt", "-scenario", "drain", "-msgs", "0"},
		{"-protocol", "mqtt", "-scenario", "restart"}, // no command
		{"-protocol", "mqtt", "-scenario", "durable", "-client-id", ""},
		{"-protocol", "mqtt", "-scenario", "durable", "extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestMQTTConnectSession(t *testing.T) {
	for _, clean := range []bool{true, false} {
		b := appendMQTTConnectSession(nil, "bench-durable-sub", clean, "", "")
		p, err := mqtt.NewReader(bytes.NewReader(b)).ReadPacket(0)
		if err != nil {
			t.Fatal(err)
		}
		c, ok := p.(*mqtt.Connect)
		if !ok || c.CleanStart != clean || c.ClientID != "bench-durable-sub" || c.ProtocolLevel != mqtt.Version311 {
			t.Errorf("clean %v: CONNECT %+v", clean, p)
		}
	}
	if !bytes.Equal(appendMQTTConnect(nil, "x"), appendMQTTConnectSession(nil, "x", true, "", "")) {
		t.Error("appendMQTTConnect is not a clean-session CONNECT")
	}
}

// TestConnectAsSessionPresent checks the CONNACK's Session Present flag and
// that a queued PUBLISH coalesced with the CONNACK reaches the reader.
func TestConnectAsSessionPresent(t *testing.T) {
	url := fakeMQTTServer(t, func(ws *websocket.Conn) {
		b := readMessage(t, ws)
		if len(b) < 12 || b[9]&0x02 != 0 {
			t.Errorf("CONNECT %x: want Clean Session 0", b)
		}
		msg := []byte{mqttCONNACK << 4, 2, 1, 0}
		msg = appendMQTTPublish(msg, mqttPublishPrefix(durableTopic, 1, minBody), 1, 7, benchBody(0, 1))
		ws.WriteMessage(websocket.BinaryMessage, msg)
		if b := readMessage(t, ws); !bytes.Equal(b, appendMQTTPuback(nil, 7)) {
			t.Errorf("got %x, want PUBACK 7", b)
		}
		readMessage(t, ws) // DISCONNECT
	})
	d, err := newDialer(&config{url: url, protocol: protoMQTT, qos: 1, timeout: 5 * time.Second}, false)
	if err != nil {
		t.Fatal(err)
	}
	c, present, err := d.dialSession(context.Background(), "sub", false)
	if err != nil {
		t.Fatal(err)
	}
	if !present {
		t.Error("Session Present not seen")
	}
	dr := newDrainer(1)
	c.caughtUp = dr.caughtUp
	var s session
	s.start(c, dr)
	select {
	case <-dr.complete:
	case <-time.After(5 * time.Second):
		t.Error("the PUBLISH after the CONNACK never arrived")
	}
	if !s.stop(5 * time.Second) {
		t.Errorf("DISCONNECT not confirmed: %v", s.err)
	}
	if dr.unique.Load() != 1 || dr.bad != 0 {
		t.Errorf("%d deliveries, %d bad; want 1, 0", dr.unique.Load(), dr.bad)
	}
}

// benchBody is a message body as a durable publisher makes it.
func benchBody(pub uint32, seq uint64) []byte {
	b := make([]byte, minBody)
	binary.LittleEndian.PutUint32(b[offPub:], pub)
	binary.LittleEndian.PutUint64(b[offSeq:], seq)
	return b
}

func TestDrainerCounts(t *testing.T) {
	d := newDrainer(5)
	for _, m := range []struct {
		pub uint32
		seq uint64
	}{{0, 1}, {1, 1}, {0, 2}, {0, 2}, {1, 4}, {0, 1}, {2, 1}} {
		d.delivery(benchBody(m.pub, m.seq))
		d.caughtUp()
	}
	d.delivery([]byte("short"))
	d.delivery(benchBody(maxDrainPubs, 1))
	d.delivery(benchBody(0, 0))
	if got := d.unique.Load(); got != 5 {
		t.Errorf("unique %d, want 5", got)
	}
	if d.dups != 2 || d.gaps != 2 || d.bad != 3 {
		t.Errorf("dups %d gaps %d bad %d, want 2 2 3", d.dups, d.gaps, d.bad)
	}
	select {
	case <-d.complete:
	default:
		t.Error("complete not closed after 5 unique messages")
	}
	if d.first == 0 || d.last < d.first {
		t.Errorf("first %d last %d", d.first, d.last)
	}
}

func TestDrainerNotCompleteEarly(t *testing.T) {
	d := newDrainer(3)
	d.delivery(benchBody(0, 1))
	d.delivery(benchBody(0, 2))
	d.delivery(benchBody(0, 2))
	d.caughtUp()
	select {
	case <-d.complete:
		t.Error("complete with 2 of 3")
	default:
	}
}

// TestDurablePubTiming checks that only PUBACKs of messages sent inside the
// window are timed.
func TestDurablePubTiming(t *testing.T) {
	p := newDurablePub(0, 4)
	now := time.Now().UnixNano()
	p.start, p.end = now-int64(time.Second), now+int64(time.Second)
	p.sentAt[1].Store(now - 2*int64(time.Second)) // seq 1: before the window
	p.sentAt[2].Store(now - int64(time.Millisecond))
	p.confirmed(1)
	p.confirmed(2)
	if p.timed != 1 || p.hist.n != 1 || p.acked.Load() != 2 {
		t.Errorf("timed %d, samples %d, acked %d; want 1 1 2", p.timed, p.hist.n, p.acked.Load())
	}
	if lat := p.hist.max; lat < int64(time.Millisecond) || lat > int64(time.Minute) {
		t.Errorf("latency %d ns", lat)
	}
	select {
	case <-p.wake:
	default:
		t.Error("no wake-up")
	}
}

// pubackServer accepts every connection, answers CONNECT (Session Present
// when the client asked for a persistent session it had before), SUBSCRIBE
// and PUBLISH (after delay, checking at most inflight are outstanding), and
// closes after DISCONNECT. It counts PUBLISHes.
type pubackServer struct {
	inflight  int
	delay     time.Duration
	published atomic.Int64
	tooMany   atomic.Int64
	mu        sync.Mutex
	sessions  map[string]bool
}

func (s *pubackServer) serve(t *testing.T, ws *websocket.Conn) {
	var p mqttParser
	p.limit = 1 << 20
	var pk mqttPacket
	var owed []uint16
	flush := func() {
		if len(owed) == 0 {
			return
		}
		time.Sleep(s.delay)
		var b []byte
		for _, id := range owed {
			b = appendMQTTPuback(b, id)
		}
		owed = owed[:0]
		ws.WriteMessage(websocket.BinaryMessage, b)
	}
	for {
		ok, err := p.next(&pk)
		if err != nil {
			t.Errorf("server: %v", err)
			return
		}
		if !ok {
			flush()
			_, r, err := ws.NextReader()
			if err != nil {
				return
			}
			if err := p.fill(r); err != nil {
				return
			}
			continue
		}
		switch pk.typ {
		case mqttCONNECT:
			clean := pk.body[7]&0x02 != 0
			n := int(pk.body[10])<<8 | int(pk.body[11])
			id := string(pk.body[12 : 12+n])
			s.mu.Lock()
			present := !clean && s.sessions[id]
			if clean {
				delete(s.sessions, id)
			} else {
				s.sessions[id] = true
			}
			s.mu.Unlock()
			var flag byte
			if present {
				flag = 1
			}
			ws.WriteMessage(websocket.BinaryMessage, []byte{mqttCONNACK << 4, 2, flag, 0})
		case mqttSUBSCRIBE:
			ws.WriteMessage(websocket.BinaryMessage, []byte{mqttSUBACK << 4, 3, pk.body[0], pk.body[1], 1})
		case mqttPUBLISH:
			_, id, _, err := pk.publish()
			if err != nil {
				t.Errorf("server: %v", err)
				return
			}
			s.published.Add(1)
			owed = append(owed, id)
			if len(owed) > s.inflight {
				s.tooMany.Add(1)
			}
		case mqttDISCONNECT:
			flush()
			return
		}
	}
}

// TestFillAgainstFakeBroker runs the fill scenario against pubackServer:
// exactly -msgs PUBLISHes, never more than -inflight outstanding per
// publisher, every one PUBACKed and timed.
func TestFillAgainstFakeBroker(t *testing.T) {
	srv := &pubackServer{inflight: 3, delay: 100 * time.Microsecond, sessions: map[string]bool{}}
	url := fakeMQTTServer(t, func(ws *websocket.Conn) { srv.serve(t, ws) })
	cfg, err := parseFlags([]string{"-url", url, "-protocol", "mqtt", "-scenario", "fill", "-msgs", "2000", "-pubs", "4", "-inflight", "3", "-timeout", "5s"})
	if err != nil {
		t.Fatal(err)
	}
	r := &result{name: resultName(cfg)}
	runFill(context.Background(), cfg, r)
	if len(r.fails) > 0 {
		t.Fatalf("fill failed: %s", r)
	}
	if got := srv.published.Load(); got != 2000 {
		t.Errorf("server got %d PUBLISHes, want 2000", got)
	}
	if n := srv.tooMany.Load(); n > 0 {
		t.Errorf("%d times more than 3 PUBLISHes outstanding", n)
	}
	if !strings.Contains(r.String(), "2000 queued in") || !strings.Contains(r.String(), "PUBACK p50") {
		t.Errorf("result %q", r)
	}
	if !srv.sessions["bench-durable-sub"] {
		t.Error("no persistent session set up")
	}
}

// TestHelperBroker is not a test: run as a child process by
// TestRestartProcess, it plays the broker.
func TestHelperBroker(t *testing.T) {
	if os.Getenv("DUPLEX_BENCH_HELPER") == "" {
		t.Skip("helper process only")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Fprintln(os.Stderr, `time=2026-01-01T00:00:00Z level=INFO msg="store loaded" file=/x/duplex.db sync=always sessions=1 queued=42 took=3ms`)
	time.Sleep(50 * time.Millisecond)
	fmt.Println("duplex listening on 127.0.0.1:1")
	if os.Getenv("DUPLEX_BENCH_HELPER") == "exit" {
		os.Exit(3)
	}
	<-sig
	os.Exit(0)
}

func TestRestartProcess(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "broker.log")
	t.Setenv("DUPLEX_BENCH_HELPER", "serve")
	argv := []string{os.Args[0], "-test.run=^TestHelperBroker$"}
	cfg, err := parseFlags(append([]string{"-protocol", "mqtt", "-scenario", "restart", "-msgs", "0", "-broker-log", logFile, "--"}, argv...))
	if err != nil {
		t.Fatal(err)
	}
	r := &result{name: resultName(cfg)}
	runRestart(context.Background(), cfg, r)
	line := r.String()
	if len(r.fails) > 0 {
		t.Fatalf("restart failed: %s", line)
	}
	for _, want := range []string{"listening ", "store loaded: sync=always sessions=1 queued=42 took=3ms", "exit "} {
		if !strings.Contains(line, want) {
			t.Errorf("result %q lacks %q", line, want)
		}
	}
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "duplex listening on 127.0.0.1:1") || !strings.Contains(string(b), "store loaded") {
		t.Errorf("broker log %q (%v)", b, err)
	}

	// A broker that exits with status 3 after its listening line fails.
	t.Setenv("DUPLEX_BENCH_HELPER", "exit")
	r = &result{name: resultName(cfg)}
	runRestart(context.Background(), cfg, r)
	if len(r.fails) == 0 {
		t.Errorf("a broker exiting with status 3 passed: %s", r)
	}
}
