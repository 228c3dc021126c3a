package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// MQTT QoS 2 deliveries released (PUBREC taken, PUBREL sent) are
// recorded per session consumer, so that no node hands such a message
// to the session again (broker.QoS2Releaser) and the node that resumes a
// session whose holder died resends the PUBRELs still open, as
// nats-server's MQTT keeps PUBREL records in $MQTT_out. The sender must
// not resend a PUBLISH once it sent its PUBREL [MQTT-4.3.3-6]: to the
// client a PUBLISH under a released packet id is a new message
// [MQTT-4.3.3-12].
//
// The ack alone is not enough. The consumer's leader drops, without an
// answer, an ack for a sequence at or past its next-to-deliver pointer,
// which a reset to the ack floor (attach, rewind) puts back; and a reset
// hands again every message above the ack floor, acknowledged or not
// (an interest stream keeps it while another subscription wants it).
// TestClusterChaos saw both: a QoS 2 PUBLISH resent after its PUBREL,
// from the next node, 1 to 66 times per 8-kill run (S4D's report).
//
// The record of consumer c is the key rel.<c> of the session bucket: the
// released sequences above the consumer's ack floor with their packet
// ids, and whether the PUBCOMP came. It is written with a compare-and-set
// on its revision (one write per consumer per batch of PUBRECs, before
// the PUBRELs: the one confirmed round trip QoS 2 adds), read from the
// bucket's leader (relGet: a replica may lag) when the consumer starts on
// a node and when a session resumes from its record, and trimmed of the
// completed entries at or below the ack floor, which no reset goes
// under. At most relMax entries: past that the PUBRECs wait for the ack
// floor, and fail (no PUBREL; the connection closes) if it does not move.

// relEntry is one released delivery.
type relEntry struct {
	Seq  uint64 `json:"s"`
	ID   uint16 `json:"i"`
	Done bool   `json:"c,omitempty"` // PUBCOMP came
}

// relSet is one consumer's record as a node knows it.
type relSet struct {
	n    *Node
	name string // the consumer

	wmu sync.Mutex // one write at a time

	mu      sync.Mutex
	rev     uint64              // of the record in the bucket; 0: none
	m       map[uint64]relEntry // by stream sequence
	open    map[uint16]uint64   // packet id -> sequence of its entry not completed
	floor   uint64              // the consumer's ack floor, last seen
	floorAt time.Time
	floorGo bool // a floor read is under way
}

const (
	relFloorEvery = time.Second // how often a writing set reads its consumer's ack floor
	// relMax bounds a record (~30 bytes an entry in JSON, well under
	// NATS's 1 MB payload): released messages above a consumer's ack
	// floor, which a client that never acknowledges one message holds
	// still.
	relMax = 8192
)

var errRelFull = fmt.Errorf("cluster: more than %d QoS 2 messages released above the ack floor of one subscription", relMax)

func relKey(consumer string) string { return "rel." + consumer }

func newRelSet(n *Node, name string, floor uint64) *relSet {
	return &relSet{n: n, name: name, m: map[uint64]relEntry{}, open: map[uint16]uint64{}, floor: floor, floorAt: time.Now()}
}

// loadRel reads consumer name's record; floor, when known, trims it.
func (n *Node) loadRel(ctx context.Context, name string, floor uint64) (*relSet, error) {
	rs := newRelSet(n, name, floor)
	b, rev, err := n.relRead(ctx, relKey(name))
	if err != nil {
		return nil, err
	}
	if rev != 0 {
		rs.merge(b, rev)
	}
	return rs, nil
}

// merge adds the entries of record b at revision rev (another node's, or
// our own write whose answer was lost) and takes its revision.
func (rs *relSet) merge(b []byte, rev uint64) {
	var es []relEntry
	_ = json.Unmarshal(b, &es)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.rev = rev
	for _, x := range es {
		if old, ok := rs.m[x.Seq]; ok {
			x.Done = x.Done || old.Done
		}
		rs.putLocked(x)
	}
}

// putLocked sets entry x. Caller holds rs.mu.
func (rs *relSet) putLocked(x relEntry) {
	rs.m[x.Seq] = x
	if !x.Done {
		rs.open[x.ID] = x.Seq
	} else if rs.open[x.ID] == x.Seq {
		delete(rs.open, x.ID)
	}
}

func (rs *relSet) has(seq uint64) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	_, ok := rs.m[seq]
	return ok
}

