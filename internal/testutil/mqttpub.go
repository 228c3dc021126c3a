package testutil

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// MQTTPub is the durability harnesses' MQTT 5 publisher (test/crash's
// single broker, test/cluster's chaos test over three nodes): paho.golang
// on a TCP connection, clean start, publishing on one connection and
// opening a new one at the next publish after any failure. Publish
// reports success only for an acknowledgement with a success reason
// code (QoS 1 PUBACK, QoS 2 PUBCOMP), so what it reports is what the
// broker promised to keep. Not safe for concurrent use (a caller that
// shares one guards it, as test/crash's sharedPub does).
type MQTTPub struct {
	Name string
	// Addr is the broker address to dial for a new connection.
	Addr func() string
	// Failed, when set, runs after a failed dial or CONNECT and when a
	// live connection is dropped (a cluster client moves to the next
	// node).
	Failed func()
	// PacketTimeout and KeepAlive for paho.
	PacketTimeout time.Duration
	KeepAlive     uint16
	// Conns counts the connections opened.
	Conns int

	cli    *paho.Client
	conn   net.Conn
	connUp context.Context // cancelled when the client reports an error
}

// Ensure opens a connection unless one is up.
func (p *MQTTPub) Ensure(ctx context.Context) error {
	if p.cli != nil {
		select {
		case <-p.cli.Done():
			p.Drop()
		default:
			return nil
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.Addr())
	if err != nil {
		p.failed()
		return err
	}
	// paho keeps an unacknowledged publish waiting for its context after
	// the connection dropped (for a retransmission); end the wait at the
	// first client error instead.
	connUp, down := context.WithCancel(context.Background())
	cli := paho.NewClient(paho.ClientConfig{
		ClientID:           p.Name,
		Conn:               conn,
		PacketTimeout:      p.PacketTimeout,
		OnClientError:      func(error) { down() },
		OnServerDisconnect: func(*paho.Disconnect) { down() },
	})
	ca, err := cli.Connect(ctx, &paho.Connect{ClientID: p.Name, CleanStart: true, KeepAlive: p.KeepAlive})
	if err != nil {
		down()
		conn.Close()
		p.failed()
		if ca != nil {
			return fmt.Errorf("connect: %w (reason %#02x)", err, ca.ReasonCode)
		}
		return fmt.Errorf("connect: %w", err)
	}
	p.cli, p.conn, p.connUp = cli, conn, connUp
	p.Conns++
	return nil
}

// Client returns the live connection's client and the context that ends
// when it reports an error (nil before Ensure).
func (p *MQTTPub) Client() (*paho.Client, context.Context) { return p.cli, p.connUp }

// Drop closes the connection; the next publish opens another.
func (p *MQTTPub) Drop() {
	if p.conn != nil {
		p.conn.Close()
		p.failed()
	}
	p.cli, p.conn = nil, nil
}

func (p *MQTTPub) failed() {
	if p.Failed != nil {
		p.Failed()
	}
}

// Publish publishes payload on topic and returns nil only when the broker
// acknowledged it with a success reason code. Any other outcome drops the
// connection.
func (p *MQTTPub) Publish(ctx context.Context, topic string, qos byte, retain bool, payload string) error {
	if err := p.Ensure(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.connUp, cancel)()
	r, err := p.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if err != nil {
		p.Drop()
		return err
	}
	if r != nil && r.ReasonCode >= 0x80 {
		return fmt.Errorf("refused: reason %#02x", r.ReasonCode)
	}
	return nil
}

// Close disconnects (DISCONNECT, reason 0) and closes the connection.
func (p *MQTTPub) Close() {
	if p.cli != nil {
		_ = p.cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}
	p.Drop()
}
