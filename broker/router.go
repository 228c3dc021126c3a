package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TempQueuePrefix starts the name of every temporary (reply) queue.
const TempQueuePrefix = "tmp."

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

	plans sync.Pool // *routePlan with its buffers (route.go)

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

// takeoverWait bounds how long Open waits for a taken-over connection to
// finish writing before it moves that session's state.
const takeoverWait = 10 * time.Second

// Open creates a session. An empty id gets a generated one. An existing
// session with the same id is closed with CloseTakenOver [MQTT-3.1.4-3];
// unless o.CleanStart, its subscriptions, unsent messages and saved state
// move to the new session (Resumed reports it) [MQTT-3.1.2-5]. A will
// waiting to be published for the id is cancelled (MQTT 5 §3.1.3.2.2).
//
// Refusals, before anything changes:
//   - ErrClientIDOwned: a session with the id (connected, or persistent
//     and offline) has another owner (owner.go); it is neither handed
//     over nor closed, and its pending will stays.
//   - ErrSessionQuota: o.Expiry makes a new persistent session for an
//     owner that has MaxSessionsPerUser already (resuming one of its
//     own is always allowed).
//   - ErrNotAuthorized: the Authorizer does not let the client publish
//     its will (o.Will) (MQTT 5 CONNACK 0x87).
func (r *Router) Open(id SessionID, o SessionOptions) (*Session, error) {
	if id == "" {
		id = SessionID(fmt.Sprintf("%s-%d", r.idPrefix, r.nextSessID.Add(1)))
	}
	owner := r.OwnerKey(o.Identity, o.RemoteAddr)
	s := &Session{
		ID: id, Protocol: o.Protocol, Version: o.Version, RemoteAddr: o.RemoteAddr, Identity: o.Identity, ClientID: o.ClientID,
		Transport: o.Transport, KeepAlive: o.KeepAlive,
		owner: owner, retOwner: retainedOwnerKey(owner, id),
		ConnectedAt: time.Now(), router: r, onClose: o.OnClose,
		Outbox: NewOutbox(r.cfg.MaxPendingMsgs, r.cfg.MaxPendingBytes, r.cfg.MaxControlMsgs, o.Wake),
		subs:   make(map[string]*Subscription),
		done:   make(chan struct{}),
	}
	s.expiry.Store(int64(o.Expiry))
	if o.Expiry != 0 {
		s.stored, s.storedBytes, s.gate = new(atomic.Int64), new(atomic.Int64), newStoreGate()
		// Only a persistent session is waited for at takeover; the expiry
		// can later drop to 0 but never rise from it [MQTT-3.14.2-2].
		s.detached = make(chan struct{})
	}
	if o.Will != nil {
		if !r.allowPublish(s, OpPublish, o.Will.Topic) {
			r.publishDenied.Add(1)
			return nil, fmt.Errorf("%w: will topic %q", ErrNotAuthorized, o.Will.Topic)
		}
		o.Will.owner = s.retOwner // a will is published without its session
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrShuttingDown
	}
	old := r.sessions[id]
	if old != nil && old.owner != "" && old.owner != owner {
		r.mu.Unlock()
		r.clientIDRefused.Add(1)
		if ok, n := r.clientIDLog.allow(time.Now()); ok {
			r.log.Warn("client id belongs to another user; refused", "session", id, "remote", o.RemoteAddr,
				"user", o.Identity.Name, "suppressed", n)
		}
		return nil, ErrClientIDOwned
	}
	if o.Expiry != 0 {
		fresh := old == nil || !old.counted || old.owner != owner
		if fresh && owner != "" && r.cfg.MaxSessionsPerUser > 0 && r.owners[owner] >= r.cfg.MaxSessionsPerUser {
			r.mu.Unlock()
			r.sessionQuotaRefused.Add(1)
			if ok, n := r.sessionLog.allow(time.Now()); ok {
				r.log.Warn("persistent session quota reached; refused", "session", id, "remote", o.RemoteAddr,
					"owner", owner, "limit", r.cfg.MaxSessionsPerUser, "suppressed", n)
			}
			return nil, ErrSessionQuota
		}
	}
	if old != nil {
		r.uncountLocked(old)
	}
	if o.Expiry != 0 {
		s.counted = true
		r.owners[owner]++
	}
	s.opened = make(chan struct{})
	r.sessions[id] = s
	r.countConn(s) // before anyone can close s: it is in the map from here
	r.mu.Unlock()
	defer close(s.opened)
	r.cancelWill(id)
	if old != nil {
		if old.opened != nil {
			// Two connections racing for one id: old's own Open may still
			// be taking over its predecessor. Take old over only once it
			// has, or its predecessor's subscriptions would land in old
			// after we moved old's (lost to us, leaked in the index).
			<-old.opened
		}
		keep := old.Expiry() != 0 && !o.CleanStart && old.detached != nil
		old.taken.Store(true)
		old.Close(CloseTakenOver)
		if keep {
			// Let the old connection finish writing, so its unsent messages
			// stay in its outbox for us to move, in order.
			select {
			case <-old.detached:
			case <-time.After(takeoverWait):
				r.log.Warn("takeover: previous connection did not finish in time", "session", id)
			}
		}
		r.takeover(old, s, o.CleanStart)
	}
	if r.dur != nil {
		if old != nil && old.gate != nil && o.CleanStart {
			// [MQTT-3.1.2-4] the old state goes, on disk too, after the
			// commits under way for it (storeGate).
			old.gate.retire()
			r.forgetSession(id)
		}
		if o.Expiry != 0 {
			if err := r.saveSession(s, time.Time{}, storeWill(o.Will, o.WillDelay)); err != nil {
				r.log.Error("store: session not saved", "session", id, "err", err)
				r.Close(s, CloseServerShutdown)
				return nil, fmt.Errorf("%w: %v", ErrStore, err)
			}
		}
		if s.Paging() {
			r.Refill(s)
		}
	}
	return s, nil
}

