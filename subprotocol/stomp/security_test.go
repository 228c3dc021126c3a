package stomp

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

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

func (a *authFunc) last() broker.Credentials {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == 0 {
		return broker.Credentials{}
	}
	return a.seen[len(a.seen)-1]
}

// denyDest refuses every operation on one destination.
type denyDest string

func (d denyDest) Allow(_ broker.Identity, _ string, _ broker.Op, dest string) bool {
	return dest != string(d)
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

func TestConnectPassesPeerCredentials(t *testing.T) {
	a := &authFunc{fn: func(c broker.Credentials) (broker.Identity, error) { return broker.Identity{Name: c.Login}, nil }}
	r := broker.New(broker.Config{Authenticator: a}, nil)
	h := serveOn(t, context.Background(), New(Config{}), r, func(ft *transporttest.Fake) {
		ft.PeerInfo = subprotocol.Peer{Transport: "wss", CertNames: []string{"device-7", "d7.example"}, Token: "tok"}
	})
	h.connect("login", "alice", "passcode", "pw", "client-id", "cid")
	c := a.last()
	if c.Transport != "wss" || c.Token != "tok" || len(c.CertNames) != 2 || c.CertNames[0] != "device-7" {
		t.Errorf("credentials %+v lack the transport's peer info", c)
	}
	if c.Login != "alice" || c.Passcode != "pw" || c.ClientID != "cid" || c.Protocol != "stomp" || c.RemoteAddr != transporttest.Addr.String() {
		t.Errorf("credentials %+v", c)
	}
}

// TestLoginRefusals checks the refusal table: every login failure is an
// ERROR with message access refused (quota exceeded for the session
// quota), then the close, and is counted.
func TestLoginRefusals(t *testing.T) {
	for _, tc := range []struct {
		err     error
		message string
	}{
		{broker.ErrBadCredentials, "access refused"},
		{broker.ErrNotAuthorized, "access refused"},
		{broker.ErrBanned, "access refused"},
		{broker.ErrClientIDOwned, "access refused"},
		{fmt.Errorf("wrapped: %w", broker.ErrSessionQuota), "quota exceeded"},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			a := &authFunc{fn: func(broker.Credentials) (broker.Identity, error) { return broker.Identity{}, tc.err }}
			p := New(Config{})
			h := serveOn(t, context.Background(), p, broker.New(broker.Config{Authenticator: a}, nil), nil)
			h.sendFrame(frame.CONNECT, nil, "accept-version", "1.2", "login", "root", "passcode", "nope", "receipt", "r1")
			e := h.waitFrame("ERROR")
			if m := e.Header.Get("message"); m != tc.message {
				t.Errorf("ERROR message %q, want %q", m, tc.message)
			}
			if strings.Contains(string(e.Body), "broker:") {
				t.Errorf("ERROR body %q leaks the internal error", e.Body)
			}
			h.waitClosed(subprotocol.ClosePolicy)
			if n := h.r.Stats().Sessions; n != 0 {
				t.Errorf("%d sessions after a refused login", n)
			}
			if n := p.Stats().AuthFailures; n != 1 {
				t.Errorf("AuthFailures %d, want 1", n)
			}
		})
	}
}

func TestLoginFailureLogRateLimited(t *testing.T) {
	logs := &logLines{}
	a := &authFunc{fn: func(broker.Credentials) (broker.Identity, error) { return broker.Identity{}, broker.ErrBadCredentials }}
	p := New(Config{Log: slog.New(logs)})
	r := broker.New(broker.Config{Authenticator: a}, nil)
	for range 3 { // the same source address three times within 10 s
		h := serveOn(t, context.Background(), p, r, nil)
		h.sendFrame(frame.CONNECT, nil, "accept-version", "1.2", "login", "root", "passcode", "nope")
		h.waitClosed(subprotocol.ClosePolicy)
	}
	if got := logs.matching("login refused"); len(got) != 1 {
		t.Errorf("%d login-refused lines for one source, want 1: %q", len(got), got)
	}
	if n := p.Stats().AuthFailures; n != 3 {
		t.Errorf("AuthFailures %d, want 3 (every refusal counts)", n)
	}
}

