package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker/auth"
	"github.com/duplexmq/duplex/web"
)

// envMap is a lookupEnv over a map, so tests do not read the process
// environment.
func envMap(m map[string]string) lookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var noEnv = envMap(nil)

// writeFile writes a file in a fresh temporary folder and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runCmd runs the command line and returns its exit status and output.
func runCmd(t *testing.T, env lookupEnv, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = exitCode(run(args, env, &out, &errb), &errb)
	return code, out.String(), errb.String()
}

func TestDefaults(t *testing.T) {
	o, err := parseOptions(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.v.Addr != "127.0.0.1:8080" || o.v.Limits.MaxFrameSize != 4<<20 || o.v.Limits.SessionExpiry != 2*time.Hour {
		t.Fatalf("defaults: addr %q max_frame_size %d session_expiry %v", o.v.Addr, o.v.Limits.MaxFrameSize, o.v.Limits.SessionExpiry)
	}
	if o.mqtt.MaxPacketSize != 4<<20+64<<10 || o.web.MaxMessageSize != 4<<20+128<<10 || o.stomp.Limits.MaxBodyLength != 4<<20 {
		t.Fatalf("derived sizes: mqtt %d web %d stomp %d", o.mqtt.MaxPacketSize, o.web.MaxMessageSize, o.stomp.Limits.MaxBodyLength)
	}
	if !o.anonymousAllowed() || !o.adminOpen() || o.checkExposure() != nil {
		t.Fatal("zero config must allow anonymous clients on loopback with the admin API open")
	}
	seenKey, seenFlag := map[string]bool{}, map[string]bool{}
	for _, s := range o.table {
		if seenKey[s.key] || seenFlag[s.flag] {
			t.Errorf("duplicate key %s or flag -%s", s.key, s.flag)
		}
		seenKey[s.key], seenFlag[s.flag] = true, true
		if s.help == "" {
			t.Errorf("%s has no help", s.key)
		}
		if sec := s.section(); sec != "" && !strings.Contains(strings.Join(sections, ","), sec) {
			t.Errorf("%s: section %q not in sections", s.key, sec)
		}
	}
}

// TestPrecedence: defaults < file < DUPLEX_* < flags, key by key.
func TestPrecedence(t *testing.T) {
	cfg := writeFile(t, "duplex.toml", `
addr = "127.0.0.1:9001"
log_level = "warn"
[limits]
max_frame_size = "1MiB"
max_session_queue = 7
[stomp]
heartbeat_min = "5s"
`)
	env := envMap(map[string]string{
		"DUPLEX_CONFIG":            cfg,
		"DUPLEX_LOG_LEVEL":         "error", // env over file
		"DUPLEX_MAX_SESSION_QUEUE": "8",     // env over file, then the flag over env
		"DUPLEX_HEARTBEAT_MIN":     "bogus", // ignored: the flag overrides it
	})
	o, err := parseOptions([]string{"-max-session-queue", "9", "-heartbeat-min=2s"}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ val, src string }{
		"addr":                     {"127.0.0.1:9001", "file"},
		"log_level":                {"error", "env"},
		"limits.max_frame_size":    {"1048576", "file"},
		"limits.max_session_queue": {"9", "flag"},
		"stomp.heartbeat_min":      {"2s", "flag"},
		"mqtt_tcp_addr":            {"127.0.0.1:1883", "default"},
	}
	for key, w := range want {
		s := o.lookup(key)
		if s.String() != w.val || s.src != w.src {
			t.Errorf("%s = %q from %s, want %q from %s", key, s.String(), s.src, w.val, w.src)
		}
	}
	if o.broker.MaxOfflineMsgs != 9 || o.stomp.HeartbeatMin != 2*time.Second || o.mqtt.MaxPacketSize != 1<<20+64<<10 {
		t.Fatalf("derived: max offline %d, heartbeat %v, mqtt packet %d", o.broker.MaxOfflineMsgs, o.stomp.HeartbeatMin, o.mqtt.MaxPacketSize)
	}
	// -config on the command line wins over DUPLEX_CONFIG.
	other := writeFile(t, "other.toml", `addr = "127.0.0.1:9002"`)
	o, err = parseOptions([]string{"-config", other}, envMap(map[string]string{"DUPLEX_CONFIG": cfg}))
	if err != nil {
		t.Fatal(err)
	}
	if o.v.Addr != "127.0.0.1:9002" {
		t.Fatalf("addr %q: -config did not win over DUPLEX_CONFIG", o.v.Addr)
	}
}

func TestUnknownKey(t *testing.T) {
	cases := []struct{ file, want string }{
		{"addr = \"127.0.0.1:1\"\nadress = \"x\"\n", `duplex.toml:2: unknown key "adress"`},
		{"[limits]\nmax_frame_size = 1\nmax_frame_sise = 2\n", `duplex.toml:3: unknown key "limits.max_frame_sise"`},
		{"max_frame_size = 1\n", `(did you mean "max_frame_size" under [limits]?)`},
		{"[limits]\nmax-connections = 1\n", `did you mean "max_connections" under [limits]`},
		{"[nosuch]\nx = 1\n", `unknown key "nosuch`},
		{"[[acl]]\nuser = \"a\"\naccess = \"allow\"\ntopic = \"a\"\npermission = \"rw\"\n", `duplex.toml:5: unknown key "acl.permission"`},
	}
	for _, c := range cases {
		cfg := writeFile(t, "duplex.toml", c.file)
		_, err := parseOptions([]string{"-config", cfg}, noEnv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.file, err, c.want)
		}
	}
}

