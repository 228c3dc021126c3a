package store

import (
	"strings"
	"time"
)

// Session is a persisted client session.
type Session struct {
	ID       string
	Protocol string // e.g. "mqtt5", "mqtt311", "stomp"
	// Owner is who may resume the session (the broker's owner key: a user
	// name, or a key for anonymous clients); "" for none. Records written
	// before owners existed (version 1) decode with "".
	Owner string
	// Expiry is how long the session outlives its connection; negative
	// means never expires, zero means it ends with the connection.
	Expiry time.Duration
	// ExpiresAt is when an offline session expires; zero while online.
	ExpiresAt  time.Time
	CleanStart bool
	Will       *Will  // nil when the session has no will
	State      []byte // opaque protocol state, e.g. MQTT inflight packet ids
}

// Will is a session's last-will message and its delay.
type Will struct {
	Msg   Msg
	Delay time.Duration
}

// Sub is a subscription of a session, identified by Key within it.
type Sub struct {
	Key               string // unique per session: MQTT filter, STOMP subscription id
	Filter            string // topic filter in the broker's canonical form
	Queue             string // named queue the subscription reads from, if any
	Group             string // shared-subscription group, if any
	QoS               uint8
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    uint8
	SubID             uint32 // MQTT 5 subscription identifier, 0 if none
	Durable           bool
}

// Prop is a user property (MQTT 5) or user header (STOMP), in order.
type Prop struct {
	Key, Value string
}

// Msg is a persisted message.
type Msg struct {
	ID              uint64
	Topic           string
	Queue           string
	Payload         []byte
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	PayloadFormat   uint8
	Props           []Prop
	QoS             uint8
	Retain          bool
	Expires         time.Time // zero = never
	// Owner is who a retained message counts against (the publisher's
	// owner key, for the broker's retained quotas); "" for none, and for
	// every queued message. Records written before owners existed
	// (version 1) decode with "".
	Owner string
}

// Queued is a message waiting in a session queue or a named queue, with the
// sequence number that orders it and acknowledges it.
type Queued struct {
	Seq uint64
	Msg Msg
}

// Visitor receives the state that Load restores at startup. Both
// implementations call it after releasing their locks and transactions, in
// key order: all sessions (ordered by ID, each with its subscriptions
// ordered by key), then all retained messages (ordered by topic). A non-nil
// error stops Load and is returned by it.
type Visitor interface {
	Session(s Session, subs []Sub) error
	Retained(m Msg) error
}

// Store persists sessions, subscriptions, queued and retained messages.
//
// Every write method is atomic: it commits entirely or not at all. When it
// returns nil, the write is durable according to the sync policy: with
// SyncAlways (the default) it has been fsynced and survives a crash or power
// cut; with an interval it may be lost if the machine fails within that
// interval. Concurrent writes from many goroutines are committed together
// (group commit), so they share one fsync. All methods are safe for
// concurrent use. Values passed in are not retained and values returned are
// copies the caller owns. Times come back in UTC.
//
// Session IDs and queue names must be non-empty and must not contain 0x00,
// subscription keys and retained topics must be non-empty; methods return
// ErrInvalidKey otherwise (Enqueue then writes nothing). After Close every method
// returns ErrClosed.
type Store interface {
	// PutSession creates or replaces a session record. Its subscriptions
	// and queue are untouched.
	PutSession(s Session) error
	// GetSession returns a session and its subscriptions ordered by key,
	// or ErrNotFound.
	GetSession(id string) (Session, []Sub, error)
	// DeleteSession removes a session, all its subscriptions and all its
	// queued messages in one transaction. Deleting an unknown session is
	// not an error.
	DeleteSession(id string) error

	// PutSub creates or replaces the subscription sub.Key of a session.
	// It does not check that the session exists.
	PutSub(sessionID string, sub Sub) error
	// DeleteSub removes a subscription; an unknown key is not an error.
	DeleteSub(sessionID, key string) error

	// PutRetained sets the retained message of m.Topic, replacing any
	// previous one; an empty payload deletes it.
	PutRetained(m Msg) error

	// Enqueue appends m to the queue of every session in sessionIDs in one
	// transaction, and returns one sequence number per session, in the
	// same order. Sequence numbers are global, strictly increasing and
	// never reused. When Enqueue returns nil, m is durable for every
	// session; on error it was queued for none. It does not check that
	// the sessions exist.
	Enqueue(m Msg, sessionIDs []string) ([]uint64, error)
	// Pending returns up to max messages of a session's queue with
	// Seq > afterSeq, in Seq order; max <= 0 means no limit.
	Pending(sessionID string, afterSeq uint64, max int) ([]Queued, error)
	// Ack removes one queued message; an unknown seq is not an error.
	Ack(sessionID string, seq uint64) error

	// QueuePush appends m to the named (STOMP /queue/) queue and returns
	// its sequence number, durable when QueuePush returns nil.
	QueuePush(queue string, m Msg) (uint64, error)
	// QueuePending is Pending for a named queue.
	QueuePending(queue string, afterSeq uint64, max int) ([]Queued, error)
	// QueueAck removes one message of a named queue; an unknown seq is
	// not an error.
	QueueAck(queue string, seq uint64) error

	// Load visits every session with its subscriptions, then every
	// retained message; see Visitor. The records are a consistent
	// snapshot taken before the first call to v, and v runs outside any
	// lock or transaction, so it may call the Store.
	Load(v Visitor) error

	// Housekeeping: batched writes, QoS 2 marks, queue listing, counts
	// and the background sweep.
	Housekeeping

	// Close flushes pending writes (an interval policy syncs once more),
	// releases the file and makes later calls return ErrClosed. It is
	// safe to call more than once.
	Close() error
}

func validKey(s string) bool {
	return s != "" && !strings.ContainsRune(s, 0)
}
