package broker

// AckMode says when a subscriber's delivery counts as consumed
// (STOMP 1.2 §SUBSCRIBE ack Header).
type AckMode uint8

// The STOMP acknowledgement modes. MQTT QoS 1/2 subscriptions behave like
// AckClientIndividual.
const (
	AckAuto             AckMode = iota // consumed once handed to the connection
	AckClient                          // cumulative: an ACK covers every earlier message
	AckClientIndividual                // each message is acknowledged on its own
)

func (a AckMode) String() string {
	switch a {
	case AckClient:
		return "client"
	case AckClientIndividual:
		return "client-individual"
	}
	return "auto"
}

// Subscription is one session's interest in a topic filter or a queue, or
// one of the router's own entries in the Index. The router owns it after
// Router.Subscribe: the SubSpec must not change afterwards except through
// the router.
//
// It is one of five kinds (subKind), told apart by kind, each with its own
// data: a session's topic subscription (in the Index), a member of an MQTT
// share group (in its group: share), a share group's proxy (in the Index
// for the whole group: share, no Session), a queue consumer (in its queue),
// and a durable subscription's entry (in the Index with no Session: its
// matches go into bind, the subscription's queue). The places the router
// keeps it (at) belong to the Index and queue locks and are not part of
// what a takeover moves (moveTo).
type Subscription struct {
	SubSpec
	Session *Session

	kind  subKind
	share *shareGroup // kindShared: its group; kindShareProxy: the group it stands for
	bind  *queue      // kindBinding: the queue its matches go into
	at    subPlace
}

// SubSpec is what a subscription asks for: set by the protocol, copied
// whole when a session is taken over.
type SubSpec struct {
	Key      string  // the protocol's name for it: STOMP subscription id, MQTT filter
	Filter   string  // topic filter in canonical (MQTT) form; empty for a queue consumer
	Queue    string  // queue name for a point-to-point consumer; empty for a topic subscription
	QoS      QoS     // granted QoS
	Ack      AckMode // STOMP ack mode
	Prefetch int     // most unacknowledged queue deliveries at once; 0 means no limit
	NoLocal  bool    // do not deliver the session's own messages (MQTT 5 no-local)
	Durable  bool
	// Group names an MQTT shared subscription ($share/<Group>/<Filter>):
	// each message goes to one member of the group.
	Group string
	// MQTT 5 subscription options and identifier, for the protocol's use.
	RetainAsPublished bool
	RetainHandling    byte
	SubID             uint32

	// Data is the protocol's own per-subscription state (for STOMP, the
	// destination as the client wrote it). The router never reads it.
	Data any
}

// subKind is which of its five kinds a Subscription is.
type subKind uint8

const (
	kindTopic      subKind = iota // a session's topic subscription, in the Index
	kindShared                    // a member of a share group, in the group
	kindShareProxy                // a share group's entry in the Index (no Session)
	kindQueue                     // a queue consumer, in its queue
	kindBinding                   // a durable subscription's entry in the Index (no Session)
)

// subPlace is where the router keeps a subscription, guarded by the lock
// of the structure that holds it.
type subPlace struct {
	pos      int // slot in the index node's subscriber slice, guarded by the Index lock
	inflight int // unacknowledged queue deliveries, guarded by the queue's lock
}

// sessionKind is the kind of a session's subscription with spec sp.
func sessionKind(sp *SubSpec) subKind {
	switch {
	case sp.Queue != "":
		return kindQueue
	case sp.Group != "":
		return kindShared
	}
	return kindTopic
}

// moveTo returns a copy of s for session to: the spec whole, the kind with
// its group (a share member stays in its group), and none of the places
// the router keeps s (the Index and queue locks guard them).
func (s *Subscription) moveTo(to *Session) *Subscription {
	return &Subscription{SubSpec: s.SubSpec, Session: to, kind: s.kind, share: s.share}
}

// isProxy reports the index entry that stands for a whole share group.
func (s *Subscription) isProxy() bool { return s.kind == kindShareProxy }
