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

// Subscription is one session's interest in a topic filter or a queue.
// The router owns it after Router.Subscribe; its fields must not change
// afterwards except through the router.
type Subscription struct {
	Session  *Session
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

	pos      int         // slot in the index node's subscriber slice, guarded by the Index lock
	inflight int         // unacknowledged queue deliveries, guarded by the queue's lock
	share    *shareGroup // the group of a shared subscription (members and the proxy)
	bind     *queue      // a durable subscription's index entry: matches go into this queue
}

// moveTo returns a copy of s for session to, made of the fields the owner
// may read without the index or queue locks (pos and inflight are theirs).
func (s *Subscription) moveTo(to *Session) *Subscription {
	return &Subscription{
		Session: to, Key: s.Key, Filter: s.Filter, Queue: s.Queue, QoS: s.QoS, Ack: s.Ack,
		Prefetch: s.Prefetch, NoLocal: s.NoLocal, Durable: s.Durable, Group: s.Group,
		RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, SubID: s.SubID,
		Data: s.Data, share: s.share,
	}
}

// isProxy reports the index entry that stands for a whole share group.
func (s *Subscription) isProxy() bool { return s.share != nil && s.Session == nil }
