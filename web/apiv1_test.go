package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/duplexmq/duplex/broker"
)

// TestV1Overview: the overview adds up the router, the connections by
// protocol and transport, the store and the version.
func TestV1Overview(t *testing.T) {
	s := startV1(t)
	sc := s.stomp()
	v1Barrier(t, sc)
	m := s.mqtt("ov-mqtt", 0)
	m.publish("ov/retained", "kept", 1, true)
	s.action("POST", "/api/v1/publish", `{"queue":"ov-jobs","payload":"x","qos":1}`, 200)

	var o Overview
	s.get("/api/v1/overview", &o)
	if o.Version != "1.2.3-test" || o.UptimeSeconds <= 0 {
		t.Errorf("version %q uptime %v", o.Version, o.UptimeSeconds)
	}
	if ts, err := time.Parse(time.RFC3339, o.StartedAt); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("started_at %q: %v", o.StartedAt, err)
	}
	if o.Connections != 2 || o.Sessions != 2 {
		t.Errorf("connections %d sessions %d, want 2 and 2", o.Connections, o.Sessions)
	}
	byProto := map[string]ConnGroup{}
	for _, g := range o.ByProtocol {
		byProto[g.Protocol] = g
	}
	if g := byProto["stomp"]; g.Count != 1 || g.Transport != "tcp" || g.Version == "" {
		t.Errorf("stomp group %+v in %+v", g, o.ByProtocol)
	}
	if g := byProto["mqtt"]; g.Count != 1 || g.Transport != "tcp" || g.Version == "" {
		t.Errorf("mqtt group %+v in %+v", g, o.ByProtocol)
	}
	if o.Retained != 1 || o.RetainedBytes != 4 || o.Queues != 1 || o.QueuedMsgs != 1 {
		t.Errorf("retained %d (%d bytes), queues %d with %d messages", o.Retained, o.RetainedBytes, o.Queues, o.QueuedMsgs)
	}
	if o.Totals.MsgsIn < 2 || o.Totals.BytesIn == 0 {
		t.Errorf("totals %+v", o.Totals)
	}
	if o.Store == nil || !strings.HasSuffix(o.Store.Path, "duplex.db") || o.Store.FileSize <= 0 {
		t.Errorf("store %+v", o.Store)
	}
	if o.Admission.MaxConnections == 0 {
		t.Errorf("admission %+v", o.Admission)
	}
	// The rates are those of the 1-second sampler's latest sample.
	for range 20 {
		m.publish("ov/rate", "0123456789", 0, false)
	}
	eventually(t, "rates", func() error {
		var o Overview
		s.get("/api/v1/overview", &o)
		if o.Rates.MsgsIn <= 0 || o.Rates.BytesIn <= 0 {
			return fmt.Errorf("rates %+v", o.Rates)
		}
		return nil
	})
	// Without a store: no store object at all.
	bare := startV1(t, func(c *Config) { c.Store = nil })
	_, b := bare.do("GET", "/api/v1/overview", "")
	if strings.Contains(string(b), `"store"`) || !strings.Contains(string(b), `"by_protocol":[]`) {
		t.Errorf("bare overview: %s", b)
	}
	s.wantMethodNotAllowed("POST", "/api/v1/overview")
}

// TestV1OverviewAuthFailures: connections refused at login, all
// protocols together.
func TestV1OverviewAuthFailures(t *testing.T) {
	s := startV1Broker(t, func(c *broker.Config) { c.Authenticator = fakeAuth{} })
	for range 2 {
		if c, err := stomp.Dial("tcp", s.stompAddr, stomp.ConnOpt.Host("/"), stomp.ConnOpt.Login("admin", "wrong"),
			stomp.ConnOpt.Logger(quietStompLog{})); err == nil {
			c.MustDisconnect()
			t.Fatal("a bad password logged in")
		}
	}
	eventually(t, "auth failures", func() error {
		var o Overview
		s.get("/api/v1/overview", &o)
		if o.AuthFailures != 2 {
			return fmt.Errorf("auth_failures %d", o.AuthFailures)
		}
		return nil
	})
}

