package stomp

import (
	"errors"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
)

// reservedHeaders are STOMP's own SEND/MESSAGE headers; every other header
// of a SEND travels with the message as a user property.
var reservedHeaders = map[string]bool{
	"destination": true, "content-length": true, "content-type": true, "receipt": true,
	"transaction": true, "reply-to": true, "message-id": true, "subscription": true,
	"ack": true, "redelivered": true, "correlation-id": true,
}

// handleSend publishes a SEND frame (STOMP 1.2 §SEND). A SEND is
// at-least-once (QoS 1); its receipt is sent after Publish returns.
func (c *conn) handleSend(f *frame.Frame) error {
	m, err := c.sendMessage(f)
	if err != nil {
		return err
	}
	return c.sent(f, c.router.Publish(c.ctx, c.sess, m))
}

// sent turns Publish's result for SEND f into the connection's: nil, or the
// error that makes the ERROR frame.
func (c *conn) sent(f *frame.Frame, err error) error {
	switch {
	case err == nil:
	case errors.Is(err, broker.ErrNotAuthorized):
		c.p.ctr.PublishDenied()
	case errors.Is(err, broker.ErrQuotaExceeded), errors.Is(err, broker.ErrRetainedQuota):
		// Delivered, except to a durable subscriber at its limit (the
		// router logs and counts it), or not retained (a SEND never asks
		// for retention, so this is for completeness). The SEND succeeded
		// and gets its RECEIPT: one subscriber's full queue must not fail,
		// and in STOMP disconnect, every publisher to the topic (MQTT
		// answers 0x00 the same way).
		if errors.Is(err, broker.ErrRetainedQuota) {
			c.p.ctr.RetainRefused()
		}
		return nil
	}
	return err
}

// sendMessage builds the message of a SEND frame.
func (c *conn) sendMessage(f *frame.Frame) (*broker.Message, error) {
	d, err := parseDest(f.Header.Get(frame.Destination), c.cfg.TopicSeparator, false)
	if err != nil {
		return nil, err
	}
	m := &broker.Message{
		Topic: d.topic, Queue: d.queue,
		Payload:     f.Body,
		ContentType: f.Header.Get(frame.ContentType),
		QoS:         broker.AtLeastOnce,
		Origin:      "stomp",
	}
	if rt, ok := f.Header.Contains("reply-to"); ok {
		if rd, err := parseDest(rt, c.cfg.TopicSeparator, false); err == nil && rd.topic != "" {
			m.ResponseTopic = rd.topic // MQTT 5 Response Topic on the other side
		} else if m.ReplyTo, err = c.replyTo(rt); err != nil {
			return nil, err
		}
	}
	if cid, ok := f.Header.Contains("correlation-id"); ok {
		m.CorrelationData = []byte(cid)
	}
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		if !reservedHeaders[k] {
			m.Props = append(m.Props, broker.Property{Key: k, Value: v})
		}
	}
	return m, nil
}

// replyTo rewrites a /temp-queue/<name> reply-to into the private reply
// queue that carries answers back to this connection (RabbitMQ semantics):
// the first use creates the queue and subscribes this connection to it
// under the subscription name /temp-queue/<name>.
func (c *conn) replyTo(rt string) (string, error) {
	if len(rt) <= len(tempQueuePrefix) || rt[:len(tempQueuePrefix)] != tempQueuePrefix {
		return rt, nil
	}
	if q, ok := c.temps[rt]; ok {
		return replyQueuePrefix + q, nil
	}
	q, err := c.router.TempQueue(c.sess)
	if err != nil {
		return "", err
	}
	sub := &broker.Subscription{SubSpec: broker.SubSpec{
		Key: rt, Queue: q, QoS: broker.AtLeastOnce, Ack: broker.AckAuto,
		Data: &subState{id: rt, dest: rt, ack: broker.AckAuto},
	}}
	if err := c.router.Subscribe(c.sess, sub); err != nil {
		return "", err
	}
	if c.temps == nil {
		c.temps = make(map[string]string)
	}
	c.temps[rt] = q
	return replyQueuePrefix + q, nil
}
