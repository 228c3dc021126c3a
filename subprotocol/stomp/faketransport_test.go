package stomp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/subprotocol/transporttest"
)

// checkFor polls cond until it holds or 5 s pass.
func checkFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, cond)
}

// outFrame is one decoded server frame.
type outFrame struct {
	*frame.Frame
	binary bool // the WebSocket message type it came in
	msg    int  // index of that message
}

func (o outFrame) String() string {
	var b strings.Builder
	b.WriteString(o.Command)
	for i := range o.Header.Len() {
		k, v := o.Header.GetAt(i)
		fmt.Fprintf(&b, " %s:%q", k, v)
	}
	if len(o.Body) > 0 {
		fmt.Fprintf(&b, " body=%q", o.Body)
	}
	return b.String()
}

// decodeOut decodes every frame the server wrote, heart-beats skipped, with
// the header unescaping of version. Each message holds whole frames.
func decodeOut(t testing.TB, msgs []transporttest.Message, version string) []outFrame {
	t.Helper()
	var out []outFrame
	for i, m := range msgs {
		rd := NewReader(bytes.NewReader(m.Data), Limits{MaxHeaders: 1 << 10})
		rd.SetVersion(version)
		for {
			f, err := rd.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("server message %d %q does not decode: %v", i, m.Data, err)
			}
			if f != nil {
				out = append(out, outFrame{Frame: f, binary: m.Binary, msg: i})
			}
		}
	}
	return out
}

// harness runs one server connection over a transporttest.Fake.
type harness struct {
	t       *testing.T
	ft      *transporttest.Fake
	p       *Protocol
	r       *broker.Router
	version string // for decoding server frames
	done    chan struct{}
	err     error // Serve's result, once done is closed
}

func startServer(t *testing.T, cfg Config, bcfg broker.Config) *harness {
	t.Helper()
	return serveOn(t, context.Background(), New(cfg), broker.New(bcfg, nil), nil)
}

// serveOn runs one connection of p on r with ctx; prepare, when set, sees
// the transport before Serve does (to set its Peer).
func serveOn(t *testing.T, ctx context.Context, p *Protocol, r *broker.Router, prepare func(*transporttest.Fake)) *harness {
	t.Helper()
	h := &harness{t: t, ft: transporttest.New("v12.stomp"), p: p, r: r, version: "1.2", done: make(chan struct{})}
	if prepare != nil {
		prepare(h.ft)
	}
	go func() {
		defer close(h.done)
		h.err = p.Serve(ctx, h.ft, h.r)
	}()
	t.Cleanup(func() {
		h.ft.HangUp()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after the client hung up")
		}
		if !h.ft.Closed() {
			t.Errorf("Serve returned without closing the transport")
		}
	})
	return h
}

// sendFrame sends one frame; headers are name, value pairs. The frame is
// encoded for the harness version (1.2 before CONNECT).
func (h *harness) sendFrame(command string, body []byte, headers ...string) {
	f := frame.New(command, headers...)
	f.Body = body
	h.ft.Send(false, AppendFrame(nil, f, h.version))
}

func (h *harness) sendRaw(s string) { h.ft.Send(false, []byte(s)) }

func (h *harness) frames() []outFrame { return decodeOut(h.t, h.ft.Messages(), h.version) }

// waitFrames waits until n frames satisfy match and returns them in order.
func (h *harness) waitFrames(what string, n int, match func(outFrame) bool) []outFrame {
	h.t.Helper()
	var got []outFrame
	checkFor(h.t, what, func() bool {
		got = got[:0]
		for _, f := range h.frames() {
			if match(f) {
				got = append(got, f)
			}
		}
		return len(got) >= n
	})
	return got
}

// waitFrame waits for the first frame with command and, when given, the
// header pairs.
func (h *harness) waitFrame(command string, headers ...string) outFrame {
	h.t.Helper()
	what := command + " " + strings.Join(headers, " ")
	return h.waitFrames(what, 1, func(f outFrame) bool { return hasHeaders(f, command, headers...) })[0]
}

func hasHeaders(f outFrame, command string, headers ...string) bool {
	if f.Command != command {
		return false
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if v, ok := f.Header.Contains(headers[i]); !ok || v != headers[i+1] {
			return false
		}
	}
	return true
}

// messagesWithBody returns the MESSAGE frames so far, in order.
func (h *harness) messageFrames() []outFrame {
	var out []outFrame
	for _, f := range h.frames() {
		if f.Command == frame.MESSAGE {
			out = append(out, f)
		}
	}
	return out
}

// waitMessage waits for a MESSAGE with body.
func (h *harness) waitMessage(body string) outFrame {
	h.t.Helper()
	return h.waitFrames("MESSAGE "+body, 1, func(f outFrame) bool {
		return f.Command == frame.MESSAGE && string(f.Body) == body
	})[0]
}

// connect sends CONNECT with accept-version:1.2 and any extra headers,
// waits for CONNECTED and switches the harness to the version.
func (h *harness) connect(headers ...string) outFrame {
	h.t.Helper()
	h.sendFrame(frame.CONNECT, nil, append([]string{"accept-version", "1.2", "host", "test"}, headers...)...)
	f := h.waitFrames("CONNECTED or ERROR", 1, func(f outFrame) bool {
		return f.Command == frame.CONNECTED || f.Command == "ERROR"
	})[0]
	if f.Command != frame.CONNECTED {
		h.t.Fatalf("CONNECT answered with %v", f)
	}
	h.version = f.Header.Get("version")
	return f
}

// waitDone waits for Serve to return and gives its error.
func (h *harness) waitDone() error {
	h.t.Helper()
	select {
	case <-h.done:
		return h.err
	case <-time.After(5 * time.Second):
		h.t.Fatal("Serve did not return")
		return nil
	}
}

// waitClosed waits for the server to close the transport with code after
// writing everything, and for Serve to return.
func (h *harness) waitClosed(code int) error {
	h.t.Helper()
	checkFor(h.t, "transport closed", h.ft.Closed)
	err := h.waitDone()
	got, aborted, _ := h.ft.CloseState()
	if aborted {
		h.t.Errorf("transport aborted, want Close(%d)", code)
	} else if got != code {
		h.t.Errorf("close code %d, want %d", got, code)
	}
	return err
}

// queueInfo returns the router's view of queue name.
func (h *harness) queueInfo(name string) broker.QueueInfo {
	if q, ok := h.r.Queue(name); ok {
		return q
	}
	return broker.QueueInfo{Name: "(missing) " + name, Ready: -1, Unacked: -1, Consumers: -1}
}
