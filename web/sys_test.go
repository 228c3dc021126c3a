package web

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/broker/auth"
	"github.com/duplexmq/duplex/internal/testutil"
)

// sysRecorder keeps every $SYS message a client received, by topic.
type sysRecorder struct {
	mu   sync.Mutex
	msgs map[string][]string
}

func (r *sysRecorder) handle(_ pahomqtt.Client, m pahomqtt.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgs == nil {
		r.msgs = make(map[string][]string)
	}
	r.msgs[m.Topic()] = append(r.msgs[m.Topic()], string(m.Payload()))
}

// last returns the latest value on topic and how many were received.
func (r *sysRecorder) last(topic string) (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	vs := r.msgs[topic]
	if len(vs) == 0 {
		return "", 0
	}
	return vs[len(vs)-1], len(vs)
}

// waitValue polls until topic's latest value satisfies ok.
func (r *sysRecorder) waitValue(t *testing.T, topic string, ok func(string) bool) string {
	t.Helper()
	var v string
	var n int
	if testutil.Poll(obsWait, func() error {
		if v, n = r.last(topic); n > 0 && ok(v) {
			return nil
		}
		return fmt.Errorf("not yet")
	}) != nil {
		t.Fatalf("%s: last value %q (%d received)", topic, v, n)
	}
	return v
}

// waitCount polls until n values were received on topic.
func (r *sysRecorder) waitCount(t *testing.T, topic string, n int) {
	t.Helper()
	var c int
	if testutil.Poll(obsWait, func() error {
		if _, c = r.last(topic); c >= n {
			return nil
		}
		return fmt.Errorf("not yet")
	}) != nil {
		t.Fatalf("%s: %d values received, want %d", topic, c, n)
	}
}

func atLeast(n int) func(string) bool {
	return func(v string) bool {
		i, err := strconv.Atoi(v)
		return err == nil && i >= n
	}
}

