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
	// DefaultMaxPacketBeforeLogin bounds the CONNECT packet: RabbitMQ's
	// 4 KiB before authentication.
	DefaultMaxPacketBeforeLogin = 4096
	// DefaultSessionExpiry is how long an MQTT 3.x clean-session-0
	// session outlives its connection (EMQX's 2 h).
	DefaultSessionExpiry = 2 * time.Hour
	// DefaultMaxSessionExpiry caps every session's expiry.
	DefaultMaxSessionExpiry = 24 * time.Hour
	// DefaultMaxOutboundHeaders bounds the user properties of a PUBLISH
	// whose message was published in another protocol.
	DefaultMaxOutboundHeaders = 64
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
	// connection: a v5 Session Expiry Interval (0xFFFFFFFF, "never",
	// gets the cap; CONNACK tells the client) and DefaultSessionExpiry.
	// Default DefaultMaxSessionExpiry (24 h); negative means no cap.
	MaxSessionExpiry time.Duration
	// DefaultSessionExpiry is how long an MQTT 3.x clean-session-0
	// session outlives its connection (3.x has no way to say; it used to
	// be for ever). Default DefaultSessionExpiry (2 h); negative means
	// for ever, within MaxSessionExpiry.
	DefaultSessionExpiry time.Duration

	// MaxPacketBeforeLogin bounds the CONNECT packet, the only one read
	// before login (default DefaultMaxPacketBeforeLogin, never more than
	// MaxPacketSize): a bigger one gets v5 CONNACK 0x95, 3.x the close,
	// before anything is allocated for it. MaxPacketSize applies after
	// CONNACK. A JWT password carrying a large acl claim, or a large will,
	// may need more.
	MaxPacketBeforeLogin int

	// PublishRate is the most PUBLISH packets per second one connection
	// may publish (0: no limit), with bursts of PublishBurst (default: the
	// rate). PublishBytesRate bounds their payload bytes per second (0: no
	// limit). A connection over either waits before its PUBLISH is routed:
	// the read loop reads nothing meanwhile, so TCP slows the publisher;
	// nothing is dropped.
	PublishRate      float64
	PublishBurst     int
	PublishBytesRate float64

	// MaxOutboundHeaders bounds the user properties of a v5 PUBLISH whose
	// message was published in another protocol (broker.Message.Origin
	// neither "mqtt" nor "", which may be an MQTT message restored from the
	// store). Extra ones are dropped and counted
	// (Stats().HeadersDropped). Default DefaultMaxOutboundHeaders;
	// negative means no limit.
	MaxOutboundHeaders int

	Log *slog.Logger
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
	switch {
	case c.MaxSessionExpiry == 0:
		c.MaxSessionExpiry = DefaultMaxSessionExpiry
	case c.MaxSessionExpiry < 0:
		c.MaxSessionExpiry = 0 // no cap (capExpiry)
	}
	switch {
	case c.DefaultSessionExpiry == 0:
		c.DefaultSessionExpiry = DefaultSessionExpiry
	case c.DefaultSessionExpiry < 0:
		c.DefaultSessionExpiry = broker.NeverExpire
	}
	if c.MaxPacketBeforeLogin <= 0 {
		c.MaxPacketBeforeLogin = DefaultMaxPacketBeforeLogin
	}
	c.MaxPacketBeforeLogin = min(c.MaxPacketBeforeLogin, c.MaxPacketSize)
	if c.MaxOutboundHeaders == 0 {
		c.MaxOutboundHeaders = DefaultMaxOutboundHeaders
	}
	c.PublishRate, c.PublishBytesRate = max(c.PublishRate, 0), max(c.PublishBytesRate, 0)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Protocol serves MQTT 3.1, 3.1.1 and 5.0 connections.
type Protocol struct {
	cfg  Config
	ctr  subprotocol.Counters   // refusals and drops (Stats)
	logs subprotocol.LogLimiter // CONNECT refusal lines, per source address
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
	return newConn(p, t, r).serve(ctx)
}

// Stats reports the protocol's refusals and drops since New: refused
// CONNECTs, CONNECTs over MaxPacketBeforeLogin, ACL denials (3.x drops a
// denied PUBLISH silently: this is its only trace), retained publishes not
// retained, dropped user properties, expired credentials, throttled
// PUBLISHes.
func (p *Protocol) Stats() subprotocol.Stats { return p.ctr.Snapshot() }

var _ subprotocol.Protocol = (*Protocol)(nil)
