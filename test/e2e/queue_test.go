package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"
)

func isRedelivered(m *stomp.Message) bool { return m.Header.Get("redelivered") == "true" }

// TestQueueAckModes: auto, client (cumulative) and client-individual ACK on
// a /queue, and NACK → redelivery with redelivered:true.
func TestQueueAckModes(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))

	t.Run("auto", func(t *testing.T) {
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		sub := c.subscribe(t, "/queue/ack-auto", stomp.AckAuto)
		for i := range 3 {
			pub.send(t, "/queue/ack-auto", "m"+strconv.Itoa(i))
		}
		for i := range 3 {
			m := recvBody(t, sub, "m"+strconv.Itoa(i))
			if _, ok := m.Header.Contains("ack"); ok {
				t.Errorf("auto-ack MESSAGE has an ack header: %s", headerString(m.Header))
			}
			if m.Destination != "/queue/ack-auto" {
				t.Errorf("destination %q", m.Destination)
			}
			if isRedelivered(m) {
				t.Errorf("first delivery marked redelivered: %s", headerString(m.Header))
			}
		}
		waitQueue(t, s.Router, "ack-auto", 0, 0)
	})

	t.Run("client cumulative", func(t *testing.T) {
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		sub := c.subscribe(t, "/queue/ack-client", stomp.AckClient)
		for i := range 4 {
			pub.send(t, "/queue/ack-client", "m"+strconv.Itoa(i))
		}
		ms := make([]*stomp.Message, 4)
		for i := range ms {
			ms[i] = recvBody(t, sub, "m"+strconv.Itoa(i))
			if ms[i].Header.Get("ack") == "" {
				t.Fatalf("client-ack MESSAGE without ack header: %s", headerString(ms[i].Header))
			}
		}
		waitQueue(t, s.Router, "ack-client", 0, 4)
		// ACK of m1 covers m0 and m1.
		if err := c.Ack(ms[1]); err != nil {
			t.Fatal(err)
		}
		waitQueue(t, s.Router, "ack-client", 0, 2)
		// NACK of m3 covers m2 and m3: both come back, in order, redelivered.
		if err := c.Nack(ms[3]); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"m2", "m3"} {
			m := recvBody(t, sub, want)
			if !isRedelivered(m) {
				t.Errorf("NACKed %s came back without redelivered:true: %s", want, headerString(m.Header))
			}
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
		waitQueue(t, s.Router, "ack-client", 0, 0)
	})

	t.Run("client-individual", func(t *testing.T) {
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		sub := c.subscribe(t, "/queue/ack-ind", stomp.AckClientIndividual)
		for i := range 3 {
			pub.send(t, "/queue/ack-ind", "m"+strconv.Itoa(i))
		}
		ms := make([]*stomp.Message, 3)
		for i := range ms {
			ms[i] = recvBody(t, sub, "m"+strconv.Itoa(i))
		}
		// ACK of m1 settles m1 only.
		if err := c.Ack(ms[1]); err != nil {
			t.Fatal(err)
		}
		waitQueue(t, s.Router, "ack-ind", 0, 2)
		if err := c.Nack(ms[0]); err != nil {
			t.Fatal(err)
		}
		m := recvBody(t, sub, "m0")
		if !isRedelivered(m) {
			t.Errorf("NACKed m0 came back without redelivered:true: %s", headerString(m.Header))
		}
		if m.Header.Get("ack") == ms[0].Header.Get("ack") {
			t.Errorf("redelivery reuses the ack id %q", m.Header.Get("ack"))
		}
		// A NACK again, then ACK it and m2.
		if err := c.Nack(m); err != nil {
			t.Fatal(err)
		}
		m = recvBody(t, sub, "m0")
		if !isRedelivered(m) {
			t.Errorf("second redelivery without redelivered:true")
		}
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
		if err := c.Ack(ms[2]); err != nil {
			t.Fatal(err)
		}
		waitQueue(t, s.Router, "ack-ind", 0, 0)
	})

	t.Run("STOMP 1.1 NACK by message-id", func(t *testing.T) {
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V11))
		sub := c.subscribe(t, "/queue/ack-11", stomp.AckClientIndividual)
		pub.send(t, "/queue/ack-11", "x")
		m := recvBody(t, sub, "x")
		if err := c.Nack(m); err != nil {
			t.Fatal(err)
		}
		m = recvBody(t, sub, "x")
		if !isRedelivered(m) {
			t.Errorf("1.1 NACK redelivery without redelivered:true: %s", headerString(m.Header))
		}
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
		waitQueue(t, s.Router, "ack-11", 0, 0)
	})

	t.Run("prefetch-count", func(t *testing.T) {
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		sub := c.subscribe(t, "/queue/prefetch", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "2"))
		for i := range 5 {
			pub.send(t, "/queue/prefetch", "m"+strconv.Itoa(i))
		}
		m0 := recvBody(t, sub, "m0")
		recvBody(t, sub, "m1")
		waitQueue(t, s.Router, "prefetch", 3, 2) // only two in flight
		if err := c.Ack(m0); err != nil {
			t.Fatal(err)
		}
		recvBody(t, sub, "m2")
		waitQueue(t, s.Router, "prefetch", 2, 2)
	})
}

