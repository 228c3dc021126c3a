package broker

import "errors"

// Sentinel errors. Protocols map them to wire errors in one place each
// (ARCHITECTURE §3.8); wrap with %w and test with errors.Is.
var (
	ErrInvalidTopic  = errors.New("broker: invalid topic name")
	ErrInvalidFilter = errors.New("broker: invalid topic filter")
	ErrInvalidQueue  = errors.New("broker: invalid queue name")
	ErrNotAuthorized = errors.New("broker: not authorized")
	// ErrBadCredentials: wrong password, unknown user, or an invalid,
	// expired or forged token (STOMP "access refused", MQTT 0x04 / 0x86).
	ErrBadCredentials = errors.New("broker: bad user name or password")
	// ErrBanned: the source address failed to log in too often and is
	// refused for a while (MQTT 5 0x8A, 3.x 0x05).
	ErrBanned = errors.New("broker: banned for repeated login failures")
	// ErrClientIDOwned: a persistent session with this client id belongs
	// to another user (MQTT 5 0x85, 3.x 0x02); it is never handed over.
	ErrClientIDOwned = errors.New("broker: client identifier belongs to another user")
	// ErrCredentialExpired: the connection's token expired (MQTT 5
	// DISCONNECT 0xA0, STOMP ERROR).
	ErrCredentialExpired = errors.New("broker: credential expired")
	// ErrRetainedQuota: the publisher (or the broker) is at its limit of
	// retained messages, so the message was not retained (MQTT 5 0x97).
	ErrRetainedQuota = errors.New("broker: retained message quota exceeded")
	// ErrSessionQuota: the user is at its limit of persistent sessions
	// (MQTT 5 0x97, 3.x 0x03).
	ErrSessionQuota     = errors.New("broker: persistent session quota exceeded")
	ErrSlowConsumer     = errors.New("broker: slow consumer")
	ErrTooManySubs      = errors.New("broker: too many subscriptions")
	ErrDuplicateSub     = errors.New("broker: subscription id already in use")
	ErrNoSuchSub        = errors.New("broker: no such subscription")
	ErrQueueFull        = errors.New("broker: queue full")
	ErrQueueExclusive   = errors.New("broker: queue belongs to another session")
	ErrSessionClosed    = errors.New("broker: session closed")
	ErrSessionTakenOver = errors.New("broker: session taken over")
	ErrControlOverflow  = errors.New("broker: control queue overflow")
	ErrShuttingDown     = errors.New("broker: shutting down")
	// ErrQuotaExceeded: a durable subscriber (persistent session, durable
	// subscription or queue) is at its limit of stored messages, so the
	// message was not kept for it (MQTT 5 PUBACK 0x97). Other subscribers
	// got it.
	ErrQuotaExceeded = errors.New("broker: quota exceeded: a durable subscriber's queue is full")
	// ErrStore: the store failed to write; the message was not accepted.
	ErrStore = errors.New("broker: store write failed")
)
