package main

import (
	"strconv"
	"time"
)

// Protocols (-protocol).
const (
	protoSTOMP = "stomp"
	protoMQTT  = "mqtt"
)

// conn is one broker connection, STOMP (*client) or MQTT (*mqttClient).
// Like gorilla's Conn, it allows one reader goroutine and one writer
// goroutine at a time; sendBye may also be called while the reader runs.
type conn interface {
	// subscribe subscribes to topic (subscription number id) and waits
	// until deadline for the broker to confirm it, so that the
	// subscription is live when it returns. No reader may be running.
	subscribe(id int, topic string, deadline time.Time) error
	// preparePublish fixes the topic and body size of later publish calls.
	preparePublish(topic string, size int)
	// publish sends message seq with body. confirm asks the broker to
	// confirm it and every message before (a STOMP receipt); MQTT QoS 1
	// confirms every message whatever confirm says.
	publish(seq uint64, body []byte, confirm bool) error
	// readLoop reads until the broker confirms the final DISCONNECT (nil),
	// reports an error (*brokerError) or the connection fails, passing
	// everything else to h.
	readLoop(h handler) error
	// sendBye sends the final DISCONNECT, confirmation requested.
	sendBye(deadline time.Time) error
	// bye sends DISCONNECT, waits for its confirmation and closes. Only
	// for connections without a reader goroutine.
	bye(deadline time.Time) error
	// setWriteDeadline bounds later writes.
	setWriteDeadline(t time.Time)
	// close closes the socket.
	close()
	// messagesRead returns how many WebSocket messages the reader has
	// read; read it only after the reader has ended.
	messagesRead() uint64
}

// handler receives what a connection's reader goroutine reads.
type handler interface {
	// delivery is one message delivered to a subscription; body is valid
	// only during the call.
	delivery(body []byte)
	// confirmed says the broker has accepted the publisher's messages up
	// to sequence number seq.
	confirmed(seq uint64)
	// other is any other frame or packet.
	other()
}

// topicName is the destination (STOMP) or topic name (MQTT) number n of
// the given group: "/topic/bench/3" or "bench/3".
func topicName(protocol, group string, n int) string {
	if protocol == protoMQTT {
		return group + "/" + strconv.Itoa(n)
	}
	return "/topic/" + group + "/" + strconv.Itoa(n)
}
