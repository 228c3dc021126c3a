package cluster

// Clients of the cluster chaos and partition tests (chaos_test.go,
// proxy_test.go). Each knows every node's address and starts on its home
// node; after any failure it tries the next node with the same client id
// (and comes back round to its home node on later failures). Publishers
// record which sequence numbers were acknowledged; subscribers record
// every chaosDelivery with the node and connection it came through.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3/frame"
)

// Bounds of one client exchange.
const (
	chaosShort = 5 * time.Second       // one connect, publish, receipt
	chaosRetry = 50 * time.Millisecond // between reconnect attempts
)

// chaosBook is where the clients find the nodes: per node index, its
// MQTT and STOMP TCP addresses (fixed across restarts).
type chaosBook struct{ mqtt, stomp []string }

// ---------------------------------------------------------------------------
// Publishers' records

// chaosPubLog is one publisher's record: which sequence numbers the cluster
// acknowledged (PUBACK, PUBCOMP, RECEIPT) and how many publishes failed.
type chaosPubLog struct {
	name string

	mu      sync.Mutex
	next    int
	acked   []int
	failed  int
	lastErr string
	connOf  map[int]int // sequence number -> publisher connection
	ackedAt []time.Time // when each of acked was acknowledged
}

// ackTimes is when each acknowledgement came.
func (l *chaosPubLog) ackTimes() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.ackedAt...)
}

// conn is the publisher connection message n went out on (0: unknown).
func (l *chaosPubLog) conn(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connOf[n]
}

func (l *chaosPubLog) take() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	l.next++
	return n, fmt.Sprintf("%s-%d", l.name, n)
}

// result records publish n's outcome; conn is the publisher's connection
// it went out on (order is promised per connection, MQTT 4.6).
func (l *chaosPubLog) result(n int, err error, conn int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.connOf == nil {
		l.connOf = map[int]int{}
	}
	l.connOf[n] = conn
	if err == nil {
		l.acked = append(l.acked, n)
		l.ackedAt = append(l.ackedAt, time.Now())
		return
	}
	l.failed++
	l.lastErr = err.Error()
}

func (l *chaosPubLog) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *chaosPubLog) ackedList() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.acked...)
}

func (l *chaosPubLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := fmt.Sprintf("%s: %d attempted, %d acknowledged, %d failed", l.name, l.next, len(l.acked), l.failed)
	if l.lastErr != "" {
		s += " (last error: " + l.lastErr + ")"
	}
	return s
}

// chaosParse splits "<publisher>-<n>".
func chaosParse(p string) (pub string, n int, ok bool) {
	i := strings.LastIndexByte(p, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(p[i+1:])
	return p[:i], n, err == nil
}

// ---------------------------------------------------------------------------
// Subscribers' records

// chaosDelivery is one message as a subscriber received it.
type chaosDelivery struct {
	payload string
	node    int    // index of the node it came through
	conn    int    // the subscriber's connection number
	pid     uint16 // MQTT 5 subscribers: its packet id (0: none)
	dup     bool   // and its DUP flag
}

// chaosRec keeps one subscriber's deliveries in arrival order, which node
// it is on, and the failover times it saw: from the kill of the node it
// was on to the first message through a later connection.
type chaosRec struct {
	name  string
	proto string // "MQTT" or "STOMP" (failover figures)

	mu       sync.Mutex
	got      []chaosDelivery
	count    map[string]int
	node     int // the node of the current connection; -1: none
	conn     int // connections so far
	killedAt time.Time
	killConn int // the connection the kill ended
	failover []time.Duration
	// unresolved counts kills of its node after which no message came
	// through a new connection before the next kill (or the end).
	unresolved int
	// reconnect: kill to the next accepted connection (CONNACK,
	// CONNECTED), once per kill of its node.
	reconnect   []time.Duration
	reconnected bool
	// rel: per payload, the PUBRELs of its QoS 2 deliveries (MQTT 5
	// subscribers), to tell duplicates apart.
	rel map[string][]chaosRelease
}

// chaosRelease is a PUBREL a subscriber received: where, and how many
// deliveries it had recorded by then.
type chaosRelease struct {
	where string
	after int
}

func newChaosRec(name, proto string) *chaosRec {
	return &chaosRec{name: name, proto: proto, count: map[string]int{}, node: -1}
}

// connected notes a new connection to node i.
func (r *chaosRec) connected(i int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn++
	r.node = i
	return r.conn
}

func (r *chaosRec) disconnected(conn int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == conn {
		r.node = -1
	}
}

// killed notes that node i was SIGKILLed at t; it counts for the failover
// time when the subscriber was connected to it.
func (r *chaosRec) killed(i int, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.killedAt.IsZero() {
		r.unresolved++ // an earlier kill's failover that saw no message before this kill
		r.killedAt = time.Time{}
	}
	if r.node == i {
		r.killedAt, r.killConn, r.reconnected = t, r.conn, false
	}
}

// up notes that connection conn was accepted (CONNACK, CONNECTED): the
// first one after a kill of the subscriber's node gives the reconnect
// part of its failover time.
func (r *chaosRec) up(conn int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.killedAt.IsZero() && conn > r.killConn && !r.reconnected {
		r.reconnected = true
		r.reconnect = append(r.reconnect, now.Sub(r.killedAt))
	}
}

// connections is how many connections were opened so far.
func (r *chaosRec) connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn
}

