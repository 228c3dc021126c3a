package mqtt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

func TestProtocolNames(t *testing.T) {
	p := New(Config{})
	if p.Name() != "mqtt" {
		t.Errorf("Name = %q", p.Name())
	}
	if got := strings.Join(p.Subprotocols(), ","); got != "mqtt,mqttv3.1" {
		t.Errorf("Subprotocols = %q", got)
	}
}

func TestConnectLevels(t *testing.T) {
	for _, tc := range []struct {
		level byte
		name  string
	}{{Version31, "3.1"}, {Version311, "3.1.1"}, {Version5, "5.0"}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(broker.Config{})
			c := dial(t, r, Config{}, tc.level)
			ack := c.mustConnect("dev-1", true, nil)
			if ack.SessionPresent {
				t.Error("session present on a clean start [MQTT-3.2.2-1]")
			}
			if tc.level == Version5 {
				p := ack.Properties
				if p.ReceiveMaximum != DefaultReceiveMaximum || p.MaximumPacketSize != DefaultMaxPacketSize ||
					p.TopicAliasMaximum != DefaultTopicAliasMaximum || !p.HasRetainAvailable || !p.RetainAvailable ||
					!p.HasSharedSubAvailable || !p.HasSubIDAvailable || !p.HasWildcardSubAvailable {
					t.Errorf("CONNACK properties %+v", p)
				}
			}
			infos := r.Sessions()
			if len(infos) != 1 || infos[0].ID != "dev-1" || infos[0].Version != tc.name || infos[0].Protocol != "mqtt" {
				t.Errorf("router sessions %+v", infos)
			}
			if !c.ft.AllBinary() {
				t.Error("server wrote a text message [MQTT-6.0.0-1]")
			}
			// PINGREQ → PINGRESP [MQTT-3.12.4-1].
			c.send(&Pingreq{})
			c.next(PINGRESP)
		})
	}
}

func TestConnectUnsupportedLevel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level byte
		want  ReasonCode // as decoded in the answer's layout
		as    byte
	}{
		{"level 6 gets 3.1.1 0x01", 6, Code3UnacceptableProtocolVersion, Version311},
		{"level 2 gets 3.1.1 0x01", 2, Code3UnacceptableProtocolVersion, Version311},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, newRouter(broker.Config{}), Config{}, tc.as)
			c.sendRaw(AppendPacket(nil, &Connect{ProtocolLevel: tc.level, ClientID: "x", CleanStart: true}, tc.level))
			ack := c.next(CONNACK).(*Connack)
			if ack.ReasonCode != tc.want {
				t.Errorf("CONNACK code %#x, want %#x [MQTT-3.1.2-2]", byte(ack.ReasonCode), byte(tc.want))
			}
			if code := c.waitClosed(); code != subprotocol.CloseProtocolError {
				t.Errorf("close code %d", code)
			}
		})
	}
}

func TestConnectV5UnsupportedName(t *testing.T) {
	// "MQIsdp" with level 5: v5 CONNACK 0x84 [MQTT-3.1.2-2].
	b := AppendPacket(nil, &Connect{ProtocolLevel: Version31, ClientID: "x", CleanStart: true}, Version31)
	b[2+2+6] = Version5 // fixed header (2), protocol name (2+6): the level
	c := dial(t, newRouter(broker.Config{}), Config{}, Version5)
	c.sendRaw(b)
	if ack := c.next(CONNACK).(*Connack); ack.ReasonCode != CodeUnsupportedProtocolVersion {
		t.Errorf("CONNACK %v, want 0x84", ack.ReasonCode)
	}
	c.waitClosed()
}

