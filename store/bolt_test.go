package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestBoltReopen(t *testing.T) {
	for _, o := range []Options{{}, {Sync: SyncPolicy(time.Hour)}} {
		t.Run(o.Sync.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "duplex.db")
			b, err := Open(path, o)
			must(t, err)
			want := fill(t, b)
			seqs, err := b.Enqueue(sampleMsg(1), []string{"a", "b"})
			must(t, err)
			qseq, err := b.QueuePush("q", sampleMsg(2))
			must(t, err)
			must(t, b.Close())

			b, err = Open(path, o)
			must(t, err)
			defer b.Close()
			equal(t, "load after reopen", load(t, b), want)
			q, err := b.Pending("b", 0, 0)
			must(t, err)
			equal(t, "queue after reopen", q, []Queued{{seqs[1], sampleMsg(1)}})
			qq, err := b.QueuePending("q", 0, 0)
			must(t, err)
			equal(t, "named queue after reopen", qq, []Queued{{qseq, sampleMsg(2)}})
			// Sequences keep increasing across restarts.
			next, err := b.Enqueue(sampleMsg(3), []string{"a"})
			must(t, err)
			if next[0] <= seqs[1] {
				t.Fatalf("seq after reopen %d <= %d", next[0], seqs[1])
			}
		})
	}
}

func TestBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "duplex.db")
	b, err := Open(path, Options{})
	must(t, err)
	defer b.Close()
	// bbolt's flock is per open file description, so a second Open in this
	// process conflicts just like another process would.
	start := time.Now()
	b2, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		b2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("unclear error: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second Open took %v, want fail fast", d)
	}
	// After the first closes, the file opens again.
	must(t, b.Close())
	b2, err = Open(path, Options{})
	must(t, err)
	must(t, b2.Close())
}

func TestBoltSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "duplex.db")
	b, err := Open(path, Options{})
	must(t, err)
	must(t, b.Close())
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
	})
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", SchemaVersion+1)) {
		t.Fatalf("Open of newer schema = %v, want ErrSchema", err)
	}
}

func TestBoltCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "duplex.db")
	b, err := Open(path, Options{})
	must(t, err)
	must(t, b.PutSession(sampleSession("a")))
	_, err = b.Enqueue(sampleMsg(1), []string{"a"})
	must(t, err)
	must(t, b.Close())
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSessions).Put([]byte("a"), []byte{recordV1, 0xff}); err != nil {
			return err
		}
		return tx.Bucket(bucketQueue).Put(seqKey("a", 1), []byte{recordV1, 0x80})
	})
	b, err = Open(path, Options{})
	must(t, err)
	defer b.Close()
	if err := b.Load(collector{&loaded{subs: map[string][]Sub{}}}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load of corrupt session = %v, want ErrCorrupt", err)
	}
	if _, err := b.Pending("a", 0, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Pending of corrupt msg = %v, want ErrCorrupt", err)
	}
}

func TestParseSyncPolicy(t *testing.T) {
	for in, want := range map[string]SyncPolicy{"": SyncAlways, "always": SyncAlways, "200ms": SyncPolicy(200 * time.Millisecond)} {
		got, err := ParseSyncPolicy(in)
		if err != nil || got != want {
			t.Errorf("ParseSyncPolicy(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"never", "-1s", "0s"} {
		if _, err := ParseSyncPolicy(in); err == nil {
			t.Errorf("ParseSyncPolicy(%q) succeeded", in)
		}
	}
	if s := SyncPolicy(200 * time.Millisecond).String(); s != "200ms" {
		t.Errorf("String = %q", s)
	}
}

func rawUpdate(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	must(t, err)
	defer db.Close()
	must(t, db.Update(fn))
}

// TestBoltLockedOtherProcess opens the file from a second process (this
// test binary re-run with an env flag) and checks that it fails fast with
// ErrLocked.
func TestBoltLockedOtherProcess(t *testing.T) {
	if path := os.Getenv("DUPLEX_STORE_LOCK_HELPER"); path != "" {
		_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
		fmt.Println("helper:", err)
		if errors.Is(err, ErrLocked) {
			os.Exit(3)
		}
		os.Exit(1)
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "duplex.db")
	b, err := Open(path, Options{})
	must(t, err)
	defer b.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltLockedOtherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DUPLEX_STORE_LOCK_HELPER="+path)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "in use by another process") {
		t.Fatalf("helper output lacks the clear error:\n%s", out)
	}
	t.Logf("second process failed in %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
}

// A schema version 1 file (records without owners) opens: it is upgraded
// to SchemaVersion, its version 1 records decode with an empty owner, and
// records with owners written afterwards survive a reopen.
func TestBoltSchemaUpgradeV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "duplex.db")
	b, err := Open(path, Options{})
	must(t, err)
	must(t, b.PutSession(sampleSession("old")))
	must(t, b.PutRetained(Msg{Topic: "r/old", Payload: []byte("x")}))
	must(t, b.Close())
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 1))
	})
	b, err = Open(path, Options{})
	must(t, err)
	s, _, err := b.GetSession("old")
	must(t, err)
	if s.Owner != "" {
		t.Fatalf("v1 session owner = %q, want empty", s.Owner)
	}
	owned := sampleSession("new")
	owned.Owner = "alice"
	must(t, b.PutSession(owned))
	must(t, b.PutRetained(Msg{Topic: "r/new", Payload: []byte("y"), Owner: "bob"}))
	must(t, b.Close())
	b, err = Open(path, Options{})
	must(t, err)
	defer b.Close()
	must(t, b.db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema)); v != SchemaVersion {
			t.Errorf("schema after upgrade = %d, want %d", v, SchemaVersion)
		}
		return nil
	}))
	s, _, err = b.GetSession("new")
	must(t, err)
	if s.Owner != "alice" {
		t.Fatalf("session owner after reopen = %q, want alice", s.Owner)
	}
	var v ownerVisitor
	must(t, b.Load(&v))
	if want := map[string]string{"r/old": "", "r/new": "bob"}; fmt.Sprint(v.retained) != fmt.Sprint(want) {
		t.Fatalf("retained owners = %v, want %v", v.retained, want)
	}
}

type ownerVisitor struct{ retained map[string]string }

func (v *ownerVisitor) Session(Session, []Sub) error { return nil }
func (v *ownerVisitor) Retained(m Msg) error {
	if v.retained == nil {
		v.retained = make(map[string]string)
	}
	v.retained[m.Topic] = m.Owner
	return nil
}
