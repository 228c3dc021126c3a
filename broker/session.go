package broker

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SessionOptions describe a connection opening a session.
type SessionOptions struct {
	Protocol   string // "stomp", "mqtt"
	Version    string // negotiated protocol version
	RemoteAddr string
	// Transport is the listener's kind: "ws", "wss", "tcp" or "tls"
	// (subprotocol.Peer.Transport); KeepAlive is the MQTT keep-alive or the
	// STOMP heart-beat interval the broker expects from the client (0:
	// none). Both are for the admin API.
	Transport string
	KeepAlive time.Duration
	Identity  Identity
	// ClientID is the client's own identifier when it is not the session
	// id (a STOMP client-id header; STOMP session ids are generated). ACL
	// patterns' %c match it; empty: the session id.
	ClientID string
	// OnClose, if set, is called once by Session.Close, on the closing
	// goroutine, so the protocol can cut a blocked write short (slow
	// consumer, write timeout). It must not block or take broker locks.
	OnClose func(CloseReason)
	// Expiry keeps the session, its subscriptions and its QoS 1/2 messages
	// this long after the connection ends (MQTT clean session false, MQTT 5
	// Session Expiry Interval); NeverExpire keeps it until the id connects
	// with a clean start. 0 ends the session with its connection.
	Expiry time.Duration
	// CleanStart discards any state kept for the same id [MQTT-3.1.2-4].
	CleanStart bool
	// Wake, if set, is called after every push to the session's Outbox and
	// on Close, so a protocol can start its write goroutine on demand
	// instead of keeping one per idle connection. It must not block.
	Wake func()
	// Will and WillDelay are the connection's will (MQTT), kept in the
	// store with a persistent session so that a crash does not lose it:
	// after a restart the broker publishes it once (the connection ended
	// without DISCONNECT). The protocol still publishes it itself when the
	// connection ends (PublishWill).
	Will      *Message
	WillDelay time.Duration
}

// Session is one client's state in the router: its subscriptions, its
// outbox and how it ended. A protocol gets one from Router.Open and ends it
// with Router.Close.
type Session struct {
	ID          SessionID
	Protocol    string
	Version     string
	RemoteAddr  string
	Identity    Identity
	ClientID    string // SessionOptions.ClientID
	ConnectedAt time.Time
	Outbox      *Outbox
	// Transport and KeepAlive are SessionOptions', for the admin API
	// ("" and 0 for a session restored from the store).
	Transport string
	KeepAlive time.Duration

	router  *Router
	onClose func(CloseReason)

	// owner is the session's owner key (owner.go): who may resume it and
	// whom its quotas count against; retOwner is what its retained
	// messages count against. Both are fixed at Open (or Restore).
	owner, retOwner string
	// counted: the session is counted in Router.owners (a persistent
	// session in Router.sessions). Guarded by Router.mu.
	counted bool
	auth    authCache // publish authorization answers (owner.go)
	// opened tells when the Open that created the session has returned
	// (session_signal.go): a later Open of the same id waits for it before
	// taking the session over, so takeovers of one id run in order. nil:
	// opened (or restored); its channel is made only for a waiter.
	opened signal

	mu         sync.Mutex // guards subs and tempQueues
	subs       subSet
	tempQueues []string

	closeOnce sync.Once
	done      signal        // Done's channel, made on the first call (session_signal.go)
	reason    atomic.Uint32 // CloseReason

	// Persistence (MQTT). expiry is atomic because the protocol may change
	// it at DISCONNECT (MQTT 5) while publishers read it.
	expiry  atomic.Int64 // time.Duration; see SessionOptions.Expiry
	taken   atomic.Bool  // a newer connection took the id over
	resumed bool         // Open found state for this id and moved it here
	// p is the persistent-session machinery (persistent.go): set when the
	// session is made, for a persistent session or one that resumes
	// another's state, and never changed; nil for a clean session.
	p *persistent

	msgsIn, msgsOut atomic.Uint64
	// overlaps counts the session's topic subscriptions in the index that
	// share one copy of a message when they overlap (Router.oneCopy);
	// under two, plan looks for no overlap.
	overlaps atomic.Int32

	// closed is set by Close before done is closed: Closed reads it
	// without touching the channel (the admin listings call it for every
	// session). live: counted in Router.conns (admin_clients.go).
	closed, live atomic.Bool
	// Gauges the protocols keep for the admin API (admin_clients.go).
	bytesIn, bytesOut atomic.Uint64
	inflight          atomic.Int64
	discarded         atomic.Bool // DeleteSession removed it (saveKept)

	// deferred: the outboxes this session's publishes made non-empty,
	// flushed when its read loop would wait (deferred.go); made on the
	// first publish after DeferFlushes (deferOn). Read loop only.
	deferred *deferredFlushes
	deferOn  bool
}

