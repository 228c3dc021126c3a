package store

import "time"

// Ref names one stored message: a session's queued message (Enqueue) or a
// named queue's message (QueuePush), by its sequence number.
type Ref struct {
	Name string // session ID or queue name
	Seq  uint64
}

// Mark is an MQTT QoS 2 packet identifier that a persistent session must
// remember across a restart for exactly-once delivery (MQTT 3.1.1 §4.3.3,
// MQTT 5 §4.3.3). An inbound mark (In) is a PUBLISH the broker received and
// answered with PUBREC, awaiting PUBREL: a resent PUBLISH with that id is
// not routed again [MQTT-4.3.3-10]. An outbound mark is a delivery whose
// PUBREC the broker received and answered with PUBREL, awaiting PUBCOMP:
// after a restart the broker resends PUBREL, not the message [MQTT-4.4.0-1].
type Mark struct {
	Session string
	In      bool
	ID      uint16
}

// Batch is a set of writes that Commit applies in one transaction: a
// publish fan-out (Msg queued for Sessions and pushed onto Queues) together
// with acknowledgements and QoS 2 marks.
type Batch struct {
	Msg      *Msg     // the message for Sessions and Queues; nil if both are empty
	Sessions []string // queue Msg for each of these sessions (as Enqueue)
	Queues   []string // push Msg onto each of these named queues (as QueuePush)

	Acks      []Ref // remove these session-queued messages
	QueueAcks []Ref // remove these named-queue messages
	PutMarks  []Mark
	DelMarks  []Mark
}

// empty reports a batch with nothing to write.
func (b *Batch) empty() bool {
	return len(b.Sessions) == 0 && len(b.Queues) == 0 && len(b.Acks) == 0 &&
		len(b.QueueAcks) == 0 && len(b.PutMarks) == 0 && len(b.DelMarks) == 0
}

// valid checks every key of b.
func (b *Batch) valid() bool {
	if (len(b.Sessions) > 0 || len(b.Queues) > 0) && b.Msg == nil {
		return false
	}
	for _, s := range b.Sessions {
		if !validKey(s) {
			return false
		}
	}
	for _, s := range b.Queues {
		if !validKey(s) {
			return false
		}
	}
	for _, r := range b.Acks {
		if !validKey(r.Name) {
			return false
		}
	}
	for _, r := range b.QueueAcks {
		if !validKey(r.Name) {
			return false
		}
	}
	for _, m := range b.PutMarks {
		if !validKey(m.Session) {
			return false
		}
	}
	for _, m := range b.DelMarks {
		if !validKey(m.Session) {
			return false
		}
	}
	return true
}

// Housekeeping is the part of a Store that the broker uses at startup and
// in the background: the durable-messaging extensions to Store.
type Housekeeping interface {
	// Commit applies b atomically and returns one sequence number per
	// b.Sessions entry followed by one per b.Queues entry. Acks of unknown
	// messages and deletes of unknown marks are not errors. Marks are put
	// after they are deleted, so a batch may move a mark.
	Commit(b *Batch) ([]uint64, error)
	// CommitAll applies several batches in one transaction, in order (a
	// connection's pipelined publishes share one commit and one fsync),
	// and returns Commit's result for each. It writes all or none.
	CommitAll(bs []*Batch) ([][]uint64, error)
	// Marks returns a session's QoS 2 marks, ordered by direction (in
	// first) and id.
	Marks(sessionID string) ([]Mark, error)
	// QueueNames lists the named queues holding messages, in order.
	QueueNames() ([]string, error)
	// Count reports how many messages and payload bytes a session has
	// queued.
	Count(sessionID string) (n int, bytes int64, err error)
	// QueueSeq returns the last sequence number given to a session-queued
	// message (every later one is higher).
	QueueSeq() (uint64, error)
	// Sweep removes records no session owns (queued messages, subscriptions
	// and marks of a session without a record) and queued messages whose
	// expiry is before now, and reports how many records it removed.
	Sweep(now time.Time) (int, error)
}

func markKey(m Mark) []byte {
	k := prefix(m.Session)
	dir := byte('o')
	if m.In {
		dir = 'i'
	}
	return append(k, dir, byte(m.ID>>8), byte(m.ID))
}

// The single-purpose writes of Store are one-kind batches; both
// implementations share these, so Commit is the only write path.
type committer interface {
	Commit(b *Batch) ([]uint64, error)
}

func enqueue(c committer, m Msg, sessionIDs []string) ([]uint64, error) {
	return c.Commit(&Batch{Msg: &m, Sessions: sessionIDs})
}

func ack(c committer, sessionID string, seq uint64) error {
	_, err := c.Commit(&Batch{Acks: []Ref{{Name: sessionID, Seq: seq}}})
	return err
}

func queuePush(c committer, queue string, m Msg) (uint64, error) {
	seqs, err := c.Commit(&Batch{Msg: &m, Queues: []string{queue}})
	if err != nil {
		return 0, err
	}
	return seqs[0], nil
}

func queueAck(c committer, queue string, seq uint64) error {
	_, err := c.Commit(&Batch{QueueAcks: []Ref{{Name: queue, Seq: seq}}})
	return err
}
