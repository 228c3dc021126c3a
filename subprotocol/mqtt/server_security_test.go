package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
	"github.com/duplexmq/duplex/subprotocol/transporttest"
)

// authFunc is an Authenticator from a function; it records what it saw.
type authFunc struct {
	mu   sync.Mutex
	seen []broker.Credentials
	fn   func(broker.Credentials) (broker.Identity, error)
}

func (a *authFunc) Authenticate(_ context.Context, c broker.Credentials) (broker.Identity, error) {
	a.mu.Lock()
	a.seen = append(a.seen, c)
	a.mu.Unlock()
	return a.fn(c)
}

// logLines records log messages.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) matching(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			out = append(out, s)
		}
	}
	return out
}

func withLogin(user string) func(*Connect) {
	return func(p *Connect) {
		p.HasUsername, p.Username, p.HasPassword, p.Password = true, user, true, []byte("pw")
	}
}

func TestConnectPassesPeerCredentials(t *testing.T) {
	a := &authFunc{fn: func(c broker.Credentials) (broker.Identity, error) { return broker.Identity{Name: c.Login}, nil }}
	r := newRouter(broker.Config{Authenticator: a})
	c := dialOn(t, New(Config{}), r, Version5, func(ft *transporttest.Fake) {
		ft.PeerInfo = subprotocol.Peer{Transport: "tls", CertNames: []string{"dev-1"}, Token: "jwt"}
	})
	c.mustConnect("cid", true, withLogin("alice"))
	got := a.seen[0]
	if got.Transport != "tls" || got.Token != "jwt" || len(got.CertNames) != 1 || got.CertNames[0] != "dev-1" {
		t.Errorf("credentials %+v lack the transport's peer info", got)
	}
	if got.Login != "alice" || string(got.Passcode) != "pw" || got.ClientID != "cid" || got.Protocol != "mqtt" {
		t.Errorf("credentials %+v", got)
	}
}

// TestLoginRefusals checks the refusal table's CONNACK codes in both
// versions, the close, and the counter.
func TestLoginRefusals(t *testing.T) {
	for _, tc := range []struct {
		err    error
		v3, v5 ReasonCode
	}{
		{broker.ErrBadCredentials, Code3BadUsernameOrPassword, CodeBadUsernameOrPassword},
		{broker.ErrNotAuthorized, Code3NotAuthorized, CodeNotAuthorized},
		{broker.ErrBanned, Code3NotAuthorized, CodeBanned},
		{broker.ErrClientIDOwned, Code3IdentifierRejected, CodeClientIdentifierNotValid},
		{fmt.Errorf("wrapped: %w", broker.ErrSessionQuota), Code3ServerUnavailable, CodeQuotaExceeded},
	} {
		for _, level := range []byte{Version31, Version311, Version5} {
			want := tc.v3
			if level == Version5 {
				want = tc.v5
			}
			t.Run(fmt.Sprintf("%v/%s", tc.err, versionNames[level]), func(t *testing.T) {
				a := &authFunc{fn: func(broker.Credentials) (broker.Identity, error) { return broker.Identity{}, tc.err }}
				p := New(Config{})
				r := newRouter(broker.Config{Authenticator: a})
				c := dialOn(t, p, r, level, nil)
				ack := c.connect("c1", true, withLogin("mallory"))
				if ack.ReasonCode != want {
					t.Errorf("CONNACK %#x, want %#x", byte(ack.ReasonCode), byte(want))
				}
				if code := c.waitClosed(); code != subprotocol.ClosePolicy {
					t.Errorf("close code %d, want %d", code, subprotocol.ClosePolicy)
				}
				if n := r.Stats().Sessions; n != 0 {
					t.Errorf("%d sessions after a refused CONNECT", n)
				}
				if n := p.Stats().AuthFailures; n != 1 {
					t.Errorf("AuthFailures %d, want 1", n)
				}
			})
		}
	}
}

func TestRefusalLogRateLimited(t *testing.T) {
	logs := &logLines{}
	a := &authFunc{fn: func(broker.Credentials) (broker.Identity, error) { return broker.Identity{}, broker.ErrBadCredentials }}
	p := New(Config{Log: slog.New(logs)})
	r := newRouter(broker.Config{Authenticator: a})
	for range 3 { // the same source address three times within 10 s
		c := dialOn(t, p, r, Version311, nil)
		c.connect("c", true, withLogin("root"))
		c.waitClosed()
	}
	if got := logs.matching("CONNECT refused"); len(got) != 1 {
		t.Errorf("%d refusal lines for one source, want 1: %q", len(got), got)
	}
	if n := p.Stats().AuthFailures; n != 3 {
		t.Errorf("AuthFailures %d, want 3", n)
	}
}

