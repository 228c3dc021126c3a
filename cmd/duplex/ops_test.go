package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duplexmq/duplex/store"
)

// TestOpsSettings: log_format, shutdown_grace and sys_interval from their
// defaults, the file, the environment and flags, and their bad values.
func TestOpsSettings(t *testing.T) {
	o, err := parseOptions(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.v.LogFormat != "text" || o.v.ShutdownGrace != 10*time.Second || o.v.SysInterval != 10*time.Second {
		t.Errorf("defaults: log_format %q, shutdown_grace %v, sys_interval %v", o.v.LogFormat, o.v.ShutdownGrace, o.v.SysInterval)
	}
	cfg := writeFile(t, "ops.toml", "log_format = \"json\"\nshutdown_grace = \"3s\"\nsys_interval = \"0s\"\n")
	if o, err = parseOptions([]string{"-config", cfg}, noEnv); err != nil {
		t.Fatal(err)
	}
	if o.v.LogFormat != "json" || o.v.ShutdownGrace != 3*time.Second || o.v.SysInterval != 0 {
		t.Errorf("file: log_format %q, shutdown_grace %v, sys_interval %v", o.v.LogFormat, o.v.ShutdownGrace, o.v.SysInterval)
	}
	env := envMap(map[string]string{"DUPLEX_LOG_FORMAT": "text", "DUPLEX_SHUTDOWN_GRACE": "4s"})
	if o, err = parseOptions([]string{"-config", cfg, "-sys-interval", "1m"}, env); err != nil {
		t.Fatal(err)
	}
	if o.v.LogFormat != "text" || o.v.ShutdownGrace != 4*time.Second || o.v.SysInterval != time.Minute {
		t.Errorf("env and flags: log_format %q, shutdown_grace %v, sys_interval %v", o.v.LogFormat, o.v.ShutdownGrace, o.v.SysInterval)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-log-format", "logfmt"}, `"logfmt" is not one of text, json`},
		{[]string{"-shutdown-grace", "0s"}, "shutdown_grace must be above 0"},
		{[]string{"-shutdown-grace", "-5s"}, "must not be negative"},
		{[]string{"-sys-interval", "-1s"}, "must not be negative"},
		{[]string{"-sys-interval", "10"}, "is not a duration"},
	} {
		if _, err := parseOptions(c.args, noEnv); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// TestNewLogger: log_format json writes one JSON object a line, text
// key=value pairs; log_level applies to both.
func TestNewLogger(t *testing.T) {
	for _, c := range []struct{ format, want string }{
		{"json", `"msg":"hello"`},
		{"text", `msg=hello`},
	} {
		o, err := parseOptions([]string{"-log-format", c.format, "-log-level", "warn"}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		log := newLogger(o, &b)
		log.Info("dropped")
		log.Warn("hello", "n", 1)
		out := b.String()
		if strings.Contains(out, "dropped") || !strings.Contains(out, c.want) || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: %q", c.format, out)
		}
		if c.format == "json" {
			var rec map[string]any
			if err := json.Unmarshal([]byte(out), &rec); err != nil || rec["level"] != "WARN" || rec["n"] != 1.0 {
				t.Errorf("json line %q: %v %v", out, rec, err)
			}
		}
	}
}

// TestGracefulStop runs the broker in-process: /readyz is 200 while it
// serves; once its context ends it returns nil, has logged the stop (JSON,
// with how long it took), refuses connections, and has closed the store
// (another Open of the file succeeds at once).
func TestGracefulStop(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "duplex.toml")
	os.WriteFile(cfg, []byte(`
addr = "127.0.0.1:0"
admin_addr = "127.0.0.1:0"
stomp_tcp_addr = ""
mqtt_tcp_addr = "127.0.0.1:0"
data = "data"
log_format = "json"
shutdown_grace = "5s"
sys_interval = "100ms"
`), 0o600)
	opts, err := parseOptions([]string{"-config", cfg}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runBroker(ctx, make(chan os.Signal), opts, outW, &logs)
		outW.Close()
	}()
	addrs := map[string]string{}
	sc := bufio.NewScanner(outR)
	for range 3 {
		if !sc.Scan() {
			t.Fatalf("stdout ended; logs:\n%s", logs.String())
		}
		name, addr, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "duplex "), " on ")
		addrs[name] = addr
	}
	go io.Copy(io.Discard, outR)
	for _, name := range []string{"listening", "admin listening"} {
		waitFor(t, name+" /readyz 200", func() bool {
			resp, err := http.Get("http://" + addrs[name] + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runBroker: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runBroker still running 10s after its context ended (grace 5s)")
	}
	var stopped map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "duplex stopped" {
			stopped = rec
		}
	}
	if stopped == nil || stopped["took"] == nil || stopped["clean"] != true {
		t.Errorf("duplex stopped record %v; logs:\n%s", stopped, logs.String())
	}
	for name, addr := range addrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s %s still accepts connections", name, addr)
		}
	}
	st, err := store.Open(filepath.Join(dir, "data", "duplex.db"), store.Options{})
	if err != nil {
		t.Fatalf("store not closed: %v", err)
	}
	st.Close()
}