func TestConnectEmptyClientID(t *testing.T) {
	t.Run("3.1.1 clean session gets an id", func(t *testing.T) {
		r := newRouter(broker.Config{})
		c := dial(t, r, Config{}, Version311)
		c.mustConnect("", true, nil)
		if infos := r.Sessions(); len(infos) != 1 || infos[0].ID == "" {
			t.Errorf("sessions %+v", infos)
		}
	})
	t.Run("3.1.1 without clean session is rejected", func(t *testing.T) {
		c := dial(t, newRouter(broker.Config{}), Config{}, Version311)
		ack := c.connect("", false, nil)
		if ack.ReasonCode != Code3IdentifierRejected {
			t.Errorf("CONNACK %#x, want 0x02 [MQTT-3.1.3-8]", byte(ack.ReasonCode))
		}
		c.waitClosed()
	})
	t.Run("v5 returns the assigned id", func(t *testing.T) {
		r := newRouter(broker.Config{})
		c := dial(t, r, Config{}, Version5)
		ack := c.mustConnect("", true, nil)
		id := ack.Properties.AssignedClientID
		if id == "" {
			t.Fatal("no Assigned Client Identifier [MQTT-3.2.2-16]")
		}
		if infos := r.Sessions(); len(infos) != 1 || infos[0].ID != id {
			t.Errorf("sessions %+v, want %q", infos, id)
		}
	})
}

type testAuth struct{}

func (testAuth) Authenticate(_ context.Context, c broker.Credentials) (broker.Identity, error) {
	switch {
	case c.Login == "alice" && c.Passcode == "secret":
		return broker.Identity{Name: "alice"}, nil
	case c.Login == "banned":
		return broker.Identity{}, broker.ErrNotAuthorized
	}
	return broker.Identity{}, broker.ErrBadCredentials
}

func TestConnectAuth(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level byte
		user  string
		pass  string
		want  ReasonCode
	}{
		{"3.1.1 ok", Version311, "alice", "secret", CodeSuccess},
		{"3.1.1 bad password", Version311, "alice", "wrong", Code3BadUsernameOrPassword},
		{"3.1.1 not authorized", Version311, "banned", "x", Code3NotAuthorized},
		{"v5 ok", Version5, "alice", "secret", CodeSuccess},
		{"v5 bad password", Version5, "alice", "wrong", CodeBadUsernameOrPassword},
		{"v5 not authorized", Version5, "banned", "x", CodeNotAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(broker.Config{Authenticator: testAuth{}})
			c := dial(t, r, Config{}, tc.level)
			ack := c.connect("c1", true, func(p *Connect) {
				p.HasUsername, p.Username, p.HasPassword, p.Password = true, tc.user, true, []byte(tc.pass)
			})
			if ack.ReasonCode != tc.want {
				t.Fatalf("CONNACK %#x, want %#x", byte(ack.ReasonCode), byte(tc.want))
			}
			if tc.want != CodeSuccess {
				if code := c.waitClosed(); code != subprotocol.ClosePolicy && code != subprotocol.CloseProtocolError {
					t.Errorf("close code %d", code)
				}
				if n := r.Stats().Sessions; n != 0 {
					t.Errorf("%d sessions after a refused CONNECT", n)
				}
			} else if infos := r.Sessions(); len(infos) != 1 || infos[0].User != "alice" {
				t.Errorf("sessions %+v", infos)
			}
		})
	}
}

func TestPacketBeforeConnect(t *testing.T) {
	c := dial(t, newRouter(broker.Config{}), Config{}, Version311)
	c.send(&Pingreq{})
	if code := c.waitClosed(); code != subprotocol.CloseProtocolError {
		t.Errorf("close code %d, want %d [MQTT-3.1.0-1]", code, subprotocol.CloseProtocolError)
	}
	if n := len(c.packets()); n != 0 {
		t.Errorf("server answered %d packets before CONNECT", n)
	}
}

func TestSecondConnect(t *testing.T) {
	c := dial(t, newRouter(broker.Config{}), Config{}, Version5)
	c.mustConnect("c", true, nil)
	c.sendRaw(AppendPacket(nil, &Connect{ProtocolLevel: Version5, ClientID: "c"}, Version5))
	d := c.next(DISCONNECT).(*Disconnect)
	if d.ReasonCode != CodeProtocolError {
		t.Errorf("DISCONNECT %v, want protocol error [MQTT-3.1.0-2]", d.ReasonCode)
	}
	if code := c.waitClosed(); code != subprotocol.CloseProtocolError {
		t.Errorf("close code %d", code)
	}
}

func TestTextFrameCloses(t *testing.T) {
	c := dial(t, newRouter(broker.Config{}), Config{}, Version311)
	c.mustConnect("c", true, nil)
	c.sendText(AppendPacket(nil, &Pingreq{}, Version311))
	if code := c.waitClosed(); code != subprotocol.CloseUnsupported {
		t.Errorf("close code %d, want 1003 [MQTT-6.0.0-1]", code)
	}
	if n := c.count(PINGRESP); n != 0 {
		t.Error("PINGREQ in a text frame was answered")
	}
}

