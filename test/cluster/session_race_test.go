package cluster

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"

	"github.com/duplexmq/duplex/internal/testutil"
)

// raceRounds is how many times each case opens one client id on two nodes
// at once.
const raceRounds = 12

// TestClusterClientIDRace: a client id opened on node 1 and node 2 at the
// same moment stays open on exactly one of them (issue 11 Build 3: the
// holder record in JetStream KV, written by compare-and-set as the
// session opens; broker/cluster/claim.go). The other connection, if it
// was accepted, is closed as a takeover closes it: MQTT 5 DISCONNECT 0x8E
// [MQTT-3.1.4-3], STOMP ERROR.
func TestClusterClientIDRace(t *testing.T) {
	nodes := startEmbedded(t, "idrace")
	base := fmt.Sprintf("r%d", time.Now().UnixNano())
	t.Run("MQTT5", func(t *testing.T) {
		for round := range raceRounds {
			id := fmt.Sprintf("%s-m%d", base, round)
			raceRound(t, nodes, id, round, func(i int) (raceConn, error) { return dialRaceV5(nodes[i].mqtt, id) })
		}
	})
	t.Run("STOMP", func(t *testing.T) {
		for round := range raceRounds {
			id := fmt.Sprintf("%s-s%d", base, round)
			raceRound(t, nodes, id, round, func(i int) (raceConn, error) { return dialRaceStomp(nodes[i].stomp, id, base) })
		}
	})
}

// raceConn is one of a round's two connections.
type raceConn interface {
	open() bool     // not closed by the server as far as the client knows
	check() error   // a round trip to the server (it answers only while open)
	notice() string // what the server said as it closed the connection
	close()
}

// takeoverNotice is what the loser of a round hears, by protocol.
var takeoverNotice = map[string]string{"MQTT5": "DISCONNECT 0x8e", "STOMP": "session taken over"}

// online counts the connections of client id on node 1 and node 2, as
// their admin APIs list them.
func online(nodes []*node, id string) (int, error) {
	n := 0
	for _, nd := range nodes[:2] {
		var page struct {
			Items []struct {
				ClientID string `json:"client_id"`
				Online   bool   `json:"online"`
			} `json:"items"`
		}
		if err := getJSON(nd.http+"/api/v1/clients?online=true&q="+url.QueryEscape(id), &page); err != nil {
			return 0, err
		}
		for _, c := range page.Items {
			if c.ClientID == id && c.Online {
				n++
			}
		}
	}
	return n, nil
}

// raceRound dials node 1 and node 2 at once (dial(0), dial(1)) and waits
// until exactly one of the connections is open, as the servers list them
// and as the clients know it; then it checks that one with a round trip
// and that it is still the only one.
func raceRound(t *testing.T, nodes []*node, id string, round int, dial func(i int) (raceConn, error)) {
	t.Helper()
	conns := make([]raceConn, 2)
	errs := make([]error, 2)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range conns {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			conns[i], errs[i] = dial(i)
		}()
	}
	start.Done()
	done.Wait()
	var live []raceConn
	for i, c := range conns {
		if errs[i] != nil {
			t.Logf("round %d: node %d refused: %v", round, i+1, errs[i])
			continue
		}
		t.Cleanup(c.close)
		live = append(live, c)
	}
	if len(live) == 0 {
		t.Fatalf("round %d: both connections refused", round)
	}
	open := func() []raceConn {
		var out []raceConn
		for _, c := range live {
			if c.open() {
				out = append(out, c)
			}
		}
		return out
	}
	testutil.EventuallyErr(t, wait, func() error {
		if n, err := online(nodes, id); err != nil || n != 1 {
			return fmt.Errorf("round %d: the servers list %d connections (%v), want 1", round, n, err)
		}
		if n := len(open()); n != 1 {
			return fmt.Errorf("round %d: %d connections open as the clients see it, want 1", round, n)
		}
		return nil
	})
	survivor := open()
	if len(survivor) != 1 {
		t.Fatalf("round %d: %d connections open after settling", round, len(survivor))
	}
	if err := survivor[0].check(); err != nil {
		t.Fatalf("round %d: the remaining connection does not answer: %v", round, err)
	}
	if n, err := online(nodes, id); err != nil || n != 1 {
		t.Fatalf("round %d: the servers list %d connections (%v) after the round trip", round, n, err)
	}
	want := takeoverNotice[t.Name()[strings.LastIndex(t.Name(), "/")+1:]]
	for _, c := range live {
		if c == survivor[0] {
			continue
		}
		if !strings.Contains(c.notice(), want) {
			t.Errorf("round %d: the closed connection heard %q, want %q", round, c.notice(), want)
		}
		t.Logf("round %d: the other connection was closed with %q", round, c.notice())
	}
}

