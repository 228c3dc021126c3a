package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"

	"github.com/duplexmq/duplex/internal/testutil"
)

// The durable stream only when a persistent subscription wants the
// message (broker/cluster/durable_interest.go): a QoS 1/2 publish that no
// persistent session or durable subscription anywhere matches is not
// written to JetStream; a subscription made on another node while a
// publisher runs gets every message whose publish began after its SUBACK
// (RECEIPT), each written to the stream.

const (
	storedMetric  = "duplex_cluster_durable_messages_stored_total"
	skippedMetric = "duplex_cluster_durable_messages_skipped_total"
)

// racePublisher publishes "0", "1", ... on a topic, one at a time, each
// acknowledged before the next, until stop. started is how many
// publishes have begun (read it after a SUBACK: every message from that
// number on began after it), done how many were acknowledged.
type racePublisher struct {
	started, done atomic.Int64
	stop          chan struct{}
	err           chan error
}

func startRacePublisher(publish func(body string) error) *racePublisher {
	p := &racePublisher{stop: make(chan struct{}), err: make(chan error, 1)}
	go func() {
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				p.err <- nil
				return
			default:
			}
			p.started.Store(int64(i) + 1)
			if err := publish(strconv.Itoa(i)); err != nil {
				p.err <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			p.done.Store(int64(i) + 1)
		}
	}()
	return p
}

// until waits until n messages were acknowledged.
func (p *racePublisher) until(t *testing.T, n int64) {
	t.Helper()
	testutil.EventuallyErr(t, wait, func() error {
		select {
		case err := <-p.err:
			p.err <- err
			return errors.Join(errors.New("publisher stopped"), err)
		default:
		}
		if d := p.done.Load(); d < n {
			return fmt.Errorf("%d of %d messages acknowledged", d, n)
		}
		return nil
	})
}

// finish stops the publisher and returns how many messages it published.
func (p *racePublisher) finish(t *testing.T) int64 {
	t.Helper()
	close(p.stop)
	if err := <-p.err; err != nil {
		t.Fatal(err)
	}
	return p.done.Load()
}

// missingFrom lists the numbers from..to-1 not in got.
func missingFrom(got []string, from, to int64) []int64 {
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	var miss []int64
	for i := from; i < to; i++ {
		if !seen[strconv.FormatInt(i, 10)] {
			miss = append(miss, i)
		}
	}
	return miss
}

// TestDurableInterestSubscribeRace: QoS 1 publishes on node 1 with no
// persistent subscriber anywhere skip the durable stream; persistent
// sessions subscribing on nodes 2 and 3 while a publisher on node 1 runs
// each get every message published after their SUBACK, and node 1 wrote
// each of those to the stream.
func TestDurableInterestSubscribeRace(t *testing.T) {
	nodes := startEmbedded(t, "interest-race")
	const topic = "ir/a"
	// A node stores everything until it has compared its mirror with the
	// stream after its last route came up: poll until a batch skips.
	batch := 0
	testutil.EventuallyErr(t, wait, func() error {
		stored0, skipped0 := nodes[0].metric(t, storedMetric), nodes[0].metric(t, skippedMetric)
		batch++
		publishQoS1(t, nodes[0].mqtt, fmt.Sprintf("ir-pub0-%d", batch), topic, "w", 0, 20)
		stored, skipped := nodes[0].metric(t, storedMetric)-stored0, nodes[0].metric(t, skippedMetric)-skipped0
		if stored != 0 || skipped != 20 {
			return fmt.Errorf("of 20 QoS 1 messages no persistent subscription wants, %v written to the durable stream, %v not", stored, skipped)
		}
		return nil
	})

	stored0 := nodes[0].metric(t, storedMetric)
	pc := newV5(t, nodes[0].mqtt, "ir-pub")
	pub := startRacePublisher(func(body string) error {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := pc.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(body)})
		return err
	})
	type round struct {
		s    *durableSub
		from int64
	}
	var rounds []round
	for r := range 4 {
		pub.until(t, pub.done.Load()+5) // subscribe while messages flow
		s := connectDurable(t, nodes[1+r%2].mqtt, fmt.Sprintf("ir-sub%d", r), true, false)
		s.sub(t, "ir/#", 1)
		rounds = append(rounds, round{s, pub.started.Load()})
	}
	pub.until(t, rounds[len(rounds)-1].from+20)
	total := pub.finish(t)
	for r, rd := range rounds {
		testutil.EventuallyErr(t, wait, func() error {
			if miss := missingFrom(rd.s.received(), rd.from, total); len(miss) > 0 {
				return fmt.Errorf("subscriber %d (SUBACK before message %d): missing %v", r, rd.from, miss)
			}
			return nil
		})
	}
	// Every message from the first SUBACK on matched a persistent
	// subscription: written to the stream before its PUBACK.
	if d, want := nodes[0].metric(t, storedMetric)-stored0, float64(total-rounds[0].from); d < want {
		t.Fatalf("%v messages written to the durable stream, want at least %v", d, want)
	}
}