// TestQueueRequeueOnConsumerLoss: messages a consumer holds unacknowledged
// go to another consumer, marked redelivered, when it disconnects (crash
// or DISCONNECT) or unsubscribes.
func TestQueueRequeueOnConsumerLoss(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))

	for _, how := range []string{"crash", "disconnect", "unsubscribe"} {
		t.Run(how, func(t *testing.T) {
			q := "requeue-" + how
			a := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
			asub := a.subscribe(t, "/queue/"+q, stomp.AckClientIndividual)
			pub.send(t, "/queue/"+q, "m1")
			pub.send(t, "/queue/"+q, "m2")
			recvBody(t, asub, "m1")
			recvBody(t, asub, "m2")
			waitQueue(t, s.Router, q, 0, 2)

			b := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
			bsub := b.subscribe(t, "/queue/"+q, stomp.AckClientIndividual)

			switch how {
			case "crash":
				a.ws.abort()
			case "disconnect":
				if err := a.Disconnect(); err != nil {
					t.Fatal(err)
				}
			case "unsubscribe":
				if err := asub.Unsubscribe(); err != nil {
					t.Fatal(err)
				}
			}
			for _, want := range []string{"m1", "m2"} {
				m := recvBody(t, bsub, want)
				if !isRedelivered(m) {
					t.Errorf("%s handed over without redelivered:true: %s", want, headerString(m.Header))
				}
				if err := b.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
			waitQueue(t, s.Router, q, 0, 0)
		})
	}

	t.Run("waits for a consumer", func(t *testing.T) {
		pub.send(t, "/queue/later", "early", stomp.SendOpt.Receipt)
		waitQueue(t, s.Router, "later", 1, 0)
		c := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
		sub := c.subscribe(t, "/queue/later", stomp.AckAuto)
		recvBody(t, sub, "early")
	})
}

// TestQueueCompetingConsumers: two consumers share a queue; each message
// goes to exactly one of them, split round robin.
func TestQueueCompetingConsumers(t *testing.T) {
	t.Parallel()
	const n = 200
	s := startServer(t)
	a := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	b := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	asub := a.subscribe(t, "/queue/work", stomp.AckAuto)
	bsub := b.subscribe(t, "/queue/work", stomp.AckAuto)
	pub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	for i := range n {
		pub.send(t, "/queue/work", strconv.Itoa(i))
	}
	pub.barrier(t)
	var got [2][]int
	total := 0
	for total < n {
		var m *stomp.Message
		var who int
		select {
		case m = <-asub.C:
		case m = <-bsub.C:
			who = 1
		case <-afterShort():
			t.Fatalf("received %d of %d messages (a %d, b %d)", total, n, len(got[0]), len(got[1]))
		}
		if m == nil || m.Err != nil {
			t.Fatalf("consumer %d closed: %v", who, m)
		}
		v, err := strconv.Atoi(string(m.Body))
		if err != nil {
			t.Fatalf("bad body %q", m.Body)
		}
		got[who] = append(got[who], v)
		total++
	}
	all := append(slices.Clone(got[0]), got[1]...)
	sort.Ints(all)
	for i := range n {
		if all[i] != i {
			t.Fatalf("messages not delivered exactly once: sorted union starts %v", all[:min(len(all), i+5)])
		}
	}
	if len(got[0]) != n/2 || len(got[1]) != n/2 {
		t.Errorf("split %d/%d, want %d/%d (round robin)", len(got[0]), len(got[1]), n/2, n/2)
	}
	// Each consumer sees its share in order, alternating with the other.
	for who, g := range got {
		if !slices.IsSorted(g) {
			t.Errorf("consumer %d got its messages out of order: %v", who, g[:min(10, len(g))])
		}
		for i := 1; i < len(g); i++ {
			if g[i]-g[i-1] != 2 {
				t.Errorf("consumer %d: not strict round robin: …%d, %d…", who, g[i-1], g[i])
				break
			}
		}
	}
	waitQueue(t, s.Router, "work", 0, 0)
	if q, _ := queueInfo(s.Router, "work"); q.Consumers != 2 {
		t.Errorf("queue consumers %d, want 2", q.Consumers)
	}
}