// takeover moves a previous session's state to s, or discards it.
func (r *Router) takeover(old, s *Session, clean bool) {
	old.mu.Lock()
	subs := old.subs
	old.subs = make(map[string]*Subscription)
	temps := old.tempQueues
	old.tempQueues = nil
	old.mu.Unlock()
	r.dropTempQueues(temps)
	if !clean && old.Expiry() != 0 {
		r.reauthorize(s, subs)
	}
	if clean || old.Expiry() == 0 {
		r.nsubs.Add(-int64(len(subs)))
		old.offMu.Lock()
		if old.expireAt != nil {
			old.expireAt.Stop()
		}
		old.offline, old.state = nil, nil
		old.offMu.Unlock()
		for _, sub := range subs {
			r.unlink(sub)
		}
		return
	}
	moved := make(map[*Subscription]*Subscription, len(subs))
	s.mu.Lock()
	for k, sub := range subs {
		ns := sub.moveTo(s)
		s.subs[k] = ns
		moved[sub] = ns
	}
	s.mu.Unlock()

	// Hand over, in order: what the old connection never wrote, then what
	// was kept offline (including messages published during the takeover
	// wait), then, through the forward map, whatever still reaches the old
	// subscriptions until they leave the index below.
	old.offMu.Lock()
	if old.expireAt != nil {
		old.expireAt.Stop()
	}
	_, unsent, _ := old.Outbox.Drain(nil, nil)
	if r.dur != nil {
		// Stored deliveries stay in the store: s pages them in, in order,
		// once the protocol is ready (Refill).
		s.stored, s.storedBytes, s.gate = old.stored, old.storedBytes, old.gate
		s.dupUpTo = max(old.dupUpTo, old.sentSeq.Load())
		s.paging.Store(true)
	}
	for _, d := range append(unsent, old.offline...) {
		if d.Seq != 0 {
			continue
		}
		if d.Sub = moved[d.Sub]; d.Sub == nil || d.Msg.Expired() {
			continue
		}
		if s.Outbox.PushDelivery(d) != nil {
			r.offlineDropped.Add(1)
		}
	}
	s.state = old.state
	old.offline, old.state = nil, nil
	old.successor, old.forward = s, moved
	old.offMu.Unlock()

	// Each copy takes its original's place in one step: a message matches
	// exactly one of them (a gap would lose it, an overlap duplicate it).
	for sub, ns := range moved {
		switch {
		case sub.share != nil:
			sub.share.replace(sub, ns)
		case sub.Queue != "":
			r.unlink(sub)
			_ = r.subscribeLinked(ns)
		default:
			r.countOverlap(ns, 1)
			if r.idx.Replace(sub, ns) {
				r.countOverlap(sub, -1)
			} else {
				r.idx.Insert(ns)
			}
		}
	}
	s.resumed = true
}

