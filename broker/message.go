package broker

import "time"

// QoS is a delivery guarantee: 0 at most once, 1 at least once, 2 exactly
// once (MQTT 3.1.1 §4.3). A STOMP SEND is QoS 1 (ARCHITECTURE §3.3).
type QoS byte

// The three MQTT qualities of service.
const (
	AtMostOnce  QoS = 0
	AtLeastOnce QoS = 1
	ExactlyOnce QoS = 2
)

// SessionID names a session: a STOMP connection's generated id or an MQTT
// client identifier.
type SessionID string

// Property is one user header (STOMP) or user property (MQTT 5). Order and
// duplicates are kept.
type Property struct {
	Key, Value string
}

// Message is one published message. It is immutable once handed to
// Router.Publish: every delivery shares the same *Message, so nobody may
// modify its fields or its Payload afterwards.
type Message struct {
	ID          uint64 // assigned by Router.Publish
	Topic       string // canonical (MQTT form) topic; empty for a queue message
	Queue       string // point-to-point queue name; empty for a topic message
	Payload     []byte // body, shared by all deliveries
	ContentType string // STOMP content-type / MQTT 5 content type
	// ResponseTopic is a reply topic in canonical form: MQTT 5 Response
	// Topic, or a STOMP reply-to of /topic/<t>.
	ResponseTopic string
	// ReplyTo is a STOMP reply-to that is not a topic (a reply queue).
	ReplyTo string
	// CorrelationData is MQTT 5 Correlation Data; STOMP carries it in the
	// correlation-id header.
	CorrelationData []byte
	// PayloadFormat is MQTT 5's Payload Format Indicator: 1 means UTF-8.
	PayloadFormat byte
	Props         []Property // user headers / user properties, in order
	QoS           QoS
	Retain        bool
	From          SessionID // publishing session; used for no-local and tracing
	// Origin is the publishing protocol ("stomp", "mqtt"; "" for the broker
	// itself): encoders cap the user headers or properties a message
	// carries into the other protocol.
	Origin  string
	Expires time.Time // zero means never

	// owner is what the message counts against when it is retained and
	// has no publishing session: set by Open on a connection's will.
	owner string
	// fromPeer: the message came from another node (Router.PublishFromPeer)
	// and is not forwarded again.
	fromPeer bool
	// notInCluster: a QoS 1/2 topic message the cluster store did not
	// keep (SetNotInCluster, peers_interest.go).
	notInCluster bool
}

// Expired reports whether the message's expiry has passed.
func (m *Message) Expired() bool {
	return !m.Expires.IsZero() && time.Now().After(m.Expires)
}

// Size is the message's weight in an outbox: payload plus headers.
func (m *Message) Size() int {
	n := len(m.Payload) + len(m.Topic) + len(m.Queue) + len(m.ContentType) + len(m.ReplyTo) +
		len(m.ResponseTopic) + len(m.CorrelationData) + 64
	for _, p := range m.Props {
		n += len(p.Key) + len(p.Value) + 2
	}
	return n
}

// Delivery is one message on its way to one subscription. It travels through
// the subscriber's Outbox by value.
type Delivery struct {
	Msg *Message
	// Sub is the subscription the message goes to; for one copy that
	// stands for several overlapping subscriptions of an MQTT client, the
	// one with the highest granted QoS (the others are in also).
	Sub *Subscription
	// also: the overlapping subscriptions this delivery stands for too
	// (route.go merge); nil for most.
	also *overlap
	Tag  uint64 // queue delivery tag to Ack/Nack; 0 for topic deliveries
	// Seq is the delivery's sequence number in its persistent session's
	// stored queue (Config.Store); 0 when it is not stored. A protocol that
	// needs the same packet id after a restart derives it from Seq.
	Seq         uint64
	QoS         QoS  // min(message QoS, granted QoS); the highest of them for overlapping subscriptions
	Redelivered bool // sent before and not acknowledged
	// Returns counts a topic delivery's NACKs (Router.Nack), against
	// Config.MaxRedeliveries; a queue message keeps its count in the queue.
	Returns uint32
}

// overlap is what a delivery for several overlapping subscriptions of one
// client carries besides its Sub: every matching subscription identifier
// and whether any of them asked for Retain As Published.
type overlap struct {
	ids []uint32
	rap bool
	buf [4]uint32 // ids' first backing array: one allocation per copy
}

// SubIDs appends to dst the subscription identifiers a delivery answers
// [MQTT-3.3.4-3]: its subscription's, or for one copy standing for several
// overlapping subscriptions, each of theirs that has one [MQTT-3.3.4-4].
func (d *Delivery) SubIDs(dst []uint32) []uint32 {
	if d.also != nil {
		return append(dst, d.also.ids...)
	}
	if d.Sub != nil && d.Sub.SubID != 0 {
		dst = append(dst, d.Sub.SubID)
	}
	return dst
}

// RetainAsPublished reports whether the message keeps its RETAIN flag
// (MQTT 5 Retain As Published [MQTT-3.3.1-12]): a subscription the
// delivery stands for asked for it.
func (d *Delivery) RetainAsPublished() bool {
	if d.also != nil {
		return d.also.rap
	}
	return d.Sub != nil && d.Sub.RetainAsPublished
}