// on reports whether the current connection is to node i.
func (r *chaosRec) on(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node == i
}

func (r *chaosRec) add(payload string, node, conn int) {
	r.addDelivery(chaosDelivery{payload: payload, node: node, conn: conn})
}

func (r *chaosRec) addDelivery(d chaosDelivery) {
	now := time.Now()
	payload, conn := d.payload, d.conn
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, d)
	r.count[payload]++
	if !r.killedAt.IsZero() && conn > r.killConn {
		r.failover = append(r.failover, now.Sub(r.killedAt))
		r.killedAt = time.Time{}
	}
}

// released notes that the QoS 2 exchange of a delivery of payload ended
// (PUBREL) where says.
func (r *chaosRec) released(payload, where string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rel == nil {
		r.rel = map[string][]chaosRelease{}
	}
	r.rel[payload] = append(r.rel[payload], chaosRelease{where: where, after: len(r.got)})
}

// releases is where the PUBRELs of payload's deliveries came, of those
// received before delivery number n (0-based, arrival order).
func (r *chaosRec) releases(payload string, n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rl := range r.rel[payload] {
		if rl.after <= n {
			out = append(out, rl.where)
		}
	}
	return out
}

func (r *chaosRec) times(p string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[p]
}

func (r *chaosRec) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *chaosRec) snapshot() []chaosDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chaosDelivery(nil), r.got...)
}

func (r *chaosRec) failovers() (msg []time.Duration, unresolved int, reconnect []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	un := r.unresolved
	if !r.killedAt.IsZero() {
		un++
	}
	return append([]time.Duration(nil), r.failover...), un, append([]time.Duration(nil), r.reconnect...)
}

// ---------------------------------------------------------------------------
// Rotation

// chaosRotor runs a client's connection loop over the nodes: connect to node
// `at`, serve until the connection ends, then try the next node.
type chaosRotor struct {
	home int
	stop chan struct{}
	done chan struct{}
}

func newChaosRotor(home int) chaosRotor {
	return chaosRotor{home: home, stop: make(chan struct{}), done: make(chan struct{})}
}

// loop calls serve(i) for node i = home, home+1, ... (mod n) until stop;
// serve returns when its connection ended.
func (r *chaosRotor) loop(n int, serve func(i int)) {
	defer close(r.done)
	for at := r.home; ; at = (at + 1) % n {
		select {
		case <-r.stop:
			return
		default:
		}
		serve(at)
		select {
		case <-r.stop:
			return
		case <-time.After(chaosRetry):
		}
	}
}