func TestCredentialExpiryClosesConnection(t *testing.T) {
	a := &authFunc{fn: func(c broker.Credentials) (broker.Identity, error) {
		if c.Login == "short" {
			return broker.Identity{Name: c.Login, Expires: time.Now().Add(50 * time.Millisecond)}, nil
		}
		return broker.Identity{Name: c.Login}, nil
	}}
	p := New(Config{})
	r := broker.New(broker.Config{Authenticator: a}, nil)
	neighbour := serveOn(t, context.Background(), p, r, nil)
	neighbour.connect("login", "long")
	neighbour.sendFrame(frame.SUBSCRIBE, nil, "id", "s", "destination", "/topic/t", "receipt", "sub")
	neighbour.waitFrame(frame.RECEIPT, "receipt-id", "sub")

	h := serveOn(t, context.Background(), p, r, nil)
	h.connect("login", "short")
	e := h.waitFrame("ERROR")
	if m := e.Header.Get("message"); m != "credential expired" {
		t.Errorf("ERROR message %q, want credential expired", m)
	}
	h.waitClosed(subprotocol.ClosePolicy)
	if n := p.Stats().CredentialExpired; n != 1 {
		t.Errorf("CredentialExpired %d, want 1", n)
	}
	// The neighbour, whose credential does not expire, keeps working.
	if err := r.Publish(context.Background(), nil, &broker.Message{Topic: "t", Payload: []byte("still here")}); err != nil {
		t.Fatal(err)
	}
	neighbour.waitMessage("still here")
	if neighbour.ft.Closed() {
		t.Error("the neighbour was closed")
	}
}

func TestACLDenials(t *testing.T) {
	t.Run("subscribe", func(t *testing.T) {
		p := New(Config{})
		h := serveOn(t, context.Background(), p, broker.New(broker.Config{Authorizer: denyDest("secret")}, nil), nil)
		h.connect()
		h.sendFrame(frame.SUBSCRIBE, nil, "id", "1", "destination", "/topic/secret", "receipt", "r")
		e := h.waitFrame("ERROR")
		if m := e.Header.Get("message"); m != "not authorized" || e.Header.Get("receipt-id") != "r" {
			t.Errorf("ERROR %v, want not authorized with receipt-id r", e)
		}
		h.waitClosed(subprotocol.ClosePolicy)
		if n := p.Stats().SubscribeDenied; n != 1 {
			t.Errorf("SubscribeDenied %d", n)
		}
	})
	t.Run("send", func(t *testing.T) {
		p := New(Config{})
		h := serveOn(t, context.Background(), p, broker.New(broker.Config{Authorizer: denyDest("secret")}, nil), nil)
		h.connect()
		h.sendFrame(frame.SEND, []byte("x"), "destination", "/topic/secret")
		if m := h.waitFrame("ERROR").Header.Get("message"); m != "not authorized" {
			t.Errorf("ERROR message %q, want not authorized", m)
		}
		h.waitClosed(subprotocol.ClosePolicy)
		if n := p.Stats().PublishDenied; n != 1 {
			t.Errorf("PublishDenied %d", n)
		}
	})
	t.Run("queue send", func(t *testing.T) {
		h := serveOn(t, context.Background(), New(Config{}), broker.New(broker.Config{Authorizer: denyDest("jobs")}, nil), nil)
		h.connect()
		h.sendFrame(frame.SEND, []byte("x"), "destination", "/queue/jobs")
		if m := h.waitFrame("ERROR").Header.Get("message"); m != "not authorized" {
			t.Errorf("ERROR message %q, want not authorized", m)
		}
	})
}

func TestFrameLimitBeforeLogin(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		body    []byte
	}{
		{"header", []string{"x-pad", strings.Repeat("a", 5000)}, nil},
		{"headers together", []string{"a", strings.Repeat("a", 2100), "b", strings.Repeat("b", 2100)}, nil},
		{"body", []string{"content-length", "5000"}, make([]byte, 5000)},
		{"body without content-length", nil, []byte(strings.Repeat("z", 5000))},
		{"headers and body", []string{"x-pad", strings.Repeat("a", 3000)}, []byte(strings.Repeat("z", 3000))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Config{})
			h := serveOn(t, context.Background(), p, broker.New(broker.Config{}, nil), nil)
			h.sendFrame(frame.CONNECT, tc.body, append([]string{"accept-version", "1.2"}, tc.headers...)...)
			if m := h.waitFrame("ERROR").Header.Get("message"); m != "frame too large" {
				t.Errorf("ERROR message %q, want frame too large", m)
			}
			h.waitClosed(subprotocol.CloseTooBig)
			if n := p.Stats().TooLargeBeforeLogin; n != 1 {
				t.Errorf("TooLargeBeforeLogin %d", n)
			}
		})
	}
	t.Run("after login the normal limits", func(t *testing.T) {
		h := startServer(t, Config{}, broker.Config{})
		h.connect("x-pad", strings.Repeat("a", 3000)) // within 4096
		h.sendFrame(frame.SUBSCRIBE, nil, "id", "1", "destination", "/topic/big", "receipt", "s")
		h.waitFrame(frame.RECEIPT, "receipt-id", "s")
		big := strings.Repeat("b", 64<<10)
		h.sendFrame(frame.SEND, []byte(big), "destination", "/topic/big", "x-pad", strings.Repeat("h", 5000))
		h.waitMessage(big)
	})
	t.Run("configured", func(t *testing.T) {
		h := startServer(t, Config{MaxFrameBeforeLogin: 16 << 10}, broker.Config{})
		h.connect("x-pad", strings.Repeat("a", 5000), "y-pad", strings.Repeat("a", 5000))
	})
}