// reauthorize drops from subs, a resumed session's subscriptions, those
// the Authorizer no longer allows s (its rules were reloaded, or an
// unowned session was claimed by another identity): they leave the index
// and the store, and the session's stored messages for them are dropped
// as they are paged in.
func (r *Router) reauthorize(s *Session, subs map[string]*Subscription) {
	if r.allowAll {
		return
	}
	for key, sub := range subs {
		op, dest := OpSubscribe, sub.Filter
		if sub.Queue != "" {
			if isDurableQueue(sub.Queue) {
				continue // checked on its filter when it was bound
			}
			op, dest = OpQueueReceive, sub.Queue
		}
		if r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), op, dest) {
			continue
		}
		delete(subs, key)
		r.subscribeDenied.Add(1)
		r.nsubs.Add(-1)
		r.unlink(sub)
		r.forgetSub(s, key)
	}
}

// Close ends s for why and removes its subscriptions and temporary queues.
// Unacknowledged queue deliveries go back to their queues. Idempotent.
//
// A persistent session (SessionOptions.Expiry) stays: its subscriptions keep
// collecting QoS 1/2 messages until the same id connects again or the
// expiry passes.
func (r *Router) Close(s *Session, why CloseReason) {
	s.Close(why)
	if s.taken.Load() {
		// Open's takeover moves or drops this session's state; detaching
		// here would open a gap in which the new session misses messages.
		closeOnce(s.detached)
		return
	}
	if s.persistent() && why == CloseServerShutdown {
		// Kept as it is on disk, with the will (if any) published by the
		// protocol already: it is not sent again after the restart.
		if err := r.saveKept(s, time.Time{}); err != nil {
			r.log.Error("store: session not saved", "session", s.ID, "err", err)
		}
	}
	if s.persistent() && why != CloseServerShutdown {
		if d := s.Expiry(); d > 0 {
			s.offMu.Lock()
			if s.expireAt == nil {
				s.expireAt = time.AfterFunc(d, func() { r.expire(s) })
				s.expiresAt = time.Now().Add(d)
			}
			s.offMu.Unlock()
			if err := r.saveKept(s, time.Now().Add(d)); err != nil {
				r.log.Error("store: session not saved", "session", s.ID, "err", err)
			}
		} else if err := r.saveKept(s, time.Time{}); err != nil {
			r.log.Error("store: session not saved", "session", s.ID, "err", err)
		}
		closeOnce(s.detached)
		return
	}
	if s.Expiry() == 0 && r.dur != nil && s.gate != nil {
		// The session had state on disk and ends now: MQTT 5 DISCONNECT set
		// Session Expiry to 0, or it resumed with an expiry of 0.
		s.gate.retire()
		r.forgetSession(s.ID)
	}
	r.mu.Lock()
	r.removeLocked(s)
	r.mu.Unlock()
	r.detach(s)
	closeOnce(s.detached)
}

// removeLocked removes s from the sessions if it is there (not taken over)
// and reports whether it was. Caller holds r.mu.
func (r *Router) removeLocked(s *Session) bool {
	if r.sessions[s.ID] != s {
		return false
	}
	delete(r.sessions, s.ID)
	r.uncountLocked(s)
	return true
}

// uncountLocked takes s out of its owner's persistent-session count.
// Caller holds r.mu.
func (r *Router) uncountLocked(s *Session) {
	if !s.counted {
		return
	}
	s.counted = false
	if r.owners[s.owner]--; r.owners[s.owner] <= 0 {
		delete(r.owners, s.owner)
	}
}

// expire ends a persistent session whose expiry passed while offline.
func (r *Router) expire(s *Session) {
	r.mu.Lock()
	if !r.removeLocked(s) {
		r.mu.Unlock()
		return // taken over meanwhile
	}
	r.mu.Unlock()
	s.offMu.Lock()
	s.offline, s.state = nil, nil
	s.offMu.Unlock()
	r.detach(s)
	if s.gate != nil {
		s.gate.retire()
	}
	r.forgetSession(s.ID)
}

