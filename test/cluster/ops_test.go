package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"

	"github.com/duplexmq/duplex/internal/testutil"
	"github.com/duplexmq/duplex/web"
)

// opsNode is a node whose addresses stay the same across restarts, so
// that clients given every node's address find it again.
type opsNode struct {
	*node
	args []string
	bin  string
}

// startOps starts three nodes on fixed loopback ports with their own data
// folders, routed to each other.
func startOps(t *testing.T, name string) []*opsNode {
	t.Helper()
	bin := testutil.BuildBinary(t)
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	nodes := make([]*opsNode, 3)
	for i := range nodes {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		h, m, s := freeAddr(t), freeAddr(t), freeAddr(t)
		nodes[i] = &opsNode{bin: bin, node: &node{http: "http://" + h, mqtt: m, stomp: s}, args: []string{
			"-addr", h, "-mqtt-tcp-addr", m, "-stomp-tcp-addr", s,
			"-data", filepath.Join(t.TempDir(), "data"), "-log-level", "info",
			"-cluster-name", name, "-cluster-listen", routes[i], "-cluster-peers", strings.Join(peers, ","),
		}}
		nodes[i].start(t)
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
	return nodes
}

func (n *opsNode) start(t *testing.T) {
	t.Helper()
	n.p = testutil.StartConfig(t, testutil.Config{Bin: n.bin, Args: n.args, Listeners: []string{"", "mqtt-tcp", "stomp-tcp"}})
}

func (n *opsNode) waitReady(t *testing.T) {
	t.Helper()
	testutil.EventuallyErr(t, wait, func() error {
		if code, body := get(n.http + "/readyz"); code != http.StatusOK {
			return fmt.Errorf("%s /readyz: %d %s", n.http, code, body)
		}
		return nil
	})
}

// stop sends SIGTERM and waits for the exit.
func (n *opsNode) stop(t *testing.T) {
	t.Helper()
	if err := n.p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !n.p.Wait(wait) {
		t.Fatalf("%s did not exit within %v of SIGTERM", n.http, wait)
	}
}

func getJSON(url string, v any) error {
	code, body := get(url)
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, code, body)
	}
	return json.Unmarshal([]byte(body), v)
}

// clusterView polls GET /api/v1/cluster on n until ok accepts it.
func (n *opsNode) clusterView(t *testing.T, what string, ok func(v web.ClusterView) error) web.ClusterView {
	t.Helper()
	var v web.ClusterView
	testutil.EventuallyErr(t, wait, func() error {
		v = web.ClusterView{}
		if err := getJSON(n.http+"/api/v1/cluster", &v); err != nil {
			return err
		}
		if err := ok(v); err != nil {
			return fmt.Errorf("%s: %v in %+v", what, err, v)
		}
		return nil
	})
	return v
}

// states maps node id to state.
func states(v web.ClusterView) map[string]string {
	m := map[string]string{}
	for _, n := range v.Nodes {
		m[n.ID] = n.State
	}
	return m
}

func allUp(v web.ClusterView) error {
	if len(v.Nodes) != 3 {
		return fmt.Errorf("%d nodes", len(v.Nodes))
	}
	for _, n := range v.Nodes {
		if n.State != web.NodeUp || !n.Ready || !n.Joined || n.RoutedPeers != 2 || len(n.Addresses) != 3 {
			return fmt.Errorf("node %s: state %s ready %v joined %v routed peers %d addresses %v",
				n.ID, n.State, n.Ready, n.Joined, n.RoutedPeers, n.Addresses)
		}
	}
	return nil
}

// publish publishes through n's management API.
func (n *opsNode) publish(topic, payload string) error {
	b, _ := json.Marshal(web.PublishRequest{Topic: topic, Payload: payload, QoS: 1})
	resp, err := http.Post(n.http+"/api/v1/publish", "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish on %s: %d", n.http, resp.StatusCode)
	}
	return nil
}

// roamingStomp is a STOMP subscriber that, when its connection ends,
// connects to the next node of its list and subscribes again.
type roamingStomp struct {
	*inbox
	addrs  []string
	filter string
	done   chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	conn *stomp.Conn
	at   string // the address it is connected to, "" between connections
	hops int    // connections made
}