// raceV5 is an MQTT 5 connection of a round.
type raceV5 struct {
	c      *paho.Client
	conn   net.Conn
	mu     sync.Mutex
	closed bool
	said   string
}

func dialRaceV5(addr, id string) (raceConn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &raceV5{conn: conn}
	gone := func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
	}
	r.c = paho.NewClient(paho.ClientConfig{Conn: conn,
		OnServerDisconnect: func(d *paho.Disconnect) {
			r.mu.Lock()
			r.said = fmt.Sprintf("DISCONNECT 0x%02x", d.ReasonCode)
			r.mu.Unlock()
			gone()
		},
		OnClientError: func(error) { gone() },
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ack, err := r.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if ack.ReasonCode != 0 {
		_ = conn.Close()
		return nil, fmt.Errorf("CONNACK 0x%02x", ack.ReasonCode)
	}
	return r, nil
}

func (r *raceV5) open() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closed
}

func (r *raceV5) check() error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := r.c.Publish(ctx, &paho.Publish{Topic: "race/check", QoS: 1, Payload: []byte("x")})
	return err
}

func (r *raceV5) notice() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.said
}

func (r *raceV5) close() { _ = r.conn.Close() }

// raceStomp is a STOMP connection with a client-id header. What the
// server sends and whether it closed the connection are read off the
// socket (tapConn): go-stomp hands an ERROR only to the subscriptions it
// has registered, and one made as the ERROR arrives never hears of it.
type raceStomp struct {
	c    *stomp.Conn
	tc   *tapConn
	dest string
}

// tapConn is a client socket that keeps the first bytes it read and
// whether the server closed it.
type tapConn struct {
	net.Conn
	mu   sync.Mutex
	seen []byte
	eof  bool
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if len(c.seen) < 8192 {
		c.seen = append(c.seen, p[:min(n, 8192-len(c.seen))]...)
	}
	if err != nil {
		c.eof = true
	}
	c.mu.Unlock()
	return n, err
}

func dialRaceStomp(addr, id, base string) (raceConn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := &tapConn{Conn: conn}
	c, err := stomp.Connect(tc, stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.HeartBeat(0, 0),
		stomp.ConnOpt.Header("client-id", id))
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &raceStomp{c: c, tc: tc, dest: "/topic/" + base + "/race/" + id}, nil
}

// notice is the message header of the server's ERROR frame, if any.
func (r *raceStomp) notice() string {
	r.tc.mu.Lock()
	defer r.tc.mu.Unlock()
	seen := string(r.tc.seen)
	i := strings.Index(seen, "ERROR\n")
	if i < 0 {
		return ""
	}
	for _, line := range strings.Split(seen[i:], "\n") {
		if m, ok := strings.CutPrefix(line, "message:"); ok {
			return m
		}
		if line == "" {
			break
		}
	}
	return "ERROR"
}

func (r *raceStomp) open() bool {
	r.tc.mu.Lock()
	defer r.tc.mu.Unlock()
	return !r.tc.eof
}

func (r *raceStomp) check() error {
	return r.c.Send(r.dest+"/check", "text/plain", []byte("x"), stomp.SendOpt.Receipt)
}

func (r *raceStomp) close() { _ = r.tc.Close() }
