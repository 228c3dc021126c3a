package mqtt

import (
	"time"

	"github.com/duplexmq/duplex/broker"
)

// appendPublish encodes a delivery as PUBLISH (MQTT 5 §3.3) with packet id
// id (ignored for QoS 0). retained is the RETAIN flag: set for a retained
// message sent because of a SUBSCRIBE [MQTT-3.3.1-8], otherwise only when
// a subscription the delivery answers asked for Retain As Published (v5)
// [MQTT-3.3.1-12] [MQTT-3.3.1-13] (3.1.1: [MQTT-3.3.1-9]). ok is false when the packet is larger than the client's
// Maximum Packet Size: it is then not sent to this client
// [MQTT-3.1.2-25], and buf is unchanged.
func (c *conn) appendPublish(buf []byte, d broker.Delivery, retained bool, id uint16, dup bool) ([]byte, bool) {
	m := d.Msg
	p := Publish{
		Dup: dup && d.QoS > 0, QoS: byte(d.QoS), Topic: m.Topic, Payload: m.Payload,
		Retain: retained || (m.Retain && d.RetainAsPublished()),
	}
	if d.QoS > 0 {
		p.PacketID = id
	}
	if c.version >= Version5 {
		pp := &p.Properties
		pp.ContentType = m.ContentType
		pp.ResponseTopic = m.ResponseTopic
		pp.CorrelationData = m.CorrelationData
		pp.PayloadFormat = m.PayloadFormat
		if !m.Expires.IsZero() {
			// [MQTT-3.3.2-6] the remaining lifetime, in whole seconds.
			left := time.Until(m.Expires)
			pp.MessageExpiry, pp.HasMessageExpiry = uint32(max(1, (left+time.Second-1)/time.Second)), true
		}
		// [MQTT-3.3.4-3] the matching subscription's identifier; for one
		// copy that stands for overlapping subscriptions, each of theirs
		// [MQTT-3.3.4-4] (several Subscription Identifier properties).
		pp.SubscriptionIdentifier = d.SubIDs(nil)
		if len(m.Props) > 0 {
			// [MQTT-3.3.2-17] user properties unaltered, in order; a
			// message from another protocol carries at most
			// MaxOutboundHeaders of them, the rest dropped and counted.
			// An unknown origin ("": the broker's own, or restored from
			// the store, which does not keep it) may be an MQTT
			// publisher's, so it is left whole.
			props := m.Props
			if max := c.cfg.MaxOutboundHeaders; m.Origin != "" && m.Origin != "mqtt" && max >= 0 && len(props) > max {
				c.p.ctr.HeadersDropped(len(props) - max)
				props = props[:max]
			}
			pp.User = make([]UserProperty, len(props))
			for i, u := range props {
				pp.User[i] = UserProperty{Key: u.Key, Value: u.Value}
			}
		}
	}
	newAlias := c.topicAlias(&p)
	// The concrete methods, not AppendPacket and PacketSize: through the
	// Packet interface p would be allocated for every delivery.
	n := p.size(c.version)
	if c.maxOutPacket > 0 && 1+varintLen(n)+n > c.maxOutPacket {
		return buf, false
	}
	if newAlias {
		// Only a PUBLISH that goes out teaches the client the alias.
		if c.aliasesOut == nil {
			c.aliasesOut = make(map[string]uint16)
		}
		c.aliasesOut[p.Topic] = p.Properties.TopicAlias
	}
	buf = append(buf, byte(PUBLISH)<<4|p.flags())
	buf = appendVarint(buf, n)
	return p.appendBody(buf, c.version), true
}

// topicAlias applies an outbound Topic Alias to p (MQTT 5 §3.3.2.3.4): a
// topic that has one goes out as the alias alone with an empty topic name;
// while the client's Topic Alias Maximum allows, a new topic gets the next
// alias, sent with the topic so the client learns it. Aliases are never
// reassigned, and each lives as long as the connection [MQTT-3.3.2-7]. It
// reports a new alias, which the caller records once the packet is sent.
func (c *conn) topicAlias(p *Publish) (newAlias bool) {
	if c.version < Version5 || c.aliasMax == 0 {
		return false
	}
	if a, ok := c.aliasesOut[p.Topic]; ok {
		p.Topic, p.Properties.TopicAlias = "", a
		return false
	}
	if len(c.aliasesOut) >= int(c.aliasMax) {
		return false // all given out: send the full topic [MQTT-3.3.2-9]
	}
	p.Properties.TopicAlias = uint16(len(c.aliasesOut) + 1)
	return true
}
