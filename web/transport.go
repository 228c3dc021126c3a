package web

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
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
	remote   net.Addr // the client, after trusted proxies
	peer     subprotocol.Peer
	sniffer  *frameSniffer // nil when the connection was not sniffed
	br       *bufio.Reader // gorilla's read buffer (ours); nil: unknown
	bufs     *readBuffers  // where a parked connection's br buffer goes
	shell    *bufio.Reader // an empty Reader to swap br's buffer out with
	badClose bool          // the peer's close frame had a 1-byte payload; read loop only
	text     utf8Reader    // the current text message's reader; read loop only
	readDL   int64         // the read deadline last set, unix ns (0: none); read loop only

	// Parking (park_linux.go): ps is set when the poller took the connection.
	srv       *Server // connEnded when a resumed read loop ends
	proto     subprotocol.Protocol
	ip        netip.Addr
	rc        syscall.RawConn
	ps        *parkSlot
	slotID    int32
	parkTicks int32              // sweeps a wait lasts before the connection parks
	readFn    func(uintptr) bool // t.readAhead, made once
	ahead     *[]byte            // readAhead's buffer (from bufs) while not parked; read loop only
	in        subprotocol.Idle   // the read loop, while parked
	inShell   *bufio.Reader      // an empty Reader to swap in.Br's buffer out with

	closeOnce sync.Once   // the close frame
	abortOnce sync.Once   // the socket
	closeSent atomic.Bool // a close frame went out: linger for the reply
}

// closeLinger is how long the server waits, after its close frame, for the
// client's close frame before it drops the socket (RFC 6455 §7.1.1). Closing
// at once would reset a client still sending, and lose the ERROR it has not
// read yet.
const closeLinger = time.Second

// newTransport wraps ws. remote is the client's address (nil: the
// socket's peer); sniffer, when not nil, watches the frames ws reads.
func newTransport(ws *websocket.Conn, cfg *Config, remote net.Addr, peer subprotocol.Peer, sniffer *frameSniffer) *wsTransport {
	if remote == nil {
		remote = ws.RemoteAddr()
	}
	t := &wsTransport{ws: ws, wt: cfg.WriteTimeout, pongWait: cfg.PongWait, remote: remote, peer: peer, sniffer: sniffer}
	t.text.invalid = func() {
		_ = t.Close(websocket.CloseInvalidFramePayloadData, "invalid UTF-8 in a text message") // RFC 6455 §8.1
	}
	// A pong proves the peer is alive: extend the read deadline (gorilla
	// chat example). Runs on the read goroutine, inside NextReader.
	ws.SetPongHandler(func(string) error {
		return t.SetReadDeadline(time.Now().Add(t.pongWait))
	})
	// Answer the peer's close frame with its code, as gorilla does, except
	// a 1-byte close payload, which is a protocol error (RFC 6455 §5.5.1).
	// Runs on the read goroutine, inside NextReader.
	ws.SetCloseHandler(func(code int, _ string) error {
		if code == websocket.CloseNoStatusReceived && t.sniffer != nil && t.sniffer.closeLen == 1 {
			t.badClose = true
			code = websocket.CloseProtocolError
		}
		_ = t.Close(code, "")
		return nil
	})
	return t
}

// NextReader returns the next message. A close frame from the peer reads as
// io.EOF: the client ended the connection (ErrBadClosePayload when the
// frame was malformed). A text message's reader checks that it is UTF-8
// (RFC 6455 §8.1): invalid bytes close the connection with 1007 and fail
// the read with ErrInvalidUTF8.
func (t *wsTransport) NextReader() (bool, io.Reader, error) {
	mt, r, err := t.ws.NextReader()
	if err != nil {
		if t.badClose {
			return false, nil, ErrBadClosePayload
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return false, nil, io.EOF
		}
		return false, nil, err
	}
	if mt == websocket.TextMessage {
		t.text.reset(r)
		return false, &t.text, nil
	}
	return true, r, nil
}

// WaitRead implements subprotocol.Parker: it waits for the socket to be
// readable, without reading, when gorilla holds nothing buffered, and
// parks the connection when the wait lasts Config.ParkAfter (Linux, plain
// TCP: park_linux.go). It returns false at once when it cannot tell (TLS,
// other systems): the read that follows then blocks as usual.
func (t *wsTransport) WaitRead(in subprotocol.Idle) (parked bool) {
	if t.ps == nil || t.br.Buffered() > 0 || len(t.text.out) > 0 || t.sniffer.holding() {
		return false
	}
	t.in = in
	return getPoller().wait(t)
}

// HoldsInput implements subprotocol.InputHolder: gorilla's buffer, the
// text message's decoded bytes or the sniffer's read-ahead hold input the
// next read takes without waiting (false when the buffer is not known).
func (t *wsTransport) HoldsInput() bool {
	return (t.br != nil && t.br.Buffered() > 0) || len(t.text.out) > 0 || (t.sniffer != nil && t.sniffer.holding())
}

// HookReads implements subprotocol.ReadHooker for a plain TCP socket under
// the WebSocket (rawTCPConn).
func (t *wsTransport) HookReads(f subprotocol.Flusher) bool {
	return hookReads(t.ws.UnderlyingConn(), f)
}

// parkBuffers hands the read buffers of a connection about to be parked
// (nothing buffered) to their pools: gorilla's, and the read loop's own
// when it has the size of the protocols' (protoReadBuffer).
func (t *wsTransport) parkBuffers() {
	t.in.Parking()
	if t.ahead != nil { // holds nothing: the wait read nothing
		t.bufs.putBytes(t.ahead)
		t.ahead = nil
	}
	t.shell = t.bufs.park(t.br, t.shell)
	if br, _ := t.in.IdleReader(); br.Size() == protoBufs.size {
		t.inShell = protoBufs.park(br, t.inShell)
	}
}