// closeOnce closes ch unless it is nil or closed already. Callers
// serialise per session (Router.Close runs on the session's own read loop).
func closeOnce(ch chan struct{}) {
	if ch == nil {
		return
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// detach removes every subscription and temporary queue of a closed session.
func (r *Router) detach(s *Session) {
	s.mu.Lock()
	subs := make([]*Subscription, 0, len(s.subs))
	for k, sub := range s.subs {
		subs = append(subs, sub)
		delete(s.subs, k)
	}
	temps := s.tempQueues
	s.tempQueues = nil
	s.mu.Unlock()
	r.nsubs.Add(-int64(len(subs)))
	for _, sub := range subs {
		r.unlink(sub)
	}
	r.dropTempQueues(temps)
}

// reserveSub counts one more subscription if MaxSubscriptions allows it.
func (r *Router) reserveSub() bool {
	if n := r.nsubs.Add(1); r.cfg.MaxSubscriptions > 0 && n > int64(r.cfg.MaxSubscriptions) {
		r.nsubs.Add(-1)
		return false
	}
	return true
}

// denySubscribe counts and returns a refused subscription.
func (r *Router) denySubscribe() error {
	r.subscribeDenied.Add(1)
	return ErrNotAuthorized
}

func (r *Router) dropTempQueues(names []string) {
	if len(names) == 0 {
		return
	}
	r.qmu.Lock()
	for _, name := range names {
		delete(r.queues, name)
	}
	r.qmu.Unlock()
}

// Subscribe adds sub for its session: a topic subscription when sub.Filter
// is set, a queue consumer when sub.Queue is set. Waiting queue messages are
// dispatched at once.
func (r *Router) Subscribe(s *Session, sub *Subscription) error {
	if isDurableQueue(sub.Queue) {
		return fmt.Errorf("%w: %s names a durable subscription's queue", ErrInvalidQueue, DurableQueuePrefix)
	}
	return r.subscribe(s, sub)
}

func (r *Router) subscribe(s *Session, sub *Subscription) error {
	sub.Session = s
	switch {
	case sub.Queue != "":
		if err := ValidQueueName(sub.Queue); err != nil {
			return err
		}
	default:
		if err := ValidFilter(sub.Filter); err != nil {
			return err
		}
	}
	op, dest := OpSubscribe, sub.Filter
	if sub.Queue != "" {
		op, dest = OpQueueReceive, sub.Queue
	}
	// A durable subscription's queue is the owner's own: SubscribeDurable
	// has checked the topic filter, which is what the ACL speaks of.
	if !sub.Durable && !r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), op, dest) {
		return r.denySubscribe()
	}
	var q *queue
	if sub.Queue != "" {
		var err error
		if q, err = r.queueFor(sub.Queue, s); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.Closed() {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	if _, dup := s.subs[sub.Key]; dup {
		s.mu.Unlock()
		return ErrDuplicateSub
	}
	if len(s.subs) >= r.cfg.MaxSubsPerSession || !r.reserveSub() {
		s.mu.Unlock()
		return ErrTooManySubs
	}
	s.subs[sub.Key] = sub
	s.mu.Unlock()
	if q != nil {
		q.addConsumer(r, sub)
	} else {
		r.link(sub)
	}
	return nil
}

// link puts a topic subscription into the index or its share group.
func (r *Router) link(sub *Subscription) {
	if sub.Group != "" {
		r.joinShare(sub)
		return
	}
	r.countOverlap(sub, 1) // before: a message matching both sees it
	r.idx.Insert(sub)
}

// oneCopy reports a session whose overlapping topic subscriptions share
// one copy of a message (route.go merge): an MQTT client's, unless
// Config.PerSubscriptionCopies. A STOMP client gets a MESSAGE per
// subscription id, as STOMP says.
func (r *Router) oneCopy(s *Session) bool {
	return !r.cfg.PerSubscriptionCopies && s.Protocol == "mqtt"
}

// countOverlap adds n to the count of sub's session's subscriptions that
// may overlap (Session.overlaps), for a topic subscription entering (1) or
// leaving (-1) the index.
func (r *Router) countOverlap(sub *Subscription, n int32) {
	if r.oneCopy(sub.Session) {
		sub.Session.overlaps.Add(n)
	}
}

// subscribeLinked re-links a moved queue consumer.
func (r *Router) subscribeLinked(sub *Subscription) error {
	q, err := r.queueFor(sub.Queue, sub.Session)
	if err != nil {
		return err
	}
	q.addConsumer(r, sub)
	return nil
}

// SubscribeReplace is Subscribe for MQTT: a subscription with the same key
// is replaced, not refused [MQTT-3.8.4-3] (the new one is linked before the
// old one leaves, so nothing is missed), and the retained messages that
// match the filter are returned [MQTT-3.3.1-6]. existed reports a
// replacement (MQTT 5 Retain Handling 1 sends retained messages only for a
// new subscription).
func (r *Router) SubscribeReplace(s *Session, sub *Subscription) (retained []*Message, existed bool, err error) {
	sub.Session = s
	if err := ValidFilter(sub.Filter); err != nil {
		return nil, false, err
	}
	if !r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), OpSubscribe, sub.Filter) {
		return nil, false, r.denySubscribe()
	}
	s.mu.Lock()
	if s.Closed() {
		s.mu.Unlock()
		return nil, false, ErrSessionClosed
	}
	old := s.subs[sub.Key]
	if old == nil && (len(s.subs) >= r.cfg.MaxSubsPerSession || !r.reserveSub()) {
		s.mu.Unlock()
		return nil, false, ErrTooManySubs
	}
	s.subs[sub.Key] = sub
	s.mu.Unlock()
	r.link(sub)
	if old != nil {
		r.unlink(old)
	}
	if err := r.saveSub(s, sub); err != nil {
		r.log.Error("store: subscription not saved", "session", s.ID, "key", sub.Key, "err", err)
	}
	if sub.Group == "" { // shared subscriptions get no retained messages [MQTT-4.8.2-? v5 §3.3.1.3]
		retained = r.retained.Match(sub.Filter, nil)
	}
	return retained, old != nil, nil
}

