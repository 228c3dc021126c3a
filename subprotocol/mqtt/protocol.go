package mqtt

import (
	"context"
	"log/slog"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// Defaults for Config; a zero field takes its default (withDefaults).
const (
	// DefaultConnectTimeout bounds the wait for CONNECT [MQTT-3.1.0-1]
	//.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultWriteTimeout is the deadline of every write.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultReceiveMaximum is the server's Receive Maximum (MQTT 5
	// §3.2.2.3.3): inbound QoS 1/2 PUBLISH packets a client may have
	// unacknowledged at once.
	DefaultReceiveMaximum = 1024
	// DefaultMaxInflight is the outbound QoS 1/2 window for a client that
	// states no Receive Maximum (every MQTT 3.x client).
	DefaultMaxInflight = 1024
	// DefaultTopicAliasMaximum is the highest inbound Topic Alias the
	// server accepts (MQTT 5 §3.2.2.3.8).
	DefaultTopicAliasMaximum = 64
)

// Config holds the MQTT protocol's settings. The zero value is valid.
type Config struct {
	// MaxPacketSize bounds one inbound packet, fixed header included; v5
	// clients learn it from CONNACK's Maximum Packet Size. Default
	// DefaultMaxPacketSize (1 MiB + 64 KiB).
	MaxPacketSize int
	// ConnectTimeout bounds the wait for CONNECT.
	ConnectTimeout time.Duration
	// WriteTimeout is the deadline of every write.
	WriteTimeout time.Duration
	// MaxKeepAlive caps a v5 client's Keep Alive; the server announces
	// the cap as Server Keep Alive (MQTT 5 §3.2.2.3.14). 0 means no cap.
	// MQTT 3.x has no way to tell the client, so the cap is not applied.
	MaxKeepAlive time.Duration
	// ReceiveMaximum is the server's Receive Maximum (inbound window).
	ReceiveMaximum int
	// MaxInflight is the outbound QoS 1/2 window when the client states
	// no Receive Maximum.
	MaxInflight int
	// TopicAliasMaximum is the highest inbound Topic Alias accepted from a
	// v5 client; negative disables topic aliases.
	TopicAliasMaximum int
	// MaxSessionExpiry caps how long a persistent session outlives its
	// connection (v5 Session Expiry Interval, 3.x clean session 0). 0
	// means no cap.
	MaxSessionExpiry time.Duration
	Log              *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxPacketSize <= 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ReceiveMaximum <= 0 {
		c.ReceiveMaximum = DefaultReceiveMaximum
	}
	c.ReceiveMaximum = min(c.ReceiveMaximum, 65535)
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	c.MaxInflight = min(c.MaxInflight, 65535)
	if c.TopicAliasMaximum == 0 {
		c.TopicAliasMaximum = DefaultTopicAliasMaximum
	} else if c.TopicAliasMaximum < 0 {
		c.TopicAliasMaximum = 0
	}
	c.TopicAliasMaximum = min(c.TopicAliasMaximum, 65535)
	if c.MaxKeepAlive < 0 {
		c.MaxKeepAlive = 0
	}
	c.MaxKeepAlive = min(c.MaxKeepAlive, 65535*time.Second)
	if c.MaxSessionExpiry < 0 {
		c.MaxSessionExpiry = 0
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Protocol serves MQTT 3.1, 3.1.1 and 5.0 connections.
type Protocol struct {
	cfg Config
}

// New returns the MQTT protocol with cfg (zero fields take defaults).
func New(cfg Config) *Protocol { return &Protocol{cfg: cfg.withDefaults()} }

// Name returns "mqtt".
func (p *Protocol) Name() string { return "mqtt" }

// Subprotocols lists the MQTT WebSocket subprotocols: "mqtt" (3.1.1 and 5,
// MQTT 5 §6.0) and "mqttv3.1" (MQTT 3.1).
func (p *Protocol) Subprotocols() []string { return []string{"mqtt", "mqttv3.1"} }

// Serve runs one MQTT connection until it ends, then closes t.
func (p *Protocol) Serve(ctx context.Context, t subprotocol.Transport, r *broker.Router) error {
	return newConn(&p.cfg, t, r).serve(ctx)
}

var _ subprotocol.Protocol = (*Protocol)(nil)
