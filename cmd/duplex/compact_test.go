package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// clearCompactEnv keeps the developer's DUPLEX_* variables out of the test.
func clearCompactEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"DUPLEX_DATA", "DUPLEX_DB", "DUPLEX_TX_MAX_SIZE", "DUPLEX_CONFIG"} {
		t.Setenv(k, "") // restores the old value after the test
		os.Unsetenv(k)
	}
}

// dbContents is every key of a bbolt file, by bucket path ("a/nested"),
// with a sequence entry per bucket.
type dbContents map[string]string

func readContents(t *testing.T, path string) dbContents {
	t.Helper()
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open %s read-only: %v", path, err)
	}
	defer db.Close()
	c := dbContents{}
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		c[prefix+"\x00seq"] = strconv.FormatUint(b.Sequence(), 10)
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+"/"+string(k), b.Bucket(k))
			}
			c[prefix+"\x00"+string(k)] = string(v)
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("consistency check: %w", err)
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walk(string(name), b)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// makeFragmentedDB writes n values over a few buckets (one nested), then
// deletes nine in ten, so the file is mostly free pages.
func makeFragmentedDB(t *testing.T, path string, n int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	val := bytes.Repeat([]byte("v"), 200)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"sessions", "queues", "retained"} {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			if err := b.SetSequence(42); err != nil {
				return err
			}
		}
		nested, err := tx.Bucket([]byte("queues")).CreateBucket([]byte("jobs"))
		if err != nil {
			return err
		}
		if err := nested.SetSequence(7); err != nil {
			return err
		}
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema"), []byte{0, 0, 0, 1}); err != nil {
			return err
		}
		buckets := []*bolt.Bucket{tx.Bucket([]byte("sessions")), tx.Bucket([]byte("queues")), tx.Bucket([]byte("retained")), nested}
		for i := 0; i < n; i++ {
			v := append(fmt.Appendf(nil, "%d:", i), val...)
			if err := buckets[i%len(buckets)].Put(fmt.Appendf(nil, "key-%06d", i), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		buckets := []*bolt.Bucket{tx.Bucket([]byte("sessions")), tx.Bucket([]byte("queues")), tx.Bucket([]byte("retained")), tx.Bucket([]byte("queues")).Bucket([]byte("jobs"))}
		for i := 0; i < n; i++ {
			if i%10 == 0 {
				continue
			}
			if err := buckets[i%len(buckets)].Delete(fmt.Appendf(nil, "key-%06d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestCompactShrinksAndKeepsData(t *testing.T) {
	clearCompactEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "duplex.db")
	makeFragmentedDB(t, path, 20000)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	want := readContents(t, path)
	if n := len(want); n < 2000 {
		t.Fatalf("fixture has only %d entries", n)
	}
	before := fileSize(t, path)
	// A leftover from an interrupted run must not get in the way.
	if err := os.WriteFile(path+compactTmpSuffix, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	// Small transactions, so that Compact commits many times.
	if err := runCompact([]string{"-data", dir, "-tx-max-size", "65536"}, &stdout, &stderr); err != nil {
		t.Fatalf("compact: %v (stderr %q)", err, stderr.String())
	}
	after := fileSize(t, path)
	if after >= before/2 {
		t.Errorf("size %d -> %d: expected at least halved", before, after)
	}

	re := regexp.MustCompile(`^compacted (.+): (\d+) -> (\d+) bytes \((\d+\.\d)% smaller\) in \S+\n$`)
	m := re.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("output %q does not match %v", stdout.String(), re)
	}
	if m[1] != path || m[2] != strconv.FormatInt(before, 10) || m[3] != strconv.FormatInt(after, 10) {
		t.Errorf("output %q: want path %s, %d -> %d", stdout.String(), path, before, after)
	}
	if want := fmt.Sprintf("%.1f", float64(before-after)/float64(before)*100); m[4] != want {
		t.Errorf("percentage %s, want %s", m[4], want)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", fi.Mode().Perm())
	}
	if _, err := os.Stat(path + compactTmpSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	got := readContents(t, path)
	if len(got) != len(want) {
		t.Errorf("%d entries after compaction, want %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("lost %q", k)
		} else if g != v {
			t.Errorf("%q = %.20q, want %.20q", k, g, v)
		}
	}

	// The result opens read-write (as the broker will) and compacts again.
	stdout.Reset()
	if err := runCompact([]string{"-db", path}, &stdout, &stderr); err != nil {
		t.Fatalf("second compact: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "compacted "+path+": ") {
		t.Errorf("second output %q", stdout.String())
	}
}

func TestCompactLockedFile(t *testing.T) {
	clearCompactEnv(t)
	path := filepath.Join(t.TempDir(), "duplex.db")
	held, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := held.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	start := time.Now()
	err = runCompact([]string{"-db", path}, &stdout, &stderr)
	took := time.Since(start)
	if err == nil {
		t.Fatal("compact of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), "is the broker running?") || !strings.Contains(err.Error(), "locked") {
		t.Errorf("error %q does not explain the lock", err)
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("error %v does not wrap bbolt's ErrTimeout", err)
	}
	if took > 1500*time.Millisecond {
		t.Errorf("took %v to give up", took)
	}
	if stdout.Len() != 0 {
		t.Errorf("printed %q on failure", stdout.String())
	}
	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, orig) {
		t.Errorf("original changed (err %v)", err)
	}
	if _, err := os.Stat(path + compactTmpSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file created: %v", err)
	}
}

func TestCompactMissingFile(t *testing.T) {
	clearCompactEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "duplex.db")
	var stdout, stderr bytes.Buffer
	err := runCompact([]string{"-data", dir}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want %s does not exist", err, path)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("compact created %s: %v", path, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("compact left files in %s: %v", dir, entries)
	}
}

func TestCompactFailureLeavesOriginal(t *testing.T) {
	clearCompactEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "duplex.db")
	makeFragmentedDB(t, path, 2000)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A non-empty directory where the temporary file goes: it can be
	// neither removed nor opened as a database.
	if err := os.MkdirAll(filepath.Join(path+compactTmpSuffix, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runCompact([]string{"-db", path}, &stdout, &stderr); err == nil {
		t.Fatal("compact succeeded")
	}
	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, orig) {
		t.Errorf("original changed (err %v)", err)
	}
}

func TestCompactRefusals(t *testing.T) {
	clearCompactEnv(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-db", empty}, "is empty"},
		{[]string{"-db", dir}, "not a regular file"},
		{[]string{"-tx-max-size", "-1"}, "must not be negative"},
		{[]string{"-db", empty, "extra"}, "unexpected argument"},
		{[]string{"-nope"}, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		err := runCompact(tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Errorf("empty file changed: %v %v", fi, err)
	}
}

func TestCompactEnvironment(t *testing.T) {
	clearCompactEnv(t)
	path := filepath.Join(t.TempDir(), "env.db")
	makeFragmentedDB(t, path, 2000)
	t.Setenv("DUPLEX_DB", path)
	t.Setenv("DUPLEX_TX_MAX_SIZE", "bogus")
	var stdout, stderr bytes.Buffer
	if err := runCompact(nil, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "DUPLEX_TX_MAX_SIZE") {
		t.Errorf("malformed DUPLEX_TX_MAX_SIZE: error %v", err)
	}
	// A flag overrides the malformed variable.
	if err := runCompact([]string{"-tx-max-size", "1048576"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "compacted "+path+": ") {
		t.Errorf("output %q", stdout.String())
	}
}

// TestCompactConfigFile: with -config, the data file is where the broker's
// config file says (relative to its folder); -db on the command line wins.
func TestCompactConfigFile(t *testing.T) {
	clearCompactEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "store", "duplex.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	makeFragmentedDB(t, path, 200)
	cfg := filepath.Join(dir, "duplex.toml")
	if err := os.WriteFile(cfg, []byte("data = \"store\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runCompact([]string{"-config", cfg}, &stdout, &stderr); err != nil {
		t.Fatalf("compact -config: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "compacted "+path+": ") {
		t.Errorf("output %q, want the file under the config's data folder %s", stdout.String(), path)
	}
	other := filepath.Join(t.TempDir(), "missing.db")
	err := runCompact([]string{"-config", cfg, "-db", other}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), other) {
		t.Errorf("-db after -config: %v, want it to name %s", err, other)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("dat = 1\n"), 0o600)
	if err := runCompact([]string{"-config", bad}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), `unknown key "dat"`) {
		t.Errorf("bad config: %v", err)
	}
}
