package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// persistent is what a persistent session (SessionOptions.Expiry) has
// beyond its connection: its account in the store, the cursor that pages
// stored messages in, the deliveries kept while it is offline, its expiry
// timer, the protocol state saved for the next connection, and after a
// takeover the session it was handed to. Session.p holds it, nil for a
// clean session. One persistent belongs to one Session; a takeover gives
// the new Session its own and moves the state over (Router.takeover,
// handOver), sharing only the store account.
//
// Locking: mu guards the fields after it. persistent.mu → Outbox.mu
// (the hand-over and deliverStored push under it) and persistent.mu →
// Session.mu (refill finds the subscription of a stored message); a page
// of the store is read under it (refill). The atomics before mu are read
// by publishers and the write loop without it.
type persistent struct {
	// acct is the session's messages in the store. A takeover points the
	// new session's at the old one's before any of its subscriptions is
	// linked, so a publisher that reaches the session through a
	// subscription sees the account it stores against.
	acct atomic.Pointer[storeAccount]
	// detached is closed by Router.Close: Open waits for it before it
	// takes the session over, so the old connection's unsent messages are
	// in its Outbox to be moved, in order.
	detached chan struct{}
	// paging: committed deliveries stay in the store and refill pages them
	// in after lastPaged, in order.
	paging atomic.Bool
	// sentSeq is the highest Seq a connection of the session has written
	// (Session.NoteSent).
	sentSeq                 atomic.Uint64
	refilling, refillWanted atomic.Bool
	// cj links a cluster-durable session to the cluster store
	// (peers_durable.go); nil on a single node. Set before the session
	// is in the router, never changed.
	cj *clusterSess

	mu      sync.Mutex
	offline []Delivery  // QoS 1/2 deliveries kept while offline (no store)
	state   *SavedState // the protocol's own state while detached
	// expireAt ends the session when its expiry passes offline; expiresAt
	// is when (admin API), zero without a timer.
	expireAt  *time.Timer
	expiresAt time.Time
	// After a takeover: the new session and the old→new subscription map,
	// for deliveries that matched an old subscription just before it left.
	successor *Session
	forward   map[*Subscription]*Subscription
	// Stored messages up to dupUpTo may have reached an earlier connection,
	// so refill marks them redelivered (MQTT DUP); lastPaged is the last
	// one paged in.
	dupUpTo, lastPaged uint64
}

func newPersistent() *persistent {
	p := &persistent{detached: make(chan struct{})}
	p.acct.Store(newStoreAccount())
	return p
}

// account is the store account of s, which is persistent.
func (s *Session) account() *storeAccount { return s.p.acct.Load() }

// storedMsgs reports the session's messages in the store.
func (s *Session) storedMsgs() int64 {
	if s.p == nil {
		return 0
	}
	return s.account().count()
}