func TestBadValue(t *testing.T) {
	cases := []struct{ file, want string }{
		{"[limits]\nmax_frame_size = -1\n", "duplex.toml:2: limits.max_frame_size: -1 must be at least 1"},
		{"[limits]\nmax_connections_per_ip = -5\n", "limits.max_connections_per_ip: -5 must not be negative"},
		{"[limits]\nmax_retained_bytes = \"lots\"\n", "limits.max_retained_bytes: \"lots\" is not a size"},
		{"[limits]\nsession_expiry = \"2 hours\"\n", "limits.session_expiry: \"2 hours\" is not a duration"},
		{"[limits]\nsession_expiry = 7200\n", "limits.session_expiry: must be a duration string"},
		{"[limits]\nslow_consumer = \"block\"\n", `limits.slow_consumer: "block" is not one of disconnect, drop`},
		{"addr = \"8080\"\n", `addr: "8080" is not host:port`},
		{"addr = 8080\n", "addr: must be a string, not an integer"},
		{"mqtt_tcp_addr = \"0.0.0.0:99999\"\n", `mqtt_tcp_addr: "0.0.0.0:99999": port "99999"`},
		{"log_level = \"loud\"\n", `log_level: "loud" is not one of`},
		{"sync = \"sometimes\"\n", "sync:"},
		{"allow_anonymous = \"yes\"\n", "allow_anonymous: must be true or false"},
		{"admins = \"root\"\n", "admins: must be an array of strings"},
		{"[tls]\nclient_certs = \"maybe\"\n", `tls.client_certs: "maybe" is not one of off, optional, require`},
		{"[stomp]\ntopic_separator = \":\"\n", "stomp.topic_separator"},
		{"[[acl]]\nuser = \"a\"\naccess = \"allow\"\naction = \"read\"\ntopic = \"a/#\"\n", `duplex.toml:1: acl[0] (the [[acl]] table number 1): action "read" is not "publish", "subscribe" or "all"`},
		{"[[acl]]\naccess = \"permit\"\ntopic = \"a\"\n", `access "permit" is not "allow" or "deny"`},
		{"[[acl]]\naccess = \"allow\"\ntopic = \"a\"\n[[acl]]\naccess = \"allow\"\ntopic = \"a\"\nqueue = \"q\"\n", "duplex.toml:4: acl[1]"},
		{"[[acl]]\nuser = \"a\"\ngroup = \"g\"\naccess = \"deny\"\ntopic = \"#\"\n", "at most one of user, group and anonymous"},
		{"[groups]\nops = \"alice\"\n", "duplex.toml:2: groups.ops: must be an array of user names"},
		{"[tls]\nwss_addr = \"127.0.0.1:8443\"\n", "tls.wss_addr needs tls.cert_file and tls.key_file"},
		{"[tls]\ncert_file = \"c.pem\"\n", "tls.cert_file and tls.key_file go together"},
		{"[tls]\nclient_certs = \"require\"\n", "tls.client_certs = \"require\" needs tls.client_ca_file"},
		{"addr = \"\"\n", "addr and tls.wss_addr are both empty"},
		{"mqtt_tcp_addr = \"127.0.0.1:7000\"\nstomp_tcp_addr = \"127.0.0.1:7000\"\n", `stomp_tcp_addr and mqtt_tcp_addr are both "127.0.0.1:7000"`},
		{"addr = [\n", "duplex.toml:"},
		{"[limits]\nhttp_idle_timeout = \"0s\"\n", "limits.http_idle_timeout must be above 0"},
	}
	for _, c := range cases {
		cfg := writeFile(t, "duplex.toml", c.file)
		_, err := parseOptions([]string{"-config", cfg}, noEnv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.file, err, c.want)
		}
	}

	// The environment and flags name the variable or flag and the key.
	_, err := parseOptions(nil, envMap(map[string]string{"DUPLEX_MAX_FRAME_SIZE": "0"}))
	if err == nil || !strings.Contains(err.Error(), "DUPLEX_MAX_FRAME_SIZE (key limits.max_frame_size)") {
		t.Errorf("env: %v", err)
	}
	code, _, stderr := runCmd(t, noEnv, "-limits-session-expiry", "soon")
	if code != 2 || !strings.Contains(stderr, "-limits-session-expiry (key limits.session_expiry)") {
		t.Errorf("flag: exit %d, %q", code, stderr)
	}
}

