package broker

import (
	"errors"
	"time"
)

// This file is the management plane's contract (issue 9): copied
// snapshots for the admin API, and the operator's actions. Every listing
// pages with the generic pager (page.go): O(limit) memory per call,
// whatever the size of the table, and no live pointers leave the package.

// Errors of the admin actions.
var (
	// ErrNoSuchSession: no session (connected or kept) has that id.
	ErrNoSuchSession = errors.New("no such session")
	// ErrNoSuchQueue: no queue or durable subscription has that name.
	ErrNoSuchQueue = errors.New("no such queue")
	// ErrNoSuchRetained: no retained message on that topic.
	ErrNoSuchRetained = errors.New("no retained message on that topic")
	// ErrNotDurable: the queue is a point-to-point queue, not a durable
	// subscription (DeleteDurable).
	ErrNotDurable = errors.New("not a durable subscription")
)

// Client sort keys for ClientPage. A "-" prefix sorts descending.
const (
	SortByID          = "id"
	SortByConnectedAt = "connected_at"
	SortByMsgsIn      = "msgs_in"
	SortByMsgsOut     = "msgs_out"
	SortByQueued      = "queued"
	SortByBytesIn     = "bytes_in"
	SortByBytesOut    = "bytes_out"
)

// Slow-consumer states of ClientInfo.Slow.
const (
	SlowOK      = "ok"      // delivery lane under half full
	SlowBacklog = "backlog" // delivery lane at least half full (count or bytes)
	SlowClosed  = "closed"  // closed as a slow consumer
)

// ClientInfo is a copy of one session's state for the admin API's Clients
// and Sessions pages.
type ClientInfo struct {
	SessionInfo
	ClientID    string        // Session.AuthClientID()
	Transport   string        // "ws", "wss", "tcp", "tls"; "" for an offline session
	KeepAlive   time.Duration // MQTT keep-alive, STOMP heart-beat the broker expects from the client (0: none)
	Inflight    int           // deliveries sent and not yet acknowledged (MQTT QoS 1/2, STOMP client acks)
	Queued      int           // deliveries waiting in the outbox
	QueuedBytes int
	BytesIn     uint64 // bytes read from the client (frames and packets, as on the wire)
	BytesOut    uint64
	Slow        string // SlowOK, SlowBacklog or SlowClosed
	// Persistent sessions: the expiry interval, when an offline session
	// expires (zero while connected or for NeverExpire), and the messages
	// waiting for it (offline list plus stored).
	Persistent bool
	Expiry     time.Duration
	ExpiresAt  time.Time
	Backlog    int64
}

// SubscriptionInfo is a copy of one subscription.
type SubscriptionInfo struct {
	SessionID string
	ClientID  string
	User      string
	Key       string // the protocol's name: STOMP subscription id, MQTT filter
	Kind      string // "topic", "share", "queue", "durable"
	Filter    string // canonical topic filter (empty for a queue consumer)
	Queue     string // queue name for "queue" and "durable"
	Group     string // share group
	QoS       QoS
	Ack       string // AckMode.String()
	NoLocal   bool
	SubID     uint32
}

// TopicNode is one level of the subscription tree: the filters whose path
// starts with Path, counted.
type TopicNode struct {
	Path string // canonical filter prefix, e.g. "sensors/+"
	// Subscriptions is the number of subscriptions whose filter is
	// exactly Path; Total adds those of every filter below it.
	Subscriptions int
	Total         int
	Children      int // distinct next levels
}

// ShareGroupInfo is one MQTT shared subscription group.
type ShareGroupInfo struct {
	Group   string
	Filter  string
	Members int
}

// RetainedInfo is a copy of one retained message, with at most
// RetainedPreviewBytes of its payload.
type RetainedInfo struct {
	Topic       string
	Size        int
	QoS         QoS
	ContentType string
	StoredAt    time.Time // when the router took it (zero for one restored from the store without a time)
	Expires     time.Time
	Preview     []byte
}

// RetainedPreviewBytes bounds RetainedInfo.Preview.
const RetainedPreviewBytes = 256

// Counters are the router's running totals beyond Stats, for rates and
// /metrics: cheap atomic loads, no locks.
type Counters struct {
	Published      uint64 // messages accepted by Publish (topics and queues)
	Delivered      uint64 // deliveries handed to outboxes
	BytesIn        uint64 // bytes read from clients, all sessions since the start
	BytesOut       uint64
	NoSubscriber   uint64 // topic messages that matched no subscription
	Dropped        uint64 // Stats.Dropped
	SlowConsumers  uint64
	OfflineDropped uint64
	QuotaRefused   uint64 // retained + session quota refusals
	Denied         uint64 // publishes and subscriptions the Authorizer refused
	// DeadLettered and DeadLetterDropped are Stats'.
	DeadLettered, DeadLetterDropped uint64
}

// ConnCount counts the connected sessions of one protocol, version and
// transport.
type ConnCount struct {
	Protocol, Version, Transport string
	N                            int
}

// The methods are in admin_clients.go (ClientPage, Client, ConnCounts,
// Counters, the Session gauges AddBytesIn, AddBytesOut and SetInflight),
// admin_subs.go (SubscriptionPage, ShareGroupPage), admin_topics.go
// (TopicTree, RetainedPage), admin_actions.go (Disconnect, DeleteSession,
// PurgeQueue, DeleteDurable, DeleteRetained) and tap.go (Tap).