// TestTempQueueRequestReply: a raw client sends a request with
// reply-to:/temp-queue/x; the responder sees it rewritten to
// /reply-queue/…, answers there, and the reply arrives at the requester as
// MESSAGE destination:/temp-queue/x subscription:/temp-queue/x.
func TestTempQueueRequestReply(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	responder := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	requests := responder.subscribe(t, "/queue/rpc", stomp.AckAuto)

	req := newRaw(t, s)
	req.connect()
	var replyTo string
	for i := range 2 {
		body := fmt.Sprintf("ping-%d", i)
		req.send("SEND", body, "destination", "/queue/rpc", "reply-to", "/temp-queue/x", "correlation-id", strconv.Itoa(i))
		m := recvBody(t, requests, body)
		rt := m.Header.Get("reply-to")
		if !strings.HasPrefix(rt, "/reply-queue/") {
			t.Fatalf("request reply-to:%q, want /reply-queue/…: %s", rt, headerString(m.Header))
		}
		if i == 0 {
			replyTo = rt
		} else if rt != replyTo {
			t.Errorf("second request from the same connection got reply-to %q, first %q", rt, replyTo)
		}
		responder.send(t, rt, "pong-"+strconv.Itoa(i), stomp.SendOpt.Header("correlation-id", m.Header.Get("correlation-id")))
		f := req.expect("MESSAGE")
		if got := f.Header.Get("destination"); got != "/temp-queue/x" {
			t.Errorf("reply destination:%q, want /temp-queue/x (%s)", got, headerString(f.Header))
		}
		if got := f.Header.Get("subscription"); got != "/temp-queue/x" {
			t.Errorf("reply subscription:%q, want /temp-queue/x", got)
		}
		if string(f.Body) != "pong-"+strconv.Itoa(i) || f.Header.Get("correlation-id") != strconv.Itoa(i) {
			t.Errorf("reply %q %s", f.Body, headerString(f.Header))
		}
	}

	t.Run("others cannot consume the reply queue", func(t *testing.T) {
		thief := newRaw(t, s)
		thief.connect()
		thief.send("SUBSCRIBE", "", "id", "steal", "destination", replyTo, "receipt", "r-steal")
		f := thief.expect("ERROR")
		if f.Header.Get("message") == "" || f.Header.Get("receipt-id") != "r-steal" {
			t.Errorf("ERROR %s", headerString(f.Header))
		}
		thief.expectClosed(waitShort)
	})

	t.Run("late reply after requester left is dropped", func(t *testing.T) {
		req.send("DISCONNECT", "", "receipt", "bye")
		req.expect("RECEIPT")
		req.expectClosed(waitShort)
		checkFor(t, waitShort, func() error {
			if n := len(s.Router.Sessions()); n != 1 {
				return fmt.Errorf("%d sessions, want 1 (the responder)", n)
			}
			return nil
		})
		dropped := s.Router.Stats().Dropped
		responder.send(t, replyTo, "too late", stomp.SendOpt.Receipt)
		if d := s.Router.Stats().Dropped; d != dropped+1 {
			t.Errorf("late reply: dropped counter %d → %d, want +1", dropped, d)
		}
	})
}
