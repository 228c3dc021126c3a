package broker

import (
	"fmt"

	"github.com/duplexmq/duplex/store"
)

// Defaults for Config; a zero field takes its default (withDefaults).
const (
	DefaultMaxPendingMsgs    = 1000
	DefaultMaxPendingBytes   = 4 << 20
	DefaultMaxControlMsgs    = 4096
	DefaultMaxSubsPerSession = 10000
	DefaultMaxQueueDepth     = 100000
	DefaultMaxRetained       = 100000
	DefaultMaxOfflineMsgs    = 1000
	DefaultMaxQueueBytes     = 256 << 20
)

// SlowConsumerPolicy says what happens to a subscriber whose outbox is past
// its limits. Either way the publisher never waits.
type SlowConsumerPolicy uint8

const (
	// SlowConsumerDisconnect closes the subscriber with CloseSlowConsumer
	// (STOMP ERROR "slow consumer"; WebSocket close 1008). The default.
	SlowConsumerDisconnect SlowConsumerPolicy = iota
	// SlowConsumerDropNewest drops the new delivery when it is QoS 0 and
	// counts it in Stats.Dropped; QoS 1 and 2 deliveries still disconnect.
	SlowConsumerDropNewest
)

func (p SlowConsumerPolicy) String() string {
	if p == SlowConsumerDropNewest {
		return "drop"
	}
	return "disconnect"
}

// ParseSlowConsumerPolicy reads "disconnect" or "drop".
func ParseSlowConsumerPolicy(s string) (SlowConsumerPolicy, error) {
	switch s {
	case "", "disconnect":
		return SlowConsumerDisconnect, nil
	case "drop", "drop-newest":
		return SlowConsumerDropNewest, nil
	}
	return 0, fmt.Errorf("broker: unknown slow-consumer policy %q (want disconnect or drop)", s)
}

// Config holds the router's limits and policies. The zero value is a valid
// configuration.
type Config struct {
	MaxPendingMsgs    int // deliveries queued per connection before the slow-consumer policy applies
	MaxPendingBytes   int // bytes queued per connection before the slow-consumer policy applies
	MaxControlMsgs    int // acks/receipts queued per connection; past it the client is abusing the protocol
	SlowConsumer      SlowConsumerPolicy
	MaxSubsPerSession int // subscriptions per session
	MaxQueueDepth     int // messages waiting in one point-to-point queue
	MaxRetained       int // topics holding a retained message; a new one past it is not retained
	// MaxOfflineMsgs bounds the QoS 1/2 messages kept for one offline
	// persistent session (mosquitto's max_queued_messages); past it new
	// ones are dropped and counted. QoS 0 messages are not kept offline.
	MaxOfflineMsgs int
	// MaxOfflineBytes bounds the payload bytes stored for one persistent
	// session (Mosquitto's max_queued_bytes); 0 means no byte limit (they
	// are on disk, paged in as the session reads).
	MaxOfflineBytes int64
	// MaxQueueBytes bounds the payload bytes a queue or durable
	// subscription holds (ready and unacknowledged; they are in memory).
	MaxQueueBytes int

	// Store makes sessions, subscriptions, queued and retained messages
	// durable (see durable.go); nil keeps everything in memory.
	Store store.Store

	Authenticator Authenticator // nil allows everyone
	Authorizer    Authorizer    // nil allows everything
}

func (c Config) withDefaults() Config {
	if c.MaxPendingMsgs <= 0 {
		c.MaxPendingMsgs = DefaultMaxPendingMsgs
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.MaxControlMsgs <= 0 {
		c.MaxControlMsgs = DefaultMaxControlMsgs
	}
	if c.MaxSubsPerSession <= 0 {
		c.MaxSubsPerSession = DefaultMaxSubsPerSession
	}
	if c.MaxQueueDepth <= 0 {
		c.MaxQueueDepth = DefaultMaxQueueDepth
	}
	if c.MaxRetained <= 0 {
		c.MaxRetained = DefaultMaxRetained
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.MaxOfflineMsgs <= 0 {
		c.MaxOfflineMsgs = DefaultMaxOfflineMsgs
	}
	if c.Authenticator == nil {
		c.Authenticator = AllowAll{}
	}
	if c.Authorizer == nil {
		c.Authorizer = AllowAll{}
	}
	return c
}