func TestPacketsSpanMessages(t *testing.T) {
	// [MQTT-6.0.0-2] a packet split over messages, and two in one.
	c := dial(t, newRouter(broker.Config{}), Config{}, Version311)
	b := AppendPacket(nil, &Connect{ProtocolLevel: Version311, ClientID: "split", CleanStart: true}, Version311)
	c.sendRaw(b[:3])
	c.sendRaw(b[3:])
	c.next(CONNACK)
	two := AppendPacket(AppendPacket(nil, &Pingreq{}, Version311), &Pingreq{}, Version311)
	c.sendRaw(two)
	c.waitN("two PINGRESP", 2, func(p Packet) bool { return p.Type() == PINGRESP })
}

func TestConnectTimeout(t *testing.T) {
	c := dial(t, newRouter(broker.Config{}), Config{ConnectTimeout: 50 * time.Millisecond}, Version311)
	if code := c.waitClosed(); code != subprotocol.ClosePolicy {
		t.Errorf("close code %d", code)
	}
}

func TestKeepAliveTimeout(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			r := newRouter(broker.Config{})
			w := dial(t, r, Config{}, level)
			w.mustConnect("watcher", true, nil)
			w.subscribe(1, 0, "will/#")
			c := dial(t, r, Config{}, level)
			start := time.Now()
			c.mustConnect("sleepy", true, func(p *Connect) {
				p.KeepAlive = 1
				p.Will = &Will{Topic: "will/sleepy", Payload: []byte("gone")}
			})
			code := c.waitClosed()
			if el := time.Since(start); el < 1400*time.Millisecond {
				t.Errorf("closed after %v, want 1.5 × keep alive [MQTT-3.1.2-24]", el)
			}
			if code != subprotocol.ClosePolicy {
				t.Errorf("close code %d", code)
			}
			if level == Version5 {
				if d := c.lastDisconnect(); d == nil || d.ReasonCode != CodeKeepAliveTimeout {
					t.Errorf("DISCONNECT %+v, want 0x8D", d)
				}
			}
			w.waitN("will", 1, func(p Packet) bool { return p.Type() == PUBLISH })
		})
	}
}

func TestServerKeepAlive(t *testing.T) {
	c := dial(t, newRouter(broker.Config{}), Config{MaxKeepAlive: 30 * time.Second}, Version5)
	ack := c.mustConnect("c", true, func(p *Connect) { p.KeepAlive = 0 })
	if !ack.Properties.HasServerKeepAlive || ack.Properties.ServerKeepAlive != 30 {
		t.Errorf("Server Keep Alive %v/%d, want 30", ack.Properties.HasServerKeepAlive, ack.Properties.ServerKeepAlive)
	}
	rd := c.ft.ReadDeadlines()
	dl := rd[len(rd)-1]
	if d := time.Until(dl); d < 40*time.Second || d > 46*time.Second {
		t.Errorf("read deadline in %v, want 45s", d)
	}
}

// TestIdleConnectionHoldsNoWriter checks the STOMP server's trick carried
// over: replies are written by the read loop, and a write goroutine
// started for deliveries exits once idle.
func TestIdleConnectionHoldsNoWriter(t *testing.T) {
	r := newRouter(broker.Config{})
	c := dial(t, r, Config{}, Version311)
	c.mustConnect("idle", true, nil)
	c.subscribe(1, 0, "i")
	c.send(&Pingreq{})
	c.next(PINGRESP)
	sc := serverConn(t, c)
	if sc.wr.Writing() {
		t.Error("a write goroutine runs after request/response traffic only")
	}
	_ = r.Publish(context.Background(), nil, &broker.Message{Topic: "i", Payload: []byte("x")})
	c.next(PUBLISH)
	checkFor(t, "write goroutine exits", func() bool { return !sc.wr.Writing() })
	sc.mu.Lock()
	q := sc.out.queue
	sc.mu.Unlock()
	if q != nil {
		t.Error("idle connection keeps a queue buffer")
	}
}
