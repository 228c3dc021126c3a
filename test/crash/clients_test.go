package crash_test

// Clients that survive the broker going away: MQTT 5 subscribers on
// paho.golang's autopaho (persistent session, in-memory session state kept
// across reconnects and across connection managers), an MQTT 3.1.1
// subscriber on paho.mqtt.golang, MQTT publishers on plain paho.golang
// (clean session, a new connection after any failure), and frame-level
// STOMP consumers and senders over the STOMP TCP listener.

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/internal/testutil"
)

// ---------------------------------------------------------------------------
// What a subscriber received

// delivery is one message as a subscriber received it.
type delivery struct {
	payload string
	dup     bool // MQTT DUP flag, or STOMP redelivered:true
	gen     int  // broker generation that delivered it
}

// recorder keeps every delivery of one subscriber, in arrival order.
type recorder struct {
	name string
	srv  *server

	mu    sync.Mutex
	got   []delivery
	count map[string]int
}

func newRecorder(name string, srv *server) *recorder {
	return &recorder{name: name, srv: srv, count: make(map[string]int)}
}

func (r *recorder) add(payload string, dup bool) {
	gen := 0
	if r.srv != nil {
		gen = r.srv.gen()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, delivery{payload: payload, dup: dup, gen: gen})
	r.count[payload]++
}

func (r *recorder) times(payload string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[payload]
}

func (r *recorder) snapshot() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// waitAll waits until every payload in want has arrived at least once and
// returns the ones still missing at the deadline, or once nothing new has
// arrived for stall (a stuck subscriber would wait for nothing).
func (r *recorder) waitAll(want []string, deadline time.Time, stall time.Duration) []string {
	var missing []string
	lastLen, lastChange := -1, time.Now()
	for {
		missing = missing[:0]
		r.mu.Lock()
		for _, p := range want {
			if r.count[p] == 0 {
				missing = append(missing, p)
			}
		}
		n := len(r.got)
		r.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		now := time.Now()
		if n != lastLen {
			lastLen, lastChange = n, now
		}
		if now.After(deadline) || now.Sub(lastChange) > stall {
			return missing
		}
		time.Sleep(pollEvery)
	}
}

// drainAll waits for every recorder at once (want[i] for recs[i]), with
// one deadline, and returns what each is still missing.
func drainAll(recs []*recorder, want [][]string, deadline time.Time) [][]string {
	out := make([][]string, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = r.waitAll(want[i], deadline, waitStall)
		}()
	}
	wg.Wait()
	return out
}

// ---------------------------------------------------------------------------
// MQTT 5 persistent subscriber (autopaho)

// v5Sub is a persistent MQTT 5 session (Clean Start only on its very first
// connection, Session Expiry one hour) that reconnects by itself while
// online. Going offline ends the connection manager with a DISCONNECT;
// going online starts a new one with the same paho session state, so QoS 2
// deduplication works across both restarts and offline periods.
type v5Sub struct {
	name   string
	srv    *server
	filter string
	qos    byte
	rec    *recorder

	session *state.State
	connIdx atomic.Int64 // CONNACKs so far, across managers
	lastErr atomic.Pointer[string]

	mu         sync.Mutex
	cm         *autopaho.ConnectionManager
	cancel     context.CancelFunc
	subscribed bool
	problems   []string // contract violations seen in callbacks
}

func newV5Sub(srv *server, name, filter string, qos byte) *v5Sub {
	return &v5Sub{
		name: name, srv: srv, filter: filter, qos: qos,
		rec:     newRecorder(name, srv),
		session: state.NewInMemory(),
	}
}

func (c *v5Sub) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *v5Sub) getProblems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.problems...)
}

