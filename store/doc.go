// Package store owns Duplex's persistence: sessions, their subscriptions,
// messages queued for offline sessions, messages of named STOMP queues and
// retained messages, in one bbolt file (ARCHITECTURE §3.7).
//
// It is a leaf package: it imports bbolt and the standard library, nothing
// of Duplex's. It has its own record types (Session, Sub, Msg, Queued); the
// broker converts to and from them, which also keeps the on-disk format
// independent of the broker's in-memory structs.
//
// # Implementations
//
// Open returns the bbolt implementation (*Bolt); NewMemory returns an
// in-memory one (*Memory) for tests. Both satisfy Store and pass the same
// conformance suite (testStore in store_test.go).
//
// # Bucket layout
//
// A few large buckets with composite keys, not one bucket per session:
//
//	Bucket    Key                                  Value
//	meta      "schema"                             schema version, uint32 big-endian
//	sessions  sessionID                            Session record
//	subs      sessionID 0x00 subKey                Sub record
//	retained  topic                                Msg record
//	queue     sessionID 0x00 seq (8 bytes, BE)     Msg record
//	queues    queueName 0x00 seq (8 bytes, BE)     Msg record
//	marks     sessionID 0x00 'i'|'o' id (2, BE)    empty: an MQTT QoS 2 packet id (Mark)
//
// seq comes from the bucket's NextSequence: global to the bucket, strictly
// increasing, never reused (also across restarts), so a prefix scan returns
// a session's or queue's messages in order. Session IDs and queue names
// must not be empty or contain 0x00 (ErrInvalidKey).
//
// Records are versioned binary: one version byte, then length-prefixed
// fields (encode.go). Golden files in testdata/ freeze the format; a change
// needs a new version byte. Version 2 of the Session and Msg records adds
// the owner (Session.Owner: who may resume the session; Msg.Owner: whom a
// retained message counts against); the encoder writes version 1 when the
// owner is empty, so queued messages keep their version 1 bytes, and
// version 1 records decode with an empty owner (session_v1, msg_v1 and
// their v2 golden files all stay). Open refuses a file whose schema
// version is newer than SchemaVersion (ErrSchema) and upgrades an older
// one in place (schema 1 to 2 only rewrites the number).
//
// # Durability and the sync policy
//
// Every write is one bbolt transaction: Commit writes a whole publish
// fan-out (the message for every session and queue it reaches, with an
// MQTT QoS 2 mark) atomically, CommitAll several of them (a connection's
// pipelined publishes), and acknowledgements and marks go in the same kind
// of batch. The queue buckets split pages at 90% (queueFillPercent), since
// their keys grow in sequence order. Under SyncAlways, concurrent writes go through
// db.Batch, so many publishers share one transaction and one fsync (group
// commit); a write with no other write in flight commits at once instead
// of waiting Options.MaxBatchDelay for company. Under an interval policy
// there is no per-write fsync to share and each write commits on its own.
//
// With SyncAlways (the default) a write method that returns nil has been
// fsynced: a crash, kill -9 or power cut cannot lose it. This is what lets
// the broker acknowledge (MQTT PUBACK/PUBREC, STOMP RECEIPT) only after the
// call returns.
//
// With an interval policy (Options.Sync = SyncPolicy(200*time.Millisecond)),
// bbolt runs with NoSync and a background goroutine fsyncs every interval.
// Transactions stay atomic, and a process crash alone loses nothing (the
// data is in the OS page cache), but on a power cut or kernel crash
// THIS MAY LOSE THE LAST <interval> OF ACKNOWLEDGED MESSAGES.
//
// # Locking and transactions
//
// bbolt allows one process per file: Open takes an exclusive flock and
// fails with ErrLocked after Options.LockTimeout (default 500ms) instead of
// hanging when another process, or another Open in this process, holds it.
//
// Inside the package: transaction functions passed to db.Batch may run more
// than once, so they have no side effects besides setting variables read
// after Batch returns. Read transactions are short and never span I/O or
// callbacks: values are decoded (which copies them) or copied before the
// transaction ends, and Load visits records only after its transaction
// has closed. Callers get copies they own and may keep.
package store
