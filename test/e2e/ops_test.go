package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duplexmq/duplex/internal/testutil"
)

// TestOpsProbesVersionHelp runs the real binary built with a version
// stamp: -version and "version" print it; -h lists the operations flags;
// /healthz and /readyz answer 200 on the public and the admin listener
// while it runs; bad values of the new settings are refused; settings
// come from DUPLEX_* variables too (log_format json); /metrics has the
// version and the store commit histogram.
func TestOpsProbesVersionHelp(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const stamp = "v9.8.7-e2e"
	bin := buildDuplex(t, "-ldflags", "-X main.version="+stamp)

	run := func(env []string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(testutil.EnvWithoutDuplex(), env...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("%v: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}

	for _, args := range [][]string{{"-version"}, {"version"}} {
		code, out, _ := run(nil, args...)
		if code != 0 || !strings.HasPrefix(out, "duplex "+stamp+" (go") || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want one line \"duplex %s (go...)\"", args, code, out, stamp)
		}
	}

	code, help, _ := run(nil, "-h")
	if code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{
		"-log-format text|json", "key log_format, env DUPLEX_LOG_FORMAT, default text",
		"-shutdown-grace DURATION", "key shutdown_grace, env DUPLEX_SHUTDOWN_GRACE, default 10s",
		"-sys-interval DURATION", "key sys_interval, env DUPLEX_SYS_INTERVAL, default 10s",
		"-admin-addr HOST:PORT", "-version",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("-h lacks %q", want)
		}
	}

	for _, c := range []struct {
		env  []string
		args []string
		code int
		want string
	}{
		{nil, []string{"-log-format", "xml"}, 2, `-log-format (key log_format): "xml" is not one of text, json`},
		{nil, []string{"-shutdown-grace", "0s"}, 1, "shutdown_grace must be above 0"},
		{nil, []string{"-shutdown-grace", "-1s"}, 2, "must not be negative"},
		{nil, []string{"-sys-interval", "soon"}, 2, "is not a duration"},
		{[]string{"DUPLEX_LOG_FORMAT=yaml"}, nil, 1, `DUPLEX_LOG_FORMAT (key log_format): "yaml" is not one of text, json`},
	} {
		code, _, stderr := run(c.env, append(c.args, "-addr", "127.0.0.1:0", "-data", filepath.Join(t.TempDir(), "data"))...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want exit %d and %q", c.env, c.args, code, stderr, c.code, c.want)
		}
	}

	// The probes, on both HTTP listeners, with log_format from the
	// environment.
	p := startDuplexEnv(t, bin, []string{"DUPLEX_LOG_FORMAT=json", "DUPLEX_SYS_INTERVAL=0s"}, 2,
		"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-stomp-tcp-addr=", "-mqtt-tcp-addr=",
		"-data", filepath.Join(t.TempDir(), "data"))
	hc := &http.Client{Timeout: waitShort}
	for _, name := range []string{"", "admin"} {
		for path, body := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			u := "http://" + p.Addr(name) + path
			resp, err := hc.Get(u)
			if err != nil {
				t.Errorf("GET %s: %v", u, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(b) != body {
				t.Errorf("GET %s (listener %q): %s %q, want 200 %q", u, name, resp.Status, b, body)
			}
		}
	}
	// /metrics on the admin listener (open: zero-config loopback) carries
	// the version and the store's commit histogram, which cmd/duplex wires
	// from store.Options.OnCommit.
	resp, err := hc.Get("http://" + p.Addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics: %s", resp.Status)
	}
	for _, want := range []string{"duplex_store_commit_seconds_count ", "duplex_store_commit_batches_count ", stamp} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.waitExit(t, 15*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	recs := p.jsonLogs(t)
	if r := logRecord(recs, "duplex started"); r == nil || !strings.HasPrefix(r["version"].(string), "duplex "+stamp) {
		t.Errorf("JSON duplex started record %v, want version %s", r, stamp)
	}
}

// TestDeployConfig: deploy/duplex.toml passes `duplex config check` once
// the files it names exist (here a test certificate and a password file
// made with `duplex passwd`, in a temporary folder instead of /etc/duplex),
// and the broker starts from it, serving /readyz on the admin listener.
func TestDeployConfig(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildDuplex(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "duplex.toml"))
	if err != nil {
		t.Fatal(err)
	}
	etc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(etc, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.WriteSelfSignedCert(t, filepath.Join(etc, "tls", "cert.pem"), filepath.Join(etc, "tls", "key.pem"), 1)
	cfg := strings.ReplaceAll(string(data), "/etc/duplex/", etc+"/")
	cfg = strings.ReplaceAll(cfg, "/var/lib/duplex", filepath.Join(etc, "data"))
	file := filepath.Join(etc, "duplex.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func() (int, string) {
		cmd := exec.Command(bin, "config", "check", file)
		cmd.Env = testutil.EnvWithoutDuplex()
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	// Without the password file: refused, naming it.
	if code, out := check(); code != 1 || !strings.Contains(out, "password_file") {
		t.Fatalf("config check without the password file: exit %d, %q", code, out)
	}
	passwd := exec.Command(bin, "passwd", "-b", filepath.Join(etc, "passwd"), "admin", "correct horse")
	passwd.Env = testutil.EnvWithoutDuplex()
	if out, err := passwd.CombinedOutput(); err != nil {
		t.Fatalf("duplex passwd: %v %s", err, out)
	}
	if code, out := check(); code != 0 || out != file+": ok\n" {
		t.Fatalf("config check deploy/duplex.toml: exit %d, %q", code, out)
	}

	// It runs: the public ports are 8443, 8883 and 61614 on 0.0.0.0, so
	// the test moves them to free loopback ports with flags.
	p := startDuplex(t, bin, 4, "-config", file, "-tls-wss-addr", "127.0.0.1:0", "-tls-mqtt-tls-addr", "127.0.0.1:0",
		"-tls-stomp-tls-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	for _, name := range []string{"wss", "admin", "mqtt-tls", "stomp-tls"} {
		if p.Addr(name) == "" {
			t.Errorf("no %q listening line: %v", name, p.Addrs())
		}
	}
	if p.Addr("") != "" {
		t.Errorf("a plain listener is open: %v", p.Addrs())
	}
	resp, err := (&http.Client{Timeout: waitShort}).Get("http://" + p.Addr("admin") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz on the admin listener: %s", resp.Status)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.waitExit(t, 25*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	if recs := p.jsonLogs(t); logRecord(recs, "duplex stopped") == nil {
		t.Errorf("no JSON \"duplex stopped\" record (deploy/duplex.toml sets log_format json)")
	}
}