// wantMethodNotAllowed: a wrong method is 405.
func (s *v1Server) wantMethodNotAllowed(method, path string) {
	s.t.Helper()
	if code, b := s.do(method, path, ""); code != http.StatusMethodNotAllowed {
		s.t.Errorf("%s %s: %d %s, want 405", method, path, code, b)
	}
}

// TestV1Clients: clients list connected and offline sessions, page by
// page in id order (limit=1 visits each once), sort and filter; a client
// has its subscriptions; an unknown one is 404.
func TestV1Clients(t *testing.T) {
	s := startV1(t)
	const n = 5
	var ids []string
	for i := range n {
		id := fmt.Sprintf("cl/%02d", i) // a slash: path values are escaped
		m := s.mqtt(id, 0)
		m.subscribe("cl/"+id+"/#", 1)
		ids = append(ids, id)
	}
	busy := s.mqtt("cl-busy", 0)
	for range 3 {
		busy.publish("cl/elsewhere", "x", 0, false)
	}
	ids = append(ids, "cl-busy")
	off := s.mqtt("cl-offline", 3600)
	off.close()
	ids = append(ids, "cl-offline")
	slices.Sort(ids)
	eventually(t, "cl-offline offline", func() error {
		var c ClientDetail
		s.get("/api/v1/clients/cl-offline", &c)
		if c.Online {
			return fmt.Errorf("still online")
		}
		return nil
	})

	all := v1Walk[Client](s, "/api/v1/clients", 1)
	var got []string
	for _, c := range all {
		got = append(got, c.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("limit=1 walk: %q, want %q", got, ids)
	}
	for _, c := range all {
		if c.Protocol != "mqtt" || c.ClientID != c.ID || c.Version == "" {
			t.Errorf("client %+v", c)
		}
		if c.ID == "cl-offline" {
			if c.Online || !c.Persistent || c.ExpirySeconds != 3600 || c.ExpiresAt == "" || c.Transport != "" {
				t.Errorf("offline client %+v", c)
			}
			continue
		}
		if !c.Online || c.Transport != "tcp" || c.ConnectedAt == "" || c.KeepAliveSeconds != 30 ||
			!strings.HasPrefix(c.RemoteAddr, "127.0.0.1:") || c.Slow != "ok" {
			t.Errorf("online client %+v", c)
		}
	}
	if got := v1Walk[Client](s, "/api/v1/clients?q=cl/0", 2); len(got) != n {
		t.Errorf("q=cl/0: %d clients", len(got))
	}
	var online, offline Page[Client]
	s.get("/api/v1/clients?online=true", &online)
	s.get("/api/v1/clients?online=false", &offline)
	if len(online.Items) != n+1 || len(offline.Items) != 1 || offline.Items[0].ID != "cl-offline" {
		t.Errorf("online %d offline %+v", len(online.Items), offline.Items)
	}
	var bySent Page[Client]
	s.get("/api/v1/clients?sort=-msgs_in&limit=1", &bySent)
	if len(bySent.Items) != 1 || bySent.Items[0].ID != "cl-busy" || bySent.Items[0].MsgsIn < 3 || bySent.NextCursor == "" {
		t.Errorf("sort=-msgs_in: %+v", bySent)
	}
	if sorted := v1Walk[Client](s, "/api/v1/clients?sort=-msgs_in", 2); len(sorted) != len(ids) || sorted[0].ID != "cl-busy" {
		t.Errorf("sorted walk: %d clients, first %+v", len(sorted), sorted[0])
	}

	var d ClientDetail
	s.get("/api/v1/clients/"+url.PathEscape("cl/03"), &d)
	if d.ID != "cl/03" || d.Client.Subscriptions != 1 || len(d.Subscriptions) != 1 {
		t.Fatalf("detail %+v", d)
	}
	if sub := d.Subscriptions[0]; sub.Filter != "cl/cl/03/#" || sub.QoS != 1 || sub.Kind != "topic" || sub.SessionID != "cl/03" {
		t.Errorf("detail subscription %+v", sub)
	}
	s.wantError("GET", "/api/v1/clients/nobody", "", 404)
	s.wantError("GET", "/api/v1/clients?sort=color", "", 400)
	s.wantError("GET", "/api/v1/clients?online=maybe", "", 400)
	s.wantMethodNotAllowed("DELETE", "/api/v1/clients/cl-busy")
}

// TestV1ListParameters: every list endpoint answers bad paging
// parameters with a JSON 400, a cursor past the end with an empty list
// (never null), and limit=1000 is fine.
func TestV1ListParameters(t *testing.T) {
	s := startV1(t)
	m := s.mqtt("lp", 0)
	m.subscribe("lp/a", 0)
	m.publish("lp/a", "r", 0, true)
	for _, ep := range []string{"clients", "sessions", "subscriptions", "topics", "shares", "queues", "retained"} {
		path := "/api/v1/" + ep
		for _, bad := range []string{"limit=0", "limit=1001", "limit=abc", "limit=-1", "limit=", "limit=1.5",
			"cursor=" + strings.Repeat("c", maxV1Cursor+1), "q=" + strings.Repeat("q", maxV1Query+1), "cursor=%ff"} {
			s.wantError("GET", path+"?"+bad, "", 400)
		}
		var p Page[map[string]any]
		s.get(path+"?limit=1000", &p)
		_, b := s.do("GET", path+"?cursor="+url.QueryEscape("\U0010FFFF"), "")
		if !strings.Contains(string(b), `"items":[]`) || strings.Contains(string(b), "next_cursor") {
			t.Errorf("%s past the end: %s", ep, b)
		}
		_, b = s.do("GET", path+"?q=nothing-matches-this", "")
		if ep != "topics" && !strings.Contains(string(b), `"items":[]`) {
			t.Errorf("%s empty: %s", ep, b)
		}
		s.wantMethodNotAllowed("PUT", path)
	}
	s.wantError("GET", "/api/v1/topics?prefix=%ff", "", 400)
	// Malformed names in paths: not UTF-8, or too long.
	long := url.PathEscape(strings.Repeat("n", maxV1Cursor+1))
	for _, name := range []string{"%ff", long} {
		s.wantError("GET", "/api/v1/clients/"+name, "", 400)
		s.wantError("POST", "/api/v1/clients/"+name+"/disconnect", "", 400)
		s.wantError("DELETE", "/api/v1/sessions/"+name, "", 400)
		s.wantError("POST", "/api/v1/queues/"+name+"/purge", "", 400)
		s.wantError("DELETE", "/api/v1/queues/"+name, "", 400)
	}
	s.wantError("GET", "/api/v1/queues?kind=topic", "", 400)
}

// TestV1Sessions: persistent sessions only, online and offline, with
// their backlog; DELETE removes one (and disconnects it when connected);
// an unknown one is 404.
func TestV1Sessions(t *testing.T) {
	s := startV1(t)
	s.mqtt("ss-clean", 0)
	kept := s.mqtt("ss-kept", 3600)
	kept.subscribe("ss/news", 1)
	kept.close()
	live := s.mqtt("ss-live", 600)
	live.subscribe("ss/news", 1)
	eventually(t, "ss-kept offline", func() error {
		var p Page[Client]
		s.get("/api/v1/sessions?online=false", &p)
		if len(p.Items) != 1 || p.Items[0].ID != "ss-kept" {
			return fmt.Errorf("offline sessions %+v", p.Items)
		}
		return nil
	})
	s.action("POST", "/api/v1/publish", `{"topic":"ss/news","payload":"while away","qos":1}`, 200)
	live.next()
	eventually(t, "backlog", func() error {
		var p Page[Client]
		s.get("/api/v1/sessions", &p)
		if len(p.Items) != 2 || p.Items[0].ID != "ss-kept" || p.Items[1].ID != "ss-live" {
			return fmt.Errorf("sessions %+v", p.Items)
		}
		if k := p.Items[0]; !k.Persistent || k.Online || k.Backlog != 1 || k.Subscriptions != 1 {
			return fmt.Errorf("kept %+v", k)
		}
		if l := p.Items[1]; !l.Persistent || !l.Online || l.ExpirySeconds != 600 {
			return fmt.Errorf("live %+v", l)
		}
		return nil
	})
	if got := v1Walk[Client](s, "/api/v1/sessions?sort=-id", 1); len(got) != 2 || got[0].ID != "ss-live" || got[1].ID != "ss-kept" {
		t.Errorf("sessions sort=-id %+v", got)
	}
	if got := v1Walk[Client](s, "/api/v1/sessions?online=true", 1); len(got) != 1 || got[0].ID != "ss-live" {
		t.Errorf("online sessions %+v", got)
	}

	s.action("DELETE", "/api/v1/sessions/ss-kept", "", 200)
	s.wantError("GET", "/api/v1/clients/ss-kept", "", 404)
	s.wantError("DELETE", "/api/v1/sessions/ss-kept", "", 404)
	// A connected one is disconnected, then gone.
	s.action("DELETE", "/api/v1/sessions/ss-live", "", 200)
	select {
	case <-live.c.Done():
	case <-time.After(v1Wait):
		t.Fatal("deleted session still connected")
	}
	eventually(t, "ss-live gone", func() error {
		if code, _ := s.do("GET", "/api/v1/clients/ss-live", ""); code != 404 {
			return fmt.Errorf("GET ss-live: %d", code)
		}
		return nil
	})
	var p Page[Client]
	s.get("/api/v1/sessions", &p)
	if len(p.Items) != 0 {
		t.Errorf("sessions left %+v", p.Items)
	}
	s.wantError("DELETE", "/api/v1/sessions/"+url.PathEscape(strings.Repeat("x", maxSessionID+1)), "", 400)
	s.wantMethodNotAllowed("GET", "/api/v1/sessions/ss-clean")
}

// TestV1SubscriptionsTopicsShares: the subscription list, the topic tree
// level by level and the share groups.
func TestV1SubscriptionsTopicsShares(t *testing.T) {
	s := startV1(t)
	a := s.mqtt("st-a", 0)
	a.subscribe("sensors/+/temp", 1)
	a.subscribe("sensors/lab/hum", 0)
	b := s.mqtt("st-b", 0)
	b.subscribe("$share/workers/jobs/#", 1)
	c := s.mqtt("st-c", 0)
	c.subscribe("$share/workers/jobs/#", 1)
	sc := s.stomp()
	if _, err := sc.Subscribe("/queue/st-work", stomp.AckClient); err != nil {
		t.Fatal(err)
	}
	v1Barrier(t, sc)

	subs := v1Walk[Subscription](s, "/api/v1/subscriptions", 1)
	if len(subs) != 5 {
		t.Fatalf("%d subscriptions: %+v", len(subs), subs)
	}
	kinds := map[string]int{}
	for _, sub := range subs {
		kinds[sub.Kind]++
		switch {
		case sub.Kind == "queue" && (sub.Queue != "st-work" || sub.Ack != "client"):
			t.Errorf("queue subscription %+v", sub)
		case sub.Kind == "share" && (sub.Group != "workers" || sub.Filter != "jobs/#"):
			t.Errorf("share subscription %+v", sub)
		}
	}
	if kinds["topic"] != 2 || kinds["share"] != 2 || kinds["queue"] != 1 {
		t.Errorf("kinds %v", kinds)
	}
	var q Page[Subscription]
	s.get("/api/v1/subscriptions?q=st-a", &q)
	if len(q.Items) != 2 {
		t.Errorf("q=st-a: %+v", q.Items)
	}

	var root Page[TopicNode]
	s.get("/api/v1/topics", &root)
	paths := map[string]TopicNode{}
	for _, n := range root.Items {
		paths[n.Path] = n
	}
	if n := paths["sensors"]; n.Total != 2 || n.Children != 2 || n.Subscriptions != 0 {
		t.Errorf("root %+v", root.Items)
	}
	level := v1Walk[TopicNode](s, "/api/v1/topics?prefix=sensors", 1)
	if len(level) != 2 || level[0].Path != "sensors/+" || level[1].Path != "sensors/lab" {
		t.Errorf("sensors level %+v", level)
	}

	var shares Page[ShareGroup]
	s.get("/api/v1/shares", &shares)
	if len(shares.Items) != 1 || shares.Items[0] != (ShareGroup{Group: "workers", Filter: "jobs/#", Members: 2}) {
		t.Errorf("shares %+v", shares.Items)
	}
	s.get("/api/v1/shares?q=nobody", &shares)
	if len(shares.Items) != 0 {
		t.Errorf("shares q=nobody %+v", shares.Items)
	}
}