// done marks packet id completed; false if no open entry has it.
func (rs *relSet) done(id uint16) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	seq, ok := rs.open[id]
	if !ok {
		return false
	}
	delete(rs.open, id)
	if x, ok := rs.m[seq]; ok {
		x.Done = true
		rs.m[seq] = x
	}
	return true
}

// openIDs lists the packet ids released and not completed.
func (rs *relSet) openIDs() []uint16 {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	ids := make([]uint16, 0, len(rs.open))
	for id := range rs.open {
		ids = append(ids, id)
	}
	return ids
}

// trimLocked drops the completed entries at or below the floor (no reset
// brings them back) and reports the entries left. Caller holds rs.mu.
func (rs *relSet) trimLocked() int {
	for seq, x := range rs.m {
		if x.Done && seq <= rs.floor {
			delete(rs.m, seq)
		}
	}
	return len(rs.m)
}

// body is the record to write, trimmed.
func (rs *relSet) body() ([]byte, uint64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.trimLocked()
	es := make([]relEntry, 0, len(rs.m))
	for _, x := range rs.m {
		es = append(es, x)
	}
	b, _ := json.Marshal(es)
	return b, rs.rev
}

// record adds es and writes the record, retried (compare-and-set on its
// revision, merging a newer one) while the bucket has no leader, for
// durableRetry at most. On an error es are not in the set: the caller
// sends no PUBREL, and the messages come again with the next attach.
func (rs *relSet) record(es []relEntry) error {
	rs.wmu.Lock()
	defer rs.wmu.Unlock()
	rs.mu.Lock()
	over := len(rs.m)+len(es) > relMax && rs.trimLocked()+len(es) > relMax
	rs.mu.Unlock()
	if over {
		rs.readFloorNow()
		rs.mu.Lock()
		over = rs.trimLocked()+len(es) > relMax
		rs.mu.Unlock()
		if over {
			return errRelFull // limits before the write
		}
	}
	rs.mu.Lock()
	for _, x := range es {
		rs.putLocked(x)
	}
	rs.mu.Unlock()
	kv, key := rs.n.dur.kv, relKey(rs.name)
	err := rs.n.retryJS(func() error {
		b, rev := rs.body()
		ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
		defer cancel()
		var nrev uint64
		var err error
		if rev == 0 {
			nrev, err = kv.Create(ctx, key, b)
		} else {
			nrev, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			rs.mu.Lock()
			rs.rev = nrev
			rs.mu.Unlock()
			return nil
		}
		// Another writer, or our own write whose answer was lost: take
		// the record as it is and try again.
		if gb, grev, gerr := rs.n.relGet(ctx, key); gerr == nil {
			if grev == 0 {
				rs.mu.Lock()
				rs.rev = 0
				rs.mu.Unlock()
			} else {
				rs.merge(gb, grev)
			}
		}
		return err
	})
	if err != nil {
		rs.drop(es)
		return err
	}
	rs.readFloor()
	return nil
}

// drop takes es out again (their write failed).
func (rs *relSet) drop(es []relEntry) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, x := range es {
		delete(rs.m, x.Seq)
		if rs.open[x.ID] == x.Seq {
			delete(rs.open, x.ID)
		}
	}
}

// readFloor reads the consumer's ack floor now and then, in the
// background, so that the next write trims the record.
func (rs *relSet) readFloor() {
	rs.mu.Lock()
	if rs.floorGo || time.Since(rs.floorAt) < relFloorEvery {
		rs.mu.Unlock()
		return
	}
	rs.floorGo = true
	rs.mu.Unlock()
	go func() {
		rs.readFloorNow()
		rs.mu.Lock()
		rs.floorGo = false
		rs.mu.Unlock()
	}()
}

// readFloorNow reads the consumer's ack floor.
func (rs *relSet) readFloorNow() {
	ctx, cancel := context.WithTimeout(context.Background(), durableTimeout)
	defer cancel()
	var floor uint64
	if c, err := rs.n.dur.st.Consumer(ctx, rs.name); err == nil {
		floor = c.CachedInfo().AckFloor.Stream
	}
	rs.mu.Lock()
	rs.floor = max(rs.floor, floor)
	rs.floorAt = time.Now()
	rs.mu.Unlock()
}

// errRelGet is a leader read's refusal other than "no record".
var errRelGet = errors.New("cluster: QoS 2 release record not read")
