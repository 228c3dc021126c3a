package web

// The JSON bodies of the management API /api/v1 (docs/api.md). They are
// the API's own types, converted from the broker's copied snapshots, so
// the wire format does not change when broker internals do. Times are
// RFC 3339 UTC, durations are seconds (float), sizes are bytes.

// Page is the body of every list endpoint: at most limit items and the
// cursor of the next page ("" or absent on the last page).
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// APIError is the body of every 4xx/5xx answer of /api/v1.
type APIError struct {
	Error string `json:"error"`
}

// Overview is GET /api/v1/overview.
type Overview struct {
	Version       string      `json:"version"`
	StartedAt     string      `json:"started_at"`
	UptimeSeconds float64     `json:"uptime_seconds"`
	Connections   int         `json:"connections"` // connected sessions
	ByProtocol    []ConnGroup `json:"by_protocol"` // protocol, version, transport
	Sessions      int         `json:"sessions"`    // connected + persistent offline
	Persistent    int         `json:"persistent_sessions"`
	Subscriptions int         `json:"subscriptions"`
	Rates         Rates       `json:"rates"` // per second over the last sample interval
	Totals        Totals      `json:"totals"`
	Drops         Drops       `json:"drops"`
	Retained      int         `json:"retained"`
	RetainedBytes int64       `json:"retained_bytes"`
	Queues        int         `json:"queues"`
	QueuedMsgs    int         `json:"queued_messages"` // ready + unacked in queues
	StoredMsgs    int64       `json:"stored_messages"` // persistent-session messages in the store
	Store         *StoreInfo  `json:"store,omitempty"` // absent without a store
	Admission     Admission   `json:"admission"`
	AuthFailures  uint64      `json:"auth_failures"`
}

// Admission is connection admission control's state (AdmissionStats).
type Admission struct {
	Connections          int    `json:"connections"`
	MaxConnections       int    `json:"max_connections"`
	Sockets              int    `json:"sockets"`
	MaxSockets           int    `json:"max_sockets"`
	RefusedTotal         uint64 `json:"refused_total"`   // past max_connections
	RefusedPerIP         uint64 `json:"refused_per_ip"`  // past limits.max_connections_per_ip
	RefusedRate          uint64 `json:"refused_rate"`    // past limits.connect_rate_per_ip
	RefusedSockets       uint64 `json:"refused_sockets"` // sockets closed at once past max_sockets
	TLSHandshakeFailures uint64 `json:"tls_handshake_failures"`
	Sources              int    `json:"sources"` // source addresses tracked
}

// ConnGroup counts connections of one protocol, version and transport.
type ConnGroup struct {
	Protocol  string `json:"protocol"`
	Version   string `json:"version"`
	Transport string `json:"transport"`
	Count     int    `json:"count"`
}

// Rates are per-second rates.
type Rates struct {
	MsgsIn   float64 `json:"msgs_in"`  // messages published
	MsgsOut  float64 `json:"msgs_out"` // deliveries
	BytesIn  float64 `json:"bytes_in"`
	BytesOut float64 `json:"bytes_out"`
	Drops    float64 `json:"drops"` // all causes
}