func (r *chaosRotor) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	select {
	case <-r.done:
	case <-time.After(2 * chaosShort):
	}
}

// ---------------------------------------------------------------------------
// MQTT 5 persistent subscriber (paho.golang)

// chaosMQTTSub is an MQTT 5 persistent session (Clean Start on its first
// connection only, Session Expiry one hour) with one subscription. Its
// session state (chaosSession: paho's, with the inbound QoS 2 ids kept by
// chaosQoS2In) outlives each connection, as a conforming client's does, so
// a QoS 2 message resent with a packet id it PUBRECed and has had no
// PUBREL for is acknowledged again and not delivered [MQTT-4.3.3-10];
// every other arrival is a delivery. Later connections never subscribe
// again: they must find the session on the cluster; a CONNACK without
// Session Present is counted (lostSession).
type chaosMQTTSub struct {
	name, filter string
	qos          byte
	book         *chaosBook
	rec          *chaosRec
	chaosRotor

	session     *chaosSession
	subscribed  atomic.Bool
	lostSession atomic.Int64
	lastErr     atomic.Pointer[string]
}

func startChaosMQTTSub(book *chaosBook, home int, name, filter string, qos byte) *chaosMQTTSub {
	rec := newChaosRec(name, "MQTT")
	s := &chaosMQTTSub{name: name, filter: filter, qos: qos, book: book, rec: rec,
		chaosRotor: newChaosRotor(home), session: newChaosSession(rec)}
	go s.loop(len(book.mqtt), s.serve)
	return s
}

func (s *chaosMQTTSub) setErr(err error) {
	e := err.Error()
	s.lastErr.Store(&e)
}

func (s *chaosMQTTSub) serve(i int) {
	nc, err := net.DialTimeout("tcp", s.book.mqtt[i], chaosShort)
	if err != nil {
		s.setErr(err)
		return
	}
	defer nc.Close()
	var conn atomic.Int64
	cli := paho.NewClient(paho.ClientConfig{
		ClientID: s.name, Conn: nc, Session: s.session, PacketTimeout: chaosShort,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			if p.QoS == 2 && !s.session.q.take(p.PacketID) {
				return true, nil // a resend of one it holds: PUBREC again, no delivery
			}
			s.rec.addDelivery(chaosDelivery{payload: string(p.Payload), node: i, conn: int(conn.Load()), pid: p.PacketID, dup: p.Duplicate()})
			return true, nil
		}},
	})
	first := !s.subscribed.Load()
	expiry := uint32(3600)
	ctx, cancel := context.WithTimeout(context.Background(), chaosShort)
	defer cancel()
	// The connection is numbered before CONNECT: a resumed session's
	// messages may come right behind the CONNACK.
	conn.Store(int64(s.rec.connected(i)))
	defer s.rec.disconnected(int(conn.Load()))
	s.session.at(i, int(conn.Load()))
	ca, err := cli.Connect(ctx, &paho.Connect{ClientID: s.name, CleanStart: first, KeepAlive: 10,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		s.setErr(fmt.Errorf("connect node %d: %w", i+1, err))
		return
	}
	s.rec.up(int(conn.Load()))
	if !first && !ca.SessionPresent {
		s.lostSession.Add(1)
	}
	if first || !ca.SessionPresent {
		// A lost session is subscribed again, so that the loss shows as
		// missing messages rather than as a subscriber that is gone.
		sa, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.filter, QoS: s.qos}}})
		if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] != s.qos {
			s.setErr(fmt.Errorf("subscribe on node %d: %v", i+1, err))
			_ = cli.Disconnect(&paho.Disconnect{})
			return
		}
		s.subscribed.Store(true)
	}
	select {
	case <-cli.Done():
	case <-s.stop:
		_ = cli.Disconnect(&paho.Disconnect{})
	}
}

// ---------------------------------------------------------------------------
// MQTT 3.1.1 persistent subscriber (paho.mqtt.golang, clean session 0)

