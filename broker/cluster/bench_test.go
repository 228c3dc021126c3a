package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/internal/testutil"
)

// BenchmarkEncodeDecode is the per-message cost the cluster encoding adds
// on the sending and the receiving node (headers built, then parsed from
// their wire form), for a typical MQTT 5 message.
func BenchmarkEncodeDecode(b *testing.B) {
	m := &broker.Message{Topic: "sensors/building-7/floor-3/temp", Payload: make([]byte, 256), QoS: 1,
		ContentType: "application/json", From: "client-42", Origin: "mqtt",
		Props: []broker.Property{{Key: "unit", Value: "C"}}}
	o := origin{node: esc("c@127.0.0.1:6222"), boot: "abcd"}
	now := time.Now()
	var hdr []byte
	{
		nm := encodeMsg(testSubjects, o, 1, m, now)
		hdr = headerBytes(b, nm)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		nm := encodeMsg(testSubjects, o, uint64(i), m, now)
		h, err := nats.DecodeHeadersMsg(hdr)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := decodeMsg(testSubjects, &nats.Msg{Subject: nm.Subject, Header: h, Data: nm.Data}, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNodesForward is a message's whole trip between two embedded
// nodes in one process: queue, encode, in-process connection, server,
// route (loopback TCP), server, in-process connection, decode, routed to
// a router that only counts. It reports the process CPU time per message
// (cpu-ns/msg: both nodes' share, robust to other load on the machine).
func BenchmarkNodesForward(b *testing.B) {
	la, lb := freeAddr(b), freeAddr(b)
	a, err := New(Config{Name: "b", Listen: la, Peers: []string{lb}, Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	n2, err := New(Config{Name: "b", Listen: lb, Peers: []string{la}, Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	for _, s := range []struct {
		n *Node
		r Router
	}{{a, &fakeRouter{}}, {n2, countingRouter{&got}}} {
		if err := s.n.Start(s.r); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.n.Close)
	}
	n2.Interest("bench/#", true)
	probeCount(b, a, &got)
	m := &broker.Message{Topic: "bench/x", Payload: make([]byte, 256), QoS: 1, ContentType: "application/json", From: "c1", Origin: "mqtt"}
	start := got.Load()
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		for {
			if len(a.out) < cap(a.out)/2 {
				break
			}
			runtime.Gosched() // keep the queue from overflowing: no drops in the figure
		}
		a.Forward(m)
	}
	testutil.EventuallyErr(b, 30*time.Second, func() error {
		if n := got.Load() - start; n < int64(b.N) {
			return fmt.Errorf("%d of %d through", n, b.N)
		}
		return nil
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

type countingRouter struct{ n *atomic.Int64 }

func (r countingRouter) PublishFromPeer(*broker.Message) error { r.n.Add(1); return nil }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func probeCount(b *testing.B, a *Node, got *atomic.Int64) {
	testutil.EventuallyErr(b, 10*time.Second, func() error {
		a.Forward(&broker.Message{Topic: "bench/probe"})
		if got.Load() == 0 {
			return fmt.Errorf("no probe through")
		}
		return nil
	})
}
