package web

import (
	"log/slog"
	"time"
)

// Defaults for Config.
const (
	DefaultMaxMessageSize   = 4<<20 + 64<<10 // a 4 MiB body plus headers
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultPongWait         = 60 * time.Second
	DefaultReadBufferSize   = 512
	DefaultWriteBufferSize  = 4096
)

// Config holds the gateway's settings. The zero value is valid.
type Config struct {
	// Paths that accept WebSocket upgrades. Default: /ws, /stomp, /mqtt;
	// every path offers every protocol, chosen by subprotocol.
	Paths []string
	// AllowedOrigins lists Origin values allowed besides same-origin
	// requests (gorilla's default check). "*" allows every origin and must
	// be set explicitly.
	AllowedOrigins []string
	// MaxMessageSize is the WebSocket read limit; a bigger message closes
	// the connection with 1009.
	MaxMessageSize   int64
	HandshakeTimeout time.Duration
	// WriteTimeout bounds control frames (pings, close) the transport writes.
	WriteTimeout time.Duration
	// PongWait is how far a pong extends the read deadline.
	PongWait time.Duration
	// ReadBufferSize and WriteBufferSize are gorilla's I/O buffers. Write
	// buffers come from a pool shared by all connections, so idle
	// connections hold none.
	ReadBufferSize, WriteBufferSize int
	Log                             *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.Paths) == 0 {
		c.Paths = []string{"/ws", "/stomp", "/mqtt"}
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.PongWait <= 0 {
		c.PongWait = DefaultPongWait
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.WriteBufferSize <= 0 {
		c.WriteBufferSize = DefaultWriteBufferSize
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}