// TestDurableInterestStompRace: the same for STOMP: a durable
// subscription made on node 2 while SENDs with receipts run on node 1
// gets every message sent after its SUBSCRIBE was confirmed.
func TestDurableInterestStompRace(t *testing.T) {
	nodes := startEmbedded(t, "interest-stomp")
	const dest = "/topic/irs/a"
	p := newStomp(t, nodes[0].stomp)
	send := func(body string) error {
		return p.c.Send(dest, "text/plain", []byte(body), stomp.SendOpt.Receipt)
	}
	// SENDs with receipts that no durable subscription wants skip the
	// durable stream (once the routes are settled: see above).
	testutil.EventuallyErr(t, wait, func() error {
		stored0 := nodes[0].metric(t, storedMetric)
		for i := range 10 {
			if err := send("w" + strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
		if d := nodes[0].metric(t, storedMetric) - stored0; d != 0 {
			return fmt.Errorf("%v of 10 SENDs no durable subscription wants written to the durable stream", d)
		}
		return nil
	})

	stored0 := nodes[0].metric(t, storedMetric)
	pub := startRacePublisher(send)
	pub.until(t, 10)
	t.Logf("%s: publisher running; subscribing on node 2", time.Now().Format(time.StampMilli))

	c, err := stomp.Dial("tcp", nodes[1].stomp, stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.HeartBeat(0, 0),
		stomp.ConnOpt.Header("client-id", "irs-sub"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect() })
	// Auto acknowledgement: go-stomp's Ack from the goroutine that reads
	// s.C deadlocks its connection once more than s.C holds are in
	// flight (its I/O loop waits on s.C, the Ack on the I/O loop).
	s, err := c.Subscribe(dest, stomp.AckAuto, stomp.SubscribeOpt.Header("activemq.subscriptionName", "irs1"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	go func() {
		for m := range s.C {
			if m.Err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(m.Body))
			mu.Unlock()
		}
	}()
	// The SUBSCRIBE is confirmed once a later SEND's receipt came: the
	// node handles one connection's frames in order.
	if err := c.Send("/topic/other", "text/plain", []byte("sync"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	from := pub.started.Load()
	t.Logf("%s: durable subscription confirmed before message %d", time.Now().Format(time.StampMilli), from)
	pub.until(t, from+30)
	total := pub.finish(t)
	testutil.EventuallyErr(t, wait, func() error {
		mu.Lock()
		defer mu.Unlock()
		if miss := missingFrom(got, from, total); len(miss) > 0 {
			return fmt.Errorf("durable subscription (confirmed before message %d): missing %v", from, miss)
		}
		return nil
	})
	if d, want := nodes[0].metric(t, storedMetric)-stored0, float64(total-from); d < want {
		t.Fatalf("%v messages written to the durable stream, want at least %v", d, want)
	}
}
