package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
	dstomp "github.com/duplexmq/duplex/subprotocol/stomp"
)

// fakeAuth knows admin/secret (admin), bob/pw (not admin), the tokens
// "tok-admin" and "tok-bob", and bans the user "banned".
type fakeAuth struct{ seen chan broker.Credentials }

func (a fakeAuth) Authenticate(_ context.Context, c broker.Credentials) (broker.Identity, error) {
	if a.seen != nil {
		a.seen <- c
	}
	switch {
	case c.Login == "admin" && c.Passcode == "secret", c.Token == "tok-admin":
		return broker.Identity{Name: "admin", Admin: true}, nil
	case c.Login == "bob" && c.Passcode == "pw", c.Token == "tok-bob":
		return broker.Identity{Name: "bob"}, nil
	case c.Login == "banned":
		return broker.Identity{}, broker.ErrBanned
	case c.Login == "broken":
		return broker.Identity{}, fmt.Errorf("password file unreadable")
	}
	return broker.Identity{}, broker.ErrBadCredentials
}

func apiGet(t *testing.T, url string, set func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// TestAdminAuth: with AdminAuth set, /api/* needs an admin login (Basic or
// Bearer): 401 with a challenge without one or with bad credentials, 403
// for a non-admin or a banned source; /healthz and WebSocket clients are
// not affected.
func TestAdminAuth(t *testing.T) {
	seen := make(chan broker.Credentials, 64)
	s := newGW(t, Config{AdminAuth: fakeAuth{seen: seen}, TrustedProxies: trustLoopback})
	ws, _, _ := dialWS(t, s.wsURL(), "alpha.v1", nil)
	cases := []struct {
		name string
		set  func(*http.Request)
		want int
	}{
		{"none", nil, 401},
		{"wrong password", basic("admin", "nope"), 401},
		{"unknown user", basic("mallory", "x"), 401},
		{"bad token", bearer("forged"), 401},
		{"not admin", basic("bob", "pw"), 403},
		{"not admin token", bearer("tok-bob"), 403},
		{"banned", basic("banned", "x"), 403},
		{"internal error", basic("broken", "x"), 500},
		{"admin", basic("admin", "secret"), 200},
		{"admin token", bearer("tok-admin"), 200},
		{"other scheme", func(r *http.Request) { r.Header.Set("Authorization", "Digest x") }, 401},
	}
	for _, c := range cases {
		for _, path := range []string{"/api/stats", "/api/sessions"} {
			resp, body := apiGet(t, s.hs.URL+path, c.set)
			if resp.StatusCode != c.want {
				t.Errorf("%s %s: %d %q, want %d", c.name, path, resp.StatusCode, body, c.want)
			}
			if c.want == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="duplex"` {
				t.Errorf("%s: WWW-Authenticate %q", c.name, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	close(seen)
	for c := range seen {
		if c.Protocol != "http" || !strings.HasPrefix(c.RemoteAddr, "127.0.0.1:") {
			t.Errorf("credentials %+v", c)
		}
	}
	// The address after trusted proxies reaches the authenticator.
	got := make(chan broker.Credentials, 1)
	p := newGW(t, Config{AdminAuth: fakeAuth{seen: got}, TrustedProxies: trustLoopback})
	apiGet(t, p.hs.URL+"/api/stats", func(r *http.Request) {
		r.SetBasicAuth("admin", "secret")
		r.Header.Set("X-Forwarded-For", "198.51.100.4")
	})
	if c := <-got; c.RemoteAddr != "198.51.100.4:0" || c.Login != "admin" || c.Passcode != "secret" {
		t.Errorf("credentials %+v", c)
	}

	if resp, _ := apiGet(t, s.hs.URL+"/healthz", nil); resp.StatusCode != 200 {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	mustEcho(t, ws, "unaffected")
}

// TestSeparateAdmin: with SeparateAdmin the public handler has no /api/,
// the admin handler has it (with its auth) and /healthz.
func TestSeparateAdmin(t *testing.T) {
	s := newGW(t, Config{SeparateAdmin: true, AdminAuth: fakeAuth{}})
	if resp, _ := apiGet(t, s.hs.URL+"/api/stats", basic("admin", "secret")); resp.StatusCode != 404 {
		t.Errorf("public /api/stats: %d, want 404", resp.StatusCode)
	}
	ah := httptest.NewServer(s.gw.AdminHandler())
	defer ah.Close()
	if resp, _ := apiGet(t, ah.URL+"/api/stats", nil); resp.StatusCode != 401 {
		t.Errorf("admin without login: %d", resp.StatusCode)
	}
	resp, body := apiGet(t, ah.URL+"/api/stats", basic("admin", "secret"))
	var st APIStats
	if err := json.Unmarshal([]byte(body), &st); resp.StatusCode != 200 || err != nil || st.Admission.MaxConnections == 0 {
		t.Errorf("admin /api/stats: %d %q %v", resp.StatusCode, body, err)
	}
	if !strings.Contains(body, `"Sessions": 0`) || !strings.Contains(body, `"RefusedPerIP": 0`) {
		t.Errorf("stats fields: %s", body)
	}
	if resp, _ := apiGet(t, ah.URL+"/healthz", nil); resp.StatusCode != 200 {
		t.Errorf("admin /healthz: %d", resp.StatusCode)
	}
	if resp, _ := apiGet(t, ah.URL+"/ws", nil); resp.StatusCode != 404 {
		t.Errorf("admin /ws: %d, want 404", resp.StatusCode)
	}
}

// TestSessionsPagination: /api/sessions returns pages of at most limit
// sessions with a cursor to the next; following it lists every session
// once; bad parameters are 400.
func TestSessionsPagination(t *testing.T) {
	router := broker.New(broker.Config{}, nil)
	gw := New(Config{}, router, subprotocol.Registry{echoProtocol{"alpha"}})
	hs := httptest.NewServer(gw)
	defer hs.Close()
	const n = 7
	for i := range n {
		if _, err := router.Open(broker.SessionID(fmt.Sprintf("client-%02d", i)), broker.SessionOptions{Protocol: "mqtt"}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		resp, body := apiGet(t, hs.URL+"/api/sessions?limit=3&cursor="+cursor, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		var page SessionsPage
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Sessions) > 3 {
			t.Fatalf("page of %d", len(page.Sessions))
		}
		for _, si := range page.Sessions {
			if seen[si.ID] {
				t.Errorf("%s twice", si.ID)
			}
			seen[si.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > n {
			t.Fatal("no end")
		}
	}
	if len(seen) != n || pages != 3 {
		t.Errorf("%d sessions in %d pages", len(seen), pages)
	}
	// The default limit, a filter, and an empty page as [] not null.
	_, body := apiGet(t, hs.URL+"/api/sessions", nil)
	if !strings.Contains(body, "client-06") {
		t.Errorf("default page: %s", body)
	}
	_, body = apiGet(t, hs.URL+"/api/sessions?q=client-0", nil)
	var page SessionsPage
	_ = json.Unmarshal([]byte(body), &page)
	if len(page.Sessions) != n {
		t.Errorf("q filter: %s", body)
	}
	_, body = apiGet(t, hs.URL+"/api/sessions?q=nobody", nil)
	if !strings.Contains(body, `"sessions": []`) {
		t.Errorf("empty page: %s", body)
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "limit=-1", "cursor=" + strings.Repeat("c", 2000)} {
		if resp, body := apiGet(t, hs.URL+"/api/sessions?"+bad, nil); resp.StatusCode != 400 {
			t.Errorf("%s: %d %q, want 400", bad, resp.StatusCode, body)
		}
	}
	if resp, _ := apiGet(t, hs.URL+"/api/sessions?limit=1000", nil); resp.StatusCode != 200 {
		t.Errorf("limit=1000: %d", resp.StatusCode)
	}
}

// TestStatsProtocols: /api/stats carries each protocol's counters.
func TestStatsProtocols(t *testing.T) {
	s := startTCPServer(t, dstomp.Config{}, Config{})
	_, body := apiGet(t, s.hs.URL+"/api/stats", nil)
	var st APIStats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Protocols["stomp"]; !ok {
		t.Errorf("no stomp counters: %s", body)
	}
}

// TestQueuesPagination: /api/queues pages through the queues in name
// order with a cursor, each once, with a name filter; /api/stats counts
// them without listing them (no request grows with what clients create);
// bad parameters are 400.
func TestQueuesPagination(t *testing.T) {
	router := broker.New(broker.Config{}, nil)
	gw := New(Config{}, router, subprotocol.Registry{echoProtocol{"alpha"}})
	hs := httptest.NewServer(gw)
	defer hs.Close()
	const n = 5
	for i := range n {
		m := &broker.Message{Queue: fmt.Sprintf("jobs-%02d", i), Payload: []byte("x"), QoS: broker.AtLeastOnce}
		if err := router.Publish(context.Background(), nil, m); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	cursor := ""
	for range n + 1 {
		resp, body := apiGet(t, hs.URL+"/api/queues?limit=2&cursor="+cursor, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		var page QueuesPage
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Queues) > 2 {
			t.Fatalf("page of %d", len(page.Queues))
		}
		for _, q := range page.Queues {
			if q.Ready != 1 {
				t.Errorf("%s: ready %d, want 1", q.Name, q.Ready)
			}
			names = append(names, q.Name)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if want := "jobs-00 jobs-01 jobs-02 jobs-03 jobs-04"; strings.Join(names, " ") != want {
		t.Errorf("queues over the pages: %q, want %q", names, want)
	}
	_, body := apiGet(t, hs.URL+"/api/queues?q=jobs-03", nil)
	var page QueuesPage
	if err := json.Unmarshal([]byte(body), &page); err != nil || len(page.Queues) != 1 || page.Queues[0].Name != "jobs-03" {
		t.Errorf("q filter: %s", body)
	}
	_, body = apiGet(t, hs.URL+"/api/stats", nil)
	var st APIStats
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Queues != n || st.QueueReady != n {
		t.Errorf("/api/stats queues %d ready %d (%v), want %d and %d", st.Queues, st.QueueReady, err, n, n)
	}
	if resp, body := apiGet(t, hs.URL+"/api/queues?limit=1001", nil); resp.StatusCode != 400 {
		t.Errorf("limit=1001: %d %q, want 400", resp.StatusCode, body)
	}
}