// online starts the connection manager, waits for the connection and, the
// first time, subscribes. Later connections must find the session (and its
// subscription) on the broker: this client never subscribes again.
func (c *v5Sub) online() error {
	c.mu.Lock()
	if c.cm != nil {
		c.mu.Unlock()
		return nil
	}
	first := !c.subscribed
	c.mu.Unlock()
	u, err := url.Parse("mqtt://" + c.srv.mqttAddr)
	if err != nil {
		return err
	}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     20,
		CleanStartOnInitialConnection: first,
		SessionExpiryInterval:         3600,
		ConnectTimeout:                waitShort,
		ReconnectBackoff:              autopaho.NewConstantBackoff(retryDelay),
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ca *paho.Connack) {
			n := c.connIdx.Add(1)
			if n > 1 && !ca.SessionPresent {
				c.problem("%s: CONNACK #%d (broker generation %d) has Session Present 0: the persistent session was lost", c.name, n, c.srv.gen())
			}
		},
		OnConnectionDown: func() bool { return true },
		OnConnectError: func(err error) {
			s := fmt.Sprintf("connect (broker generation %d): %v", c.srv.gen(), err)
			c.lastErr.Store(&s)
		},
		ClientConfig: paho.ClientConfig{
			ClientID: c.name,
			Session:  c.session,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					c.rec.add(string(pr.Packet.Payload), pr.Packet.Duplicate())
					return true, nil
				},
			},
			PacketTimeout: waitShort,
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		cancel()
		return fmt.Errorf("%s: autopaho: %w", c.name, err)
	}
	c.mu.Lock()
	c.cm, c.cancel = cm, cancel
	c.mu.Unlock()
	actx, acancel := context.WithTimeout(context.Background(), waitStart)
	defer acancel()
	if err := cm.AwaitConnection(actx); err != nil {
		return fmt.Errorf("%s: not connected within %v: %w", c.name, waitStart, err)
	}
	if first {
		sctx, scancel := context.WithTimeout(context.Background(), waitShort)
		defer scancel()
		sa, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: c.filter, QoS: c.qos}}})
		if err != nil {
			return fmt.Errorf("%s: subscribe %s: %w", c.name, c.filter, err)
		}
		if len(sa.Reasons) != 1 || sa.Reasons[0] != c.qos {
			return fmt.Errorf("%s: SUBACK %v for %s, want granted QoS %d", c.name, sa.Reasons, c.filter, c.qos)
		}
		c.mu.Lock()
		c.subscribed = true
		c.mu.Unlock()
	}
	return nil
}

