package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// subprotocols maps -protocol to the one WebSocket subprotocol the
// generator offers for it.
var subprotocols = map[string]string{
	protoSTOMP: "v12.stomp",
	protoMQTT:  "mqtt",
}

// maxBuffered bounds a connection's unparsed bytes (one STOMP frame or MQTT
// packet plus whatever the server coalesced with it).
const maxBuffered = 16 << 20

// dialer opens WebSocket connections, spreading them over source addresses
// 127.0.0.2, 127.0.0.3, ... when asked, so that more client sockets fit
// than one source address has ephemeral ports.
type dialer struct {
	url      string
	host     string
	protocol string
	qos      byte // MQTT subscriptions and publications
	timeout  time.Duration
	ws       []*websocket.Dialer
	next     atomic.Uint64
}

// newDialer makes a dialer for cfg's URL and protocol. small asks for small
// per-connection buffers (for many idle connections).
func newDialer(cfg *config, small bool) (*dialer, error) {
	rawURL, sourceIPs, timeout := cfg.url, cfg.sourceIPs, cfg.timeout
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("url %q: only ws:// is supported", rawURL)
	}
	if sourceIPs < 0 || sourceIPs > 250 {
		return nil, fmt.Errorf("-source-ips %d: want 0..250", sourceIPs)
	}
	d := &dialer{url: rawURL, host: u.Hostname(), protocol: cfg.protocol, qos: byte(cfg.qos), timeout: timeout}
	n := max(sourceIPs, 1)
	pool := &sync.Pool{}
	for i := range n {
		nd := &net.Dialer{Timeout: timeout}
		if sourceIPs > 0 {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
		}
		wd := &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: timeout,
			Subprotocols:     []string{subprotocols[cfg.protocol]},
			ReadBufferSize:   64 << 10,
			WriteBufferSize:  64 << 10,
		}
		if small {
			wd.ReadBufferSize, wd.WriteBufferSize = 1024, 1024
			wd.WriteBufferPool = pool
		}
		d.ws = append(d.ws, wd)
	}
	return d, nil
}

// dial opens one WebSocket connection and completes the STOMP CONNECT or
// the MQTT CONNECT.
func (d *dialer) dial(ctx context.Context) (conn, error) {
	ws, err := d.dialWS(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(d.timeout)
	if d.protocol == protoMQTT {
		c := newMQTTClient(ws, d.qos)
		if err := c.connect(deadline); err != nil {
			ws.Close()
			return nil, err
		}
		return c, nil
	}
	c := &client{ws: ws, p: parser{limit: maxBuffered}}
	if err := c.connect(d.host, deadline); err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

// dialSession opens one MQTT connection with client identifier id, a clean
// session or not (a persistent one), and returns it with the CONNACK's
// Session Present flag. The dialer's protocol must be MQTT.
func (d *dialer) dialSession(ctx context.Context, id string, clean bool) (*mqttClient, bool, error) {
	ws, err := d.dialWS(ctx)
	if err != nil {
		return nil, false, err
	}
	c := newMQTTClient(ws, d.qos)
	present, err := c.connectAs(id, clean, time.Now().Add(d.timeout))
	if err != nil {
		ws.Close()
		return nil, false, err
	}
	return c, present, nil
}

// newMQTTClient wraps an open WebSocket connection.
func newMQTTClient(ws *websocket.Conn, qos byte) *mqttClient {
	c := &mqttClient{ws: ws, qos: qos}
	c.p.limit = maxBuffered
	return c
}

// dialWS opens one WebSocket connection with the protocol's subprotocol.
func (d *dialer) dialWS(ctx context.Context) (*websocket.Conn, error) {
	wd := d.ws[d.next.Add(1)%uint64(len(d.ws))]
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	ws, resp, err := wd.DialContext(ctx, d.url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket dial: %w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("websocket dial: %w", err)
	}
	if want := subprotocols[d.protocol]; ws.Subprotocol() != want {
		ws.Close()
		return nil, fmt.Errorf("server chose subprotocol %q, want %q", ws.Subprotocol(), want)
	}
	ws.SetReadLimit(maxBuffered)
	return ws, nil
}
