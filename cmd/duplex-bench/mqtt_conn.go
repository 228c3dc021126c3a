package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// mqttClient is one MQTT 3.1.1 connection over WebSocket. Every packet the
// generator sends is one binary WebSocket message, except the PUBACKs a
// subscriber owes, which it sends together for all the deliveries of one
// incoming WebSocket message, before it waits for the next one.
type mqttClient struct {
	ws     *websocket.Conn
	qos    byte // of subscriptions and publications
	p      mqttParser
	pk     mqttPacket
	prefix []byte // of every PUBLISH (preparePublish)
	wbuf   []byte // the writer goroutine's buffer
	acked  uint64 // PUBACKs received; owned by the reader
	msgs   uint64 // WebSocket messages read; owned by the reader
	// caughtUp, when set, is called by the reader each time it has handled
	// every packet received so far and sent the PUBACKs owed.
	caughtUp func()

	wmu     sync.Mutex  // serialises writes: the reader's PUBACKs, sendBye, publish
	acks    []byte      // PUBACKs owed; owned by the reader
	byeSent atomic.Bool // DISCONNECT sent (set under wmu)
	closed  atomic.Bool // we closed the socket ourselves
}

// clientSeq numbers client identifiers.
var clientSeq atomic.Uint64

// errNotConfirmed is bye's error when the broker does not close the
// connection after DISCONNECT.
var errNotConfirmed = errors.New("broker did not close the connection after DISCONNECT")

// connect sends CONNECT (clean session) and waits for a successful CONNACK.
func (c *mqttClient) connect(deadline time.Time) error {
	id := "dxb" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(clientSeq.Add(1), 10)
	_, err := c.connectAs(id, true, deadline)
	return err
}

// connectAs sends CONNECT with client identifier id, a clean session or
// not, and waits for a successful CONNACK. It returns the CONNACK's Session
// Present flag. Packets the broker sends after the CONNACK (a resumed
// session's queued messages) stay buffered for the next read.
func (c *mqttClient) connectAs(id string, clean bool, deadline time.Time) (present bool, err error) {
	if err := c.write(deadline, appendMQTTConnectSession(c.wbuf[:0], id, clean, login.user, login.password)); err != nil {
		return false, fmt.Errorf("send CONNECT: %w", err)
	}
	pk, err := c.await(mqttCONNACK, -1, deadline)
	if err != nil {
		return false, err
	}
	if len(pk.body) != 2 {
		return false, fmt.Errorf("%w: CONNACK of %d bytes", errMalformedPacket, len(pk.body))
	}
	if rc := pk.body[1]; rc != 0 {
		return false, fmt.Errorf("CONNACK return code %d", rc)
	}
	return pk.body[0]&1 != 0, nil
}

// subscribe sends SUBSCRIBE for topic at the client's QoS and waits for a
// SUBACK granting that QoS.
func (c *mqttClient) subscribe(n int, topic string, deadline time.Time) error {
	id := uint16(n%65535 + 1)
	if err := c.write(deadline, appendMQTTSubscribe(c.wbuf[:0], id, topic, c.qos)); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	pk, err := c.await(mqttSUBACK, int(id), deadline)
	if err != nil {
		return err
	}
	if len(pk.body) != 3 {
		return fmt.Errorf("%w: SUBACK of %d bytes for one filter", errMalformedPacket, len(pk.body))
	}
	if rc := pk.body[2]; rc != c.qos {
		return fmt.Errorf("SUBACK return code %#x for %q, want QoS %d", rc, topic, c.qos)
	}
	return nil
}

// write sends b as one binary message with the given write deadline.
func (c *mqttClient) write(deadline time.Time, b []byte) error {
	c.wbuf = b
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(deadline)
	return c.ws.WriteMessage(websocket.BinaryMessage, b)
}

// await reads packets until one of type typ arrives (with packet
// identifier id unless id < 0) or deadline passes. Other packets are
// skipped. The packet is valid until the next read.
func (c *mqttClient) await(typ byte, id int, deadline time.Time) (*mqttPacket, error) {
	c.ws.SetReadDeadline(deadline)
	defer c.ws.SetReadDeadline(time.Time{})
	for {
		ok, err := c.p.next(&c.pk)
		if err != nil {
			return nil, err
		}
		if !ok {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return nil, fmt.Errorf("waiting for packet type %d: %w", typ, err)
			}
			if err := c.p.fill(r); err != nil {
				return nil, err
			}
			continue
		}
		if c.pk.typ != typ {
			continue
		}
		if got, _ := c.pk.packetID(); id >= 0 && int(got) != id {
			continue
		}
		return &c.pk, nil
	}
}

// preparePublish builds the head of every PUBLISH to topic.
func (c *mqttClient) preparePublish(topic string, size int) {
	c.prefix = mqttPublishPrefix(topic, c.qos, size)
}

// publish sends one PUBLISH with packet identifier mqttPacketID(seq) at
// QoS 1. confirm is ignored: QoS 1 confirms every message, QoS 0 none.
func (c *mqttClient) publish(seq uint64, body []byte, _ bool) error {
	c.wbuf = appendMQTTPublish(c.wbuf[:0], c.prefix, c.qos, mqttPacketID(seq), body)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.BinaryMessage, c.wbuf)
}

// setWriteDeadline bounds later writes.
func (c *mqttClient) setWriteDeadline(t time.Time) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(t)
}

// messagesRead returns how many WebSocket messages the reader has read.
func (c *mqttClient) messagesRead() uint64 { return c.msgs }

// close closes the socket.
func (c *mqttClient) close() {
	c.closed.Store(true)
	c.ws.Close()
}