// TestRelativePaths: paths in the file are relative to its folder; on the
// command line, to the working directory.
func TestRelativePaths(t *testing.T) {
	cfg := writeFile(t, "duplex.toml", "password_file = \"users.txt\"\ndata = \"/var/lib/duplex\"\n[tls]\ncert_file = \"tls/c.pem\"\nkey_file = \"tls/k.pem\"\n")
	dir := filepath.Dir(cfg)
	o, err := parseOptions([]string{"-config", cfg, "-acl-file", "acl.txt"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.v.PasswordFile != filepath.Join(dir, "users.txt") || o.v.TLS.CertFile != filepath.Join(dir, "tls/c.pem") {
		t.Errorf("password_file %q, cert_file %q: not relative to %s", o.v.PasswordFile, o.v.TLS.CertFile, dir)
	}
	if o.v.Data != "/var/lib/duplex" || o.v.ACLFile != "acl.txt" {
		t.Errorf("data %q, acl_file %q", o.v.Data, o.v.ACLFile)
	}
}

// exampleFile is duplex.example.toml with its commented-out keys and
// [[acl]] headers uncommented.
func exampleFile(t *testing.T) (path string, keys map[string]bool) {
	t.Helper()
	data, err := os.ReadFile("../../duplex.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	commented := regexp.MustCompile(`(?m)^# (\[\[acl\]\]|[a-z_]+ = .*)$`)
	out := commented.ReplaceAll(data, []byte("$1"))
	keys = map[string]bool{}
	section := ""
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "[[acl]]"):
			section = "acl"
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[] ")
		case regexp.MustCompile(`^[a-z_]+ = `).MatchString(line):
			k := line[:strings.Index(line, " ")]
			if section != "" {
				k = section + "." + k
			}
			keys[k] = true
		}
	}
	return writeFile(t, "example.toml", string(out)), keys
}