// NeverExpire is a SessionOptions.Expiry that never ends the session.
const NeverExpire time.Duration = -1

// persistent reports a session that outlives its connection.
func (s *Session) persistent() bool { return s.expiry.Load() != 0 && !s.taken.Load() }

// SetExpiry changes how long the session outlives its connection (MQTT 5
// DISCONNECT may set it).
func (s *Session) SetExpiry(d time.Duration) { s.expiry.Store(int64(d)) }

// Expiry reports how long the session outlives its connection.
func (s *Session) Expiry() time.Duration { return time.Duration(s.expiry.Load()) }

// Resumed reports that Open found state kept for this id (MQTT 5 Session
// Present) and moved it to this session.
func (s *Session) Resumed() bool { return s.resumed }

// Done is closed when the session is closed. Its channel is made on the
// first call (an idle connection never asks).
func (s *Session) Done() <-chan struct{} { return s.done.wait() }

// Closed reports whether Close was called.
func (s *Session) Closed() bool { return s.closed.Load() }

// Reason is why the session was closed, or CloseNone while it is open.
func (s *Session) Reason() CloseReason { return CloseReason(s.reason.Load()) }

// Close ends the session for reason. Only the first call counts. It never
// blocks and takes no broker lock except the Outbox's, so a publisher's
// goroutine may call it with a queue lock held (lock order in doc.go). The
// connection's write loop sees the closed outbox, sends its final frame and
// closes the transport; the read loop then calls Router.Close to detach.
func (s *Session) Close(reason CloseReason) {
	s.closeOnce.Do(func() {
		s.reason.Store(uint32(reason))
		s.closed.Store(true)
		if s.live.CompareAndSwap(true, false) {
			s.router.uncountConn(s)
		}
		s.done.fire() // before the outbox, so queue dispatch skips s once pushes fail
		s.Outbox.Close()
		if s.onClose != nil {
			s.onClose(reason)
		}
	})
}

// CountIn records a message received from the client.
func (s *Session) CountIn() { s.msgsIn.Add(1) }

// CountOut records n messages written to the client.
func (s *Session) CountOut(n int) { s.msgsOut.Add(uint64(n)) }

// Subscription returns the session's subscription with key, or nil.
func (s *Session) Subscription(key string) *Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs.get(key)
}

// SessionInfo is a copy of a session's state for the admin API.
type SessionInfo struct {
	ID         string
	Protocol   string
	Version    string
	RemoteAddr string
	User       string
	// Owner is the session's owner key: the user name, or for anonymous
	// clients "" (zero configuration) or "@" + source IP.
	Owner       string
	Online      bool // connected now (false: a persistent session kept offline)
	ConnectedAt time.Time
	Subs        int
	PendingMsgs int
	StoredMsgs  int64 // in the store for this persistent session
	MsgsIn      uint64
	MsgsOut     uint64
}

// Info copies the session's state.
func (s *Session) Info() SessionInfo {
	s.mu.Lock()
	n := s.subs.len()
	s.mu.Unlock()
	pending, _ := s.Outbox.Pending()
	return SessionInfo{
		ID: string(s.ID), Protocol: s.Protocol, Version: s.Version, RemoteAddr: s.RemoteAddr,
		User: userOf(s), Owner: s.owner, Online: !s.Closed(), ConnectedAt: s.ConnectedAt, Subs: n, PendingMsgs: pending, StoredMsgs: s.storedMsgs(),
		MsgsIn: s.msgsIn.Load(), MsgsOut: s.msgsOut.Load(),
	}
}

// userOf is a session's user name: its identity's, or for a session
// restored from the store (no identity) the one its owner key names.
func userOf(s *Session) string {
	if s.Identity.Name != "" {
		return s.Identity.Name
	}
	switch o := s.owner; {
	case strings.HasPrefix(o, "@@"):
		return o[1:]
	case strings.HasPrefix(o, "@"):
		return ""
	default:
		return o
	}
}

// AuthClientID is the client identifier ACL patterns' %c match: the
// client's own (SessionOptions.ClientID) or the session id.
func (s *Session) AuthClientID() string {
	if s.ClientID != "" {
		return s.ClientID
	}
	return string(s.ID)
}