// chaosV3Sub is a CleanSession=false 3.1.1 subscriber at QoS 1; each
// connection is a new paho.mqtt.golang client with the same id.
type chaosV3Sub struct {
	name, filter string
	book         *chaosBook
	rec          *chaosRec
	chaosRotor

	subscribed  atomic.Bool
	lostSession atomic.Int64
	lastErr     atomic.Pointer[string]
}

func startChaosV3Sub(book *chaosBook, home int, name, filter string) *chaosV3Sub {
	s := &chaosV3Sub{name: name, filter: filter, book: book, rec: newChaosRec(name, "MQTT"), chaosRotor: newChaosRotor(home)}
	go s.loop(len(book.mqtt), s.serve)
	return s
}

func (s *chaosV3Sub) serve(i int) {
	lost := make(chan struct{})
	var conn atomic.Int64
	o := pahomqtt.NewClientOptions().AddBroker("tcp://" + s.book.mqtt[i]).SetClientID(s.name).SetProtocolVersion(4).
		SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(chaosShort).
		SetWriteTimeout(chaosShort).SetKeepAlive(10 * time.Second).SetOrderMatters(true).
		SetConnectionLostHandler(func(pahomqtt.Client, error) { close(lost) }).
		SetDefaultPublishHandler(func(_ pahomqtt.Client, m pahomqtt.Message) {
			s.rec.add(string(m.Payload()), i, int(conn.Load()))
		})
	c := pahomqtt.NewClient(o)
	conn.Store(int64(s.rec.connected(i)))
	defer s.rec.disconnected(int(conn.Load()))
	tok := c.Connect()
	if !tok.WaitTimeout(chaosShort) || tok.Error() != nil {
		e := fmt.Sprintf("connect node %d: %v", i+1, tok.Error())
		s.lastErr.Store(&e)
		c.Disconnect(0)
		return
	}
	s.rec.up(int(conn.Load()))
	present := tok.(*pahomqtt.ConnectToken).SessionPresent()
	first := !s.subscribed.Load()
	if !first && !present {
		s.lostSession.Add(1)
	}
	if first || !present {
		st := c.Subscribe(s.filter, 1, nil)
		if !st.WaitTimeout(chaosShort) || st.Error() != nil {
			c.Disconnect(0)
			return
		}
		s.subscribed.Store(true)
	}
	select {
	case <-lost:
	case <-s.stop:
		c.Disconnect(100)
	}
}

// ---------------------------------------------------------------------------
// STOMP (frame level: one reader per connection, every write bounded)

type chaosStompConn struct {
	nc  net.Conn
	r   *frame.Reader
	wmu sync.Mutex
	w   *frame.Writer
	ids atomic.Int64
}

func chaosDial(addr string, hdrs ...string) (*chaosStompConn, error) {
	nc, err := net.DialTimeout("tcp", addr, chaosShort)
	if err != nil {
		return nil, err
	}
	c := &chaosStompConn{nc: nc, r: frame.NewReader(nc), w: frame.NewWriter(nc)}
	h := append([]string{"accept-version", "1.2", "host", "localhost", "heart-beat", "0,0"}, hdrs...)
	if err := c.write(frame.New("CONNECT", h...)); err != nil {
		nc.Close()
		return nil, err
	}
	f, err := c.read(time.Now().Add(chaosShort))
	if err == nil && f.Command != "CONNECTED" {
		err = fmt.Errorf("CONNECT answered with %s: %s", f.Command, f.Header.Get("message"))
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *chaosStompConn) write(f *frame.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(chaosShort))
	return c.w.Write(f)
}

func (c *chaosStompConn) read(deadline time.Time) (*frame.Frame, error) {
	_ = c.nc.SetReadDeadline(deadline)
	for {
		f, err := c.r.Read()
		if err != nil || f != nil {
			return f, err
		}
	}
}

// chaosSender sends with receipts, moving to the next node after any
// failure.
type chaosSender struct {
	book  *chaosBook
	at    int
	conns int // connections opened so far
	conn  *chaosStompConn
}

