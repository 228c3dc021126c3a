package main

import (
	"testing"

	"github.com/duplexmq/duplex/web"
)

// TestWebReadLimitAboveProtocols: the WebSocket read limit derived from
// limits.max_frame_size sits web.ReadLimitMargin above the largest STOMP
// frame (body and headers) and MQTT packet, so that a frame just over the
// protocol's limit gets the protocol's error over WebSocket as over TCP;
// web.max_message_size, when set, is taken as given.
func TestWebReadLimitAboveProtocols(t *testing.T) {
	for _, size := range []string{"1", "65536", "4MiB", "64MiB"} {
		o, err := parseOptions([]string{"-max-frame-size", size}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		stompMax := int64(o.stomp.Limits.WithDefaults().MaxBodyLength + o.stomp.Limits.WithDefaults().MaxHeaderBytes)
		if got := o.web.MaxMessageSize; got < stompMax+web.ReadLimitMargin || got < int64(o.mqtt.MaxPacketSize)+web.ReadLimitMargin {
			t.Errorf("max_frame_size %s: WebSocket limit %d, STOMP frame %d, MQTT packet %d: want the margin %d above both",
				size, got, stompMax, o.mqtt.MaxPacketSize, web.ReadLimitMargin)
		}
	}
	o, err := parseOptions([]string{"-web-max-message-size", "100000"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.web.MaxMessageSize != 100000 {
		t.Errorf("web.max_message_size 100000: got %d", o.web.MaxMessageSize)
	}
}