func newRoamingStomp(t *testing.T, filter string, addrs ...string) *roamingStomp {
	r := &roamingStomp{inbox: &inbox{}, addrs: addrs, filter: filter, done: make(chan struct{})}
	r.wg.Add(1)
	go r.run()
	t.Cleanup(func() {
		close(r.done)
		r.mu.Lock()
		if r.conn != nil {
			_ = r.conn.MustDisconnect()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *roamingStomp) run() {
	defer r.wg.Done()
	retry := time.NewTicker(100 * time.Millisecond) // pace of reconnection attempts, not synchronisation
	defer retry.Stop()
	for i := 0; ; i++ {
		select {
		case <-r.done:
			return
		default:
		}
		addr := r.addrs[i%len(r.addrs)]
		c, err := stomp.Dial("tcp", addr, stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.HeartBeat(0, 0))
		if err != nil {
			select {
			case <-r.done:
				return
			case <-retry.C:
			}
			continue
		}
		sub, err := c.Subscribe("/topic/"+r.filter, stomp.AckAuto)
		if err != nil {
			_ = c.MustDisconnect()
			continue
		}
		r.mu.Lock()
		r.conn, r.at = c, addr
		r.hops++
		r.mu.Unlock()
		for m := range sub.C {
			if m.Err != nil {
				break
			}
			r.add(msg{topic: strings.TrimPrefix(m.Destination, "/topic/"), payload: string(m.Body)})
		}
		r.mu.Lock()
		r.conn, r.at = nil, ""
		r.mu.Unlock()
		_ = c.MustDisconnect()
	}
}

func (r *roamingStomp) where() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at, r.hops
}

// TestClusterOps: the admin API's cluster view on three nodes, then a
// rolling restart (SIGTERM, wait for the exit, start again, one node at a
// time) while an MQTT client given all three servers and a STOMP client
// that moves to the next node keep being served: after each restart a
// message published on a live node reaches both.
func TestClusterOps(t *testing.T) {
	t.Parallel()
	nodes := startOps(t, "ops")
	v := nodes[0].clusterView(t, "three nodes up", allUp)
	if !v.Cluster || !v.Nodes[0].Self || v.Self != v.Nodes[0].ID {
		t.Fatalf("view: %+v", v)
	}
	ids := make([]string, 3) // node i's id, from its own view
	for i, n := range nodes {
		var own web.ClusterView
		if err := getJSON(n.http+"/api/v1/cluster", &own); err != nil {
			t.Fatal(err)
		}
		ids[i] = own.Self
	}
	if got := states(v); len(got) != 3 || got[ids[1]] != web.NodeUp || got[ids[2]] != web.NodeUp {
		t.Fatalf("node 1 sees %v, ids %v", got, ids)
	}
	if m := nodes[1].metric(t, "duplex_node_info"); m != 1 {
		t.Fatalf("duplex_node_info = %v", m)
	}
	if _, body := get(nodes[1].http + "/metrics"); !strings.Contains(body, `duplex_node_info{cluster="ops",node="`+ids[1]+`"} 1`) {
		t.Fatalf("no duplex_node_info for %s in /metrics", ids[1])
	}

	// The clients: MQTT with every node's address (it starts on node 1),
	// STOMP starting on node 2.
	base := fmt.Sprintf("ops/%d", time.Now().UnixNano())
	mq := &inbox{}
	var servers []string
	for _, n := range nodes {
		servers = append(servers, "tcp://"+n.mqtt)
	}
	o := pahomqtt.NewClientOptions().SetClientID("ops-mqtt").SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).SetOrderMatters(false).
		SetDefaultPublishHandler(func(_ pahomqtt.Client, m pahomqtt.Message) {
			mq.add(msg{topic: m.Topic(), payload: string(m.Payload())})
		}).
		SetOnConnectHandler(func(c pahomqtt.Client) { c.Subscribe(base+"/#", 1, nil) }) // clean session: subscribe on every connection
	for _, s := range servers {
		o.AddBroker(s)
	}
	mc := pahomqtt.NewClient(o)
	if tok := mc.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("MQTT connect: %v", tok.Error())
	}
	t.Cleanup(func() { mc.Disconnect(100) })
	st := newRoamingStomp(t, base+"/#", nodes[1].stomp, nodes[2].stomp, nodes[0].stomp)

	// probe publishes on node from until both clients got a message of
	// this round (their subscriptions and the routes may still be on
	// their way).
	probe := func(round string, from *opsNode) {
		t.Helper()
		prefix := base + "/" + round + "/"
		k := 0
		testutil.EventuallyErr(t, wait, func() error {
			k++
			if err := from.publish(prefix+fmt.Sprint(k), round); err != nil {
				return err
			}
			if !mq.has(prefix) || !st.has(prefix) {
				at, _ := st.where()
				return fmt.Errorf("%s: MQTT got it %v, STOMP (at %q) got it %v", round, mq.has(prefix), at, st.has(prefix))
			}
			return nil
		})
	}
	probe("start", nodes[2])

	// Where each client is: the MQTT client on node 1, STOMP on node 2.
	testutil.EventuallyErr(t, wait, func() error {
		var p web.ClusterClientPage
		if err := getJSON(nodes[2].http+"/api/v1/cluster/clients?limit=1000", &p); err != nil {
			return err
		}
		where := map[string]string{}
		for _, c := range p.Items {
			where[c.Protocol] = c.Node
		}
		if where["mqtt"] != ids[0] || where["stomp"] != ids[1] {
			return fmt.Errorf("clients at %v (items %+v), want mqtt on %s and stomp on %s", where, p.Items, ids[0], ids[1])
		}
		var q web.ClusterClientPage
		if err := getJSON(nodes[2].http+"/api/v1/cluster/clients?q=ops-mqtt", &q); err != nil {
			return err
		}
		if len(q.Items) != 1 || q.Items[0].Node != ids[0] {
			return fmt.Errorf("q=ops-mqtt: %+v", q.Items)
		}
		return nil
	})

	for i, n := range nodes {
		live := nodes[(i+1)%3]
		n.stop(t)
		// A node that stopped cleanly said so; the others are still up.
		live.clusterView(t, fmt.Sprintf("node %d stopped", i+1), func(v web.ClusterView) error {
			s := states(v)
			if s[ids[i]] != web.NodeStopped && s[ids[i]] != web.NodeDown {
				return fmt.Errorf("node %d is %q", i+1, s[ids[i]])
			}
			if s[ids[(i+1)%3]] != web.NodeUp || s[ids[(i+2)%3]] != web.NodeUp {
				return fmt.Errorf("live nodes: %v", s)
			}
			return nil
		})
		probe(fmt.Sprintf("down%d", i+1), live)
		n.start(t)
		n.waitReady(t)
		live.clusterView(t, fmt.Sprintf("node %d back", i+1), allUp)
		probe(fmt.Sprintf("back%d", i+1), nodes[(i+2)%3])
	}
	if _, hops := st.where(); hops < 2 {
		t.Fatalf("the STOMP client connected %d times: the restarts did not move it", hops)
	}
}