func TestCredentialExpiry(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			a := &authFunc{fn: func(c broker.Credentials) (broker.Identity, error) {
				if c.Login == "short" {
					return broker.Identity{Name: c.Login, Expires: time.Now().Add(50 * time.Millisecond)}, nil
				}
				return broker.Identity{Name: c.Login}, nil
			}}
			p := New(Config{})
			r := newRouter(broker.Config{Authenticator: a})
			neighbour := dialOn(t, p, r, level, nil)
			neighbour.mustConnect("n", true, withLogin("long"))
			neighbour.subscribe(1, 1, "t")
			if serverConn(t, neighbour).expiryTimer != nil {
				t.Error("a timer was armed for a credential without expiry")
			}

			c := dialOn(t, p, r, level, nil)
			c.mustConnect("s", true, withLogin("short"))
			code := c.waitClosed()
			if code != subprotocol.ClosePolicy {
				t.Errorf("close code %d", code)
			}
			d := c.lastDisconnect()
			switch {
			case level == Version5 && (d == nil || d.ReasonCode != CodeMaximumConnectTime):
				t.Errorf("DISCONNECT %+v, want 0xA0 maximum connect time", d)
			case level != Version5 && d != nil:
				t.Errorf("3.x got DISCONNECT %+v", d)
			}
			if n := p.Stats().CredentialExpired; n != 1 {
				t.Errorf("CredentialExpired %d", n)
			}
			// The neighbour keeps working.
			if err := r.Publish(context.Background(), nil, &broker.Message{Topic: "t", Payload: []byte("hi")}); err != nil {
				t.Fatal(err)
			}
			if m := neighbour.next(PUBLISH).(*Publish); string(m.Payload) != "hi" {
				t.Errorf("neighbour got %+v", m)
			}
		})
	}
}

func TestACLDenialsCounted(t *testing.T) {
	for _, level := range []byte{Version311, Version5} {
		t.Run(versionNames[level], func(t *testing.T) {
			p := New(Config{})
			r := newRouter(broker.Config{Authorizer: denyTopic("secret")})
			c := dialOn(t, p, r, level, nil)
			c.mustConnect("c", true, nil)
			want := CodeNotAuthorized
			if level < Version5 {
				want = Code3SubackFailure
			}
			if s := c.subscribe(1, 1, "secret"); s.ReasonCodes[0] != want {
				t.Errorf("SUBACK %v, want %#x", s.ReasonCodes, byte(want))
			}
			c.send(&Publish{Topic: "secret", QoS: 1, PacketID: 2})
			c.next(PUBACK)
			c.send(&Publish{Topic: "secret"}) // QoS 0: dropped in every version
			c.send(&Pingreq{})
			c.next(PINGRESP)
			if s := p.Stats(); s.SubscribeDenied != 1 || s.PublishDenied != 2 {
				t.Errorf("stats %+v, want 1 subscribe and 2 publishes denied", s)
			}
			if c.ft.Closed() {
				t.Error("the connection was closed")
			}
		})
	}
}

func TestPubackCodes(t *testing.T) {
	retained := fmt.Errorf("publish: %w", broker.ErrRetainedQuota)
	for _, tc := range []struct {
		err     error
		level   byte
		code    ReasonCode
		refused bool
		fatal   bool
	}{
		{nil, Version5, CodeSuccess, false, false},
		{retained, Version5, CodeQuotaExceeded, false, false},
		{retained, Version311, CodeSuccess, false, false},
		{broker.ErrNotAuthorized, Version5, CodeNotAuthorized, true, false},
		{broker.ErrNotAuthorized, Version311, CodeSuccess, true, false},
		{broker.ErrQuotaExceeded, Version311, CodeSuccess, false, false},
		{broker.ErrQuotaExceeded, Version5, CodeSuccess, false, false},
		{errors.Join(broker.ErrQuotaExceeded, retained), Version5, CodeQuotaExceeded, false, false},
		{broker.ErrStore, Version5, CodeUnspecifiedError, true, false},
		{broker.ErrStore, Version311, 0, true, true},
		{broker.ErrInvalidTopic, Version5, CodeTopicNameInvalid, true, false},
	} {
		code, refused, fatal := pubackCode(tc.err, tc.level)
		if code != tc.code || refused != tc.refused || (fatal != nil) != tc.fatal {
			t.Errorf("pubackCode(%v, %d) = %#x, %v, %v; want %#x, %v, fatal %v", tc.err, tc.level, byte(code), refused, fatal, byte(tc.code), tc.refused, tc.fatal)
		}
	}
}

