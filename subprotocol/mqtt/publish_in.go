package mqtt

import (
	"errors"
	"log/slog"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// handlePublish routes an inbound PUBLISH (MQTT 5 §3.3.4): QoS 0 is
// published; QoS 1 is published, then acknowledged with PUBACK; QoS 2 is
// published once per packet id and acknowledged with PUBREC, and a
// repeated PUBLISH with an id still awaiting PUBREL is only acknowledged
// again [MQTT-4.3.3-10] (method B: the server forwards at once).
func (c *conn) handlePublish(p *Publish) error {
	if len(p.Properties.SubscriptionIdentifier) > 0 {
		// [MQTT-3.3.4-6] only the server sends Subscription Identifiers.
		return Error{Code: CodeProtocolError, Reason: "PUBLISH from a client carries a subscription identifier [MQTT-3.3.4-6]"}
	}
	topic, err := c.resolveAlias(p)
	if err != nil {
		return err
	}
	if p.QoS == 2 {
		c.q2mu.Lock()
		_, dup := c.qos2In[p.PacketID]
		n := len(c.qos2In)
		c.q2mu.Unlock()
		if dup {
			c.answer(&Ack{Kind: PUBREC, PacketID: p.PacketID}) // [MQTT-4.3.3-10]
			return nil
		}
		// [MQTT-3.3.4-7] at most Receive Maximum QoS 2 publications may
		// await PUBREL, else DISCONNECT 0x93 (MQTT 5 §3.3.4); QoS 1 ones
		// are acknowledged before the next packet is read, or wait in the
		// bounded publish pipeline, so they never add up.
		if n >= c.cfg.ReceiveMaximum {
			return Error{Code: CodeReceiveMaximumExceeded, Reason: "more unacknowledged QoS 2 PUBLISH packets than Receive Maximum [MQTT-3.3.4-7]"}
		}
	}
	m := &broker.Message{
		Topic: topic, Payload: p.Payload, QoS: broker.QoS(p.QoS),
		Retain: p.Retain, // the router stores or clears it [MQTT-3.3.1-5] [MQTT-3.3.1-6]
		Origin: "mqtt",
	}
	if c.version >= Version5 {
		applyProps(m, &p.Properties)
	}
	if c.router.Durable() && (c.pipe.Busy() || p.QoS > 0 && c.router.MayCommit(c.sess, m, p.QoS == 2)) {
		// Acknowledged once stored, off the read loop, so a client
		// with many packets in flight shares commits (pipeline.go).
		// One that nothing stores is published at once, as QoS 0 is.
		if p.QoS == 2 {
			c.q2mu.Lock()
			if c.qos2In == nil {
				c.qos2In = make(map[uint16]struct{})
			}
			c.qos2In[p.PacketID] = struct{}{} // released again if refused
			c.q2mu.Unlock()
		}
		c.submit(pubJob{qos: p.QoS, id: p.PacketID, m: m, dup: p.Dup})
		return nil
	}
	if p.QoS == 2 {
		err = c.router.PublishExactlyOnce(c.ctx, c.sess, m, p.PacketID)
	} else {
		err = c.router.Publish(c.ctx, c.sess, m)
	}
	return c.acknowledge(p.QoS, p.PacketID, err, c.answer)
}

// acknowledge answers a routed PUBLISH: PUBACK (QoS 1) or PUBREC (QoS 2),
// with a v5 reason code when it was refused (pubackCode, the one mapping).
// A non-nil return closes the connection (3.x has no way to refuse most
// failures [MQTT-3.3.5-2]).
func (c *conn) acknowledge(qos byte, id uint16, err error, reply func(Packet)) error {
	switch {
	case err == nil:
	case errors.Is(err, broker.ErrNotAuthorized):
		c.p.ctr.PublishDenied()
		if c.version < Version5 {
			c.logf(slog.LevelDebug, "mqtt: PUBLISH not authorized, dropped")
		}
	case errors.Is(err, broker.ErrRetainedQuota):
		c.p.ctr.RetainRefused()
	}
	code, _, fatal := pubackCode(err, c.version)
	if fatal != nil {
		return fatal
	}
	switch qos {
	case 1:
		reply(&Ack{Kind: PUBACK, PacketID: id, ReasonCode: code})
	case 2:
		// A failure code ends the flow (MQTT 5 §4.3.3): the id is free,
		// on disk too (a quota refusal stored it with the message). A
		// 3.x PUBLISH dropped as not authorized keeps its id until PUBREL
		// like any other.
		if code.IsError() {
			if _, err := c.router.ReleaseInboundID(c.sess, id, true); err != nil {
				return err
			}
		}
		c.q2mu.Lock()
		if code.IsError() {
			delete(c.qos2In, id)
		} else {
			if c.qos2In == nil {
				c.qos2In = make(map[uint16]struct{})
			}
			c.qos2In[id] = struct{}{}
		}
		c.q2mu.Unlock()
		reply(&Ack{Kind: PUBREC, PacketID: id, ReasonCode: code})
	}
	return nil
}

// resolveAlias applies a v5 Topic Alias (MQTT 5 §3.3.2.3.4): a PUBLISH with
// a topic and an alias sets the alias, one with only an alias uses it.
func (c *conn) resolveAlias(p *Publish) (string, error) {
	a := p.Properties.TopicAlias
	if a == 0 {
		return p.Topic, nil
	}
	// [MQTT-3.3.2-9] 0 < alias <= our Topic Alias Maximum; else 0x94
	// (MQTT 5 §3.3.2.3.4).
	if int(a) > c.cfg.TopicAliasMaximum {
		return "", Error{Code: CodeTopicAliasInvalid, Reason: "topic alias above the server's Topic Alias Maximum [MQTT-3.3.2-10]"}
	}
	if p.Topic != "" {
		if c.aliases == nil {
			c.aliases = make(map[uint16]string)
		}
		c.aliases[a] = p.Topic
		return p.Topic, nil
	}
	t, ok := c.aliases[a]
	if !ok {
		return "", Error{Code: CodeProtocolError, Reason: "topic alias not set on this connection (MQTT 5 §3.3.2.3.4)"}
	}
	return t, nil
}

// applyProps copies v5 PUBLISH (or Will) properties into m.
func applyProps(m *broker.Message, p *Properties) {
	m.ContentType = p.ContentType
	m.ResponseTopic = p.ResponseTopic
	m.CorrelationData = p.CorrelationData
	m.PayloadFormat = p.PayloadFormat
	if p.HasMessageExpiry {
		// [MQTT-3.3.2-5] an expired message is not delivered onwards.
		m.Expires = time.Now().Add(time.Duration(p.MessageExpiry) * time.Second)
	}
	if len(p.User) > 0 {
		m.Props = make([]broker.Property, len(p.User))
		for i, u := range p.User {
			m.Props[i] = broker.Property{Key: u.Key, Value: u.Value}
		}
	}
}

// handleAck handles PUBREL for an inbound QoS 2 flow and PUBACK, PUBREC
// and PUBCOMP for outbound ones (MQTT 5 §4.3).
func (c *conn) handleAck(p *Ack) error {
	switch p.Kind {
	case PUBREL:
		// [MQTT-4.3.3-11] discard the packet id, answer PUBCOMP.
		code := CodeSuccess
		c.q2mu.Lock()
		_, ok := c.qos2In[p.PacketID]
		c.q2mu.Unlock()
		// Forgotten on disk and in the cluster before PUBCOMP lets the
		// client reuse it [MQTT-4.3.3-12]; an id this connection does not
		// know may be one the cluster holds for a PUBLISH that went
		// through a node that died.
		held, err := c.router.ReleaseInboundID(c.sess, p.PacketID, ok)
		if err != nil {
			return err
		}
		if ok {
			c.q2mu.Lock()
			delete(c.qos2In, p.PacketID)
			c.q2mu.Unlock()
		} else if !held && c.version >= Version5 {
			code = CodePacketIdentifierNotFound // MQTT 5 §3.7.2.1
		}
		c.answer(&Ack{Kind: PUBCOMP, PacketID: p.PacketID, ReasonCode: code})
		return nil
	case PUBACK, PUBCOMP:
		if f, ok := c.settle(p.PacketID, p.Kind); ok {
			switch {
			case p.Kind == PUBACK:
				c.router.Ack(f.d) // a stored delivery leaves the store
			case c.pipe.Busy():
				// Its PUBREC may still be committing: forget the id
				// after that commit, not before.
				c.submit(pubJob{comp: true, id: p.PacketID})
			default:
				c.router.ForgetOutboundID(c.sess, p.PacketID)
			}
			c.kick()
		}
		return nil
	case PUBREC:
		// [MQTT-4.3.3-4] PUBREL follows PUBREC; a failure code ends the
		// flow (MQTT 5 §4.3.3).
		known, freed, d := c.received(p.PacketID, p.ReasonCode.IsError())
		switch {
		case freed:
			c.router.Ack(d)
			c.kick()
		case known && (d.Seq != 0 || c.pipe.Busy()):
			// A stored delivery leaves the store and its packet id is
			// recorded before PUBREL goes out: after a restart the broker
			// resends PUBREL, never the message. The pipeline commits the
			// PUBRECs that arrive together at once, and sends the PUBRELs
			// in PUBREC order [MQTT-4.6.0-3].
			c.submit(pubJob{rec: true, id: p.PacketID, d: d})
		case known:
			c.answer(&Ack{Kind: PUBREL, PacketID: p.PacketID})
		default:
			code := CodeSuccess
			if c.version >= Version5 {
				code = CodePacketIdentifierNotFound // MQTT 5 §3.6.2.1
			}
			c.answer(&Ack{Kind: PUBREL, PacketID: p.PacketID, ReasonCode: code})
		}
	}
	return nil
}
