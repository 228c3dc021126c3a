package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/duplexmq/duplex/internal/testutil"
)

// TestSessionConnectCost measures what the cluster-wide client id costs a
// CONNECT: the median CONNECT→CONNACK time of a new id on a single node
// and on a cluster node (the holder record's compare-and-set; a
// persistent session also writes its session record), and of an id that
// is live on another node (a takeover across nodes); then what the
// cluster's inbound QoS 2 records cost a persistent session's QoS 2
// PUBLISH. Run with DUPLEX_SESSION_COST=1; it reports, it does not judge.
func TestSessionConnectCost(t *testing.T) {
	if os.Getenv("DUPLEX_SESSION_COST") == "" {
		t.Skip("set DUPLEX_SESSION_COST=1 to measure")
	}
	const n = 200
	// Two CONNECTs a round, past the default connect rate of one source
	// address (limits.connect_rate_per_ip, 100/s, burst 200).
	noRate := []string{"-limits-connect-rate-per-ip", "0"}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	connectWith := func(addr, id string, props *paho.ConnectProperties) (time.Duration, *v5conn) {
		start := time.Now()
		c := dialV5(t, addr, &paho.Connect{ClientID: id, CleanStart: true, Properties: props})
		return time.Since(start), c
	}
	connect := func(addr, id string) (time.Duration, *v5conn) { return connectWith(addr, id, nil) }

	bin := testutil.BuildBinary(t)
	single := testutil.StartConfig(t, testutil.Config{Bin: bin, Args: []string{"-addr", "127.0.0.1:0", "-mqtt-tcp-addr", "127.0.0.1:0",
		"-stomp-tcp-addr", "", "-data", filepath.Join(t.TempDir(), "data"), "-log-level", "warn", noRate[0], noRate[1]}, Listeners: []string{"", "mqtt-tcp"}})
	var one, onePersistent []time.Duration
	for i := range n {
		d, c := connect(single.Addr("mqtt-tcp"), fmt.Sprintf("single-%d", i))
		one = append(one, d)
		_ = c.c.Disconnect(&paho.Disconnect{})
		d, c = connectWith(single.Addr("mqtt-tcp"), fmt.Sprintf("single-kept-%d", i), expiry(60))
		onePersistent = append(onePersistent, d)
		_ = c.c.Disconnect(&paho.Disconnect{})
	}

	routed := routedArgs(t, "cost")
	nodes := startNodes(t, func(i int) []string { return append(routed(i), noRate...) })
	var fresh, freshPersistent, taken []time.Duration
	for i := range n {
		d, c := connect(nodes[0].mqtt, fmt.Sprintf("fresh-%d", i))
		fresh = append(fresh, d)
		_ = c.c.Disconnect(&paho.Disconnect{})
		d, c = connectWith(nodes[0].mqtt, fmt.Sprintf("fresh-kept-%d", i), expiry(60))
		freshPersistent = append(freshPersistent, d)
		_ = c.c.Disconnect(&paho.Disconnect{})
	}
	for i := range n {
		id := fmt.Sprintf("moving-%d", i)
		_, first := connect(nodes[0].mqtt, id)
		var d time.Duration
		takeOver(t, nodes[0], "m"+id, func() func() {
			var c *v5conn
			d, c = connect(nodes[1].mqtt, id)
			return func() { _ = c.conn.Close() }
		})
		taken = append(taken, d)
		_ = first.conn.Close()
	}
	t.Logf("CONNECT→CONNACK median of %d: single node, new id %v (persistent %v); cluster node, new id %v (persistent %v); cluster, id live on another node %v",
		n, median(one), median(onePersistent), median(fresh), median(freshPersistent), median(taken))

	// QoS 2 PUBLISH→PUBCOMP, one at a time: a persistent session's
	// publish holds its packet id in the cluster (qos2in.go: a KV write
	// before the message is stored, one after, a purge at PUBREL); a
	// clean session's does not. First with no persistent subscription
	// anywhere (the message skips JetStream), then with one.
	qos2 := func(addr, id string, persistent bool, topic string) time.Duration {
		cp := &paho.Connect{ClientID: id, CleanStart: true}
		if persistent {
			cp.Properties = expiry(600)
		}
		c := dialV5(t, addr, cp)
		defer func() { _ = c.c.Disconnect(&paho.Disconnect{}) }()
		var d []time.Duration
		for i := range n {
			start := time.Now()
			c.pubQoS(t, topic, fmt.Sprint(i), 2)
			d = append(d, time.Since(start))
		}
		return median(d)
	}
	for _, withSub := range []bool{false, true} {
		topic := fmt.Sprintf("cost/qos2/%v", withSub)
		var stop func()
		if withSub {
			s1 := dialV5(t, single.Addr("mqtt-tcp"), &paho.Connect{ClientID: "qos2-sub", CleanStart: true, Properties: expiry(600)})
			s1.sub(t, topic)
			s2 := dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: "qos2-sub", CleanStart: true, Properties: expiry(600)})
			s2.sub(t, topic)
			stop = func() { _ = s1.conn.Close(); _ = s2.conn.Close() }
		}
		t.Logf("QoS 2 PUBLISH→PUBCOMP median of %d (persistent subscriber: %v): single node, clean %v, persistent %v; cluster node, clean %v, persistent %v",
			n, withSub,
			qos2(single.Addr("mqtt-tcp"), "q2-clean", false, topic), qos2(single.Addr("mqtt-tcp"), "q2-kept", true, topic),
			qos2(nodes[0].mqtt, "q2-clean", false, topic), qos2(nodes[0].mqtt, "q2-kept", true, topic))
		if stop != nil {
			stop()
		}
	}

	// A persistent session with a backlog of 1000 QoS 1 messages of 100
	// bytes, stored on node 1, moves to node 2.
	const backlog = 1000
	topic := "cost/backlog"
	p := dialV5(t, nodes[0].mqtt, &paho.Connect{ClientID: "backlog", CleanStart: true, Properties: expiry(600)})
	p.sub(t, topic)
	_ = p.c.Disconnect(&paho.Disconnect{})
	pub := dialV5(t, nodes[2].mqtt, &paho.Connect{ClientID: "backlog-pub", CleanStart: true})
	in0 := nodes[0].metric(t, "duplex_cluster_messages_in_total")
	for i := range backlog {
		pub.pub(t, topic, fmt.Sprintf("%0100d", i))
	}
	testutil.EventuallyErr(t, wait, func() error {
		if got := nodes[0].metric(t, "duplex_cluster_messages_in_total") - in0; got < backlog {
			return fmt.Errorf("node 1 has %v of %d", got, backlog)
		}
		return nil
	})
	start := time.Now()
	q := dialV5(t, nodes[1].mqtt, &paho.Connect{ClientID: "backlog", CleanStart: false, Properties: expiry(600)})
	connack := time.Since(start)
	testutil.EventuallyErr(t, wait, func() error {
		if c := q.count(topic); c < backlog {
			return fmt.Errorf("%d of %d", c, backlog)
		}
		return nil
	})
	t.Logf("persistent session with %d queued messages moved: CONNACK after %v, all received after %v (present %v)",
		backlog, connack, time.Since(start), q.ack.SessionPresent)
}
