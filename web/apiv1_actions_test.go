package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/duplexmq/duplex/broker"
)

// TestV1Disconnect: POST disconnect closes the connection with the
// protocol's notice (MQTT 5 DISCONNECT 0x98, STOMP ERROR); a persistent
// session stays, offline; an unknown id is 404.
func TestV1Disconnect(t *testing.T) {
	s := startV1(t)
	m := s.mqtt("dc-mqtt", 3600)
	s.action("POST", "/api/v1/clients/dc-mqtt/disconnect", "", 200)
	select {
	case d := <-m.disc:
		if d.ReasonCode != 0x98 {
			t.Errorf("MQTT DISCONNECT reason %#x, want 0x98", d.ReasonCode)
		}
	case <-time.After(v1Wait):
		t.Fatal("the MQTT client got no DISCONNECT")
	}
	select {
	case <-m.c.Done():
	case <-time.After(v1Wait):
		t.Fatal("the MQTT connection is still up")
	}
	eventually(t, "dc-mqtt offline", func() error {
		var c ClientDetail
		s.get("/api/v1/clients/dc-mqtt", &c)
		if c.Online || !c.Persistent {
			return fmt.Errorf("%+v", c.Client)
		}
		return nil
	})

	s.wantError("POST", "/api/v1/clients/dc-mqtt/disconnect", "", 409) // kept, not connected

	sc := s.stomp()
	sub, err := sc.Subscribe("/topic/dc", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	v1Barrier(t, sc)
	ids := s.stompClientIDs()
	if len(ids) != 1 {
		t.Fatalf("stomp sessions %q", ids)
	}
	s.action("POST", "/api/v1/clients/"+url.PathEscape(ids[0])+"/disconnect", "", 200)
	if msg := v1StompErr(t, sub); !strings.Contains(msg, "administrator") {
		t.Errorf("STOMP ERROR message %q", msg)
	}
	eventually(t, "stomp session gone", func() error {
		if ids := s.stompClientIDs(); len(ids) != 0 {
			return fmt.Errorf("still %q", ids)
		}
		return nil
	})

	s.wantError("POST", "/api/v1/clients/nobody/disconnect", "", 404)
	s.wantMethodNotAllowed("GET", "/api/v1/clients/dc-mqtt/disconnect")
}

// TestV1Queues: queues and durable subscriptions, filtered by kind and
// paged one by one across the durable names; purge drops the ready
// messages; DELETE removes a durable subscription and refuses a plain
// queue.
func TestV1Queues(t *testing.T) {
	s := startV1(t)
	for _, q := range []string{"$aaa", "jobs-1", "jobs-2", "jobs-2", "zz/last"} {
		s.action("POST", "/api/v1/publish", jsonBody(t, PublishRequest{Queue: q, Payload: "job", QoS: 1}), 200)
	}
	sc := s.stomp()
	for _, id := range []string{"d1", "d2"} {
		if _, err := sc.Subscribe("/topic/qnews", stomp.AckClient, stomp.SubscribeOpt.Id(id),
			stomp.SubscribeOpt.Header("durable", "true")); err != nil {
			t.Fatal(err)
		}
	}
	v1Barrier(t, sc)

	names := func(qs []Queue) []string {
		var out []string
		for _, q := range qs {
			out = append(out, q.Name)
		}
		return out
	}
	all := v1Walk[Queue](s, "/api/v1/queues", 1)
	durable := v1Walk[Queue](s, "/api/v1/queues?kind=durable", 1)
	if len(durable) != 2 || !strings.HasPrefix(durable[0].Name, broker.DurableQueuePrefix) || durable[0].Kind != "durable" {
		t.Fatalf("durable %+v (all %q)", durable, names(all))
	}
	want := slices.Concat([]string{"$aaa"}, names(durable), []string{"jobs-1", "jobs-2", "zz/last"})
	if !slices.Equal(names(all), want) {
		t.Errorf("all queues %q, want %q", names(all), want)
	}
	for _, limit := range []int{1, 2, 3, 100} {
		plain := v1Walk[Queue](s, "/api/v1/queues?kind=queue", limit)
		if got := names(plain); !slices.Equal(got, []string{"$aaa", "jobs-1", "jobs-2", "zz/last"}) {
			t.Errorf("kind=queue limit=%d: %q", limit, got)
		}
		for _, q := range plain {
			if q.Kind != "queue" {
				t.Errorf("kind %+v", q)
			}
		}
		if got := names(v1Walk[Queue](s, "/api/v1/queues?kind=durable", limit)); !slices.Equal(got, names(durable)) {
			t.Errorf("kind=durable limit=%d: %q", limit, got)
		}
	}
	var p Page[Queue]
	s.get("/api/v1/queues?q=jobs-2", &p)
	if len(p.Items) != 1 || p.Items[0] != (Queue{Name: "jobs-2", Kind: "queue", Ready: 2}) {
		t.Errorf("q=jobs-2: %+v", p.Items)
	}
	s.get("/api/v1/queues?kind=durable&q=jobs", &p)
	if len(p.Items) != 0 {
		t.Errorf("durable q=jobs: %+v", p.Items)
	}

	// Purge.
	var res ActionResult
	if err := json.Unmarshal(s.action("POST", "/api/v1/queues/jobs-2/purge", "", 200), &res); err != nil || !res.OK || res.Purged != 2 {
		t.Errorf("purge: %+v %v", res, err)
	}
	s.get("/api/v1/queues?q=jobs-2", &p)
	if len(p.Items) != 1 || p.Items[0].Ready != 0 {
		t.Errorf("after purge: %+v", p.Items)
	}
	s.action("POST", "/api/v1/publish", `{"topic":"qnews","payload":"n","qos":1}`, 200)
	d1 := url.PathEscape(durable[0].Name)
	eventually(t, "durable backlog", func() error {
		var p Page[Queue]
		s.get("/api/v1/queues?kind=durable", &p)
		if len(p.Items) != 2 || p.Items[0].Ready+p.Items[0].Unacked != 1 || p.Items[0].Consumers != 1 {
			return fmt.Errorf("%+v", p.Items)
		}
		return nil
	})
	s.action("POST", "/api/v1/queues/"+d1+"/purge", "", 200)
	if err := json.Unmarshal(s.action("POST", "/api/v1/queues/"+url.PathEscape("zz/last")+"/purge", "", 200), &res); err != nil || res.Purged != 1 {
		t.Errorf("purge zz/last: %+v %v", res, err)
	}
	s.wantError("POST", "/api/v1/queues/nothing/purge", "", 404)

	// Delete: plain queue 409, unknown 404, durable ok then 404.
	s.wantError("DELETE", "/api/v1/queues/jobs-1", "", 409)
	s.wantError("DELETE", "/api/v1/queues/nothing", "", 404)
	s.action("DELETE", "/api/v1/queues/"+d1, "", 200)
	s.wantError("DELETE", "/api/v1/queues/"+d1, "", 404)
	if got := names(v1Walk[Queue](s, "/api/v1/queues?kind=durable", 10)); !slices.Equal(got, names(durable)[1:]) {
		t.Errorf("after delete: %q", got)
	}
	s.wantMethodNotAllowed("GET", "/api/v1/queues/jobs-1/purge")
}

// TestV1Retained: retained messages with previews (text, base64, cut at
// a rune), filtered by topic prefix; DELETE clears one.
func TestV1Retained(t *testing.T) {
	s := startV1(t)
	long := strings.Repeat("é", 200) // 400 bytes: the preview cuts a rune
	for _, r := range []PublishRequest{
		{Topic: "rt/a", Payload: "hello", Retain: true, QoS: 1, ContentType: "text/plain"},
		{Topic: "rt/b/long", Payload: long, Retain: true},
		{Topic: "rt/bin", Payload: base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1}), PayloadEncoding: "base64", Retain: true},
		{Topic: "other", Payload: "x", Retain: true},
	} {
		s.action("POST", "/api/v1/publish", jsonBody(t, r), 200)
	}
	items := v1Walk[Retained](s, "/api/v1/retained?q=rt/", 1)
	if len(items) != 3 {
		t.Fatalf("retained %+v", items)
	}
	by := map[string]Retained{}
	for _, it := range items {
		by[it.Topic] = it
	}
	if a := by["rt/a"]; a.Preview != "hello" || a.PreviewEncoding != "text" || a.Size != 5 || a.QoS != 1 ||
		a.ContentType != "text/plain" || a.Truncated || a.AgeSeconds < 0 || a.AgeSeconds > 60 {
		t.Errorf("rt/a %+v", a)
	}
	if l := by["rt/b/long"]; !l.Truncated || l.Size != 400 || l.PreviewEncoding != "text" ||
		!strings.HasPrefix(long, l.Preview) || len(l.Preview) < broker.RetainedPreviewBytes-3 {
		t.Errorf("rt/b/long %+v", l)
	}
	if b := by["rt/bin"]; b.PreviewEncoding != "base64" || b.Preview != "/wAB" || b.Size != 3 {
		t.Errorf("rt/bin %+v", b)
	}
	m := s.mqtt("rt-sub", 0)
	m.subscribe("rt/a", 0)
	if p := m.next(); string(p.Payload) != "hello" || !p.Retain {
		t.Errorf("retained delivery %+v", p)
	}

	s.action("DELETE", "/api/v1/retained?topic=rt/a", "", 200)
	s.wantError("DELETE", "/api/v1/retained?topic=rt/a", "", 404)
	s.wantError("DELETE", "/api/v1/retained?topic=rt/%2B", "", 400)
	s.wantError("DELETE", "/api/v1/retained", "", 400)
	if got := v1Walk[Retained](s, "/api/v1/retained", 2); len(got) != 3 {
		t.Errorf("after delete: %+v", got)
	}
	var o Overview
	s.get("/api/v1/overview", &o)
	if o.Retained != 3 {
		t.Errorf("overview retained %d", o.Retained)
	}
}