// offline sends DISCONNECT (when connected) and stops reconnecting; the
// session stays on the broker.
func (c *v5Sub) offline() error {
	c.mu.Lock()
	cm, cancel := c.cm, c.cancel
	c.cm, c.cancel = nil, nil
	c.mu.Unlock()
	if cm == nil {
		return nil
	}
	defer cancel()
	ctx, dcancel := context.WithTimeout(context.Background(), waitShort)
	defer dcancel()
	if err := cm.Disconnect(ctx); err != nil {
		return fmt.Errorf("%s: disconnect: %w", c.name, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// MQTT 3.1.1 persistent subscriber (paho.mqtt.golang)

// v3Sub is a CleanSession=false 3.1.1 client. It connects, subscribes the
// first time, and goes offline with a DISCONNECT; each online period is a
// new client with the same id, receiving through its default handler.
// With reconnect set it also reconnects by itself while online.
type v3Sub struct {
	name      string
	srv       *server
	filter    string
	qos       byte
	rec       *recorder
	reconnect bool

	subscribed bool
	c          pahomqtt.Client
}

func newV3Sub(srv *server, name, filter string, qos byte) *v3Sub {
	return &v3Sub{name: name, srv: srv, filter: filter, qos: qos, rec: newRecorder(name, srv)}
}

func (c *v3Sub) online() error {
	o := pahomqtt.NewClientOptions().
		AddBroker("tcp://" + c.srv.mqttAddr).
		SetClientID(c.name).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(c.reconnect).
		SetMaxReconnectInterval(4 * retryDelay).
		SetConnectRetry(false).
		SetConnectTimeout(waitShort).
		SetWriteTimeout(waitShort).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ pahomqtt.Client, m pahomqtt.Message) {
			c.rec.add(string(m.Payload()), m.Duplicate())
		})
	c.c = pahomqtt.NewClient(o)
	tok := c.c.Connect()
	if !tok.WaitTimeout(waitShort) {
		return fmt.Errorf("%s: no CONNACK within %v", c.name, waitShort)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("%s: connect: %w", c.name, err)
	}
	ct := tok.(*pahomqtt.ConnectToken)
	if c.subscribed && !ct.SessionPresent() {
		return fmt.Errorf("%s: CONNACK has Session Present 0: the persistent session was lost", c.name)
	}
	if !c.subscribed {
		st := c.c.Subscribe(c.filter, c.qos, nil)
		if !st.WaitTimeout(waitShort) {
			return fmt.Errorf("%s: no SUBACK within %v", c.name, waitShort)
		}
		if err := st.Error(); err != nil {
			return fmt.Errorf("%s: subscribe: %w", c.name, err)
		}
		if got := st.(*pahomqtt.SubscribeToken).Result()[c.filter]; got != c.qos {
			return fmt.Errorf("%s: SUBACK granted %#02x, want %d", c.name, got, c.qos)
		}
		c.subscribed = true
	}
	return nil
}

func (c *v3Sub) offline() {
	if c.c != nil {
		c.c.Disconnect(250)
		c.c = nil
	}
}

// ---------------------------------------------------------------------------
// MQTT publisher (testutil.MQTTPub, clean start)

// newMQTTPub publishes to srv's MQTT listener (its address read at each
// connect: a restart may move it), opening a new connection on the next
// publish after any failure.
func newMQTTPub(name string, srv *server) *testutil.MQTTPub {
	return &testutil.MQTTPub{Name: name, Addr: func() string { return srv.mqttAddr }, PacketTimeout: waitShort, KeepAlive: 30}
}

// sharedPub lets several goroutines publish concurrently on one
// connection (pipelined: many publishes in flight at once), reconnecting
// after a failure like testutil.MQTTPub.
type sharedPub struct {
	mu sync.Mutex
	p  *testutil.MQTTPub
}

func (s *sharedPub) publish(ctx context.Context, topic string, qos byte, payload string) error {
	s.mu.Lock()
	err := s.p.Ensure(ctx)
	cli, connUp := s.p.Client()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(connUp, cancel)()
	r, err := cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
	if err != nil {
		s.mu.Lock()
		if c, _ := s.p.Client(); c == cli {
			s.p.Drop()
		}
		s.mu.Unlock()
		return err
	}
	if r != nil && r.ReasonCode >= 0x80 {
		return fmt.Errorf("refused: reason %#02x", r.ReasonCode)
	}
	return nil
}

func (s *sharedPub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p.Close()
}

// ---------------------------------------------------------------------------
// STOMP
//
// A small frame-level client (go-stomp's frame codec over TCP) rather than
// go-stomp's Conn: go-stomp stops reading frames while a subscription's
// channel is full, and its Ack can then wait on its own write queue, which
// would stall a consumer for reasons of the client's own. Here one reader
// goroutine records and ACKs each MESSAGE itself; every write has a
// deadline.

// stompConn is one STOMP 1.2 connection.
type stompConn struct {
	nc  net.Conn
	r   *frame.Reader
	wmu sync.Mutex
	w   *frame.Writer

	nextID atomic.Int64
}

// dialStomp connects and completes CONNECT/CONNECTED (heart-beats off);
// hdrs are extra CONNECT headers as key, value pairs.
func dialStomp(srv *server, hdrs ...string) (*stompConn, error) {
	nc, err := net.DialTimeout("tcp", srv.stompAddr, waitShort)
	if err != nil {
		return nil, err
	}
	c := &stompConn{nc: nc, r: frame.NewReader(nc), w: frame.NewWriter(nc)}
	h := append([]string{"accept-version", "1.2", "host", "localhost", "heart-beat", "0,0"}, hdrs...)
	if err := c.write(frame.New("CONNECT", h...)); err != nil {
		nc.Close()
		return nil, err
	}
	f, err := c.read(time.Now().Add(waitShort))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("waiting for CONNECTED: %w", err)
	}
	if f.Command != "CONNECTED" {
		nc.Close()
		return nil, fmt.Errorf("CONNECT answered with %s: %s %q", f.Command, f.Header.Get("message"), f.Body)
	}
	return c, nil
}

func (c *stompConn) write(f *frame.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(waitShort))
	return c.w.Write(f)
}

// read returns the next frame (heart-beats skipped) before deadline (zero:
// none).
func (c *stompConn) read(deadline time.Time) (*frame.Frame, error) {
	_ = c.nc.SetReadDeadline(deadline)
	for {
		f, err := c.r.Read()
		if err != nil {
			return nil, err
		}
		if f != nil {
			return f, nil
		}
	}
}

func (c *stompConn) receiptID() string {
	return fmt.Sprintf("r-%d", c.nextID.Add(1))
}

func (c *stompConn) close() { _ = c.nc.Close() }

// frameError describes an ERROR frame.
func frameError(f *frame.Frame) error {
	return fmt.Errorf("ERROR frame: %s %q", f.Header.Get("message"), f.Body)
}

// stompSender sends with receipts, reconnecting after any failure. Its
// connection never subscribes, so the only frames it reads are RECEIPTs
// (and ERRORs).
type stompSender struct {
	srv  *server
	conn *stompConn
}