// TestPublishRateBackPressure: past its rate a SEND waits unread (no
// RECEIPT yet, nothing dropped); the wait ends when the session closes.
func TestPublishRateBackPressure(t *testing.T) {
	a := &authFunc{fn: func(c broker.Credentials) (broker.Identity, error) {
		if c.Login == "flood" {
			// Expiry ends the connection while its third SEND waits (the
			// rate alone would hold it for 1000 s).
			return broker.Identity{Name: c.Login, Expires: time.Now().Add(time.Second)}, nil
		}
		return broker.Identity{Name: c.Login}, nil
	}}
	r := broker.New(broker.Config{Authenticator: a}, nil)
	p := New(Config{PublishRate: 0.001, PublishBurst: 2}) // two, then one per 1000 s
	neighbour := serveOn(t, context.Background(), p, r, nil)
	neighbour.connect("login", "calm")
	neighbour.sendFrame(frame.SUBSCRIBE, nil, "id", "s", "destination", "/topic/t", "receipt", "sub")
	neighbour.waitFrame(frame.RECEIPT, "receipt-id", "sub")

	h := serveOn(t, context.Background(), p, r, nil)
	h.connect("login", "flood")
	for i := range 3 {
		h.sendFrame(frame.SEND, []byte(fmt.Sprint("m", i)), "destination", "/topic/t", "receipt", fmt.Sprint("r", i))
	}
	h.waitFrame(frame.RECEIPT, "receipt-id", "r1")
	checkFor(t, "the third SEND to wait", func() bool { return p.Stats().PublishThrottled == 1 })
	if e := h.waitFrame("ERROR"); e.Header.Get("message") != "credential expired" {
		t.Errorf("ERROR %v", e)
	}
	h.waitClosed(subprotocol.ClosePolicy)
	for _, f := range h.frames() {
		if f.Command == frame.RECEIPT && f.Header.Get("receipt-id") == "r2" {
			t.Error("the throttled SEND was answered")
		}
	}
	neighbour.waitMessage("m1")
	// The neighbour's own SENDs are not slowed by the flood's limiter.
	neighbour.sendFrame(frame.SEND, []byte("n0"), "destination", "/topic/t")
	neighbour.sendFrame(frame.SEND, []byte("n1"), "destination", "/topic/t")
	neighbour.waitMessage("n1")
}

func TestPublishRateWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := New(Config{PublishBytesRate: 1}) // one byte per second
	h := serveOn(t, ctx, p, broker.New(broker.Config{}, nil), nil)
	h.connect()
	h.sendFrame(frame.SEND, []byte("0123456789"), "destination", "/topic/t", "receipt", "a") // 9 bytes over the burst: waits 9 s
	checkFor(t, "the SEND to wait", func() bool { return p.Stats().PublishThrottled == 1 })
	for _, f := range h.frames() {
		if f.Command == frame.RECEIPT {
			t.Fatal("the SEND was answered while it waited")
		}
	}
	cancel()
	h.waitFrame(frame.RECEIPT, "receipt-id", "a") // routed once the wait ended
}

func TestOutboundHeadersCapped(t *testing.T) {
	p := New(Config{MaxOutboundHeaders: 10})
	r := broker.New(broker.Config{}, nil)
	h := serveOn(t, context.Background(), p, r, nil)
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "s", "destination", "/topic/t", "receipt", "sub")
	h.waitFrame(frame.RECEIPT, "receipt-id", "sub")
	props := make([]broker.Property, 30)
	for i := range props {
		props[i] = broker.Property{Key: fmt.Sprint("k", i), Value: "v"}
	}
	props[3].Key = "content-length" // reserved: dropped anyway, not counted
	for _, origin := range []string{"mqtt", "stomp"} {
		m := &broker.Message{Topic: "t", Payload: []byte(origin), Props: props, Origin: origin}
		if err := r.Publish(context.Background(), nil, m); err != nil {
			t.Fatal(err)
		}
	}
	users := func(f outFrame) int {
		n := 0
		for i := range f.Header.Len() {
			if k, _ := f.Header.GetAt(i); strings.HasPrefix(k, "k") {
				n++
			}
		}
		return n
	}
	if n := users(h.waitMessage("mqtt")); n != 10 {
		t.Errorf("MESSAGE from MQTT carries %d user headers, want 10", n)
	}
	if n := users(h.waitMessage("stomp")); n != 29 {
		t.Errorf("MESSAGE from STOMP carries %d user headers, want all 29", n)
	}
	if n := p.Stats().HeadersDropped; n != 19 {
		t.Errorf("HeadersDropped %d, want 19", n)
	}
}

func TestSendSetsOrigin(t *testing.T) {
	c := &conn{cfg: &Config{TopicSeparator: '/'}}
	m, err := c.sendMessage(frame.New(frame.SEND, "destination", "/topic/o"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Origin != "stomp" {
		t.Errorf("Origin %q, want stomp", m.Origin)
	}
}