// Totals are counts since the start.
type Totals struct {
	MsgsIn   uint64 `json:"msgs_in"`
	MsgsOut  uint64 `json:"msgs_out"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
}

// Drops are dropped or refused messages since the start, by cause.
type Drops struct {
	SlowConsumer  uint64 `json:"slow_consumer"`  // QoS 0 deliveries dropped by the slow-consumer policy
	SlowClosed    uint64 `json:"slow_closed"`    // sessions closed as slow consumers
	NoSubscriber  uint64 `json:"no_subscriber"`  // topic messages that matched nobody
	Quota         uint64 `json:"quota"`          // retained and session quota refusals
	Offline       uint64 `json:"offline"`        // not kept for an offline session (queue full)
	NotAuthorized uint64 `json:"not_authorized"` // publishes and subscriptions the ACL refused
}

// StoreInfo describes the bbolt store.
type StoreInfo struct {
	Path              string  `json:"path"`
	FileSize          int64   `json:"file_size"`
	Commits           uint64  `json:"commits"`
	AvgCommitSeconds  float64 `json:"avg_commit_seconds"`
	LastCommitSeconds float64 `json:"last_commit_seconds"`
}

// Sample is one point of the live charts: GET /api/v1/history returns
// the last 15 minutes of them (oldest first), and GET /api/v1/events
// pushes one per second as a server-sent event "sample".
type Sample struct {
	Time        int64   `json:"t"` // Unix seconds
	Connections int     `json:"connections"`
	MsgsIn      float64 `json:"msgs_in"`   // per second
	MsgsOut     float64 `json:"msgs_out"`  // deliveries per second
	BytesIn     float64 `json:"bytes_in"`  // per second
	BytesOut    float64 `json:"bytes_out"` // per second
	// Drops per second: slow consumer (QoS 0 dropped), quota, offline
	// queue full, not authorized. Messages nobody subscribes to are normal
	// pub/sub and left out (Overview.drops.no_subscriber has them).
	Drops float64 `json:"drops"`
}

// Client is one item of GET /api/v1/clients and /api/v1/sessions.
type Client struct {
	ID               string  `json:"id"` // session id (MQTT client id; generated for STOMP)
	ClientID         string  `json:"client_id"`
	Protocol         string  `json:"protocol"`
	Version          string  `json:"version"`
	Transport        string  `json:"transport,omitempty"`
	User             string  `json:"user,omitempty"`
	RemoteAddr       string  `json:"remote_addr,omitempty"`
	Online           bool    `json:"online"`
	ConnectedAt      string  `json:"connected_at,omitempty"`
	KeepAliveSeconds float64 `json:"keep_alive_seconds"`
	Subscriptions    int     `json:"subscriptions"`
	Inflight         int     `json:"inflight"`
	Queued           int     `json:"queued"`
	QueuedBytes      int     `json:"queued_bytes"`
	MsgsIn           uint64  `json:"msgs_in"`
	MsgsOut          uint64  `json:"msgs_out"`
	BytesIn          uint64  `json:"bytes_in"`
	BytesOut         uint64  `json:"bytes_out"`
	Slow             string  `json:"slow"` // "ok", "backlog", "closed"
	Persistent       bool    `json:"persistent"`
	ExpirySeconds    float64 `json:"expiry_seconds,omitempty"`
	ExpiresAt        string  `json:"expires_at,omitempty"`
	Backlog          int64   `json:"backlog"`
}

// ClientDetail is GET /api/v1/clients/{id}.
type ClientDetail struct {
	Client
	Subscriptions []Subscription `json:"subscription_list"`
}

// Subscription is one item of GET /api/v1/subscriptions.
type Subscription struct {
	SessionID string `json:"session_id"`
	ClientID  string `json:"client_id"`
	User      string `json:"user,omitempty"`
	Key       string `json:"key"`
	Kind      string `json:"kind"` // "topic", "share", "queue", "durable"
	Filter    string `json:"filter,omitempty"`
	Queue     string `json:"queue,omitempty"`
	Group     string `json:"group,omitempty"`
	QoS       int    `json:"qos"`
	Ack       string `json:"ack,omitempty"`
	NoLocal   bool   `json:"no_local,omitempty"`
	SubID     uint32 `json:"subscription_id,omitempty"`
}

// TopicNode is one item of GET /api/v1/topics?prefix=.
type TopicNode struct {
	Path          string `json:"path"`
	Subscriptions int    `json:"subscriptions"`
	Total         int    `json:"total"`
	Children      int    `json:"children"`
}

// ShareGroup is one item of GET /api/v1/shares.
type ShareGroup struct {
	Group   string `json:"group"`
	Filter  string `json:"filter"`
	Members int    `json:"members"`
}

// Queue is one item of GET /api/v1/queues.
type Queue struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // "queue" or "durable"
	Ready     int    `json:"ready"`
	Unacked   int    `json:"unacked"`
	Consumers int    `json:"consumers"`
}

// Retained is one item of GET /api/v1/retained.
type Retained struct {
	Topic       string  `json:"topic"`
	Size        int     `json:"size"`
	QoS         int     `json:"qos"`
	ContentType string  `json:"content_type,omitempty"`
	AgeSeconds  float64 `json:"age_seconds"`
	ExpiresAt   string  `json:"expires_at,omitempty"`
	// Preview is the first bytes of the payload: text when they are UTF-8
	// (PreviewEncoding "text"), base64 otherwise ("base64").
	Preview         string `json:"preview"`
	PreviewEncoding string `json:"preview_encoding"`
	Truncated       bool   `json:"truncated"`
}

// PublishRequest is the body of POST /api/v1/publish. Exactly one of
// Topic (an MQTT topic name) and Queue is set. Payload is text, or base64
// with PayloadEncoding "base64".
type PublishRequest struct {
	Topic           string `json:"topic,omitempty"`
	Queue           string `json:"queue,omitempty"`
	Payload         string `json:"payload"`
	PayloadEncoding string `json:"payload_encoding,omitempty"` // "text" (default) or "base64"
	QoS             int    `json:"qos"`
	Retain          bool   `json:"retain"`
	ContentType     string `json:"content_type,omitempty"`
}

// ActionResult is the body of a successful action.
type ActionResult struct {
	OK     bool `json:"ok"`
	Purged int  `json:"purged,omitempty"` // POST /api/v1/queues/{name}/purge
}

// Me is GET /api/v1/me and the body of a successful POST /api/v1/login.
type Me struct {
	// AuthRequired is false in the open (zero-config loopback) mode.
	AuthRequired bool   `json:"auth_required"`
	LoggedIn     bool   `json:"logged_in"`
	User         string `json:"user,omitempty"`
	// CSRFToken goes in the X-CSRF-Token header of every POST and DELETE
	// made with the session cookie.
	CSRFToken string `json:"csrf_token,omitempty"`
	Version   string `json:"version"`
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// TailMessage is one server-sent event "message" of GET
// /api/v1/tail?filter=F.
type TailMessage struct {
	Time        int64  `json:"t"` // Unix milliseconds
	Topic       string `json:"topic,omitempty"`
	Queue       string `json:"queue,omitempty"`
	QoS         int    `json:"qos"`
	Retain      bool   `json:"retain"`
	ContentType string `json:"content_type,omitempty"`
	From        string `json:"from,omitempty"` // publishing session id
	Size        int    `json:"size"`
	// Payload is base64 (at most TailPayloadBytes of it); the UI shows it
	// as text, pretty JSON or hex.
	Payload   string `json:"payload"`
	Truncated bool   `json:"truncated"`
}

// TailPayloadBytes bounds TailMessage.Payload.
const TailPayloadBytes = 64 << 10
