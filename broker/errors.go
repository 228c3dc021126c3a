package broker

import "errors"

// Sentinel errors. Protocols map them to wire errors in one place each
// (ARCHITECTURE §3.8); wrap with %w and test with errors.Is.
var (
	ErrInvalidTopic     = errors.New("broker: invalid topic name")
	ErrInvalidFilter    = errors.New("broker: invalid topic filter")
	ErrInvalidQueue     = errors.New("broker: invalid queue name")
	ErrNotAuthorized    = errors.New("broker: not authorized")
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