func TestConnectTooLargeBeforeLogin(t *testing.T) {
	bigWill := func(p *Connect) { p.Will = &Will{Topic: "w", Payload: make([]byte, 5000)} }
	t.Run("v5", func(t *testing.T) {
		p := New(Config{})
		c := dialOn(t, p, newRouter(broker.Config{}), Version5, nil)
		if ack := c.connect("big", true, bigWill); ack.ReasonCode != CodePacketTooLarge {
			t.Errorf("CONNACK %v, want 0x95", ack.ReasonCode)
		}
		if code := c.waitClosed(); code != subprotocol.CloseTooBig {
			t.Errorf("close code %d", code)
		}
		if n := p.Stats().TooLargeBeforeLogin; n != 1 {
			t.Errorf("TooLargeBeforeLogin %d", n)
		}
	})
	for _, level := range []byte{Version31, Version311} {
		t.Run(versionNames[level], func(t *testing.T) {
			c := dialOn(t, New(Config{}), newRouter(broker.Config{}), level, nil)
			p := &Connect{ProtocolLevel: level, CleanStart: true, ClientID: "big"}
			bigWill(p)
			c.sendRaw(AppendPacket(nil, p, level))
			if code := c.waitClosed(); code != subprotocol.CloseTooBig {
				t.Errorf("close code %d", code)
			}
			if n := len(c.packets()); n != 0 {
				t.Errorf("3.x got %d packets, want only the close", n)
			}
		})
	}
	t.Run("declared length checked before the body arrives", func(t *testing.T) {
		c := dialOn(t, New(Config{}), newRouter(broker.Config{}), Version5, nil)
		// A CONNECT header claiming 200 MB, followed by its first bytes.
		head := []byte{0x10, 0x80, 0x80, 0x80, 0x60, 0, 4, 'M', 'Q', 'T', 'T', 5}
		c.sendRaw(head)
		if ack := c.next(CONNACK).(*Connack); ack.ReasonCode != CodePacketTooLarge {
			t.Errorf("CONNACK %v", ack.ReasonCode)
		}
		c.waitClosed()
	})
	t.Run("raised limit", func(t *testing.T) {
		c := dialOn(t, New(Config{MaxPacketBeforeLogin: 8192}), newRouter(broker.Config{}), Version311, nil)
		c.mustConnect("big", true, bigWill)
	})
	t.Run("after login the full limit", func(t *testing.T) {
		_, sub, pub := pair(t, Version5, Config{})
		sub.subscribe(1, 0, "big")
		pub.send(&Publish{Topic: "big", Payload: make([]byte, 64<<10)})
		if m := sub.next(PUBLISH).(*Publish); len(m.Payload) != 64<<10 {
			t.Errorf("got %d bytes", len(m.Payload))
		}
	})
}

