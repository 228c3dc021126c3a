package web

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsTransport adapts a gorilla *websocket.Conn to subprotocol.Transport. It
// keeps gorilla's contract: one reader, one writer; Close and Abort from
// anywhere.
type wsTransport struct {
	ws       *websocket.Conn
	wt       time.Duration // deadline for control frames
	pongWait time.Duration

	closeOnce sync.Once
}

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

// Close sends a close frame (bounded by the write timeout) and closes the
// connection. Only the first call does anything.
func (t *wsTransport) Close(code int, reason string) error {
	t.closeOnce.Do(func() {
		if len(reason) > 120 { // a close frame's payload is at most 125 bytes
			reason = reason[:120]
		}
		_ = t.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(t.wt))
		_ = t.ws.Close()
	})
	return nil
}

// InterruptWrite shortens the deadline of a write in progress. gorilla sets
// the socket's deadline at the start of every write, so this lasts until the
// write loop's next write, which sets its own.
func (t *wsTransport) InterruptWrite(d time.Time) { _ = t.ws.UnderlyingConn().SetWriteDeadline(d) }

// Abort closes the connection without a close frame.
func (t *wsTransport) Abort() {
	t.closeOnce.Do(func() { _ = t.ws.Close() })
}