// Unsubscribe removes s's subscription with key. A queue consumer's
// unacknowledged messages go back to the queue.
func (r *Router) Unsubscribe(s *Session, key string) error {
	s.mu.Lock()
	sub := s.subs[key]
	delete(s.subs, key)
	s.mu.Unlock()
	if sub == nil {
		return ErrNoSuchSub
	}
	r.nsubs.Add(-1)
	r.unlink(sub)
	r.forgetSub(s, key)
	return nil
}

func (r *Router) unlink(sub *Subscription) {
	if sub.share != nil {
		r.leaveShare(sub)
		return
	}
	if sub.Queue == "" {
		r.idx.Remove(sub)
		r.countOverlap(sub, -1)
		return
	}
	r.qmu.Lock()
	q := r.queues[sub.Queue]
	r.qmu.Unlock()
	if q != nil {
		q.removeConsumer(r, sub)
	}
}

// queueFor returns the named queue, creating a shared one if needed. A
// temporary queue may only be consumed by its owner.
func (r *Router) queueFor(name string, s *Session) (*queue, error) {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	q := r.queues[name]
	if q == nil {
		if strings.HasPrefix(name, TempQueuePrefix) {
			return nil, ErrInvalidQueue
		}
		q = newQueue(name, nil)
		r.queues[name] = q
	}
	if q.owner != nil && q.owner != s {
		return nil, ErrQueueExclusive
	}
	return q, nil
}

// TempQueue creates a queue private to s, deleted when s closes, for
// request/reply (STOMP /temp-queue). It returns the queue's name, which
// other sessions may send to but not consume from.
func (r *Router) TempQueue(s *Session) (string, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := TempQueuePrefix + hex.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Closed() {
		return "", ErrSessionClosed
	}
	s.tempQueues = append(s.tempQueues, name)
	r.qmu.Lock()
	r.queues[name] = newQueue(name, s)
	r.qmu.Unlock()
	return name, nil
}

// PublishWill publishes m, the will of a connection that ended without a
// clean DISCONNECT, after delay (MQTT 5 Will Delay Interval); a connection
// with the same id within the delay cancels it.
func (r *Router) PublishWill(id SessionID, m *Message, delay time.Duration) {
	if delay <= 0 {
		_ = r.Publish(context.Background(), nil, m)
		return
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if old := r.wills[id]; old != nil {
		old.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		r.wmu.Lock()
		if r.wills[id] != t {
			r.wmu.Unlock()
			return
		}
		delete(r.wills, id)
		r.wmu.Unlock()
		_ = r.Publish(context.Background(), nil, m)
	})
	r.wills[id] = t
}

func (r *Router) cancelWill(id SessionID) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if t := r.wills[id]; t != nil {
		t.Stop()
		delete(r.wills, id)
	}
}

// Redeliver puts an unacknowledged delivery back. A queue delivery returns
// to its queue (NACK); a topic delivery goes to the same subscription again,
// marked redelivered.
func (r *Router) Redeliver(d Delivery) {
	if d.Tag != 0 {
		if q := r.queueOf(d.Sub); q != nil {
			q.nack(r, d.Tag)
		}
		return
	}
	d.Redelivered = true
	r.deliver(d)
}

// Ack settles a delivery. Topic deliveries need nothing; a queue delivery
// is removed from its queue and frees a prefetch slot.
func (r *Router) Ack(d Delivery) {
	if d.Seq != 0 {
		r.ackStored(d)
	}
	if d.Tag == 0 {
		return
	}
	if q := r.queueOf(d.Sub); q != nil {
		q.ack(r, d.Tag)
	}
}

func (r *Router) queueOf(sub *Subscription) *queue {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return r.queues[sub.Queue]
}

// Shutdown closes every session with CloseServerShutdown and refuses new
// ones. It does not wait for connections to finish; the gateway does.
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	all := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.Close(CloseServerShutdown)
	}
	return ctx.Err()
}
