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
}

// ConnCount counts the connected sessions of one protocol, version and
// transport.
type ConnCount struct {
	Protocol, Version, Transport string
	N                            int
}

// ClientPage returns up to limit sessions (connected, and persistent ones
// kept offline) in sort order after cursor, whose id, client id, user or
// remote address contains q, and the next page's cursor ("" on the last).
// sort is one of the SortBy constants, optionally prefixed with "-"
// (descending); "" is SortByID. An unknown sort key is an error. online:
// 1 only connected, -1 only offline, 0 both; persistentOnly keeps only
// persistent sessions (the Sessions page).
func (r *Router) ClientPage(cursor string, limit int, q, sort string, online int, persistentOnly bool) (page []ClientInfo, next string, err error) {
	panic("todo: issue 9 helper A1")
}

// Client describes one session and its subscriptions, and reports
// whether it exists.
func (r *Router) Client(id SessionID) (ClientInfo, []SubscriptionInfo, bool) {
	panic("todo: issue 9 helper A1")
}

// ConnCounts counts connected sessions by protocol, version and transport.
func (r *Router) ConnCounts() []ConnCount { panic("todo: issue 9 helper A1") }

// Counters copies the running totals.
func (r *Router) Counters() Counters { panic("todo: issue 9 helper A1") }

// SubscriptionPage returns up to limit subscriptions of all sessions in
// (filter-or-queue, session id, key) order after cursor, whose filter,
// queue, session id, client id or user contains q.
func (r *Router) SubscriptionPage(cursor string, limit int, q string) (page []SubscriptionInfo, next string) {
	panic("todo: issue 9 helper A1")
}

// TopicTree returns the level below prefix ("" for the root) of the
// subscription tree: one node per distinct next level, in name order, at
// most limit of them after cursor (a level name).
func (r *Router) TopicTree(prefix, cursor string, limit int) (nodes []TopicNode, next string) {
	panic("todo: issue 9 helper A1")
}

// ShareGroupPage lists share groups in (group, filter) order after cursor
// whose group or filter contains q.
func (r *Router) ShareGroupPage(cursor string, limit int, q string) (page []ShareGroupInfo, next string) {
	panic("todo: issue 9 helper A1")
}

// RetainedPage lists retained messages in topic order after cursor whose
// topic starts with prefix.
func (r *Router) RetainedPage(cursor string, limit int, prefix string) (page []RetainedInfo, next string) {
	panic("todo: issue 9 helper A1")
}

// Disconnect closes a connected session with CloseAdminAction (each
// protocol sends its notice: STOMP ERROR, MQTT 5 DISCONNECT 0x98). A
// persistent session stays kept, as after any disconnection.
func (r *Router) Disconnect(id SessionID) error { panic("todo: issue 9 helper A1") }

// DeleteSession discards a session and everything kept for it (its
// subscriptions, offline and stored messages), disconnecting it first if
// connected, as a clean start would.
func (r *Router) DeleteSession(id SessionID) error { panic("todo: issue 9 helper A1") }

// PurgeQueue drops the ready messages of a queue or durable subscription
// (unacknowledged ones stay with their consumers) and returns how many.
func (r *Router) PurgeQueue(name string) (int, error) { panic("todo: issue 9 helper A1") }

// DeleteDurable deletes a durable subscription: its binding, its queue and
// its stored messages; a connected consumer's subscription ends.
func (r *Router) DeleteDurable(name string) error { panic("todo: issue 9 helper A1") }

// DeleteRetained clears the retained message of topic (in memory and in
// the store).
func (r *Router) DeleteRetained(topic string) error { panic("todo: issue 9 helper A1") }

// Tap is a live copy of the messages published on topics matching a
// filter, for the admin UI's Tail: it never slows a publisher (a full
// channel drops and counts). Close it when done.
type Tap struct {
	C <-chan *Message
}

// Tap starts a tap on filter (an MQTT topic filter; "" or "#" for every
// topic; queue messages match as "$queue/<name>") with a channel of buf
// messages. No tap costs Publish one atomic load.
func (r *Router) Tap(filter string, buf int) (*Tap, error) { panic("todo: issue 9 helper A1") }

// Dropped counts the messages the tap lost to a full channel.
func (t *Tap) Dropped() uint64 { panic("todo: issue 9 helper A1") }

// Close ends the tap and closes C.
func (t *Tap) Close() { panic("todo: issue 9 helper A1") }

// Session gauges the protocols keep (issue 9): bytes on the wire and
// deliveries in flight. Safe from any goroutine.

// AddBytesIn counts n bytes read from the client.
func (s *Session) AddBytesIn(n int) { panic("todo: issue 9 helper A1") }

// AddBytesOut counts n bytes written to the client.
func (s *Session) AddBytesOut(n int) { panic("todo: issue 9 helper A1") }

// SetInflight records the deliveries sent and not yet acknowledged.
func (s *Session) SetInflight(n int) { panic("todo: issue 9 helper A1") }