// restoreBuffers gives a connection back its read buffers, from the pools.
func (t *wsTransport) restoreBuffers() {
	t.shell = t.bufs.restore(t.br, t.sniffer)
	if br, src := t.in.IdleReader(); br.Size() == 0 {
		t.inShell = protoBufs.restore(br, src)
	}
}

// resumed runs a parked connection's read loop on a new goroutine (the
// poller starts it), and ends the connection as serveConn would.
func (t *wsTransport) resumed() {
	t.restoreBuffers()
	err := t.in.Resume()
	if err == subprotocol.ErrParked {
		return
	}
	t.srv.connEnded(t, t.proto, t.ip, err)
}

// releaseBuffers hands the read buffers back to the pool once the
// connection is closed and nothing reads it any more.
func (t *wsTransport) releaseBuffers() {
	if t.bufs == nil {
		return
	}
	if t.br.Size() > 0 {
		t.shell = t.bufs.park(t.br, t.shell)
	}
	if t.ahead != nil {
		t.sniffer.hold(nil, nil)
		t.bufs.putBytes(t.ahead)
		t.ahead = nil
	}
}

// protoReadBuffer is the size of the protocols' own read buffers (stomp and
// mqtt connReadBufferSize): a parked connection's goes to protoBufs.
const protoReadBuffer = 512

// protoBufs pools the protocols' read buffers of parked connections.
var protoBufs = readBuffers{size: protoReadBuffer}

// readBuffers pools the read buffers of idle connections (WaitRead). A
// buffer moves between readers by copying the bufio.Reader value: gorilla
// keeps its *bufio.Reader, whose buffer is swapped out while it is empty
// and swapped back in, reset, before it is read again.
type readBuffers struct {
	size    int
	readers sync.Pool // *bufio.Reader of size bytes, empty
	bytes   sync.Pool // *[]byte of size bytes (wsTransport.readAhead)
}

// park moves br's buffer (br holds nothing) into the pool through shell
// (nil: a new one) and leaves br a zero Reader. It returns nil: shell now
// belongs to the pool.
func (b *readBuffers) park(br, shell *bufio.Reader) *bufio.Reader {
	if shell == nil {
		shell = new(bufio.Reader)
	}
	*shell = *br
	*br = bufio.Reader{}
	b.readers.Put(shell)
	return nil
}

// get returns a Reader of size bytes reading from rd: a pooled one (the
// buffer of an idle connection, or of a closed one) or a new one.
func (b *readBuffers) get(rd io.Reader) *bufio.Reader {
	q, _ := b.readers.Get().(*bufio.Reader)
	if q == nil {
		return bufio.NewReaderSize(rd, b.size)
	}
	q.Reset(rd)
	return q
}

// restore gives br a buffer from the pool (or a new one) reading from rd
// and returns the empty Reader that held it.
func (b *readBuffers) restore(br *bufio.Reader, rd io.Reader) *bufio.Reader {
	q := b.get(rd)
	*br = *q
	*q = bufio.Reader{}
	return q
}

func (b *readBuffers) getBytes() *[]byte {
	if p, _ := b.bytes.Get().(*[]byte); p != nil {
		return p
	}
	p := make([]byte, b.size)
	return &p
}

func (b *readBuffers) putBytes(p *[]byte) { b.bytes.Put(p) }

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

// SetReadDeadline sets the socket's read deadline and remembers it: a
// parked connection is resumed when it passes.
func (t *wsTransport) SetReadDeadline(d time.Time) error {
	t.readDL = 0
	if !d.IsZero() {
		t.readDL = d.UnixNano()
	}
	return t.ws.SetReadDeadline(d)
}

// readDeadline is the read deadline last set (zero: none).
func (t *wsTransport) readDeadline() time.Time {
	if t.readDL == 0 {
		return time.Time{}
	}
	return time.Unix(0, t.readDL)
}

func (t *wsTransport) SetWriteDeadline(d time.Time) error { return t.ws.SetWriteDeadline(d) }
func (t *wsTransport) RemoteAddr() net.Addr               { return t.remote }
func (t *wsTransport) Subprotocol() string                { return t.ws.Subprotocol() }
func (t *wsTransport) Peer() subprotocol.Peer             { return t.peer }

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
		// ErrCloseSent: gorilla sent one already (1009 over the read
		// limit, 1002 on a protocol error); linger all the same.
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
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

// Abort closes the socket without (further) ceremony. A parked connection
// is resumed: its read fails, and it ends as after any read error.
func (t *wsTransport) Abort() {
	t.abortOnce.Do(func() {
		if t.ps == nil {
			_ = t.ws.Close()
			return
		}
		getPoller().abort(t, func() { _ = t.ws.Close() })
	})
}

// linger runs on the handler goroutine once the protocol is done: when a
// close frame went out, it reads and discards what the client still sends
// until its close frame arrives or closeLinger passes, then closes. When
// gorilla's reader has already failed (a message over the read limit, a
// protocol error), it discards the raw bytes instead, until the client
// closes: closing with unread bytes would reset the connection, and the
// client could lose the close frame (1009 would read as 1006).
func (t *wsTransport) linger() {
	if t.closeSent.Load() {
		_ = t.ws.SetReadDeadline(time.Now().Add(closeLinger))
		for {
			_, r, err := t.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				var ne net.Error
				if !errors.As(err, &ce) && !(errors.As(err, &ne) && ne.Timeout()) {
					_, _ = io.Copy(io.Discard, t.ws.UnderlyingConn())
				}
				break
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				break
			}
		}
	}
	t.Abort()
}
