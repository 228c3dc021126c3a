package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/store"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/mqtt"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
)

// obsWait bounds every wait of the metrics and $SYS tests.
const obsWait = 10 * time.Second

// obsServer is a gateway with a Bolt store, STOMP and MQTT, under httptest.
type obsServer struct {
	gw     *Server
	router *broker.Router
	hs     *httptest.Server
	st     *store.Bolt
	wsURL  string // ws://127.0.0.1:PORT/mqtt
}

func startObsServer(t *testing.T, configure ...func(*broker.Config)) *obsServer {
	t.Helper()
	commits := NewCommitHistogram()
	st, err := store.Open(filepath.Join(t.TempDir(), "duplex.db"), store.Options{OnCommit: commits.Observe})
	if err != nil {
		t.Fatal(err)
	}
	bcfg := broker.Config{Store: st}
	for _, f := range configure {
		f(&bcfg)
	}
	router := broker.New(bcfg, nil)
	if _, err := router.Restore(); err != nil {
		t.Fatal(err)
	}
	gw := New(Config{Version: "1.2.3-test", Store: st, CommitLatency: commits}, router,
		subprotocol.Registry{dstomp.New(dstomp.Config{}), mqtt.New(mqtt.Config{})})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), obsWait)
		defer cancel()
		_ = gw.Shutdown(ctx)
		hs.Close()
		router.Stop()
		_ = st.Close()
	})
	return &obsServer{gw: gw, router: router, hs: hs, st: st,
		wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/mqtt"}
}

// mqttClient connects a paho.mqtt.golang (MQTT 3.1.1) client over
// WebSocket.
func (o *obsServer) mqttClient(t *testing.T, id string, clean bool, user ...string) pahomqtt.Client {
	t.Helper()
	opts := pahomqtt.NewClientOptions().AddBroker(o.wsURL).SetClientID(id)
	if len(user) > 0 {
		opts.SetUsername(user[0]).SetPassword("x")
	}
	opts.
		SetProtocolVersion(4).SetCleanSession(clean).SetAutoReconnect(false).
		SetConnectRetry(false).SetConnectTimeout(obsWait).SetOrderMatters(false)
	c := pahomqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(obsWait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func waitToken(t *testing.T, what string, tok pahomqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(obsWait) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// scrape GETs /metrics and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dtoFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	out := make(map[string]*dtoFamily, len(fams))
	for name, f := range fams {
		df := &dtoFamily{typ: f.GetType().String()}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Histogram != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			case m.Untyped != nil:
				v = m.GetUntyped().GetValue()
			}
			df.samples = append(df.samples, dtoSample{labels, v})
		}
		out[name] = df
	}
	return out
}

// dtoFamily is a parsed metric family: its type ("COUNTER", "GAUGE",
// "HISTOGRAM"...) and samples (a histogram's value is its count).
type dtoFamily struct {
	typ     string
	samples []dtoSample
}

type dtoSample struct {
	labels map[string]string
	value  float64
}

