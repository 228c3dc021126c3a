// Package broker is Duplex's protocol-neutral core: the Router that every
// protocol feeds, the wildcard Index of topic subscriptions, point-to-point
// queues, Sessions and their bounded Outboxes.
//
// # Topics
//
// The canonical topic is MQTT's: levels split by '/', '+' matches one level,
// '#' (last) matches the rest including the parent level, empty levels are
// legal, and wildcards at the first level never match '$' topics
// [MQTT-4.7.2-1]. Protocols translate to this form at their edge (STOMP
// /topic/a/b is topic a/b).
//
// # Data flow
//
// A connection's read loop calls Router.Publish (or PublishBatch)
// synchronously. Every message, durable or not, takes one path (route.go):
// prepare (stamp, admit, match the Index under its read lock into a pooled
// buffer), plan (the per-delivery rules, written once: a share group's
// pick, no-local, the QoS downgrade, one copy per MQTT client for
// overlapping subscriptions, and the sorting into live deliveries and
// those the store must hold first), commit (one store transaction, only
// when the plan has something to store), finish (push into the
// subscribers' Outboxes, stored ones in order, queue messages into their
// queues). Pushing never blocks: a full outbox triggers the slow-consumer
// policy (Config.SlowConsumer), so a publisher never waits on a
// subscriber. Each connection's write loop drains its Outbox, encodes and
// writes.
//
// Retained messages live in a second trie walked by a subscription's
// filter. An MQTT shared subscription is one proxy in the Index per
// (group, filter), handing each message to one member. A persistent session
// (SessionOptions.Expiry) outlives its connection: its subscriptions keep
// collecting QoS 1/2 messages offline, and Open with the same id takes it
// over, moving subscriptions with Index.Replace (one step, so nothing is
// missed or duplicated) and handing over what was not delivered, in order.
// What such a session has beyond its connection (its store account, the
// paging cursor, offline deliveries, expiry, successor, saved protocol
// state) is one type, persistent (persistent.go), that a clean session
// does not have. A Subscription is one of five kinds (subscription.go):
// a topic subscription, a share group's member or proxy, a queue consumer,
// or a durable subscription's index entry.
//
// Queue messages (Message.Queue) go to one consumer each, round robin over
// consumers with room under their prefetch; they are held until Ack, put
// back on Redeliver or when their consumer leaves, and dead-lettered
// (deadletter.go) when rejected or back more than Config.MaxRedeliveries
// times.
//
// # Closing
//
// Session.Close never blocks and is the only way a session ends: it records
// a CloseReason and closes the Outbox; the write loop sends the protocol's
// final frame and closes the transport; the read loop then calls
// Router.Close, which detaches the session's subscriptions.
//
// # Lock order
//
// A → B means B may be acquired while A is held; never the reverse.
//
//	binding.mu → Session.mu, Router.qmu, queue.mu, Index.mu
//	                           one durable subscription's changes (create,
//	                           resume, replace, delete) with their store
//	                           writes and the attach of the consumer that
//	                           asked for them; no publish or delivery path
//	                           takes it
//	Router.mu (sessions)       guards owners and Session.counted too; held
//	                           only for Session.mu (SubscriptionPage),
//	                           Outbox.mu (ClientPage sorted by queued) and
//	                           Router.connMu (Open)
//	Router.tapMu (taps)        leaf: Tap.Close releases it before Tap.mu
//	Tap.mu                     leaf: publishers send without blocking under it
//	authCache.mu               leaf: the Authorizer is asked without it
//	rateLog.mu                 leaf: the log line is written after it
//	Router.connMu (conns)      leaf: taken under Router.mu by Open, alone by Session.Close
//	Router.wmu (wills)         leaf: a will's timer publishes after releasing it
//	Session.mu → Router.qmu    (TempQueue)
//	Router.qmu                 otherwise a leaf: released before any queue.mu
//	Router.smu → shareGroup.mu, Index.mu   (joining and leaving share groups)
//	queue.mu → Outbox.mu       (dispatch; Session.Close may run under queue.mu)
//	queue.mu                   never two at once: dead-lettering releases the
//	                           source queue's lock before it takes the DLQ's,
//	                           and its store commit runs with no lock
//	persistent.mu → Outbox.mu  (a takeover hands unsent and offline messages
//	                           over; deliverStored pushes under it)
//	persistent.mu → Session.mu (refill finds the subscription of a stored message)
//	persistent.mu              a persistent session's one lock (persistent.go);
//	                           never two at once (deliverStored and
//	                           keepOffline follow successors one at a time)
//	storeAccount               no lock: enter and leave count the commits under
//	                           way with atomics. retire waits for them and must
//	                           run with no broker lock held: between enter and
//	                           leave a publisher may take any of them
//	                           (PublishBatch plans and delivers other messages)
//	Index.mu, Retained.mu      leaves: Match copies out before delivery
//	Router.interest.mu → Peers (Interest: the cluster node's own lock, a
//	                           leaf; called under it so that one filter's
//	                           add and remove stay in order)
//	Router.smu → SharePeers    (ShareInterest, likewise)
//	Router.mu, Router.wmu → SessionPeers.Hold (the node's sessions lock, a
//	                           leaf: it records which ids this node holds)
//	queue.mu → PeerMsg         (Ack, Nak, Term of a message the cluster
//	                           handed over, peermsg.go: a leaf; the cluster
//	                           sends the acknowledgement without waiting)
//	Outbox.mu                  leaf
//
// Session.Close takes only the Outbox lock and Router.connMu (both leaves)
// and calls the protocol's OnClose hook, which must not block or take broker locks.
//
// The cluster's JetStream round trips are called with no broker lock held:
// prepare → DurablePeers.DurablePublish, InboundPeers (the QoS 2 record of
// a persistent publisher) and RetainPeers.StoreRetained; ConfirmTaken →
// the QoS 2 release records; DeliverFromPeer → OverlapPeers.ConsumerStart;
// Open's deferred ClaimEnder end. Inside broker/cluster see its doc.go.
//
// No broker lock is held while calling a protocol, a store write or the
// network, with one exception: binding.mu is held across the store writes
// of a durable subscription's change (only SUBSCRIBE, UNSUBSCRIBE and the
// admin delete of that one name wait on it). An acknowledgement for the store (durable.ack) may wait under
// queue.mu or persistent.mu while ackLoop is ackBatch removals behind;
// ackLoop takes no broker lock, so the wait ends when the store catches up. One store read runs under a lock: Refill reads a page of a
// session's stored messages under persistent.mu, which orders the page
// against concurrent deliveries (a bbolt read transaction never waits for
// a writer).
//
// # Ownership, quotas and authorization
//
// Every session has an owner key (owner.go): its user name, or for an
// anonymous client "" (zero configuration) or "@" + its IP
// (Config.AnonymousOwnerByAddress). Open refuses a client id whose
// session, connected or kept offline, belongs to another owner
// (ErrClientIDOwned) without touching it; the owner is in the session's
// store record, so this holds across restarts. Per owner the router counts
// persistent sessions (MaxSessionsPerUser, ErrSessionQuota) and retained
// messages and bytes (MaxRetainedPerUser, MaxRetainedBytesPerUser, next to
// the totals MaxRetained and MaxRetainedBytes; ErrRetainedQuota, the
// message still being routed); MaxSubscriptions bounds all sessions'
// subscriptions (ErrTooManySubs). Each refusal has a Stats counter and a
// log line written at most once per 10 s with the number held back.
//
// The Authorizer is asked once per SUBSCRIBE, and for publishing once per
// session and destination: the answers are cached per session (at most 64,
// dropped when an Authorizer that is a Generationer changes generation),
// so a cache hit does no ACL work and allocates nothing. A resumed
// session's subscriptions are checked again against its new identity.
//
// # Durability
//
// With Config.Store, QoS 1/2 messages for persistent sessions, durable
// subscriptions and queues are committed before Publish returns, and the
// state is restored at startup (Router.Restore); durable.go describes what
// is written when.
package broker