// send returns nil only when the RECEIPT arrived.
func (s *stompSender) send(dest, body string) error {
	if s.conn == nil {
		c, err := dialStomp(s.srv)
		if err != nil {
			return err
		}
		s.conn = c
	}
	id := s.conn.receiptID()
	f := frame.New("SEND", "destination", dest, "content-type", "text/plain", "receipt", id)
	f.Body = []byte(body)
	err := s.conn.write(f)
	for err == nil {
		var r *frame.Frame
		r, err = s.conn.read(time.Now().Add(waitShort))
		switch {
		case err != nil:
		case r.Command == "RECEIPT" && r.Header.Get("receipt-id") == id:
			return nil
		case r.Command == "ERROR":
			err = frameError(r)
		default:
			err = fmt.Errorf("unexpected %s frame waiting for RECEIPT %s", r.Command, id)
		}
	}
	s.conn.close()
	s.conn = nil
	return err
}

func (s *stompSender) close() {
	if s.conn != nil {
		_ = s.conn.write(frame.New("DISCONNECT"))
		s.conn.close()
		s.conn = nil
	}
}

// stompDialect is one way to ask for a durable topic subscription.
type stompDialect struct {
	name     string
	connHdrs func(client string) []string
	subHdrs  func(client string) []string
}

var stompDialects = []stompDialect{
	{
		name:     "rabbitmq",
		connHdrs: func(string) []string { return nil },
		subHdrs: func(client string) []string {
			return []string{"id", client + "-durable", "durable", "true", "auto-delete", "false"}
		},
	},
	{
		name:     "activemq",
		connHdrs: func(client string) []string { return []string{"client-id", client} },
		subHdrs:  func(client string) []string { return []string{"activemq.subscriptionName", client + "-sub"} },
	},
	{
		name:     "artemis",
		connHdrs: func(client string) []string { return []string{"client-id", client} },
		subHdrs:  func(client string) []string { return []string{"durable-subscription-name", client + "-sub"} },
	},
}

// stompConsumer subscribes with ack:client-individual, records and ACKs
// every MESSAGE, and reconnects (and subscribes again with the same
// headers) whenever its connection ends while it is meant to be online.
// Going offline is a DISCONNECT: a durable subscription stays.
type stompConsumer struct {
	name     string
	srv      *server
	dest     string
	connHdrs []string
	subHdrs  []string
	rec      *recorder

	ctl     chan ctlReq
	quit    chan struct{}
	done    chan struct{}
	lastErr atomic.Pointer[string]
}

type ctlReq struct {
	online bool
	reply  chan error
}

