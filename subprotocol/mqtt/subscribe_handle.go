package mqtt

import (
	"errors"

	"github.com/duplexmq/duplex/broker"
)

// handleSubscribe adds or replaces each subscription (MQTT 5 §3.8.4) and
// answers SUBACK with one code per filter, in order [MQTT-3.8.4-6]
// [MQTT-3.9.3-1]: the granted QoS, at most the requested one
// [MQTT-3.8.4-8], or a failure (0x80 in 3.x [MQTT-3.9.3-2]). Matching
// retained messages follow the SUBACK, with RETAIN set [MQTT-3.3.1-8], as
// Retain Handling says [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11].
func (c *conn) handleSubscribe(p *Subscribe) error {
	var subID uint32
	if ids := p.Properties.SubscriptionIdentifier; len(ids) > 0 {
		subID = ids[0] // at most one in SUBSCRIBE (MQTT 5 §3.8.2.1.2)
	}
	ack := &Suback{PacketID: p.PacketID, ReasonCodes: make([]ReasonCode, len(p.Subscriptions))}
	var retained []pending
	for i, s := range p.Subscriptions {
		group, filter, _ := SharedFilter(s.Filter)
		sub := &broker.Subscription{SubSpec: broker.SubSpec{
			Key: s.Filter, Filter: filter, Group: group,
			QoS: broker.QoS(min(s.QoS, 2)), NoLocal: s.NoLocal,
			RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling,
			SubID: subID, Durable: c.sess.Expiry() != 0,
		}}
		msgs, existed, err := c.router.SubscribeReplace(c.sess, sub)
		if err != nil {
			if errors.Is(err, broker.ErrSessionClosed) {
				return nil
			}
			if errors.Is(err, broker.ErrNotAuthorized) {
				c.p.ctr.SubscribeDenied()
			}
			ack.ReasonCodes[i] = subackCode(err)
			continue
		}
		ack.ReasonCodes[i] = ReasonCode(sub.QoS)
		// Retain Handling 0: always; 1: only for a new subscription; 2:
		// never (MQTT 5 §3.8.3.1). Shared subscriptions get none
		// (MQTT 5 §4.8.2): the router returns none for them.
		if s.RetainHandling == 2 || (s.RetainHandling == 1 && existed) {
			continue
		}
		for _, m := range msgs {
			retained = append(retained, pending{d: broker.Delivery{Msg: m, Sub: sub, QoS: min(m.QoS, sub.QoS)}, retained: true})
		}
	}
	c.answer(ack)
	if len(retained) > 0 {
		c.mu.Lock()
		c.out.queue = append(c.out.queue, retained...)
		c.mu.Unlock()
		c.kick()
	}
	return nil
}

// handleUnsubscribe removes each subscription (MQTT 5 §3.10.4) and answers
// UNSUBACK [MQTT-3.10.4-4]; v5 says 0x11 for a filter that had none
// (MQTT 5 §3.11.3).
func (c *conn) handleUnsubscribe(p *Unsubscribe) error {
	ack := &Unsuback{PacketID: p.PacketID}
	if c.version >= Version5 {
		ack.ReasonCodes = make([]ReasonCode, len(p.Filters))
	}
	for i, f := range p.Filters {
		err := c.router.Unsubscribe(c.sess, f)
		if c.version >= Version5 && err != nil {
			ack.ReasonCodes[i] = unsubackCode(err)
		}
	}
	c.answer(ack)
	return nil
}