// TestV1Publish: a topic message reaches MQTT subscribers (text and
// base64 payloads), a queue message reaches a STOMP consumer; every
// malformed request is a JSON 400.
func TestV1Publish(t *testing.T) {
	s := startV1(t, func(c *Config) { c.MaxMessageSize = 2 << 20 })
	m := s.mqtt("pub-sub", 0)
	m.subscribe("pub/#", 2)
	s.action("POST", "/api/v1/publish", `{"topic":"pub/text","payload":"héllo","qos":2,"content_type":"text/plain"}`, 200)
	p := m.next()
	if p.Topic != "pub/text" || string(p.Payload) != "héllo" || p.QoS != 2 || p.Properties == nil || p.Properties.ContentType != "text/plain" {
		t.Errorf("text: %+v", p)
	}
	bin := []byte{0, 1, 2, 0xfe, 0xff}
	s.action("POST", "/api/v1/publish", jsonBody(t, PublishRequest{Topic: "pub/bin", Payload: base64.StdEncoding.EncodeToString(bin), PayloadEncoding: "base64"}), 200)
	if p := m.next(); p.Topic != "pub/bin" || string(p.Payload) != string(bin) || p.QoS != 0 {
		t.Errorf("base64: %+v", p)
	}
	// The largest payload passes, one byte more does not.
	big := strings.Repeat("b", 2<<20)
	s.action("POST", "/api/v1/publish", jsonBody(t, PublishRequest{Topic: "pub/big", Payload: big}), 200)
	if p := m.next(); len(p.Payload) != len(big) {
		t.Errorf("big: %d bytes", len(p.Payload))
	}
	s.wantError("POST", "/api/v1/publish", jsonBody(t, PublishRequest{Topic: "pub/big", Payload: big + "b"}), 400)

	sc := s.stomp()
	sub, err := sc.Subscribe("/queue/pub-work", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	v1Barrier(t, sc)
	s.action("POST", "/api/v1/publish", `{"queue":"pub-work","payload":"do it","qos":1}`, 200)
	select {
	case msg := <-sub.C:
		if msg.Err != nil || string(msg.Body) != "do it" {
			t.Errorf("queue message %+v", msg)
		}
	case <-time.After(v1Wait):
		t.Fatal("no queue message")
	}

	for _, bad := range []string{
		``, `{`, `[]`, `"x"`, `{"topic":"a","payload":"x"} {}`, `{"topic":"a","payload":"x","extra":1}`,
		`{"payload":"x"}`, `{"topic":"a","queue":"b","payload":"x"}`,
		`{"topic":"a","payload":"x","qos":3}`, `{"topic":"a","payload":"x","qos":-1}`, `{"topic":"a","payload":"x","qos":"1"}`,
		`{"topic":"a/+","payload":"x"}`, `{"topic":"a/#","payload":"x"}`, `{"topic":"a\u0000b","payload":"x"}`,
		`{"topic":"a","payload":"!!","payload_encoding":"base64"}`, `{"topic":"a","payload":"x","payload_encoding":"hex"}`,
		`{"queue":"q","payload":"x","retain":true}`, `{"queue":"$durable/d1","payload":"x"}`,
		`{"topic":"a","payload":"x","content_type":"a\nb"}`,
		`{"topic":"a","payload":"x","content_type":"` + strings.Repeat("c", maxContentType+1) + `"}`,
		`{"queue":"` + strings.Repeat("q", broker.MaxQueueNameLength+1) + `","payload":"x"}`,
		`{"topic":"a","payload":"` + strings.Repeat("x", int(s.gw.publishBodyLimit())) + `"}`,
	} {
		s.wantError("POST", "/api/v1/publish", bad, 400)
	}
	// A reply queue that is gone is 404, not a silent drop.
	s.wantError("POST", "/api/v1/publish", `{"queue":"tmp.gone","payload":"x"}`, 404)
	s.wantMethodNotAllowed("GET", "/api/v1/publish")

	// A retained publish with an empty payload clears the topic's one.
	s.action("POST", "/api/v1/publish", `{"topic":"pub/r","payload":"keep","retain":true}`, 200)
	s.action("POST", "/api/v1/publish", `{"topic":"pub/r","payload":"","retain":true}`, 200)
	var rp Page[Retained]
	s.get("/api/v1/retained?q=pub/r", &rp)
	if len(rp.Items) != 0 {
		t.Errorf("retained after clearing: %+v", rp.Items)
	}
}

// TestV1BodyLimit: a body over 1 MiB is 400 even where the payload
// bound would allow more, with a small MaxMessageSize.
func TestV1BodyLimit(t *testing.T) {
	s := startV1(t, func(c *Config) { c.MaxMessageSize = 1000 })
	if got := s.gw.publishBodyLimit(); got != maxAPIBody {
		t.Fatalf("body limit %d", got)
	}
	s.wantError("POST", "/api/v1/publish", jsonBody(t, PublishRequest{Topic: "a", Payload: strings.Repeat("x", 1001)}), 400)
	s.action("POST", "/api/v1/publish", jsonBody(t, PublishRequest{Topic: "a", Payload: strings.Repeat("x", 1000)}), 200)
	s.wantError("POST", "/api/v1/publish", `{"topic":"a","payload":"`+strings.Repeat("x", maxAPIBody)+`"}`, 400)
}

// TestV1AdminAuth: with AdminAuth the API needs an admin (Basic here),
// and answers as in the open mode once authenticated.
func TestV1AdminAuth(t *testing.T) {
	s := startV1(t, func(c *Config) { c.AdminAuth = fakeAuth{} })
	if code, _ := s.doRaw("GET", "/api/v1/overview", "", nil); code != 401 {
		t.Errorf("no login: %d, want 401", code)
	}
	if code, _ := s.doRaw("GET", "/api/v1/overview", "", basic("bob", "pw")); code != 403 {
		t.Errorf("not admin: %d, want 403", code)
	}
	if code, b := s.doRaw("GET", "/api/v1/overview", "", basic("admin", "secret")); code != 200 || !strings.Contains(string(b), `"version"`) {
		t.Errorf("admin: %d %s", code, b)
	}
	if code, b := s.doRaw("POST", "/api/v1/publish", `{"topic":"a","payload":"x"}`, basic("admin", "secret")); code != 200 {
		t.Errorf("admin publish: %d %s", code, b)
	}
}

// TestV1SeparateAdmin: with SeparateAdmin the API is only on the admin
// handler.
func TestV1SeparateAdmin(t *testing.T) {
	s := startV1(t, func(c *Config) { c.SeparateAdmin = true })
	if code, _ := s.doRaw("GET", "/api/v1/overview", "", nil); code != 404 {
		t.Errorf("public /api/v1/overview: %d, want 404", code)
	}
	ah := httptest.NewServer(s.gw.AdminHandler())
	defer ah.Close()
	resp, err := http.Get(ah.URL + "/api/v1/queues?kind=queue")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p Page[Queue]
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 || p.Items == nil {
		t.Errorf("admin handler: %d %+v %v", resp.StatusCode, p, err)
	}
}

// v1StompErr waits for the STOMP connection to report an error on sub
// and returns its message.
func v1StompErr(t *testing.T, sub *stomp.Subscription) string {
	t.Helper()
	deadline := time.After(v1Wait)
	for {
		select {
		case m, ok := <-sub.C:
			if !ok {
				return ""
			}
			if m.Err != nil {
				var se *stomp.Error
				if errors.As(m.Err, &se) {
					return se.Message
				}
				return m.Err.Error()
			}
		case <-deadline:
			t.Fatal("no ERROR on the STOMP connection")
		}
	}
}
