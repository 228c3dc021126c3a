package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Router is the one place where messages enter and leave the broker: both
// protocols call it, and it fans each message out to subscriptions through
// their sessions' outboxes without ever waiting on a subscriber.
type Router struct {
	cfg Config
	log *slog.Logger
	idx Index

	mu       sync.RWMutex // guards sessions, owners, Session.counted and closed
	sessions map[SessionID]*Session
	owners   map[string]int // persistent sessions in sessions by owner key (MaxSessionsPerUser)
	closed   bool

	nsubs atomic.Int64 // subscriptions of all sessions (MaxSubscriptions)
	// overlapping counts the sessions with two or more subscriptions that
	// share a copy (Session.overlaps): while it is 0, plan looks for no
	// overlap at all.
	overlapping atomic.Int32

	qmu    sync.Mutex // guards queues
	queues map[string]*queue

	smu    sync.Mutex // guards shares
	shares map[string]*shareGroup

	retained Retained

	wmu   sync.Mutex // guards wills
	wills map[SessionID]*time.Timer

	nextMsgID  atomic.Uint64
	nextSessID atomic.Uint64
	idPrefix   string

	published, delivered, dropped, slowConsumers, offlineDropped atomic.Uint64

	// Admin API totals (Counters) and live taps (tap.go).
	bytesIn, bytesOut, noSubscriber atomic.Uint64
	taps                            atomic.Pointer[[]*Tap] // nil or non-empty; replaced whole under tapMu
	tapMu                           sync.Mutex

	// Refusals (Stats) and their rate-limited log lines.
	retainedRefused, sessionQuotaRefused, clientIDRefused, publishDenied, subscribeDenied atomic.Uint64
	retainLog, sessionLog, clientIDLog                                                    rateLog
	dl                                                                                    deadLetters // deadletter.go

	allowAll bool         // the Authorizer is AllowAll: no checks, no cache
	authGen  Generationer // the Authorizer's, if it has generations

	dur      *durable // nil without Config.Store
	stopOnce sync.Once
	bindings map[string]*binding // durable subscriptions by queue name, guarded by qmu
	// bindOwners counts durable subscriptions by owner key
	// (MaxSessionsPerUser), guarded by qmu.
	bindOwners map[string]int
	nbind      atomic.Int32 // len(bindings), read by Publish without qmu

	// conns counts connected sessions by protocol, version and transport
	// (ConnCounts), kept at Open and Session.Close so that a count never
	// walks the sessions. connMu is a leaf.
	connMu sync.Mutex
	conns  map[connKey]int

	interest interest // local subscriptions per filter, for Config.Peers (peers.go)
}

// New returns a router with cfg (zero fields take defaults). log may be nil.
func New(cfg Config, log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &Router{
		cfg:        cfg.withDefaults(),
		log:        log,
		sessions:   make(map[SessionID]*Session),
		owners:     make(map[string]int),
		queues:     make(map[string]*queue),
		shares:     make(map[string]*shareGroup),
		wills:      make(map[SessionID]*time.Timer),
		bindings:   make(map[string]*binding),
		bindOwners: make(map[string]int),
		conns:      make(map[connKey]int),
		idPrefix:   hex.EncodeToString(b[:]),
	}
	_, r.allowAll = r.cfg.Authorizer.(AllowAll)
	r.authGen, _ = r.cfg.Authorizer.(Generationer)
	if cfg.Store != nil {
		r.dur = &durable{st: cfg.Store, acks: make(chan ackOp, ackBatch), stop: make(chan struct{}), done: make(chan struct{})}
		go r.dur.ackLoop(r)
	}
	return r
}

// Config returns the router's effective configuration.
func (r *Router) Config() Config { return r.cfg }

// Authenticate checks credentials with the configured Authenticator.
func (r *Router) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	return r.cfg.Authenticator.Authenticate(ctx, c)
}
