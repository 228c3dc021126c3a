package broker

// SavedState is what a persistent session keeps of its connection's
// protocol state between connections (Session.SaveState, TakeState): the
// exactly-once exchanges and deliveries the connection left unfinished.
// The terms are the broker's; MQTT maps its packet ids and stages onto
// them. After a restart only what the store keeps comes back (store.Mark):
// InboundIDs, and Flights at the Released stage with a zero Delivery.
type SavedState struct {
	// Flights are deliveries written to the client and not acknowledged,
	// in the order they were written [MQTT-4.6.0-1].
	Flights []SavedFlight
	// Queue holds QoS 1/2 deliveries the connection had taken from its
	// Outbox and not written yet, in order (not stored ones: the next
	// connection pages those in again).
	Queue []SavedDelivery
	// InboundIDs are the client's exactly-once packet ids published and
	// awaiting release (MQTT PUBREL) [MQTT-4.3.3-10].
	InboundIDs []uint16
	// NextID is the packet id the connection assigned last.
	NextID uint16
}

// SavedFlight is one unacknowledged delivery of a SavedState.
type SavedFlight struct {
	ID       uint16 // packet id it was sent with
	Delivery Delivery
	Retained bool // the RETAIN flag it was sent with
	// Released: the client confirmed it holds the message (MQTT PUBREC,
	// Router.ConfirmTaken) and the release (PUBREL) is to be sent again
	// until it completes [MQTT-4.4.0-1].
	Released bool
}

// SavedDelivery is one unsent delivery of a SavedState.
type SavedDelivery struct {
	Delivery Delivery
	Retained bool // a retained message sent on subscribe [MQTT-3.3.1-8]
}