func newStompConsumer(srv *server, name, dest string, connHdrs, subHdrs []string) *stompConsumer {
	return &stompConsumer{
		name: name, srv: srv, dest: dest, connHdrs: connHdrs, subHdrs: subHdrs,
		rec:  newRecorder(name, srv),
		ctl:  make(chan ctlReq),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// start runs the consumer, offline until setOnline(true).
func (c *stompConsumer) start() { go c.run() }

func (c *stompConsumer) setErr(err error) {
	s := err.Error()
	c.lastErr.Store(&s)
}

// open connects and sends SUBSCRIBE and a barrier SEND with a receipt
// (the server handles a connection's frames in order: once the receipt is
// back, the SUBSCRIBE has been processed).
func (c *stompConsumer) open() (*stompConn, string, error) {
	conn, err := dialStomp(c.srv, c.connHdrs...)
	if err != nil {
		return nil, "", err
	}
	h := []string{"destination", c.dest, "ack", "client-individual"}
	id := "sub-0"
	for i := 0; i+1 < len(c.subHdrs); i += 2 {
		if c.subHdrs[i] == "id" {
			id = c.subHdrs[i+1]
		} else {
			h = append(h, c.subHdrs[i], c.subHdrs[i+1])
		}
	}
	h = append(h, "id", id)
	if err := conn.write(frame.New("SUBSCRIBE", h...)); err != nil {
		conn.close()
		return nil, "", err
	}
	barrier := conn.receiptID()
	if err := conn.write(frame.New("SEND", "destination", barrierDest, "receipt", barrier)); err != nil {
		conn.close()
		return nil, "", err
	}
	return conn, barrier, nil
}

// readLoop records and ACKs each MESSAGE and reports RECEIPT ids until the
// connection ends; then it closes ended after storing the reason.
func (c *stompConsumer) readLoop(conn *stompConn, receipts chan<- string, ended chan<- error) {
	for {
		f, err := conn.read(time.Time{})
		if err != nil {
			ended <- err
			return
		}
		switch f.Command {
		case "MESSAGE":
			c.rec.add(string(f.Body), f.Header.Get("redelivered") == "true")
			if ack := f.Header.Get("ack"); ack != "" {
				if err := conn.write(frame.New("ACK", "id", ack)); err != nil {
					ended <- fmt.Errorf("ACK: %w", err)
					return
				}
			}
		case "RECEIPT":
			select {
			case receipts <- f.Header.Get("receipt-id"):
			default:
			}
		case "ERROR":
			ended <- frameError(f)
			return
		}
	}
}

func (c *stompConsumer) run() {
	defer close(c.done)
	online := false
	var pending chan error // a setOnline(true) waiting for the subscription
	for {
		if !online {
			select {
			case r := <-c.ctl:
				if r.online {
					online, pending = true, r.reply
				} else {
					r.reply <- nil
				}
			case <-c.quit:
				return
			}
			continue
		}
		conn, barrier, err := c.open()
		if err != nil {
			c.setErr(err)
			if pending != nil {
				pending <- fmt.Errorf("%s: %w", c.name, err)
				online, pending = false, nil
				continue
			}
			select {
			case r := <-c.ctl:
				online = r.online
				r.reply <- nil
			case <-c.quit:
				return
			case <-time.After(retryDelay):
			}
			continue
		}
		if !c.consume(conn, barrier, &online, &pending) {
			return
		}
	}
}

// consume runs one connection until it ends, the consumer goes offline
// (online set false) or quits (returns false). A pending setOnline(true)
// is answered when the barrier receipt arrives.
func (c *stompConsumer) consume(conn *stompConn, barrier string, online *bool, pending *chan error) bool {
	receipts := make(chan string, 16)
	ended := make(chan error, 1)
	go c.readLoop(conn, receipts, ended)
	defer func() {
		conn.close()
		<-ended
	}()
	barrierTimer := time.NewTimer(waitShort)
	defer barrierTimer.Stop()
	answer := func(err error) {
		if err != nil {
			c.setErr(err)
		}
		if *pending != nil {
			*pending <- err
			*pending = nil
			if err != nil {
				*online = false
			}
		}
	}
	for {
		select {
		case id := <-receipts:
			if id == barrier {
				barrierTimer.Stop()
				answer(nil)
			}
		case <-barrierTimer.C:
			answer(fmt.Errorf("%s: no RECEIPT for the SEND after SUBSCRIBE within %v (%d messages received so far)", c.name, waitShort, c.rec.len()))
			if !*online {
				return true
			}
		case err := <-ended:
			ended <- err // for the deferred wait
			c.setErr(err)
			return true
		case r := <-c.ctl:
			if r.online {
				r.reply <- nil
				continue
			}
			*online = false
			r.reply <- c.disconnect(conn, receipts)
			return true
		case <-c.quit:
			_ = c.disconnect(conn, receipts)
			return false
		}
	}
}

// disconnect sends DISCONNECT with a receipt and waits for it (bounded):
// every ACK written before has then been processed.
func (c *stompConsumer) disconnect(conn *stompConn, receipts <-chan string) error {
	id := conn.receiptID()
	if err := conn.write(frame.New("DISCONNECT", "receipt", id)); err != nil {
		return nil // the connection is gone already
	}
	// The RECEIPT follows every ACK written before it, and a consumer
	// that just took a backlog may have written thousands: under -race
	// with an fsync per commit that is more than one exchange's waitShort.
	tm := time.NewTimer(waitStart)
	defer tm.Stop()
	for {
		select {
		case got := <-receipts:
			if got == id {
				return nil
			}
		case <-tm.C:
			return fmt.Errorf("%s: no RECEIPT for DISCONNECT within %v", c.name, waitStart)
		}
	}
}

// setOnline switches the consumer; going online returns once subscribed.
func (c *stompConsumer) setOnline(on bool) error {
	r := ctlReq{online: on, reply: make(chan error, 1)}
	select {
	case c.ctl <- r:
	case <-c.done:
		return fmt.Errorf("%s: consumer stopped", c.name)
	case <-time.After(waitStart):
		return fmt.Errorf("%s: control request not taken within %v", c.name, waitStart)
	}
	select {
	case err := <-r.reply:
		return err
	case <-time.After(waitStart):
		return fmt.Errorf("%s: control request not done within %v", c.name, waitStart)
	}
}

// stop ends the consumer (bounded).
func (c *stompConsumer) stop() {
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	select {
	case <-c.done:
	case <-time.After(waitShort):
	}
}
