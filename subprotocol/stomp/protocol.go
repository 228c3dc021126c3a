package stomp

import (
	"context"
	"log/slog"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// Defaults for Config.
const (
	DefaultHeartbeatMin   = time.Second
	DefaultHeartbeatGrace = 2.0
	DefaultHeartbeatSlack = 60 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	DefaultMaxTxFrames    = 10000
	DefaultMaxTx          = 100
	DefaultMaxTxBytes     = 16 << 20
	DefaultMaxUnacked     = 10000
	// DefaultMaxFrameBeforeLogin bounds the frame read before CONNECTED,
	// headers and body together: RabbitMQ's 4 KiB before authentication.
	DefaultMaxFrameBeforeLogin = 4096
	// DefaultMaxOutboundHeaders bounds the user headers of a MESSAGE whose
	// message was published in another protocol.
	DefaultMaxOutboundHeaders = 64
	// ServerName is sent in CONNECTED's server header.
	ServerName = "Duplex/0.1"
)

// Config holds the STOMP protocol's settings. The zero value is valid.
type Config struct {
	Limits Limits // frame reader limits

	// HeartbeatMin is the smallest heart-beat interval the server offers
	// and accepts, both ways (STOMP 1.2 §Heart-beating). Negative disables
	// heart-beats: CONNECTED says 0,0.
	HeartbeatMin time.Duration
	// HeartbeatGrace and HeartbeatSlack set how late a client's heart-beat
	// may be: the read deadline is interval*HeartbeatGrace+HeartbeatSlack.
	// Browsers throttle timers in background tabs (Chrome: once a minute),
	// so the default slack is generous. A negative slack means none.
	HeartbeatGrace float64
	HeartbeatSlack time.Duration

	ConnectTimeout time.Duration // CONNECT must arrive within this
	WriteTimeout   time.Duration // deadline for every write
	// IdleTimeout bounds silence when the client sends no heart-beats; the
	// write loop sends WebSocket pings at 9/10 of it.
	IdleTimeout time.Duration

	// TopicSeparator is '/' (default: /topic/a/b is MQTT a/b) or '.'
	// (RabbitMQ: /topic/a.b is MQTT a/b and '*' is '+').
	TopicSeparator byte

	MaxTx       int // open transactions per connection
	MaxTxFrames int // frames buffered per transaction
	MaxTxBytes  int // body bytes buffered in all open transactions of a connection
	// MaxUnacked bounds deliveries awaiting ACK on one connection (client
	// ack modes). A client past it is closed as a slow consumer.
	MaxUnacked int

	// MaxFrameBeforeLogin bounds the frame read before CONNECTED (the
	// CONNECT frame): its command, header lines and body together, and
	// each of them, in bytes (default DefaultMaxFrameBeforeLogin, never
	// more than Limits allow). Limits apply once the client is logged in.
	// An unauthenticated client can thus make the server buffer no more
	// than this; a frame over it gets ERROR "frame too large". A JWT
	// passcode carrying a large acl claim may need more.
	MaxFrameBeforeLogin int

	// PublishRate is the most SEND frames per second one connection may
	// publish (0: no limit), with bursts of PublishBurst (default: the
	// rate). PublishBytesRate bounds their body bytes per second (0: no
	// limit). A connection over either waits before its SEND is routed:
	// the read loop reads nothing meanwhile, so TCP slows the publisher;
	// no frame is dropped.
	PublishRate      float64
	PublishBurst     int
	PublishBytesRate float64

	// MaxOutboundHeaders bounds the user headers of a MESSAGE whose message
	// was published in another protocol (broker.Message.Origin other than
	// "stomp"; an MQTT 5 PUBLISH may carry thousands of user properties).
	// Extra ones are dropped and counted (Stats().HeadersDropped). Default
	// DefaultMaxOutboundHeaders; negative means no limit.
	MaxOutboundHeaders int

	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	c.Limits = c.Limits.WithDefaults()
	if c.HeartbeatMin == 0 {
		c.HeartbeatMin = DefaultHeartbeatMin
	}
	if c.HeartbeatGrace <= 0 {
		c.HeartbeatGrace = DefaultHeartbeatGrace
	}
	if c.HeartbeatSlack == 0 {
		c.HeartbeatSlack = DefaultHeartbeatSlack
	} else if c.HeartbeatSlack < 0 {
		c.HeartbeatSlack = 0
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.TopicSeparator != '.' {
		c.TopicSeparator = '/'
	}
	if c.MaxTx <= 0 {
		c.MaxTx = DefaultMaxTx
	}
	if c.MaxTxBytes <= 0 {
		c.MaxTxBytes = DefaultMaxTxBytes
	}
	if c.MaxUnacked <= 0 {
		c.MaxUnacked = DefaultMaxUnacked
	}
	if c.MaxTxFrames <= 0 {
		c.MaxTxFrames = DefaultMaxTxFrames
	}
	if c.MaxFrameBeforeLogin <= 0 {
		c.MaxFrameBeforeLogin = DefaultMaxFrameBeforeLogin
	}
	if c.MaxOutboundHeaders == 0 {
		c.MaxOutboundHeaders = DefaultMaxOutboundHeaders
	}
	if c.PublishRate < 0 {
		c.PublishRate = 0
	}
	if c.PublishBytesRate < 0 {
		c.PublishBytesRate = 0
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// loginLimits are the frame limits before CONNECTED: MaxFrameBeforeLogin
// for the whole frame, its header section and its body, and no more than
// the limits after login.
func (c *Config) loginLimits() Limits {
	l, n := c.Limits, c.MaxFrameBeforeLogin
	l.MaxLineLength = min(l.MaxLineLength, n)
	l.MaxHeaderBytes = min(l.MaxHeaderBytes, n)
	l.MaxBodyLength = min(l.MaxBodyLength, n)
	l.MaxFrameLength = n
	if c.Limits.MaxFrameLength > 0 {
		l.MaxFrameLength = min(n, c.Limits.MaxFrameLength)
	}
	return l
}

// Protocol serves STOMP 1.0, 1.1 and 1.2 connections.
type Protocol struct {
	cfg  Config
	ctr  subprotocol.Counters   // refusals and drops (Stats)
	logs subprotocol.LogLimiter // login failure lines, per source address
}

// New returns the STOMP protocol with cfg (zero fields take defaults).
func New(cfg Config) *Protocol { return &Protocol{cfg: cfg.withDefaults()} }

// Name returns "stomp".
func (p *Protocol) Name() string { return "stomp" }

// Subprotocols lists the STOMP WebSocket subprotocols, newest first.
func (p *Protocol) Subprotocols() []string {
	return []string{"v12.stomp", "v11.stomp", "v10.stomp"}
}

// Serve runs one STOMP connection until it ends, then closes t.
func (p *Protocol) Serve(ctx context.Context, t subprotocol.Transport, r *broker.Router) error {
	c := newConn(p, t, r)
	return c.serve(ctx)
}

// Stats reports the protocol's refusals and drops since New: failed logins,
// pre-login frames over the limit, ACL denials, dropped headers, expired
// credentials, throttled SENDs.
func (p *Protocol) Stats() subprotocol.Stats { return p.ctr.Snapshot() }
