package stomp

import (
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
)

// maxPrefetch bounds prefetch-count.
const maxPrefetch = 1 << 16

// handleSubscribe adds a subscription (STOMP 1.2 §SUBSCRIBE): id (the
// destination in 1.0, where id is optional), ack mode, prefetch-count.
func (c *conn) handleSubscribe(f *frame.Frame) error {
	destination := f.Header.Get(frame.Destination)
	d, err := parseDest(destination, c.cfg.TopicSeparator, true)
	if err != nil {
		return err
	}
	id, ok := f.Header.Contains(frame.Id)
	if !ok {
		if c.version != "1.0" {
			return protocolErr("missing id", "SUBSCRIBE needs an id header in STOMP %s", c.version)
		}
		id = destination
	}
	ack, err := parseAckMode(f.Header.Get(frame.Ack))
	if err != nil {
		return err
	}
	prefetch := 0
	if p, ok := f.Header.Contains("prefetch-count"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > maxPrefetch {
			return protocolErr("invalid prefetch-count", "prefetch-count %q must be an integer from 0 to %d", p, maxPrefetch)
		}
		prefetch = n
	}
	sub := &broker.Subscription{SubSpec: broker.SubSpec{
		Key: id, Filter: d.topic, Queue: d.queue, QoS: broker.AtLeastOnce, Ack: ack, Prefetch: prefetch,
		Data: &subState{id: id, dest: destination, ack: ack},
	}}
	if d.queue != "" && len(d.queue) > len(broker.TempQueuePrefix) && d.queue[:len(broker.TempQueuePrefix)] == broker.TempQueuePrefix {
		return protocolErr("access refused", "reply queues are consumed through /temp-queue/ reply-to headers")
	}
	if name, ok := c.durableName(f, id); ok && d.topic != "" {
		return c.router.SubscribeDurable(c.sess, sub, name)
	}
	return c.router.Subscribe(c.sess, sub)
}

// durableName reads a durable topic subscription's name in the three
// dialects STOMP clients use (none is in STOMP 1.2 itself):
//
//   - RabbitMQ: durable:true (or persistent:true) on SUBSCRIBE, named by the
//     subscription id; auto-delete:true makes it not durable.
//   - ActiveMQ: activemq.subscriptionName, with CONNECT's client-id.
//   - Artemis: durable-subscription-name (or durable-subscriber-name),
//     with CONNECT's client-id.
//
// The name is scoped by CONNECT's client-id when the client sent one, as
// ActiveMQ and Artemis do. UNSUBSCRIBE with the same header deletes it.
func (c *conn) durableName(f *frame.Frame, id string) (string, bool) {
	var name string
	switch {
	case f.Header.Get("activemq.subscriptionName") != "":
		name = f.Header.Get("activemq.subscriptionName")
	case f.Header.Get("durable-subscription-name") != "":
		name = f.Header.Get("durable-subscription-name")
	case f.Header.Get("durable-subscriber-name") != "":
		name = f.Header.Get("durable-subscriber-name")
	case (f.Header.Get("durable") == "true" || f.Header.Get("persistent") == "true") && f.Header.Get("auto-delete") != "true" && id != "":
		name = id
	default:
		return "", false
	}
	if c.clientID != "" {
		name = c.clientID + "/" + name
	}
	return name, true
}

// handleUnsubscribe removes a subscription by id (destination in 1.0).
func (c *conn) handleUnsubscribe(f *frame.Frame) error {
	id, ok := f.Header.Contains(frame.Id)
	if !ok {
		if id, ok = f.Header.Contains(frame.Destination); !ok || c.version != "1.0" {
			return protocolErr("missing id", "UNSUBSCRIBE needs an id header")
		}
	}
	sub := c.sess.Subscription(id)
	name, durable := c.durableName(f, id)
	if durable {
		// Deleting a durable subscription does not need it to be active
		// on this connection.
		if sub != nil {
			if err := c.router.Unsubscribe(c.sess, id); err != nil {
				return err
			}
			c.forget(sub)
		}
		return c.router.Unbind(c.sess, name)
	}
	if err := c.router.Unsubscribe(c.sess, id); err != nil {
		return err
	}
	c.forget(sub)
	return nil
}

func parseAckMode(v string) (broker.AckMode, error) {
	switch v {
	case "", "auto":
		return broker.AckAuto, nil
	case "client":
		return broker.AckClient, nil
	case "client-individual":
		return broker.AckClientIndividual, nil
	}
	return 0, protocolErr("invalid ack mode", "ack %q must be auto, client or client-individual", v)
}