// send returns nil only when the RECEIPT arrived.
func (s *chaosSender) send(dest, body string) error {
	if s.conn == nil {
		c, err := chaosDial(s.book.stomp[s.at])
		if err != nil {
			s.at = (s.at + 1) % len(s.book.stomp)
			return err
		}
		s.conn = c
		s.conns++
	}
	id := fmt.Sprintf("r-%d", s.conn.ids.Add(1))
	f := frame.New("SEND", "destination", dest, "content-type", "text/plain", "receipt", id)
	f.Body = []byte(body)
	err := s.conn.write(f)
	for err == nil {
		var r *frame.Frame
		if r, err = s.conn.read(time.Now().Add(chaosShort)); err != nil {
			break
		}
		switch {
		case r.Command == "RECEIPT" && r.Header.Get("receipt-id") == id:
			return nil
		case r.Command == "ERROR":
			err = fmt.Errorf("ERROR frame: %s", r.Header.Get("message"))
		}
	}
	s.close()
	s.at = (s.at + 1) % len(s.book.stomp)
	return err
}

func (s *chaosSender) close() {
	if s.conn != nil {
		_ = s.conn.write(frame.New("DISCONNECT"))
		s.conn.nc.Close()
		s.conn = nil
	}
}

// chaosStompSub subscribes with ack:client-individual, records and ACKs every
// MESSAGE, and after its connection ends connects to the next node and
// subscribes again with the same headers (a durable subscription's
// client-id and name, or a /queue/).
type chaosStompSub struct {
	name, dest string
	connHdrs   []string
	subHdrs    []string
	book       *chaosBook
	rec        *chaosRec
	chaosRotor

	lastErr atomic.Pointer[string]
}

func startChaosStompSub(book *chaosBook, home int, name, dest string, connHdrs, subHdrs []string) *chaosStompSub {
	s := &chaosStompSub{name: name, dest: dest, connHdrs: connHdrs, subHdrs: subHdrs, book: book,
		rec: newChaosRec(name, "STOMP"), chaosRotor: newChaosRotor(home)}
	go s.loop(len(book.stomp), s.serve)
	return s
}

func (s *chaosStompSub) serve(i int) {
	c, err := chaosDial(s.book.stomp[i], s.connHdrs...)
	if err != nil {
		e := fmt.Sprintf("node %d: %v", i+1, err)
		s.lastErr.Store(&e)
		return
	}
	defer c.nc.Close()
	conn := s.rec.connected(i)
	defer s.rec.disconnected(conn)
	s.rec.up(conn) // chaosDial returned after CONNECTED
	h := append([]string{"destination", s.dest, "ack", "client-individual", "id", "sub-" + s.name}, s.subHdrs...)
	if err := c.write(frame.New("SUBSCRIBE", h...)); err != nil {
		return
	}
	ended := make(chan struct{})
	go func() {
		select {
		case <-s.stop:
			_ = c.write(frame.New("DISCONNECT"))
			c.nc.Close()
		case <-ended:
		}
	}()
	defer close(ended)
	for {
		f, err := c.read(time.Time{})
		if err != nil {
			return
		}
		switch f.Command {
		case "MESSAGE":
			s.rec.add(string(f.Body), i, conn)
			if ack := f.Header.Get("ack"); ack != "" {
				if c.write(frame.New("ACK", "id", ack)) != nil {
					return
				}
			}
		case "ERROR":
			e := fmt.Sprintf("node %d: ERROR %s", i+1, f.Header.Get("message"))
			s.lastErr.Store(&e)
			return
		}
	}
}

// ---------------------------------------------------------------------------

// chaosJitter is a random duration in [0, d) from rng (nil: the global one).
func chaosJitter(rng *rand.Rand, d time.Duration) time.Duration {
	if rng == nil {
		return rand.N(d)
	}
	return time.Duration(rng.Int64N(int64(d)))
}
