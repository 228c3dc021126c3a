package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestParseLogfmtSlog parses a line written by slog's TextHandler, the
// broker's logger, with values that need quoting.
func TestParseLogfmtSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("store loaded", "file", `/tmp/a b/"x".db`, "sync", "always",
		"sessions", 1, "subscriptions", 1, "queued", 1000000, "queue_msgs", 0,
		"retained", 0, "took", 1234*time.Millisecond, "empty", "", "eq", "a=b")
	line := buf.String()
	if !isStoreLoaded(line) {
		t.Fatalf("isStoreLoaded(%q) = false", line)
	}
	pairs, err := parseLogfmt(line)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"level": "INFO", "msg": "store loaded", "file": `/tmp/a b/"x".db`, "queued": "1000000",
		"took": "1.234s", "empty": "", "eq": "a=b",
	} {
		if got, ok := logValue(pairs, key); !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", key, got, ok, want)
		}
	}
	want := "sync=always sessions=1 subscriptions=1 queued=1000000 queue_msgs=0 retained=0 took=1.234s empty= eq=a=b"
	if got := storeLoadedFields(pairs); got != want {
		t.Errorf("storeLoadedFields:\n got %q\nwant %q", got, want)
	}
}

func TestParseLogfmtCases(t *testing.T) {
	for _, tc := range []struct {
		line, want string // want: pairs as k=v joined by |, or "error"
	}{
		{"", ""},
		{"a=1", "a=1"},
		{"  a=1   b=2  \n", "a=1|b=2"},
		{`msg="x \"y\" z" n=3`, `msg=x "y" z|n=3`},
		{`a=`, `a=`},
		{`a= b=1`, `a=|b=1`},
		{`noequals`, "error"},
		{`=1`, "error"},
		{`a="unterminated`, "error"},
		{`a="x"y b=1`, "error"},
		{`"k"=1`, "error"},
	} {
		pairs, err := parseLogfmt(tc.line)
		got := "error"
		if err == nil {
			var parts []string
			for _, p := range pairs {
				parts = append(parts, p.key+"="+p.value)
			}
			got = strings.Join(parts, "|")
		}
		if got != tc.want {
			t.Errorf("parseLogfmt(%q) = %q (err %v), want %q", tc.line, got, err, tc.want)
		}
	}
}

func TestIsStoreLoaded(t *testing.T) {
	for line, want := range map[string]bool{
		`time=x level=INFO msg="store loaded" sessions=0`:   true,
		`time=x level=INFO msg="duplex started" addr=x`:     false,
		`time=x level=INFO msg="store loaded twice" a=1`:    false,
		`time=x level=WARN msg=x detail="store loaded" a=1`: false,
	} {
		if got := isStoreLoaded(line); got != want {
			t.Errorf("isStoreLoaded(%q) = %v, want %v", line, got, want)
		}
	}
}