// TestExampleFile: duplex.example.toml documents every key with its
// default, and is a valid config once uncommented.
func TestExampleFile(t *testing.T) {
	path, keys := exampleFile(t)
	o, err := parseOptions([]string{"-config", path}, noEnv)
	if err != nil {
		t.Fatalf("uncommented example: %v", err)
	}
	def := newOptions()
	for i, s := range o.table {
		if !keys[s.key] {
			t.Errorf("key %s is not in duplex.example.toml", s.key)
			continue
		}
		if s.key == "allow_anonymous" {
			continue // its default is "unset"
		}
		want := def.table[i].String()
		if s.kind == kindPath && want != "" {
			want = filepath.Join(filepath.Dir(path), want)
		}
		if got := s.String(); got != want {
			t.Errorf("duplex.example.toml shows %s = %q, the default is %q", s.key, got, want)
		}
	}
	for _, k := range []string{"acl.user", "acl.group", "acl.anonymous", "acl.access", "acl.action", "acl.topic", "acl.queue", "groups.ops"} {
		if !keys[k] {
			t.Errorf("duplex.example.toml has no example of %s", k)
		}
	}
	// Each key's help line is the comment line right above it.
	data, _ := os.ReadFile("../../duplex.example.toml")
	text := string(data)
	for _, s := range o.table {
		block := "# " + s.help + "\n# " + s.name() + " = "
		if !strings.Contains(text, block) {
			t.Errorf("duplex.example.toml: %s is not right below its help line %q", s.key, "# "+s.help)
		}
	}
	if len(o.acl) != 4 || len(o.groups["ops"]) != 2 {
		t.Errorf("example: %d acl rules, groups %v", len(o.acl), o.groups)
	}
	if o.acl[1].Group != "ops" || o.acl[1].Action != auth.ActionSubscribe || o.acl[2].Anonymous != true || o.acl[3].Queue != "jobs" {
		t.Errorf("example rules decoded as %+v", o.acl)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	if err := auth.SetPassword(users, "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("addr = \"0.0.0.0:8080\"\npassword_file = \"users\"\n[limits]\nmax_connections = 50\n"), 0o600)
	code, out, stderr := runCmd(t, noEnv, "config", "check", good)
	if code != 0 || out != good+": ok\n" {
		t.Fatalf("good file: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	bad := writeFile(t, "bad.toml", "[limits]\nmax_conections = 5\n")
	code, out, stderr = runCmd(t, noEnv, "config", "check", bad)
	if code != 1 || out != "" || !strings.Contains(stderr, `bad.toml:2: unknown key "limits.max_conections"`) {
		t.Fatalf("bad file: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	missing := writeFile(t, "missing.toml", "password_file = \"nosuchfile\"\n")
	code, _, stderr = runCmd(t, noEnv, "config", "check", missing)
	if code != 1 || !strings.Contains(stderr, "password_file") {
		t.Fatalf("missing password file: exit %d, stderr %q", code, stderr)
	}
	exposed := writeFile(t, "exposed.toml", "mqtt_tcp_addr = \"0.0.0.0:1883\"\n")
	code, _, stderr = runCmd(t, noEnv, "config", "check", exposed)
	if code != 1 || !strings.Contains(stderr, "mqtt_tcp_addr") || !strings.Contains(stderr, "allow_anonymous = true") {
		t.Fatalf("anonymous on 0.0.0.0: exit %d, stderr %q", code, stderr)
	}
	// The environment does not change what the file says.
	code, _, _ = runCmd(t, envMap(map[string]string{"DUPLEX_MAX_FRAME_SIZE": "-1"}), "config", "check", good)
	if code != 0 {
		t.Fatalf("config check read the environment: exit %d", code)
	}
	if code, _, _ = runCmd(t, noEnv, "config", "check"); code != 2 {
		t.Fatalf("config check without FILE: exit %d, want 2", code)
	}
	if code, _, _ = runCmd(t, noEnv, "config", "lint", good); code != 2 {
		t.Fatalf("config lint: exit %d, want 2", code)
	}
}

// TestRefuseAnonymousOnNetwork: a non-loopback listener without TLS while
// anonymous clients are allowed refuses to start, naming the listener and
// the keys to set, before the store is opened.
func TestRefuseAnonymousOnNetwork(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, c := range []struct {
		args []string
		key  string
	}{
		{[]string{"-addr", "0.0.0.0:0"}, "addr"},
		{[]string{"-addr", ":0"}, "addr"},
		{[]string{"-addr", "127.0.0.1:0", "-mqtt-tcp-addr", "[::]:0"}, "mqtt_tcp_addr"},
		{[]string{"-addr", "127.0.0.1:0", "-stomp-tcp-addr", "192.0.2.1:0"}, "stomp_tcp_addr"},
		{[]string{"-addr", "127.0.0.1:0", "-admin-addr", "0.0.0.0:0"}, "admin_addr"},
	} {
		code, out, stderr := runCmd(t, noEnv, append(c.args, "-data", data)...)
		if code != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q", c.args, code, out)
		}
		for _, want := range []string{"refusing to start: " + c.key + " ", "password_file", "[jwt]", "client_certs", "allow_anonymous = true"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%v: stderr %q lacks %q", c.args, stderr, want)
			}
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the data folder was created (%v): the refusal must come before the store", err)
	}

	// Allowed: explicit allow_anonymous, any authentication, or loopback.
	users := filepath.Join(t.TempDir(), "users")
	if err := auth.SetPassword(users, "u", "p"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-addr", "0.0.0.0:0", "-allow-anonymous"},
		{"-addr", "0.0.0.0:0", "-password-file", users},
		{"-addr", "0.0.0.0:0", "-password-file", users, "-allow-anonymous"},
		{"-addr", "localhost:0", "-mqtt-tcp-addr", "[::1]:0"},
		// TLS listeners off loopback are not refused (issue 8: "with
		// anonymous access and no TLS").
		{"-tls-cert-file", "c.pem", "-tls-key-file", "k.pem", "-tls-wss-addr", "0.0.0.0:0", "-tls-mqtt-tls-addr", "0.0.0.0:0", "-tls-stomp-tls-addr", ":0"},
	} {
		o, err := parseOptions(args, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.checkExposure(); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
	// allow_anonymous = false written out is no way around it either: with
	// no authentication nobody could log in, but it is safe.
	o, _ := parseOptions([]string{"-addr", "0.0.0.0:0", "-allow-anonymous=false"}, noEnv)
	if err := o.checkExposure(); err != nil || o.anonymousAllowed() {
		t.Errorf("allow_anonymous=false: %v, anonymous %v", err, o.anonymousAllowed())
	}
	// Authentication configured: anonymous refused unless allowed, and the
	// admin API needs a login.
	o, _ = parseOptions([]string{"-password-file", users}, noEnv)
	if o.anonymousAllowed() || o.adminOpen() {
		t.Errorf("password file: anonymous %v, admin open %v", o.anonymousAllowed(), o.adminOpen())
	}
	o, _ = parseOptions([]string{"-addr", "0.0.0.0:0", "-allow-anonymous"}, noEnv)
	if o.adminOpen() {
		t.Error("admin API open on 0.0.0.0")
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runCmd(t, noEnv, "-version")
	if code != 0 || !strings.HasPrefix(out, "duplex ") {
		t.Fatalf("-version: exit %d, %q", code, out)
	}
	old := version
	version = "v9.8.7"
	defer func() { version = old }()
	if _, out, _ = runCmd(t, noEnv, "-version"); !strings.HasPrefix(out, "duplex v9.8.7 ") {
		t.Fatalf("-version with main.version set: %q", out)
	}

	for _, args := range [][]string{{"-h"}, {"-help"}, {"help"}} {
		code, out, _ := runCmd(t, noEnv, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, want := range []string{"duplex compact", "duplex passwd [-b] FILE USER [PASSWORD]", "duplex passwd -D FILE USER",
			"duplex config check FILE", "-config FILE", "-max-frame-size BYTES", "key limits.max_frame_size", "DUPLEX_PASSWORD_FILE"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q", args, want)
			}
		}
	}
	if code, _, stderr := runCmd(t, noEnv, "-no-such-flag"); code != 2 || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("unknown flag: exit %d, %q", code, stderr)
	}
	if code, _, _ := runCmd(t, noEnv, "serve"); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
}

func TestPasswd(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users")
	// bcrypt is slow under -race: few Checks, the rest from the file.
	check := func(user, password string) {
		t.Helper()
		u, err := auth.LoadPasswordFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !u.Check(user, password) {
			t.Fatalf("Check(%s, %s) = false", user, password)
		}
	}
	hashes := func() map[string]string {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			user, hash, _ := strings.Cut(line, ":")
			m[user] = hash
		}
		return m
	}
	if code, _, stderr := runCmd(t, noEnv, "passwd", "-b", file, "alice", "first"); code != 0 {
		t.Fatalf("add: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, noEnv, "passwd", "-b", file, "bob", "bobpw"); code != 0 {
		t.Fatalf("add bob: exit %d, %s", code, stderr)
	}
	before := hashes()
	if len(before) != 2 || !strings.HasPrefix(before["alice"], "$2") {
		t.Fatalf("password file after two adds: %v", before)
	}
	if code, _, _ := runCmd(t, noEnv, "passwd", "-b", file, "alice", "second"); code != 0 {
		t.Fatal("update failed")
	}
	after := hashes()
	if len(after) != 2 || after["alice"] == before["alice"] || after["bob"] != before["bob"] {
		t.Fatalf("update: before %v, after %v", before, after)
	}
	if code, out, _ := runCmd(t, noEnv, "passwd", "-D", file, "alice"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: exit %d, %q", code, out)
	}
	if h := hashes(); len(h) != 1 || h["bob"] != before["bob"] {
		t.Fatalf("after delete: %v", h)
	}
	if code, _, stderr := runCmd(t, noEnv, "passwd", "-D", file, "alice"); code != 1 || !strings.Contains(stderr, "alice") {
		t.Fatalf("delete again: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{
		{"passwd"}, {"passwd", file}, {"passwd", "-b", file, "carol"}, {"passwd", "-D", file}, {"passwd", "-D", "-b", file, "x", "y"}, {"passwd", "-x"},
	} {
		if code, _, _ := runCmd(t, noEnv, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, stderr := runCmd(t, noEnv, "passwd", "-b", file, "bad:name", "pw"); code != 1 || !strings.Contains(stderr, "bad:name") {
		t.Errorf("bad user name: exit %d, %q", code, stderr)
	}

	// Without -b, the password comes from stdin when it is not a terminal.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("piped-pw\n")
	w.Close()
	defer r.Close()
	var out, errb bytes.Buffer
	if err := runPasswd([]string{file, "carol"}, r, &out, &errb); err != nil {
		t.Fatal(err)
	}
	check("carol", "piped-pw")
}

// TestDerived: the settings land in the packages' Config fields, with the
// table's "0: no limit" turned into their negative values.
func TestDerived(t *testing.T) {
	o, err := parseOptions(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.web.AllowedHosts, ",") != strings.Join(web.LoopbackHosts, ",") {
		t.Errorf("loopback default: allowed hosts %v", o.web.AllowedHosts)
	}
	if o.broker.AnonymousOwnerByAddress || o.broker.MaxSessionExpiry != 24*time.Hour || o.mqtt.DefaultSessionExpiry != 2*time.Hour ||
		o.web.MaxConnectionsPerIP != 1000 || o.broker.MaxOfflineBytes != 64<<20 || o.mqtt.MaxPacketBeforeLogin != 4096 ||
		o.stomp.MaxFrameBeforeLogin != 4096 || o.web.SeparateAdmin {
		t.Errorf("defaults: %+v %+v %+v", o.broker, o.mqtt, o.web)
	}
	if c := o.authConfig(); c.AllowAnonymous != nil || c.Ban.After != 10 || c.Ban.Delay != 250*time.Millisecond {
		t.Errorf("auth config: %+v", c)
	}

	o, err = parseOptions([]string{"-addr", "0.0.0.0:0", "-allow-anonymous", "-admin-addr", "127.0.0.1:0",
		"-limits-max-connections-per-ip", "0", "-limits-connect-rate-per-ip", "0", "-limits-max-sessions-per-user", "0",
		"-max-session-queue-bytes", "0", "-limits-max-session-expiry", "0s", "-limits-max-retained", "0",
		"-auth-ban-after", "0", "-auth-failure-delay", "0s", "-limits-publish-rate", "50", "-limits-publish-bytes-rate", "1MiB",
		"-web-trusted-proxies", "10.0.0.0/8, 127.0.0.1"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !o.broker.AnonymousOwnerByAddress {
		t.Error("anonymous clients on 0.0.0.0 must own sessions by address")
	}
	if len(o.web.AllowedHosts) != 0 || !o.web.SeparateAdmin || o.web.MaxConnectionsPerIP != -1 || o.web.ConnectRatePerIP != -1 ||
		o.broker.MaxSessionsPerUser != -1 || o.broker.MaxOfflineBytes != -1 || o.mqtt.MaxSessionExpiry != -1 ||
		o.broker.MaxSessionExpiry != 0 || o.broker.MaxRetained != -1 || len(o.web.TrustedProxies) != 2 ||
		o.mqtt.PublishRate != 50 || o.stomp.PublishBytesRate != 1<<20 {
		t.Errorf("zeros: %+v %+v %+v", o.broker, o.mqtt, o.web)
	}
	if c := o.authConfig(); c.AllowAnonymous == nil || !*c.AllowAnonymous || c.Ban.After != -1 || c.Ban.Delay != -1 {
		t.Errorf("auth config: %+v", c)
	}

	o, err = parseOptions([]string{"-password-file", "users"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !o.broker.AnonymousOwnerByAddress {
		t.Error("with a password file, anonymous clients must own sessions by address")
	}
	if _, err := parseOptions([]string{"-web-trusted-proxies", "10.0.0.0/33"}, noEnv); err == nil || !strings.Contains(err.Error(), "web.trusted_proxies") {
		t.Errorf("bad trusted proxy: %v", err)
	}
}

// TestReadmeConfigs: the TOML examples in README.md are valid configs
// (keys and values; the files they name are not loaded).
func TestReadmeConfigs(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d toml blocks, want the secure setup and the reverse proxy ones", len(blocks))
	}
	for i, b := range blocks {
		cfg := writeFile(t, "readme.toml", b[1])
		o, err := parseOptions([]string{"-config", cfg}, noEnv)
		if err != nil {
			t.Errorf("README toml block %d: %v", i+1, err)
			continue
		}
		if err := o.checkExposure(); err != nil {
			t.Errorf("README toml block %d: %v", i+1, err)
		}
		if o.anonymousAllowed() {
			t.Errorf("README toml block %d allows anonymous clients", i+1)
		}
	}
}
