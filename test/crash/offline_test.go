package crash_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestOfflineAcrossRestart: durable subscribers of every kind go offline,
// messages are published and acknowledged, the broker restarts (SIGTERM,
// or SIGKILL), and every subscriber must get every message when it comes
// back. A retained message and /queue messages survive too.
func TestOfflineAcrossRestart(t *testing.T) {
	for _, mode := range []struct {
		name string
		kill bool
	}{{"sigterm", false}, {"sigkill", true}} {
		t.Run(mode.name, func(t *testing.T) { testOfflineAcrossRestart(t, mode.name, mode.kill) })
	}
}

func testOfflineAcrossRestart(t *testing.T, mode string, kill bool) {
	const n = 20
	const (
		topic       = "crash/off/t"
		stompTopic  = "/topic/crash/off/t"
		retainTopic = "crash/off/retained"
		queue       = "/queue/crash-off"
	)
	srv := startServer(t, "offline-"+mode)

	// Durable subscribers: MQTT 5 and 3.1.1 persistent sessions, STOMP
	// durable subscriptions in the RabbitMQ, ActiveMQ and Artemis dialects.
	v5 := newV5Sub(srv, "off-v5", topic, 1)
	v3 := newV3Sub(srv, "off-v3", topic, 1)
	if err := v5.online(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v5.offline() })
	if err := v3.online(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v3.offline)
	var stompSubs []*stompConsumer
	for _, d := range stompDialects {
		client := "off-stomp-" + d.name
		c := newStompConsumer(srv, client, stompTopic, d.connHdrs(client), d.subHdrs(client))
		c.start()
		t.Cleanup(c.stop)
		if err := c.setOnline(true); err != nil {
			t.Fatalf("%s dialect: %v", d.name, err)
		}
		stompSubs = append(stompSubs, c)
	}
	recs := []*recorder{v5.rec, v3.rec}
	for _, c := range stompSubs {
		recs = append(recs, c.rec)
	}

	pub := newMQTTPub("off-pub", srv)
	defer pub.Close()
	sender := &stompSender{srv: srv}
	defer sender.close()
	ctx, cancel := context.WithTimeout(context.Background(), waitDrain)
	defer cancel()

	// Warm-up: each subscription works while online, before any restart.
	if err := pub.Publish(ctx, topic, 1, false, "warmup-0"); err != nil {
		t.Fatalf("warm-up publish: %v", err)
	}
	for _, r := range recs {
		if missing := r.waitAll([]string{"warmup-0"}, time.Now().Add(waitShort), waitShort); len(missing) > 0 {
			t.Fatalf("%s: did not receive the warm-up message while online (before any restart)", r.name)
		}
	}

	// Offline.
	if err := v5.offline(); err != nil {
		t.Fatal(err)
	}
	v3.offline()
	for _, c := range stompSubs {
		if err := c.setOnline(false); err != nil {
			t.Fatal(err)
		}
	}

	// Publish while they are offline; everything must be acknowledged.
	mqttLog, stompLog, queueLog := &pubLog{name: "mqtt"}, &pubLog{name: "stomp"}, &pubLog{name: "queue"}
	for range n {
		i, p := mqttLog.take()
		err := pub.Publish(ctx, topic, 1, false, p)
		mqttLog.result(i, err)
		if err != nil {
			t.Fatalf("MQTT publish %s (broker up, no failure expected): %v", p, err)
		}
		i, p = stompLog.take()
		err = sender.send(stompTopic, p)
		stompLog.result(i, err)
		if err != nil {
			t.Fatalf("STOMP SEND %s to %s: %v", p, stompTopic, err)
		}
		i, p = queueLog.take()
		err = sender.send(queue, p)
		queueLog.result(i, err)
		if err != nil {
			t.Fatalf("STOMP SEND %s to %s: %v", p, queue, err)
		}
	}
	retained := "retained-" + mode
	if err := pub.Publish(ctx, retainTopic, 1, true, retained); err != nil {
		t.Fatalf("retained publish: %v", err)
	}
	pub.Close()
	sender.close()

	how := "SIGTERM"
	if kill {
		how = "SIGKILL"
	}
	srv.restart(kill)
	t.Logf("broker restarted after %s (generation %d)", how, srv.gen())

	// Back online: every message published while offline must arrive.
	if err := v5.online(); err != nil {
		t.Errorf("after %s: %v", how, err)
	}
	if err := v3.online(); err != nil {
		t.Errorf("after %s: %v", how, err)
	}
	for _, c := range stompSubs {
		if err := c.setOnline(true); err != nil {
			t.Errorf("after %s: %v", how, err)
		}
	}
	want := append(mqttLog.ackedPayloads(), stompLog.ackedPayloads()...)
	wants := make([][]string, len(recs))
	for i := range wants {
		wants[i] = want
	}
	drainAll(recs, wants, time.Now().Add(waitDrain))
	for _, r := range recs {
		dups := 0
		for _, d := range r.snapshot() {
			if d.dup {
				dups++
			}
		}
		t.Logf("%s: %d deliveries, %d flagged DUP/redelivered", r.name, r.len(), dups)
		for _, p := range checkStream(r, []*pubLog{mqttLog, stompLog}, checkOptions{ordered: true}) {
			t.Errorf("after %s: %s", how, p)
		}
	}
	for _, p := range v5.getProblems() {
		t.Errorf("after %s: %s", how, p)
	}

	// The retained message, to a new subscriber.
	rs := newV5Sub(srv, "off-retained-"+mode, retainTopic, 1)
	if err := rs.online(); err != nil {
		t.Fatalf("after %s: %v", how, err)
	}
	t.Cleanup(func() { _ = rs.offline() })
	if missing := rs.rec.waitAll([]string{retained}, time.Now().Add(waitShort), waitShort); len(missing) > 0 {
		t.Errorf("after %s: retained message %q on %s lost (a new subscriber got %d messages: %v)",
			how, retained, retainTopic, rs.rec.len(), payloads(rs.rec))
	}

	// The /queue messages, each sent with a receipt before the restart.
	qc := newStompConsumer(srv, "off-queue-consumer", queue, nil, nil)
	qc.start()
	t.Cleanup(qc.stop)
	if err := qc.setOnline(true); err != nil {
		t.Fatalf("after %s: %v", how, err)
	}
	qc.rec.waitAll(queueLog.ackedPayloads(), time.Now().Add(waitDrain), waitStall)
	for _, p := range checkStream(qc.rec, []*pubLog{queueLog}, checkOptions{ordered: true}) {
		t.Errorf("after %s: %s", how, p)
	}
}

// payloads lists what a recorder got, for messages.
func payloads(r *recorder) string {
	var s []string
	for _, d := range r.snapshot() {
		s = append(s, d.payload)
	}
	return fmt.Sprintf("%q", s)
}

// TestSigtermRightAfterReady: the listening line says the broker is ready,
// so a SIGTERM right after it must already be a graceful shutdown (exit
// status 0, acknowledgements flushed), not the default action of the
// signal.
func TestSigtermRightAfterReady(t *testing.T) {
	srv := startServer(t, "sigterm-ready")
	for range 10 {
		srv.restart(false) // stop checks the exit status
	}
	srv.stop()
	if t.Failed() {
		t.Log(`"signal: terminated" means the process died of the SIGTERM itself: its handler ` +
			`was not installed yet when "duplex listening on" was printed`)
	}
}