func TestPublishRateBackPressure(t *testing.T) {
	a := &authFunc{fn: func(c broker.Credentials) (broker.Identity, error) { return broker.Identity{Name: c.Login}, nil }}
	p := New(Config{PublishRate: 0.001, PublishBurst: 2}) // two, then one per 1000 s
	r := newRouter(broker.Config{Authenticator: a})
	neighbour := dialOn(t, p, r, Version5, nil)
	neighbour.mustConnect("n", true, withLogin("calm"))
	neighbour.subscribe(1, 1, "t")
	if serverConn(t, neighbour).limiter == nil {
		t.Fatal("no limiter with a publish rate set")
	}

	c := dialOn(t, p, r, Version5, nil)
	c.mustConnect("f", true, withLogin("flood"))
	for i := range 3 {
		c.send(&Publish{Topic: "t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte(fmt.Sprint("m", i))})
	}
	c.waitN("two PUBACKs", 2, func(p Packet) bool { return p.Type() == PUBACK })
	checkFor(t, "the third PUBLISH to wait", func() bool { return p.Stats().PublishThrottled == 1 })
	if n := c.count(PUBACK); n != 2 {
		t.Errorf("%d PUBACKs, want 2: the third waits", n)
	}
	// A takeover closes the session: the wait ends at once, not in 1000 s.
	again := dialOn(t, p, r, Version5, nil)
	again.mustConnect("f", true, withLogin("flood"))
	c.waitClosed()
	if d := c.lastDisconnect(); d == nil || d.ReasonCode != CodeSessionTakenOver {
		t.Errorf("DISCONNECT %+v, want session taken over", d)
	}
	// The neighbour got both and publishes at its own rate.
	neighbour.waitN("m0 and m1", 2, func(p Packet) bool { return p.Type() == PUBLISH })
	neighbour.send(&Publish{Topic: "t", QoS: 1, PacketID: 9, Payload: []byte("n")})
	neighbour.next(PUBACK)
}

func TestNoLimiterWhenOff(t *testing.T) {
	_, sub, _ := pair(t, Version311, Config{})
	if serverConn(t, sub).limiter != nil {
		t.Error("a limiter was allocated with no rate configured")
	}
}

func TestOutboundPropertiesCapped(t *testing.T) {
	p := New(Config{MaxOutboundHeaders: 10})
	r := newRouter(broker.Config{})
	sub := dialOn(t, p, r, Version5, nil)
	sub.mustConnect("sub", true, nil)
	sub.subscribe(1, 0, "t")
	props := make([]broker.Property, 30)
	for i := range props {
		props[i] = broker.Property{Key: fmt.Sprint("k", i), Value: "v"}
	}
	for _, origin := range []string{"stomp", ""} {
		if err := r.Publish(context.Background(), nil, &broker.Message{Topic: "t", Payload: []byte(origin), Props: props, Origin: origin}); err != nil {
			t.Fatal(err)
		}
	}
	// An MQTT publisher's user properties all go through [MQTT-3.3.2-17].
	pub := dialOn(t, p, r, Version5, nil)
	pub.mustConnect("pub", true, nil)
	var user []UserProperty
	for _, u := range props {
		user = append(user, UserProperty{Key: u.Key, Value: u.Value})
	}
	pub.send(&Publish{Topic: "t", Payload: []byte("mqtt"), Properties: Properties{User: user}})
	got := sub.waitN("three PUBLISH", 3, func(p Packet) bool { return p.Type() == PUBLISH })
	// "": unknown (restored from the store), possibly an MQTT publisher's.
	for i, want := range []int{10, 30, 30} {
		if n := len(got[i].(*Publish).Properties.User); n != want {
			t.Errorf("PUBLISH %q carries %d user properties, want %d", got[i].(*Publish).Payload, n, want)
		}
	}
	if n := p.Stats().HeadersDropped; n != 20 {
		t.Errorf("HeadersDropped %d, want 20", n)
	}
}

func TestWillOrigin(t *testing.T) {
	c := &conn{cfg: &Config{}, version: Version5}
	if m := c.willMessage(&Will{Topic: "w"}); m.Origin != "mqtt" {
		t.Errorf("will Origin %q", m.Origin)
	}
}

func TestSessionExpiryDefaults(t *testing.T) {
	r := newRouter(broker.Config{})
	p := New(Config{})
	c := dialOn(t, p, r, Version311, nil)
	c.mustConnect("old", false, nil)
	if e := serverConn(t, c).sess.Expiry(); e != DefaultSessionExpiry {
		t.Errorf("3.x clean session 0 expiry %v, want %v", e, DefaultSessionExpiry)
	}
	v5 := dialOn(t, p, r, Version5, nil)
	ack := v5.mustConnect("new", false, func(p *Connect) { p.Properties.SessionExpiry = 0xFFFFFFFF })
	if ack.Properties.SessionExpiry != uint32(DefaultMaxSessionExpiry/time.Second) {
		t.Errorf("CONNACK Session Expiry %d, want the 24 h cap", ack.Properties.SessionExpiry)
	}
	if e := serverConn(t, v5).sess.Expiry(); e != DefaultMaxSessionExpiry {
		t.Errorf("v5 never-expiring session got %v, want %v", e, DefaultMaxSessionExpiry)
	}

	capped := dialOn(t, New(Config{DefaultSessionExpiry: 48 * time.Hour, MaxSessionExpiry: time.Hour}), r, Version311, nil)
	capped.mustConnect("capped", false, nil)
	if e := serverConn(t, capped).sess.Expiry(); e != time.Hour {
		t.Errorf("default above the cap: %v, want 1h", e)
	}
	forever := dialOn(t, New(Config{DefaultSessionExpiry: -1, MaxSessionExpiry: -1}), r, Version311, nil)
	forever.mustConnect("forever", false, nil)
	if e := serverConn(t, forever).sess.Expiry(); e != broker.NeverExpire {
		t.Errorf("negative default and cap: %v, want never", e)
	}
}
