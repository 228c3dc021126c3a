package broker

import (
	"fmt"
	"time"

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
	// DefaultMaxOfflineBytes bounds the payload bytes stored for one
	// persistent session (it was unlimited before issue 8).
	DefaultMaxOfflineBytes         = 64 << 20
	DefaultMaxSubscriptions        = 1_000_000
	DefaultMaxSessionsPerUser      = 1000
	DefaultMaxRetainedBytes        = 256 << 20
	DefaultMaxRetainedPerUser      = 1000
	DefaultMaxRetainedBytesPerUser = 16 << 20
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
	// MaxSubscriptions bounds the subscriptions of all sessions together
	// (online and offline persistent ones, queue consumers included); a
	// Subscribe past it gets ErrTooManySubs. Negative: no limit.
	MaxSubscriptions int
	MaxQueueDepth    int // messages waiting in one point-to-point queue
	MaxRetained      int // topics holding a retained message; a new one past it is not retained (negative: no limit)
	// MaxRetainedBytes bounds the payload bytes of all retained messages;
	// MaxRetainedPerUser and MaxRetainedBytesPerUser bound those of one
	// owner (the publisher's owner key; an anonymous publisher counts per
	// client id unless AnonymousOwnerByAddress, then per address). A
	// retained publish past a limit is still delivered but not retained,
	// and Publish returns an error wrapping ErrRetainedQuota. Negative: no
	// limit.
	MaxRetainedBytes        int64
	MaxRetainedPerUser      int
	MaxRetainedBytesPerUser int64
	// MaxSessionsPerUser bounds the persistent sessions (online or
	// offline) of one owner key; opening a new one past it gets
	// ErrSessionQuota, resuming one is always allowed. The anonymous pool
	// of the zero configuration (owner key "") is not limited. Negative:
	// no limit.
	MaxSessionsPerUser int
	// AnonymousOwnerByAddress makes an anonymous client's owner key its
	// source address ("@" + IP) instead of "" (shared by every anonymous
	// client), so an anonymous client can only resume a session created
	// from its own address, and the per-user quotas count per address.
	// The command sets it when authentication is configured.
	AnonymousOwnerByAddress bool
	// MaxSessionExpiry caps the expiry of persistent sessions restored
	// from the store (Restore): one written with NeverExpire or a longer
	// expiry, before the cap existed, gets the cap, counted from the
	// restore at the latest. The protocols cap new sessions themselves.
	// 0: no cap.
	MaxSessionExpiry time.Duration
	// MaxOfflineMsgs bounds the QoS 1/2 messages kept for one offline
	// persistent session (mosquitto's max_queued_messages); past it new
	// ones are dropped and counted. QoS 0 messages are not kept offline.
	MaxOfflineMsgs int
	// MaxOfflineBytes bounds the payload bytes stored for one persistent
	// session (Mosquitto's max_queued_bytes; default
	// DefaultMaxOfflineBytes); negative means no byte limit (they are on
	// disk, paged in as the session reads).
	MaxOfflineBytes int64
	// MaxQueueBytes bounds the payload bytes a queue or durable
	// subscription holds (ready and unacknowledged; they are in memory).
	MaxQueueBytes int
	// PerSubscriptionCopies gives each of an MQTT client's overlapping
	// subscriptions its own copy of a message that matches several
	// (Mosquitto's behaviour, allowed by MQTT 5 §3.3.4), each at its
	// subscription's QoS with its subscription identifier. By default a
	// client gets one copy, at the highest QoS granted among the matching
	// subscriptions, with all their identifiers [MQTT-3.3.4-2]
	// [MQTT-3.3.4-4]. STOMP subscriptions and MQTT shared subscriptions
	// always get a copy each.
	PerSubscriptionCopies bool

	// Dead-lettering (deadletter.go). MaxRedeliveries is how often a
	// queue message may come back unacknowledged (NACK, or its consumer
	// left) before it is dead-lettered (default DefaultMaxRedeliveries;
	// negative: no limit). DeadLetterPrefix names a queue's dead-letter
	// queue (default DefaultDeadLetterPrefix: "DLQ.<queue>") and
	// DeadLetterTopic the topic that gets a copy for MQTT (default
	// DefaultDeadLetterTopic: "$DLQ/<queue>"). NoDeadLetter drops
	// rejected and over-limit messages instead (counted);
	// NoDeadLetterTopic publishes no topic copy.
	MaxRedeliveries   int
	DeadLetterPrefix  string
	DeadLetterTopic   string
	NoDeadLetter      bool
	NoDeadLetterTopic bool

	// Store makes sessions, subscriptions, queued and retained messages
	// durable (see durable.go); nil keeps everything in memory.
	Store store.Store

	Authenticator Authenticator // nil allows everyone
	Authorizer    Authorizer    // nil allows everything

	// Peers links the router to the other nodes of a cluster (peers.go);
	// nil: a single node.
	Peers Peers
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
	if c.MaxRetained == 0 {
		c.MaxRetained = DefaultMaxRetained
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.MaxOfflineMsgs <= 0 {
		c.MaxOfflineMsgs = DefaultMaxOfflineMsgs
	}
	if c.MaxOfflineBytes == 0 {
		c.MaxOfflineBytes = DefaultMaxOfflineBytes
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.MaxSessionsPerUser == 0 {
		c.MaxSessionsPerUser = DefaultMaxSessionsPerUser
	}
	if c.MaxRetainedBytes == 0 {
		c.MaxRetainedBytes = DefaultMaxRetainedBytes
	}
	if c.MaxRetainedPerUser == 0 {
		c.MaxRetainedPerUser = DefaultMaxRetainedPerUser
	}
	if c.MaxRetainedBytesPerUser == 0 {
		c.MaxRetainedBytesPerUser = DefaultMaxRetainedBytesPerUser
	}
	if c.MaxRedeliveries == 0 {
		c.MaxRedeliveries = DefaultMaxRedeliveries
	}
	if c.DeadLetterPrefix == "" {
		c.DeadLetterPrefix = DefaultDeadLetterPrefix
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if c.Authenticator == nil {
		c.Authenticator = AllowAll{}
	}
	if c.Authorizer == nil {
		c.Authorizer = AllowAll{}
	}
	return c
}