// value returns the sample whose labels include want (pairs), and whether
// there is one.
func (f *dtoFamily) value(want ...string) (float64, bool) {
	if f == nil {
		return 0, false
	}
next:
	for _, s := range f.samples {
		for i := 0; i+1 < len(want); i += 2 {
			if s.labels[want[i]] != want[i+1] {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

func TestMetricsNamesAndTypes(t *testing.T) {
	o := startObsServer(t)
	fams := scrape(t, o.hs.URL)
	want := map[string]string{
		"duplex_build_info":                   "GAUGE",
		"duplex_sessions":                     "GAUGE",
		"duplex_persistent_sessions":          "GAUGE",
		"duplex_subscriptions":                "GAUGE",
		"duplex_messages_received_total":      "COUNTER",
		"duplex_messages_delivered_total":     "COUNTER",
		"duplex_bytes_received_total":         "COUNTER",
		"duplex_bytes_sent_total":             "COUNTER",
		"duplex_drops_total":                  "COUNTER",
		"duplex_retained_messages":            "GAUGE",
		"duplex_retained_bytes":               "GAUGE",
		"duplex_queues":                       "GAUGE",
		"duplex_queue_messages":               "GAUGE",
		"duplex_stored_messages":              "GAUGE",
		"duplex_auth_failures_total":          "COUNTER",
		"duplex_credential_expired_total":     "COUNTER",
		"duplex_acl_denied_total":             "COUNTER",
		"duplex_protocol_events_total":        "COUNTER",
		"duplex_refusals_total":               "COUNTER",
		"duplex_admission_connections":        "GAUGE",
		"duplex_admission_connections_limit":  "GAUGE",
		"duplex_admission_sockets":            "GAUGE",
		"duplex_admission_sockets_limit":      "GAUGE",
		"duplex_admission_sources":            "GAUGE",
		"duplex_admission_refused_total":      "COUNTER",
		"duplex_tls_handshake_failures_total": "COUNTER",
		"duplex_store_file_bytes":             "GAUGE",
		"duplex_store_commits_total":          "COUNTER",
		"duplex_store_commit_seconds_total":   "COUNTER",
		"duplex_store_commit_seconds":         "HISTOGRAM",
		"duplex_store_commit_batches":         "HISTOGRAM",
		"go_goroutines":                       "GAUGE",
		"process_start_time_seconds":          "GAUGE",
	}
	for name, typ := range want {
		f := fams[name]
		if f == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if f.typ != typ {
			t.Errorf("%s is %s, want %s", name, f.typ, typ)
		}
	}
	if v, ok := fams["duplex_build_info"].value("version", "1.2.3-test"); !ok || v != 1 {
		t.Errorf("build_info{version=1.2.3-test} = %v, %v", v, ok)
	}
	for _, cause := range []string{"slow_consumer", "slow_closed", "no_subscriber", "quota", "offline", "not_authorized"} {
		if _, ok := fams["duplex_drops_total"].value("cause", cause); !ok {
			t.Errorf("drops_total{cause=%q} missing", cause)
		}
	}
	for _, p := range []string{"stomp", "mqtt"} {
		if _, ok := fams["duplex_auth_failures_total"].value("protocol", p); !ok {
			t.Errorf("auth_failures_total{protocol=%q} missing", p)
		}
	}
	for _, state := range []string{"ready", "unacked"} {
		if _, ok := fams["duplex_queue_messages"].value("state", state); !ok {
			t.Errorf("queue_messages{state=%q} missing", state)
		}
	}
	if v, _ := fams["duplex_store_file_bytes"].value(); v <= 0 {
		t.Errorf("store_file_bytes = %v", v)
	}
}

// Values move after real publishes from a real MQTT client.
func TestMetricsMoveWithTraffic(t *testing.T) {
	o := startObsServer(t)
	before := scrape(t, o.hs.URL)
	commitsBefore, _ := before["duplex_store_commit_seconds"].value()

	sub := o.mqttClient(t, "metrics-sub", false) // persistent: QoS 1 goes through the store
	var mu sync.Mutex
	got := 0
	waitToken(t, "subscribe", sub.Subscribe("m/#", 1, func(pahomqtt.Client, pahomqtt.Message) {
		mu.Lock()
		got++
		mu.Unlock()
	}))
	pub := o.mqttClient(t, "metrics-pub", true)
	const n = 20
	for i := range n {
		waitToken(t, "publish", pub.Publish(fmt.Sprintf("m/%d", i%3), 1, false, []byte("hello")))
	}
	waitToken(t, "publish retained", pub.Publish("m/retained", 1, true, []byte("kept")))
	waitToken(t, "publish unrouted", pub.Publish("nobody/here", 0, false, []byte("x")))

	var fams map[string]*dtoFamily
	testutil.EventuallyErr(t, obsWait, func() error {
		fams = scrape(t, o.hs.URL)
		mu.Lock()
		gotN := got
		mu.Unlock()
		recv, _ := fams["duplex_messages_received_total"].value()
		deliv, _ := fams["duplex_messages_delivered_total"].value()
		conns, _ := fams["duplex_connections"].value("protocol", "mqtt", "version", "3.1.1")
		if gotN >= n+1 && recv >= n+2 && deliv >= n+1 && conns == 2 {
			return nil
		}
		return fmt.Errorf("metrics did not move: got %d messages, received %v, delivered %v, mqtt 3.1.1 connections %v (%+v)", gotN, recv, deliv, conns, fams["duplex_connections"])
	})
	check := func(name string, ok func(float64) bool, labels ...string) {
		t.Helper()
		v, found := fams[name].value(labels...)
		if !found || !ok(v) {
			t.Errorf("%s%v = %v (found %v)", name, labels, v, found)
		}
	}
	positive := func(v float64) bool { return v > 0 }
	check("duplex_bytes_received_total", positive)
	check("duplex_bytes_sent_total", positive)
	check("duplex_retained_messages", func(v float64) bool { return v == 1 })
	check("duplex_retained_bytes", func(v float64) bool { return v == 4 })
	check("duplex_subscriptions", func(v float64) bool { return v >= 1 })
	check("duplex_persistent_sessions", func(v float64) bool { return v == 1 })
	check("duplex_sessions", func(v float64) bool { return v == 2 })
	check("duplex_drops_total", func(v float64) bool { return v >= 1 }, "cause", "no_subscriber")
	check("duplex_admission_connections", func(v float64) bool { return v == 2 })
	check("duplex_store_commits_total", positive)
	check("duplex_store_commit_seconds_total", positive)
	check("duplex_store_commit_seconds", func(v float64) bool { return v > commitsBefore })
	check("duplex_store_commit_batches", func(v float64) bool { return v > commitsBefore })
	check("duplex_connections", func(v float64) bool { return v == 2 }, "protocol", "mqtt", "version", "3.1.1", "transport", "ws")
}

// Without a store or a histogram the store metrics are simply absent.
func TestMetricsWithoutStore(t *testing.T) {
	router := broker.New(broker.Config{}, nil)
	gw := New(Config{}, router, subprotocol.Registry{mqtt.New(mqtt.Config{})})
	hs := httptest.NewServer(gw)
	defer hs.Close()
	fams := scrape(t, hs.URL)
	for _, name := range []string{"duplex_store_file_bytes", "duplex_store_commits_total", "duplex_store_commit_seconds"} {
		if fams[name] != nil {
			t.Errorf("%s present without a store", name)
		}
	}
	if fams["duplex_messages_received_total"] == nil {
		t.Error("duplex_messages_received_total missing")
	}
}

// /metrics sits behind the admin gate.
func TestMetricsNeedsAdmin(t *testing.T) {
	router := broker.New(broker.Config{}, nil)
	gw := New(Config{AdminAuth: denyAll{}}, router, subprotocol.Registry{mqtt.New(mqtt.Config{})})
	hs := httptest.NewServer(gw)
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without credentials: %s", resp.Status)
	}
}

// denyAll is an Authenticator that refuses everybody.
type denyAll struct{}

func (denyAll) Authenticate(context.Context, broker.Credentials) (broker.Identity, error) {
	return broker.Identity{}, broker.ErrBadCredentials
}
