package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/duplexmq/duplex/broker"
)

// clock is a fake clock; waits are recorded, not slept.
type clock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Wait(_ context.Context, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestService(t *testing.T, cfg Config) (*Service, *clock, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	s, err := New(cfg, slog.New(slog.NewTextHandler(&syncWriter{w: &buf}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: t0}
	s.now, s.wait = c.Now, c.Wait
	return s, c, &buf
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func boolp(b bool) *bool { return &b }

func creds(login, pass string) broker.Credentials {
	return broker.Credentials{Login: login, Passcode: pass, RemoteAddr: "192.0.2.7:40000", Protocol: "mqtt", Transport: "tcp"}
}

// passwdFile writes alice (cost 4, "secret") and generates bob ("hunter2",
// cost 4 to keep -race fast; TestSetAndDeletePassword covers the default).
func passwdFile(t *testing.T) string {
	t.Helper()
	p := writeFile(t, "passwd", "alice:"+cheapHash+"\n")
	if err := setPassword(p, "bob", "hunter2", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServicePasswords(t *testing.T) {
	s, c, logs := newTestService(t, Config{PasswordFile: passwdFile(t), Admins: []string{"bob"}, Groups: map[string][]string{"ops": {"alice"}}})
	ctx := context.Background()
	id, err := s.Authenticate(ctx, creds("alice", "secret"))
	if err != nil || id.Name != "alice" || id.Admin || id.Anonymous || len(id.Groups) != 1 || id.Groups[0] != "ops" {
		t.Fatalf("alice: %+v %v", id, err)
	}
	id, err = s.Authenticate(ctx, creds("bob", "hunter2"))
	if err != nil || id.Name != "bob" || !id.Admin {
		t.Fatalf("bob: %+v %v", id, err)
	}
	for _, cr := range []broker.Credentials{creds("alice", "xyzzy-pass"), creds("mallory", "secret"), creds("alice", ""), creds("", "secret")} {
		_, err := s.Authenticate(ctx, cr)
		if !errors.Is(err, broker.ErrBadCredentials) {
			t.Errorf("%q/%q: %v, want ErrBadCredentials", cr.Login, cr.Passcode, err)
		}
	}
	if st := s.Stats(); st.Failures != 4 || st.Successes != 2 || st.Users != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Each failure waited, the delay doubling.
	if len(c.waits) != 4 || c.waits[0] != DefaultDelay || c.waits[3] != 8*DefaultDelay {
		t.Fatalf("waits %v", c.waits)
	}
	// One log line for the source in 10 s, never the password.
	out := logs.String()
	if strings.Count(out, "login failed") != 1 || strings.Contains(out, "xyzzy") || !strings.Contains(out, "source=192.0.2.7") || !strings.Contains(out, "user=alice") {
		t.Fatalf("log:\n%s", out)
	}
	c.advance(11 * time.Second)
	s.Authenticate(ctx, creds("alice", "wrong"))
	if out := logs.String(); !strings.Contains(out, "suppressed=3") {
		t.Fatalf("no suppressed count:\n%s", out)
	}
}

func TestServiceBan(t *testing.T) {
	s, c, _ := newTestService(t, Config{PasswordFile: passwdFile(t), Ban: BanConfig{After: 3, BanTime: time.Minute}})
	ctx := context.Background()
	for i := range 3 {
		if _, err := s.Authenticate(ctx, creds("alice", "wrong")); !errors.Is(err, broker.ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Banned: even the right password is refused, at once.
	nw := len(c.waits)
	if _, err := s.Authenticate(ctx, creds("alice", "secret")); !errors.Is(err, broker.ErrBanned) {
		t.Fatalf("banned source: %v", err)
	}
	if len(c.waits) != nw {
		t.Fatal("a banned source waited")
	}
	// Another source is not banned; IPv6 sources share their /64.
	other := creds("alice", "secret")
	other.RemoteAddr = "[2001:db8::1]:5000"
	if _, err := s.Authenticate(ctx, other); err != nil {
		t.Fatalf("other source: %v", err)
	}
	if st := s.Stats(); st.Bans != 1 || st.Banned != 1 || st.Sources != 1 {
		t.Fatalf("stats %+v", st)
	}
	c.advance(time.Minute)
	if _, err := s.Authenticate(ctx, creds("alice", "secret")); err != nil {
		t.Fatalf("after the ban: %v", err)
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:1":               "192.0.2.7",
		"[::ffff:192.0.2.7]:1":      "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:80": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":         "fe80::/64",
		"192.0.2.7":                 "192.0.2.7",
		"pipe":                      "pipe",
	} {
		if got := sourceKey(in); got != want {
			t.Errorf("sourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAnonymousPolicy is the matrix of issue 8 "safe default": anonymous is
// allowed by default only when no authentication method is configured.
func TestAnonymousPolicy(t *testing.T) {
	pw := passwdFile(t)
	secret := writeFile(t, "secret", strings.Repeat("k", 48))
	cases := []struct {
		name      string
		cfg       Config
		anonOK    bool
		anonAdmin bool
	}{
		{"zero config", Config{}, true, true},
		{"zero config, allow_anonymous false", Config{AllowAnonymous: boolp(false)}, false, false},
		{"password file", Config{PasswordFile: pw}, false, false},
		{"password file, allow_anonymous true", Config{PasswordFile: pw, AllowAnonymous: boolp(true)}, true, false},
		{"jwt", Config{JWT: JWTConfig{SecretFile: secret}}, false, false},
		{"certificates", Config{CertAuth: true}, false, false},
		{"certificates, allow_anonymous true", Config{CertAuth: true, AllowAnonymous: boolp(true)}, true, false},
		{"acl only", Config{Rules: []Rule{{Action: ActionAll, Topic: "#"}}}, true, true},
	}
	for _, c := range cases {
		s, _, _ := newTestService(t, c.cfg)
		if s.AnonymousAllowed() != c.anonOK {
			t.Errorf("%s: AnonymousAllowed %v", c.name, s.AnonymousAllowed())
		}
		id, err := s.Authenticate(context.Background(), creds("", ""))
		if c.anonOK {
			if err != nil || !id.Anonymous || id.Admin != c.anonAdmin || id.Name != "" {
				t.Errorf("%s: %+v %v", c.name, id, err)
			}
		} else if !errors.Is(err, broker.ErrNotAuthorized) {
			t.Errorf("%s: %v, want ErrNotAuthorized", c.name, err)
		}
	}
	// Zero config: a login cannot be checked and is ignored (clients that
	// always send login/passcode keep working), the client is anonymous.
	s, _, _ := newTestService(t, Config{})
	id, err := s.Authenticate(context.Background(), creds("guest", "guest"))
	if err != nil || !id.Anonymous || id.Name != "" || !id.Admin {
		t.Fatalf("zero config with a login: %+v %v", id, err)
	}
	if s.AuthEnabled() {
		t.Fatal("AuthEnabled with zero config")
	}
}

func TestServiceCertificates(t *testing.T) {
	cc := func(login string, names ...string) broker.Credentials {
		c := creds(login, "")
		c.CertNames, c.Transport = names, "tls"
		return c
	}
	ctx := context.Background()
	s, _, _ := newTestService(t, Config{CertAuth: true, PasswordFile: passwdFile(t), Admins: []string{"dev1"}})
	id, err := s.Authenticate(ctx, cc("", "dev1", "dev1.example.com"))
	if err != nil || id.Name != "dev1" || !id.Admin {
		t.Fatalf("cn: %+v %v", id, err)
	}
	if id, err = s.Authenticate(ctx, cc("dev1", "dev1")); err != nil || id.Name != "dev1" {
		t.Fatalf("login repeating the cn: %+v %v", id, err)
	}
	// A login that is not the certificate's name goes to the password file.
	if _, err = s.Authenticate(ctx, cc("alice", "dev1")); !errors.Is(err, broker.ErrBadCredentials) {
		t.Fatalf("login alice without a password: %v", err)
	}
	if _, err = s.Authenticate(ctx, cc("", "")); !errors.Is(err, broker.ErrBadCredentials) {
		t.Fatalf("empty cn: %v", err)
	}
	if _, err = s.Authenticate(ctx, cc("", "bad\nname")); !errors.Is(err, broker.ErrBadCredentials) {
		t.Fatalf("control character in the cn: %v", err)
	}
	s, _, _ = newTestService(t, Config{CertAuth: true, CertUsername: "san"})
	if id, err = s.Authenticate(ctx, cc("", "CN", "", "dev1.example.com")); err != nil || id.Name != "dev1.example.com" {
		t.Fatalf("san: %+v %v", id, err)
	}
	if _, err = s.Authenticate(ctx, cc("", "only-cn")); !errors.Is(err, broker.ErrBadCredentials) {
		t.Fatalf("san without SANs: %v", err)
	}
	if _, err := New(Config{CertUsername: "dn"}, nil); err == nil || !strings.Contains(err.Error(), "cert_username") {
		t.Fatalf("bad cert_username: %v", err)
	}
}

func signHS(t *testing.T, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServiceJWT(t *testing.T) {
	key := []byte(strings.Repeat("k", 48))
	secret := writeFile(t, "secret", string(key))
	cfg := DefaultJWTConfig()
	cfg.SecretFile = secret
	s, c, logs := newTestService(t, Config{JWT: cfg, PasswordFile: passwdFile(t), Groups: map[string][]string{"ops": {"tok"}}})
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Unix()
	tok := signHS(t, key, jwt.MapClaims{"sub": "tok", "exp": exp, "groups": []string{"g1"}, "admin": true,
		"acl": []any{
			map[string]any{"permission": "allow", "action": "publish", "topic": "t/%u/#"},
			map[string]any{"permission": "deny", "action": "all", "topic": "t/tok/secret"},
		}})
	// As the passcode (MQTT password, STOMP passcode), with or without the
	// matching login, and as the access_token parameter.
	for _, cr := range []broker.Credentials{creds("", tok), creds("tok", tok), {Token: tok, RemoteAddr: "192.0.2.7:1"}} {
		id, err := s.Authenticate(ctx, cr)
		if err != nil || id.Name != "tok" || !id.Admin || len(id.Groups) != 2 || id.Expires.IsZero() {
			t.Fatalf("token: %+v %v", id, err)
		}
		if _, ok := id.Rules.(*ACL); !ok {
			t.Fatalf("token rules not compiled: %T", id.Rules)
		}
	}
	id, _ := s.Authenticate(ctx, creds("", tok))
	for _, cs := range []struct {
		op   broker.Op
		dest string
		want bool
	}{
		{broker.OpPublish, "t/tok/x", true},
		{broker.OpPublish, "t/tok/secret", false},
		{broker.OpPublish, "t/other/x", false},
		{broker.OpSubscribe, "t/tok/x", false}, // token rules present: nothing decides -> denied
		{broker.OpSubscribe, "$SYS/x", true},   // admin claim
	} {
		if got := s.Allow(id, "c", cs.op, cs.dest); got != cs.want {
			t.Errorf("token Allow(%v, %q) = %v, want %v", cs.op, cs.dest, got, cs.want)
		}
	}
	// The same rules as a plain []Rule (an identity not made here).
	id.Rules = []Rule{{Action: ActionPublish, Topic: "t/%u/#"}}
	if !s.Allow(id, "c", broker.OpPublish, "t/tok/x") || s.Allow(id, "c", broker.OpPublish, "u") {
		t.Fatal("[]Rule token rules")
	}
	bad := []broker.Credentials{
		creds("someone-else", tok),
		creds("", signHS(t, []byte(strings.Repeat("x", 48)), jwt.MapClaims{"sub": "tok", "exp": exp})),
		creds("", signHS(t, key, jwt.MapClaims{"sub": "tok", "exp": time.Now().Add(-time.Hour).Unix()})),
		{Token: "not-a-token", RemoteAddr: "192.0.2.7:1"},
	}
	for i, cr := range bad {
		if _, err := s.Authenticate(ctx, cr); !errors.Is(err, broker.ErrBadCredentials) {
			t.Errorf("bad token %d: %v", i, err)
		}
	}
	if strings.Contains(logs.String(), tok[:20]) {
		t.Fatal("token logged")
	}
	if len(c.waits) != len(bad) {
		t.Fatalf("%d waits for %d failures", len(c.waits), len(bad))
	}
	// A password still works next to JWT.
	if _, err := s.Authenticate(ctx, creds("alice", "secret")); err != nil {
		t.Fatal(err)
	}
	// A token without JWT configured is refused.
	s2, _, _ := newTestService(t, Config{PasswordFile: passwdFile(t)})
	if _, err := s2.Authenticate(ctx, broker.Credentials{Token: tok}); !errors.Is(err, broker.ErrBadCredentials) {
		t.Fatalf("token without JWT: %v", err)
	}
}

func TestServiceAllow(t *testing.T) {
	acl := writeFile(t, "acl", "user alice\ntopic readwrite home/alice/#\ngroup ops\ntopic read logs/#\n")
	s, _, _ := newTestService(t, Config{ACLFile: acl, Rules: []Rule{{Access: Deny, Action: ActionAll, Topic: "home/+/private"}}, Groups: map[string][]string{"ops": {"bob"}}})
	a := broker.Identity{Name: "alice"}
	b := broker.Identity{Name: "bob", Groups: []string{"ops"}}
	for _, c := range []struct {
		id   broker.Identity
		op   broker.Op
		dest string
		want bool
	}{
		{a, broker.OpPublish, "home/alice/x", true},
		{a, broker.OpPublish, "home/alice/private", false}, // [[acl]] deny
		{a, broker.OpSubscribe, "logs/x", false},
		{b, broker.OpSubscribe, "logs/x", true},
		{b, broker.OpPublish, "logs/x", false},
		{a, broker.OpPublish, "other", false},
		{broker.Identity{Name: "root", Admin: true}, broker.OpSubscribe, "$SYS/#", true},
	} {
		if got := s.Allow(c.id, "c", c.op, c.dest); got != c.want {
			t.Errorf("Allow(%s, %v, %q) = %v, want %v", c.id.Name, c.op, c.dest, got, c.want)
		}
	}
	if st := s.Stats(); st.Rules != 3 {
		t.Fatalf("rules %d", st.Rules)
	}
	// No ACL configured: everything but $SYS.
	s, _, _ = newTestService(t, Config{})
	if !s.Allow(a, "c", broker.OpPublish, "x") || s.Allow(a, "c", broker.OpSubscribe, "$SYS/#") {
		t.Fatal("no ACL")
	}
	anon, _ := s.Authenticate(context.Background(), creds("", ""))
	if !s.Allow(anon, "c", broker.OpSubscribe, "$SYS/#") {
		t.Fatal("zero config: the loopback client is admin")
	}
	if n := testing.AllocsPerRun(100, func() { s.Allow(a, "c", broker.OpPublish, "x/y") }); n != 0 {
		t.Fatalf("Service.Allow allocates %v", n)
	}
}

func TestServiceNewErrors(t *testing.T) {
	dir := t.TempDir()
	badACL := writeFile(t, "acl", "topic read a\nbogus\n")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{PasswordFile: filepath.Join(dir, "missing")}, "password_file:"},
		{Config{ACLFile: filepath.Join(dir, "missing")}, "acl_file:"},
		{Config{ACLFile: badACL}, "acl_file " + badACL + ": acl file line 2"},
		{Config{Rules: []Rule{{Action: ActionAll, Topic: "a/#/b"}}}, "[[acl]]: acl rule 1"},
		{Config{JWT: JWTConfig{SecretFile: filepath.Join(dir, "missing")}}, "secret_file"},
	} {
		_, err := New(c.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestServiceReload(t *testing.T) {
	pw := writeFile(t, "passwd", "alice:"+cheapHash+"\n")
	acl := writeFile(t, "acl", "user alice\ntopic a/#\n")
	s, _, _ := newTestService(t, Config{PasswordFile: pw, ACLFile: acl})
	ctx := context.Background()
	alice := broker.Identity{Name: "alice"}
	g1 := s.Generation()
	if !s.Allow(alice, "c", broker.OpPublish, "a/x") || s.Allow(alice, "c", broker.OpPublish, "b/x") {
		t.Fatal("before reload")
	}
	// New files: carol added, alice's ACL changed.
	os.WriteFile(pw, []byte("alice:"+cheapHash+"\ncarol:"+cheapHash+"\n"), 0o600)
	os.WriteFile(acl, []byte("user alice\ntopic b/#\n"), 0o600)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	g2 := s.Generation()
	if g2 == g1 {
		t.Fatal("generation unchanged")
	}
	if _, err := s.Authenticate(ctx, creds("carol", "secret")); err != nil {
		t.Fatalf("carol after reload: %v", err)
	}
	if s.Allow(alice, "c", broker.OpPublish, "a/x") || !s.Allow(alice, "c", broker.OpPublish, "b/x") {
		t.Fatal("ACL not reloaded")
	}
	// A broken password file: the error names it and the old state stays.
	os.WriteFile(pw, []byte("carol:$7$101$x$y\n"), 0o600)
	err := s.Reload()
	if err == nil || !strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("broken password file: %v", err)
	}
	if s.Generation() != g2 {
		t.Fatal("generation changed on a failed reload")
	}
	if _, err := s.Authenticate(ctx, creds("carol", "secret")); err != nil {
		t.Fatalf("old users lost: %v", err)
	}
	// A broken ACL file likewise.
	os.WriteFile(pw, []byte("alice:"+cheapHash+"\n"), 0o600)
	os.WriteFile(acl, []byte("user alice\ntopic read a/#/x\n"), 0o600)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), acl) {
		t.Fatalf("broken acl file: %v", err)
	}
	if !s.Allow(alice, "c", broker.OpPublish, "b/x") {
		t.Fatal("old ACL lost")
	}
	if st := s.Stats(); st.Reloads != 1 || st.ReloadFailures != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServiceContextEndsDelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An hour-long failure delay ends with the context (a hang here fails
	// by the test timeout).
	sleepCtx(ctx, time.Hour)

	// A login queued for bcrypt when its context ends is abandoned, not
	// counted as a failure.
	s, _, _ := newTestService(t, Config{PasswordFile: writeFile(t, "passwd", "alice:"+cheapHash+"\n")})
	for range cap(s.bcryptSem) {
		s.bcryptSem <- struct{}{}
	}
	_, err := s.Authenticate(ctx, creds("alice", "secret"))
	if err == nil || errors.Is(err, broker.ErrBadCredentials) || !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned login: %v", err)
	}
	if st := s.Stats(); st.Failures != 0 {
		t.Fatalf("abandoned login counted: %+v", st)
	}
}

// TestServiceConcurrent runs Authenticate, Allow and Reload together; run
// with -race.
func TestServiceConcurrent(t *testing.T) {
	pw := writeFile(t, "passwd", "alice:"+cheapHash+"\n")
	acl := writeFile(t, "acl", "user alice\ntopic a/#\n")
	s, _, _ := newTestService(t, Config{PasswordFile: pw, ACLFile: acl, Ban: BanConfig{After: -1}})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				cr := creds("alice", "secret")
				cr.RemoteAddr = fmt.Sprintf("192.0.2.%d:1", g)
				if i%2 == 1 {
					cr.Passcode = "wrong"
				}
				_, err := s.Authenticate(ctx, cr)
				if (err == nil) != (i%2 == 0) {
					errs <- fmt.Errorf("goroutine %d attempt %d: %v", g, i, err)
				}
				if !s.Allow(broker.Identity{Name: "alice"}, "c", broker.OpPublish, "a/b") {
					errs <- fmt.Errorf("Allow refused during reloads")
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := s.Reload(); err != nil {
				errs <- err
			}
			_ = s.Stats()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s.Generation() != 21 {
		t.Fatalf("generation %d after 20 reloads", s.Generation())
	}
}

func TestServiceBadTokenRules(t *testing.T) {
	s, _, _ := newTestService(t, Config{})
	bad := []Rule{{Action: ActionAll, Topic: "a/#/b"}}
	if _, err := s.finish(broker.Identity{Name: "x", Rules: bad}); !errors.Is(err, broker.ErrBadCredentials) {
		t.Fatalf("finish with bad rules: %v", err)
	}
	if s.Allow(broker.Identity{Name: "x", Rules: bad}, "c", broker.OpPublish, "a/c/b") {
		t.Fatal("Allow with uncompilable rules")
	}
	// Present but empty rules: nothing decides, and an ACL is present.
	if s.Allow(broker.Identity{Name: "x", Rules: []Rule{}}, "c", broker.OpPublish, "a") {
		t.Fatal("empty token rules allowed")
	}
	// A nil []Rule is no rules at all.
	if !s.Allow(broker.Identity{Name: "x", Rules: []Rule(nil)}, "c", broker.OpPublish, "a") {
		t.Fatal("nil token rules refused")
	}
}

// BenchmarkServiceAllow is Service.Allow over the 20-rule ACL of
// BenchmarkACLAllow20Rules, for a password user and for a token user whose
// own rules decide first.
func BenchmarkServiceAllow(b *testing.B) {
	s, err := New(Config{Rules: benchRules(), Groups: map[string][]string{"ops": {"alice"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	id, err := s.finish(broker.Identity{Name: "alice"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("password", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Allow(id, "dev1", broker.OpPublish, "users/alice/devices/dev1/temp")
		}
	})
	tid, err := s.finish(broker.Identity{Name: "alice", Rules: []Rule{{Action: ActionPublish, Topic: "t/%u/#"}, {Access: Deny, Action: ActionAll, Topic: "t/%u/secret"}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Allow(tid, "dev1", broker.OpPublish, "users/alice/devices/dev1/temp")
		}
	})
}

func TestServiceWarnsReadablePasswordFile(t *testing.T) {
	p := writeFile(t, "passwd", "alice:"+cheapHash+"\n")
	os.Chmod(p, 0o644)
	_, _, logs := newTestService(t, Config{PasswordFile: p})
	if !strings.Contains(logs.String(), "readable by other users") {
		t.Fatalf("no warning:\n%s", logs)
	}
	os.Chmod(p, 0o600)
	_, _, logs = newTestService(t, Config{PasswordFile: p})
	if logs.Len() != 0 {
		t.Fatalf("warning for a 0600 file:\n%s", logs)
	}
}