func TestSysTopics(t *testing.T) {
	o := startObsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.gw.RunSys(ctx, 20*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	admin := o.mqttClient(t, "sys-watcher", true)
	var rec sysRecorder
	waitToken(t, "subscribe $SYS", admin.Subscribe("$SYS/broker/#", 0, rec.handle))
	// '#' must not match $SYS topics [MQTT-4.7.2-1]. (A client of its own:
	// paho dispatches a message to every handler whose filter matches,
	// by its own rules.)
	var all sysRecorder
	allClient := o.mqttClient(t, "sys-all", true)
	waitToken(t, "subscribe #", allClient.Subscribe("#", 0, all.handle))

	rec.waitValue(t, "$SYS/broker/version", func(v string) bool { return v == "duplex version 1.2.3-test" })
	rec.waitValue(t, "$SYS/broker/clients/connected", atLeast(2))

	pub := o.mqttClient(t, "sys-pub", true)
	rec.waitValue(t, "$SYS/broker/clients/connected", atLeast(3))
	rec.waitValue(t, "$SYS/broker/clients/maximum", atLeast(3))
	received0, _ := strconv.Atoi(rec.waitValue(t, "$SYS/broker/messages/received", atLeast(0)))
	const n = 7
	for i := range n {
		waitToken(t, "publish", pub.Publish(fmt.Sprintf("data/%d", i), 1, false, []byte("v")))
	}
	rec.waitValue(t, "$SYS/broker/messages/received", atLeast(received0+n))
	rec.waitValue(t, "$SYS/broker/messages/sent", atLeast(n)) // '#' receives the data messages
	rec.waitValue(t, "$SYS/broker/bytes/received", atLeast(1))
	rec.waitValue(t, "$SYS/broker/load/messages/received/1min", func(v string) bool {
		f, err := strconv.ParseFloat(v, 64)
		return err == nil && f > 0
	})
	rec.waitValue(t, "$SYS/broker/heap/current", atLeast(1))
	rec.waitValue(t, "$SYS/broker/duplex/store/file_bytes", atLeast(1))
	rec.waitValue(t, "$SYS/broker/subscriptions/count", atLeast(2))
	rec.waitValue(t, "$SYS/broker/duplex/drops/no_subscriber", atLeast(0))

	// The broker's own publications are not counted as received: with no
	// more client traffic, messages/received stays put over many ticks.
	stable := rec.waitValue(t, "$SYS/broker/messages/received", atLeast(received0+n))
	_, ticks := rec.last("$SYS/broker/uptime")
	rec.waitCount(t, "$SYS/broker/uptime", ticks+5)
	if v, _ := rec.last("$SYS/broker/messages/received"); v != stable {
		t.Errorf("messages/received moved from %s to %s without client traffic", stable, v)
	}
	// Published only on change: the version once (retained copy or live),
	// the uptime every tick.
	if _, c := rec.last("$SYS/broker/version"); c != 1 {
		t.Errorf("version received %d times, want 1", c)
	}
	if v, _ := rec.last("$SYS/broker/uptime"); len(v) < len("0 seconds") || v[len(v)-len(" seconds"):] != " seconds" {
		t.Errorf("uptime %q", v)
	}

	all.mu.Lock()
	for topic := range all.msgs {
		if topic[0] == '$' {
			t.Errorf("'#' received %s", topic)
		}
	}
	all.mu.Unlock()

	// A late subscriber gets the retained values at once.
	late := o.mqttClient(t, "sys-late", true)
	var lrec sysRecorder
	waitToken(t, "late subscribe", late.Subscribe("$SYS/broker/clients/total", 0, lrec.handle))
	lrec.waitValue(t, "$SYS/broker/clients/total", atLeast(4))
}

// adminNamed makes the user "admin" an admin, everybody else not.
type adminNamed struct{}

func (adminNamed) Authenticate(_ context.Context, c broker.Credentials) (broker.Identity, error) {
	return broker.Identity{Name: c.Login, Anonymous: c.Login == "", Admin: c.Login == "admin"}, nil
}

// With an ACL (here the nil ACL: everything but $SYS allowed), $SYS is
// for admins only, and the broker's own publications go through.
func TestSysACL(t *testing.T) {
	o := startObsServer(t, func(c *broker.Config) {
		c.Authenticator = adminNamed{}
		c.Authorizer = (*auth.ACL)(nil)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.gw.RunSys(ctx, 20*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	user := o.mqttClient(t, "sys-user", true, "alice")
	var urec sysRecorder
	tok := user.Subscribe("$SYS/broker/#", 0, urec.handle)
	waitToken(t, "user subscribe", tok)
	if code := tok.(*pahomqtt.SubscribeToken).Result()["$SYS/broker/#"]; code != 0x80 {
		t.Fatalf("non-admin subscription to $SYS/broker/#: SUBACK %#x, want 0x80", code)
	}

	admin := o.mqttClient(t, "sys-admin", true, "admin")
	var arec sysRecorder
	tok = admin.Subscribe("$SYS/broker/#", 0, arec.handle)
	waitToken(t, "admin subscribe", tok)
	if code := tok.(*pahomqtt.SubscribeToken).Result()["$SYS/broker/#"]; code != 0 {
		t.Fatalf("admin subscription to $SYS/broker/#: SUBACK %#x, want 0", code)
	}
	arec.waitValue(t, "$SYS/broker/clients/connected", atLeast(2))
	arec.waitCount(t, "$SYS/broker/uptime", 3)
	urec.mu.Lock()
	defer urec.mu.Unlock()
	if len(urec.msgs) != 0 {
		t.Errorf("non-admin received $SYS messages: %v", urec.msgs)
	}
}

// RunSys with interval 0 returns at once; it stops with its context.
func TestRunSysStops(t *testing.T) {
	o := startObsServer(t)
	o.gw.RunSys(context.Background(), 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.gw.RunSys(ctx, time.Hour) }()
	cancel()
	select {
	case <-done:
	case <-time.After(obsWait):
		t.Fatal("RunSys did not return after its context ended")
	}
}

// The load averages follow Mosquitto's calc_load.
func TestSysLoad(t *testing.T) {
	var l sysLoad
	l.update(0, 10)
	// 100 messages in 10 s: 600 a minute.
	l.update(100, 10)
	for i, w := range sysLoadWindows {
		want := 600 + math.Exp(-10/w.secs)*(0-600)
		if math.Abs(l.avg[i]-want) > 1e-9 {
			t.Errorf("%s: %v, want %v", w.name, l.avg[i], want)
		}
	}
	// A steady rate converges to it.
	for v := uint64(200); v < 200+100*1000; v += 100 {
		l.update(v, 10)
	}
	for i, w := range sysLoadWindows {
		if math.Abs(l.avg[i]-600) > 0.01 {
			t.Errorf("%s: %v after a steady 600/min", w.name, l.avg[i])
		}
	}
}
