package broker

// Ack settles a delivery. Topic deliveries need nothing; a queue delivery
// is removed from its queue and frees a prefetch slot.
func (r *Router) Ack(d Delivery) {
	if d.Seq != 0 {
		if cj := d.Sub.Session.clusterDurable(); cj != nil {
			cj.settle(d) // peers_durable.go
		} else {
			r.ackStored(d)
		}
	}
	if d.Tag == 0 {
		return
	}
	if q := r.queueOf(d.Sub); q != nil {
		q.ack(r, d.Tag)
	}
}

// Redeliver puts an unacknowledged delivery back. A queue delivery returns
// to its queue (NACK); a topic delivery goes to the same subscription again,
// marked redelivered.
func (r *Router) Redeliver(d Delivery) {
	if d.Tag != 0 {
		if q := r.queueOf(d.Sub); q != nil {
			q.nack(r, d.Tag)
		}
		return
	}
	d.Redelivered = true
	r.deliver(d)
}
