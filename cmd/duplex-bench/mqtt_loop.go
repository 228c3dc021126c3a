package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// sendBye sends DISCONNECT. The broker confirms it by closing the
// connection.
func (c *mqttClient) sendBye(deadline time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.byeSent.Store(true)
	c.ws.SetWriteDeadline(deadline)
	return c.ws.WriteMessage(websocket.BinaryMessage, appendMQTTDisconnect(nil))
}

// bye sends DISCONNECT, waits until deadline for the broker to close the
// connection, and closes it. Only for connections without a reader.
func (c *mqttClient) bye(deadline time.Time) error {
	defer c.close()
	if err := c.sendBye(deadline); err != nil {
		return fmt.Errorf("send DISCONNECT: %w", err)
	}
	c.ws.SetReadDeadline(deadline)
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return errNotConfirmed
			}
			return nil
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil
		}
	}
}

// readLoop reads packets until the broker closes the connection after
// DISCONNECT (nil) or the connection fails. It passes PUBLISH payloads to
// h.delivery (owing a PUBACK for QoS 1), PUBACKs to h.confirmed as the
// count of messages confirmed (the broker must acknowledge QoS 1 PUBLISHes
// in order, MQTT-4.6.0-2) and every other packet to h.other.
func (c *mqttClient) readLoop(h handler) error {
	for {
		ok, err := c.p.next(&c.pk)
		if err != nil {
			return err
		}
		if !ok {
			if err := c.flushAcks(); err != nil {
				return err
			}
			if c.caughtUp != nil {
				c.caughtUp()
			}
			_, r, err := c.ws.NextReader()
			if err != nil {
				if c.byeSent.Load() && !c.closed.Load() {
					return nil // the broker closed it after our DISCONNECT
				}
				return err
			}
			c.msgs++
			if err := c.p.fill(r); err != nil {
				return err
			}
			continue
		}
		switch c.pk.typ {
		case mqttPUBLISH:
			qos, id, payload, err := c.pk.publish()
			if err != nil {
				return err
			}
			if qos == 1 {
				c.acks = appendMQTTPuback(c.acks, id)
			}
			h.delivery(payload)
		case mqttPUBACK:
			id, _ := c.pk.packetID()
			c.acked++
			if want := mqttPacketID(c.acked); id != want {
				return fmt.Errorf("PUBACK for packet %d, want %d (PUBACKs out of order)", id, want)
			}
			h.confirmed(c.acked)
		default:
			h.other()
		}
	}
}

// flushAcks sends the PUBACKs owed, as one WebSocket message, unless
// DISCONNECT went out already.
func (c *mqttClient) flushAcks() error {
	if len(c.acks) == 0 {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	if !c.byeSent.Load() {
		c.ws.SetWriteDeadline(time.Now().Add(ackWriteTimeout))
		err = c.ws.WriteMessage(websocket.BinaryMessage, c.acks)
	}
	c.acks = c.acks[:0]
	if err != nil {
		return fmt.Errorf("send PUBACK: %w", err)
	}
	return nil
}

// ackWriteTimeout bounds one write of PUBACKs.
const ackWriteTimeout = 10 * time.Second
