package broker

import "errors"

// QoS2Releaser is what a DurablePeers adds so that an MQTT QoS 2
// delivery the client took (PUBREC) never comes to it again, from any
// node, once its PUBREL went out: the sender must not resend a PUBLISH
// after its PUBREL [MQTT-4.3.3-6], and the client takes a PUBLISH under a
// released packet id for a new message [MQTT-4.3.3-12]. An ack alone
// does not keep that promise across a node's death: the consumer's
// leader may drop it, and the reset of the next attach brings back what
// sits above the ack floor, acknowledged or not (broker/cluster). The
// node that resumes a session whose holder died resends the PUBRELs the
// record holds [MQTT-4.4.0-1] (openDurable), as the local store's marks
// do after a restart.
type QoS2Releaser interface {
	// ReleaseQoS2 records in the cluster that the client of session key
	// holds these deliveries (their handles, with the packet ids), then
	// acknowledges them; no node hands them to the session again. It
	// returns once the records are confirmed, or the error after which
	// the caller must not send the PUBRELs of the deliveries not
	// recorded (recorded[i] false): they come again, with DUP. One record
	// write per subscription per call, whatever the number of
	// deliveries.
	ReleaseQoS2(key string, hs []PeerMsg, ids []uint16) (recorded []bool, err error)
	// CompletedQoS2: the client completed packet id (PUBCOMP); its record
	// goes once the message cannot come again.
	CompletedQoS2(key string, id uint16)
	// ReleasedQoS2 returns the packet ids of the session's record rec
	// whose PUBREL went out and whose PUBCOMP the cluster has not seen:
	// they are resent when the session resumes on another node
	// [MQTT-4.4.0-1].
	ReleasedQoS2(key string, rec *SessionRecord) []uint16
}

// release settles QoS 2 deliveries of the cluster store at PUBREC
// (ConfirmTaken), recs[i] for i in idx: recorded as released in the
// cluster (QoS2Releaser), confirmed, before the caller sends their
// PUBRELs [MQTT-4.3.3-6]. On an error the caller sends none and closes
// the connection; those not recorded (Kept false) come again to the next
// connection, with DUP and the same packet id, and the client answers
// PUBREC again without delivering them twice [MQTT-4.3.3-10]; those
// recorded keep their PUBREL stage.
func (cj *clusterSess) release(recs []Taken, idx []int) error {
	hs := make([]PeerMsg, 0, len(idx))
	ids := make([]uint16, 0, len(idx))
	at := make([]int, 0, len(idx))
	cj.mu.Lock()
	for _, i := range idx {
		rc := &recs[i]
		ref := heldRef{rc.Delivery.Seq, rc.Delivery.Sub.Key}
		if h := cj.held[ref]; h != nil {
			hs = append(hs, h)
			ids = append(ids, rc.PacketID)
			at = append(at, i)
		}
		delete(cj.held, ref)
	}
	cj.mu.Unlock()
	var err error
	if len(at) < len(idx) {
		// Its connection ended (detachDurable): not acknowledged, it
		// comes again to the next one, so no PUBREL goes out for it.
		err = errNotHeld
	}
	if len(hs) == 0 {
		return err
	}
	rl, ok := cj.dp.(QoS2Releaser)
	if !ok {
		for _, h := range hs {
			h.Ack()
		}
		return err
	}
	recorded, rerr := rl.ReleaseQoS2(cj.key, hs, ids)
	for j, ok := range recorded {
		recs[at[j]].Kept = ok
	}
	return errors.Join(rerr, err)
}

var errNotHeld = errors.New("broker: a QoS 2 delivery of the cluster store is no longer held (its connection ended)")

// completed is the PUBCOMP of packet id (ForgetOutboundID).
func (cj *clusterSess) completed(id uint16) {
	if rl, ok := cj.dp.(QoS2Releaser); ok {
		rl.CompletedQoS2(cj.key, id)
	}
}
