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
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Protocol serves STOMP 1.0, 1.1 and 1.2 connections.
type Protocol struct {
	cfg Config
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
	c := newConn(&p.cfg, t, r)
	return c.serve(ctx)
}
