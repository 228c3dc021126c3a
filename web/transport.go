package web

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexmq/duplex/subprotocol"
)

// wsTransport adapts a gorilla *websocket.Conn to subprotocol.Transport. It
// keeps gorilla's contract: one reader, one writer; Close and Abort from
// anywhere.
type wsTransport struct {
	ws       *websocket.Conn
	wt       time.Duration // deadline for control frames
	pongWait time.Duration

	closeOnce sync.Once   // the close frame
	abortOnce sync.Once   // the socket
	closeSent atomic.Bool // a close frame went out: linger for the reply
}

// closeLinger is how long the server waits, after its close frame, for the
// client's close frame before it drops the socket (RFC 6455 §7.1.1). Closing
// at once would reset a client still sending, and lose the ERROR it has not
// read yet.
const closeLinger = time.Second

func newTransport(ws *websocket.Conn, cfg *Config) *wsTransport {
	t := &wsTransport{ws: ws, wt: cfg.WriteTimeout, pongWait: cfg.PongWait}
	// A pong proves the peer is alive: extend the read deadline (gorilla
	// chat example). Runs on the read goroutine, inside NextReader.
	ws.SetPongHandler(func(string) error {
		return ws.SetReadDeadline(time.Now().Add(t.pongWait))
	})
	return t
}

// NextReader returns the next message. A close frame from the peer reads as
// io.EOF: the client ended the connection.
func (t *wsTransport) NextReader() (bool, io.Reader, error) {
	mt, r, err := t.ws.NextReader()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return false, nil, io.EOF
		}
		return false, nil, err
	}
	return mt == websocket.BinaryMessage, r, nil
}

func (t *wsTransport) WriteMessage(binary bool, p []byte) error {
	mt := websocket.TextMessage
	if binary {
		mt = websocket.BinaryMessage
	}
	return t.ws.WriteMessage(mt, p)
}

func (t *wsTransport) Ping() error {
	return t.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(t.wt))
}

func (t *wsTransport) SetReadDeadline(d time.Time) error  { return t.ws.SetReadDeadline(d) }
func (t *wsTransport) SetWriteDeadline(d time.Time) error { return t.ws.SetWriteDeadline(d) }
func (t *wsTransport) RemoteAddr() net.Addr               { return t.ws.RemoteAddr() }
func (t *wsTransport) Subprotocol() string                { return t.ws.Subprotocol() }
func (t *wsTransport) Peer() subprotocol.Peer             { return subprotocol.Peer{Transport: "ws"} }

// Close sends a close frame (bounded by the write timeout). The socket is
// closed when the client answers (the handler drains until then, see
// linger) or closeLinger later, whichever comes first. Only the first call
// does anything.
func (t *wsTransport) Close(code int, reason string) error {
	t.closeOnce.Do(func() {
		if len(reason) > 120 { // a close frame's payload is at most 125 bytes
			reason = reason[:120]
		}
		err := t.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(t.wt))
		if err != nil {
			t.Abort()
			return
		}
		t.closeSent.Store(true)
		time.AfterFunc(closeLinger, t.Abort)
	})
	return nil
}

// InterruptWrite shortens the deadline of a write in progress. gorilla sets
// the socket's deadline at the start of every write, so this lasts until the
// write loop's next write, which sets its own.
func (t *wsTransport) InterruptWrite(d time.Time) { _ = t.ws.UnderlyingConn().SetWriteDeadline(d) }

// Abort closes the socket without (further) ceremony.
func (t *wsTransport) Abort() {
	t.abortOnce.Do(func() { _ = t.ws.Close() })
}

// linger runs on the handler goroutine once the protocol is done: when a
// close frame went out, it reads and discards what the client still sends
// until its close frame arrives or closeLinger passes, then closes.
func (t *wsTransport) linger() {
	if t.closeSent.Load() {
		_ = t.ws.SetReadDeadline(time.Now().Add(closeLinger))
		for {
			_, r, err := t.ws.NextReader()
			if err != nil {
				break
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				break
			}
		}
	}
	t.Abort()
}
