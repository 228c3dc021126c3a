package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplexmq/duplex/internal/testutil"
)

// sweepWait bounds how long the test waits for the other nodes to find a
// killed node dead and sweep its records (two probes five seconds apart,
// then a session expiry of a few seconds; generous for a loaded machine).
const sweepWait = 2 * time.Minute

// TestClusterRecordsOfDeadNode: the records a node kept in JetStream for
// its client ids go when it dies (broker/cluster claim_sweep.go). Three
// nodes on one external NATS server with JetStream, which the test reads
// too. On node 2: a persistent MQTT 5 session with a 3 s expiry that is
// connected when node 2 is killed (its node ran no expiry timer for it),
// a persistent one with an hour's expiry that is offline, and a clean
// MQTT 3.1.1 session. After a SIGKILL of node 2: the clean session's
// holder record goes, the short session's record goes once its expiry ran
// out (it resumes on node 3 without Session Present), and the long one
// resumes on node 3 with Session Present and its subscription, its record
// no longer marked as its dead node's; its expiry kept counting from when
// it went offline (its record's TTL is under the hour).
func TestClusterRecordsOfDeadNode(t *testing.T) {
	ns := startNATS(t, server.Options{JetStream: true, StoreDir: t.TempDir()})
	nodes := startNodes(t, externalArgs("sweep", ns))
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*sweepWait)
	defer cancel()
	sessions, err := js.KeyValue(ctx, "duplex_sweep_sessions")
	if err != nil {
		t.Fatal(err)
	}
	clients, err := js.KeyValue(ctx, "duplex_sweep_clients")
	if err != nil {
		t.Fatal(err)
	}

	short := dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: "sweep-short", CleanStart: true, Properties: expiry(3)})
	short.sub(t, "sweep/short")
	long := connectDurable(t, nodes[1].mqtt, "sweep-long", true, false)
	long.sub(t, "sweep/long/#", 1)
	long.close()
	newV3(t, nodes[1].mqtt, "sweep-clean")

	for _, k := range []string{"msweep-short", "msweep-long", "msweep-clean"} {
		if _, ok := holderRecord(t, clients, k); !ok {
			t.Fatalf("no holder record for %s on node 2", k)
		}
	}
	// The offline session's holder record says since when it is offline
	// (written after its connection closed, not waited for).
	testutil.EventuallyErr(t, wait, func() error {
		if off, _ := holderRecord(t, clients, "msweep-long"); !off {
			return errors.New("the offline session's holder record is not marked offline")
		}
		return nil
	})
	for _, id := range []string{"sweep-short", "sweep-long"} {
		if _, err := sessions.Get(ctx, recordKey(id)); err != nil {
			t.Fatalf("no session record for %s: %v", id, err)
		}
	}
	if n := registeredNodes(t, clients); n != 3 {
		t.Fatalf("%d nodes registered, want 3", n)
	}

	nodes[1].p.Kill()
	killed := time.Now()

	testutil.EventuallyErr(t, sweepWait, func() error {
		if _, ok := holderRecord(t, clients, "msweep-clean"); ok {
			return errors.New("the clean session's holder record is still there")
		}
		if _, err := sessions.Get(ctx, recordKey("sweep-short")); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("the 3 s session's record is still there (%v)", err)
		}
		if n := registeredNodes(t, clients); n != 2 {
			return fmt.Errorf("%d nodes registered, want 2", n)
		}
		e, err := sessions.Get(ctx, recordKey("sweep-long"))
		if err != nil {
			return fmt.Errorf("the one-hour session's record: %v", err)
		}
		if !strings.Contains(string(e.Value()), `"orphaned":true`) {
			return fmt.Errorf("the one-hour session's record is not marked as its dead node's: %s", e.Value())
		}
		return nil
	})
	t.Logf("records of the killed node swept, and the 3 s session's expired, %v after the kill", time.Since(killed).Round(time.Second))
	// Its expiry kept counting from when it went offline: the record's
	// TTL is less than the hour (two probes, at least 5 s, came between).
	st, err := js.Stream(ctx, "KV_duplex_sweep_sessions")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetLastMsgForSubject(ctx, "$KV.duplex_sweep_sessions."+recordKey("sweep-long"))
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := time.ParseDuration(raw.Header.Get("Nats-TTL")); err != nil || ttl >= time.Hour {
		t.Errorf("the offline one-hour session's record has TTL %q (%v), want less than 1h", raw.Header.Get("Nats-TTL"), err)
	}

	r := connectDurable(t, nodes[2].mqtt, "sweep-long", false, false)
	if !r.present {
		t.Error("the one-hour session resumed on node 3 without Session Present")
	}
	sent := publishQoS1(t, nodes[0].mqtt, "sweep-pub", "sweep/long/a", "m", 0, 3)
	r.waitFor(t, "the one-hour session on node 3", sent)
	if e, err := sessions.Get(ctx, recordKey("sweep-long")); err != nil || strings.Contains(string(e.Value()), "orphaned") {
		t.Errorf("the resumed session's record is not taken back: %v", err)
	}

	s := dialV5(t, nodes[2].mqtt, &paho.Connect{ClientID: "sweep-short", CleanStart: false, Properties: expiry(3)})
	if s.ack.SessionPresent {
		t.Error("the 3 s session resumed after its expiry ran out")
	}
}

// recordKey is the session record key of MQTT client id (broker
// clusterKey).
func recordKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:16])
}

// holderRecord reports whether the holder bucket has a record for claim
// key k ("m" + MQTT client id), and whether it says the session is
// offline.
func holderRecord(t *testing.T, kv jetstream.KeyValue, k string) (off, ok bool) {
	t.Helper()
	h := sha256.Sum256([]byte(k))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	e, err := kv.Get(ctx, "c."+hex.EncodeToString(h[:16]))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Key string `json:"key"`
		Off bool   `json:"off"`
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Key != k {
		t.Fatalf("holder record of %s: %s (%v)", k, e.Value(), err)
	}
	return rec.Off, true
}

// registeredNodes counts the nodes registered in the holder bucket.
func registeredNodes(t *testing.T, kv jetstream.KeyValue) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l, err := kv.ListKeysFiltered(ctx, "n.>")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range l.Keys() {
		n++
	}
	return n
}
