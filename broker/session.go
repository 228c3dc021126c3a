package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// SessionOptions describe a connection opening a session.
type SessionOptions struct {
	Protocol   string // "stomp", "mqtt"
	Version    string // negotiated protocol version
	RemoteAddr string
	Identity   Identity
	// OnClose, if set, is called once by Session.Close, on the closing
	// goroutine, so the protocol can cut a blocked write short (slow
	// consumer, write timeout). It must not block or take broker locks.
	OnClose func(CloseReason)
	// Wake, if set, is called after every push to the session's Outbox and
	// on Close, so a protocol can start its write goroutine on demand
	// instead of keeping one per idle connection. It must not block.
	Wake func()
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
	ConnectedAt time.Time
	Outbox      *Outbox

	router  *Router
	onClose func(CloseReason)

	mu         sync.Mutex // guards subs and tempQueues
	subs       map[string]*Subscription
	tempQueues []string

	closeOnce sync.Once
	done      chan struct{}
	reason    atomic.Uint32 // CloseReason

	msgsIn, msgsOut atomic.Uint64
}

// Done is closed when the session is closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Closed reports whether Close was called.
func (s *Session) Closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

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
		close(s.done) // before the outbox, so queue dispatch skips s once pushes fail
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
	return s.subs[key]
}

// SessionInfo is a copy of a session's state for the admin API.
type SessionInfo struct {
	ID          string
	Protocol    string
	Version     string
	RemoteAddr  string
	User        string
	ConnectedAt time.Time
	Subs        int
	PendingMsgs int
	MsgsIn      uint64
	MsgsOut     uint64
}

// Info copies the session's state.
func (s *Session) Info() SessionInfo {
	s.mu.Lock()
	n := len(s.subs)
	s.mu.Unlock()
	pending, _ := s.Outbox.Pending()
	return SessionInfo{
		ID: string(s.ID), Protocol: s.Protocol, Version: s.Version, RemoteAddr: s.RemoteAddr,
		User: s.Identity.Name, ConnectedAt: s.ConnectedAt, Subs: n, PendingMsgs: pending,
		MsgsIn: s.msgsIn.Load(), MsgsOut: s.msgsOut.Load(),
	}
}