// NoteSent records that a stored delivery (Delivery.Seq) was written to
// the client, so that after a takeover or restart it goes out marked as a
// redelivery [MQTT-3.3.1-1] and a first delivery does not.
func (s *Session) NoteSent(seq uint64) {
	if s.p == nil {
		return
	}
	for {
		cur := s.p.sentSeq.Load()
		if seq <= cur || s.p.sentSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// sentMark is the highest stored sequence a connection of s may have
// written (the session record's State, storedSession).
func (s *Session) sentMark() uint64 {
	if s.p == nil {
		return 0
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return max(s.p.dupUpTo, s.p.sentSeq.Load())
}

// Paging reports a persistent session that has messages in the store still
// to page in (Router.Refill).
func (s *Session) Paging() bool { return s.p != nil && s.p.paging.Load() }

// SaveState keeps the protocol's own state (MQTT's unacknowledged
// deliveries) with a persistent session, for the connection that resumes
// it. A clean session keeps nothing.
func (s *Session) SaveState(v *SavedState) {
	if s.p == nil {
		return
	}
	s.p.mu.Lock()
	s.p.state = v
	s.p.mu.Unlock()
}

// TakeState returns the state the previous connection saved (or, after a
// restart, what the store kept of it), once; nil if there is none.
func (s *Session) TakeState() *SavedState {
	if s.p == nil {
		return nil
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	v := s.p.state
	s.p.state = nil
	return v
}

// queueOffline keeps a QoS 1/2 delivery for a persistent session whose
// connection is gone, up to max, and reports whether it did. When the
// session was taken over it keeps nothing and returns the successor and
// the delivery re-pointed at the successor's subscription instead (next is
// nil if that subscription is gone).
func (s *Session) queueOffline(d Delivery, max int) (kept bool, next *Session, nd Delivery) {
	if d.QoS == AtMostOnce || s.p == nil {
		return false, nil, d
	}
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.successor != nil {
		if d.Sub = p.forward[d.Sub]; d.Sub == nil {
			return false, nil, d
		}
		return false, p.successor, d
	}
	if len(p.offline) >= max {
		return false, nil, d
	}
	p.offline = append(p.offline, d)
	return true, nil, d
}

// armExpiry starts the timer that ends s (Session.expire) after d, at
// at, unless one runs.
func (p *persistent) armExpiry(s *Session, d time.Duration, at time.Time) {
	p.mu.Lock()
	if p.expireAt == nil {
		p.expireAt = time.AfterFunc(d, s.expire)
		p.expiresAt = at
	}
	p.mu.Unlock()
}

// clear stops the expiry timer and drops what is kept in memory (offline
// deliveries, saved state): the session is discarded or taken over.
func (p *persistent) clear() {
	p.mu.Lock()
	if p.expireAt != nil {
		p.expireAt.Stop()
	}
	p.offline, p.state = nil, nil
	p.mu.Unlock()
}

// offlineInfo reports when the expiry timer fires (zero without one) and
// how many deliveries are kept in memory, for the admin API.
func (p *persistent) offlineInfo() (time.Time, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expiresAt, len(p.offline)
}

// end discards what the store holds for the session id: it waits for the
// commits under way (storeAccount.retire), takes its messages out of the
// router's total and deletes its records. No broker lock may be held.
func (p *persistent) end(r *Router, id SessionID) {
	a := p.acct.Load()
	a.retire()
	a.drop(r)
	r.forgetSession(id)
}

// handOver moves old's state to s, its successor, with the old→new
// subscription map moved: what old's connection never wrote, then what
// was kept offline (messages published during the takeover wait
// included); from then on whatever still reaches old's subscriptions is
// forwarded through moved. With a store, s takes over old's account and
// pages its stored messages in, in order, once the protocol is ready
// (Refill).
func (p *persistent) handOver(r *Router, old, s *Session, moved map[*Subscription]*Subscription) {
	np := s.p
	if r.dur != nil {
		// Before s becomes the successor: a stored delivery forwarded to s
		// must find it paging (deliverStored).
		np.acct.Store(p.acct.Load())
		np.paging.Store(true)
	}
	p.mu.Lock()
	if p.expireAt != nil {
		p.expireAt.Stop()
	}
	_, unsent, _ := old.Outbox.Drain(nil, nil)
	for _, d := range append(unsent, p.offline...) {
		if d.Seq != 0 {
			continue // in the store
		}
		if d.Sub = moved[d.Sub]; d.Sub == nil || d.Msg.Expired() {
			continue
		}
		if s.Outbox.PushDelivery(d) != nil {
			r.offlineDropped.Add(1)
		}
	}
	dup, state := max(p.dupUpTo, p.sentSeq.Load()), p.state
	p.offline, p.state = nil, nil
	p.successor, p.forward = s, moved
	p.mu.Unlock()

	np.mu.Lock()
	if r.dur != nil {
		np.dupUpTo = dup
	}
	np.state = state
	np.mu.Unlock()
}

// deliverStored hands a stored delivery to its persistent session's
// outbox if the session is online and caught up; otherwise it stays in the
// store, from where the session pages it in (Refill). It follows
// takeovers to the newest session. A full outbox closes the session as a
// slow consumer and loses nothing.
func (s *Session) deliverStored(d Delivery) {
	r := s.router
	for {
		sp := s.p
		sp.mu.Lock()
		if next := sp.successor; next != nil {
			d.Sub = sp.forward[d.Sub]
			sp.mu.Unlock()
			if d.Sub == nil {
				return
			}
			s = next
			continue
		}
		if s.Closed() || sp.paging.Load() || d.Seq <= sp.lastPaged {
			sp.mu.Unlock()
			return // in the store; paged in later (or already)
		}
		err := s.Outbox.PushDelivery(d)
		sp.mu.Unlock()
		switch err {
		case nil:
			r.delivered.Add(1)
		case ErrSlowConsumer:
			r.slowConsumer(s)
		}
		return
	}
}

// storeAccount counts a persistent session's messages in the store and
// the commits under way that store more, so that discarding the session
// (clean start, expiry, Session Expiry set to 0) can wait for them and no
// commit lands after its records are deleted: such a message would
// otherwise reappear under the next session with the same id. Once
// retired, the account takes no more messages. A session that takes
// another over shares its account. Lock-free: publishers enter and leave
// it around their commits.
type storeAccount struct {
	msgs, bytes atomic.Int64 // stored messages and their payload bytes
	// gate counts the commits under way, plus gateRetired once retired;
	// drained is closed by the leave that ends the last of them after
	// retire.
	gate    atomic.Int64
	drained chan struct{}
}

// gateRetired marks a retired account in storeAccount.gate.
const gateRetired = 1 << 62

// dropped marks in storeAccount.msgs an account whose messages have left
// the router's total (drop): late acknowledgements no longer count.
const dropped = -1 << 62

func newStoreAccount() *storeAccount { return &storeAccount{drained: make(chan struct{})} }

// enter registers a commit for the session; false once it is retired.
func (a *storeAccount) enter() bool {
	for {
		v := a.gate.Load()
		if v&gateRetired != 0 {
			return false
		}
		if a.gate.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// leave ends a commit registered by enter (committed or failed).
func (a *storeAccount) leave() {
	if a.gate.Add(-1) == gateRetired {
		close(a.drained)
	}
}

// testHookRetireWaits, if set, runs when retire starts to wait (tests).
var testHookRetireWaits func()

// retire refuses new commits and waits for those under way. It must run
// with no broker lock held: between enter and leave a publisher may take
// any of them.
func (a *storeAccount) retire() {
	if v := a.gate.Or(gateRetired); v&^gateRetired == 0 {
		return
	}
	if testHookRetireWaits != nil {
		testHookRetireWaits()
	}
	<-a.drained
}

// reserve counts m against the session's stored-message limits ahead of
// its commit (MaxOfflineMsgs, MaxOfflineBytes), if it fits, and in the
// router's total (r has a store).
func (a *storeAccount) reserve(r *Router, m *Message) bool {
	n := int64(len(m.Payload))
	if a.msgs.Add(1) > int64(r.cfg.MaxOfflineMsgs) {
		a.msgs.Add(-1)
		return false
	}
	if b := a.bytes.Add(n); r.cfg.MaxOfflineBytes > 0 && b > r.cfg.MaxOfflineBytes {
		a.msgs.Add(-1)
		a.bytes.Add(-n)
		return false
	}
	r.dur.stored.Add(1)
	return true
}

// release uncounts one stored message of n payload bytes: acknowledged,
// or its commit failed (r has a store).
func (a *storeAccount) release(r *Router, n int) {
	for {
		v := a.msgs.Load()
		if v < dropped/2 {
			return // its records are gone, and it with them from the total
		}
		if a.msgs.CompareAndSwap(v, v-1) {
			break
		}
	}
	a.bytes.Add(-int64(n))
	r.dur.stored.Add(-1)
}

// restored counts n messages of nb bytes found in the store at startup.
func (a *storeAccount) restored(r *Router, n int, nb int64) {
	a.msgs.Store(int64(n))
	a.bytes.Store(nb)
	r.dur.stored.Add(int64(n))
}

// drop takes the account's messages out of the router's total once its
// records are deleted; later releases are ignored. Idempotent.
func (a *storeAccount) drop(r *Router) {
	if v := a.msgs.Swap(dropped); v > dropped/2 && r.dur != nil {
		r.dur.stored.Add(-v)
	}
	a.bytes.Store(0)
}

// count is the account's stored messages.
func (a *storeAccount) count() int64 { return max(a.msgs.Load(), 0) }
