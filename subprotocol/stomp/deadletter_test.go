package stomp

import (
	"testing"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
)

// NACK with requeue:false (RabbitMQ's extension) is not redelivered: the
// message goes to /queue/DLQ.<name> with headers saying why and from
// where. In client mode it covers the earlier messages too.
func TestNackRequeueFalse(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{})
	h.connect()
	ms := h.queueMessages("jobs", "client", "j1", "j2")
	h.sendFrame(frame.NACK, nil, "id", ms[1].Header.Get("ack"), "requeue", "false", "receipt", "n")
	h.waitFrame(frame.RECEIPT, "receipt-id", "n")
	if q := h.queueInfo("jobs"); q.Ready != 0 || q.Unacked != 0 {
		t.Fatalf("jobs after NACK requeue:false: %+v, want empty", q)
	}
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "dlq", "destination", "/queue/DLQ.jobs")
	dead := h.waitFrames("2 dead letters", 2, func(f outFrame) bool {
		return f.Command == frame.MESSAGE && f.Header.Get("subscription") == "dlq"
	})
	for i, f := range dead {
		want := []string{"destination", "/queue/DLQ.jobs", "x-death-reason", "rejected", "x-death-queue", "jobs",
			"x-original-destination", "/queue/jobs", "x-delivery-count", "1", "redelivered", "false"}
		for k := 0; k < len(want); k += 2 {
			if v := f.Header.Get(want[k]); v != want[k+1] {
				t.Errorf("dead letter %d: %s = %q, want %q; %v", i, want[k], v, want[k+1], f)
			}
		}
	}
	if string(dead[0].Body) != "j1" || string(dead[1].Body) != "j2" {
		t.Errorf("dead letters %q, %q; want j1, j2 in order", dead[0].Body, dead[1].Body)
	}
	if st := h.r.Stats(); st.DeadLettered != 2 {
		t.Errorf("DeadLettered = %d, want 2", st.DeadLettered)
	}
}

// A plain NACK (or requeue:true) redelivers, up to the redelivery limit.
func TestNackRedeliveryLimit(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{MaxRedeliveries: 2})
	h.connect()
	ms := h.queueMessages("p", "client-individual", "poison")
	for n := 1; ; n++ {
		h.sendFrame(frame.NACK, nil, "id", ms[len(ms)-1].Header.Get("ack"), "requeue", "true")
		if n == 3 {
			break
		}
		ms = h.waitFrames("redelivery", n+1, func(f outFrame) bool { return f.Command == frame.MESSAGE })
		if r := ms[n].Header.Get("redelivered"); r != "true" {
			t.Fatalf("redelivery %d: redelivered = %q", n, r)
		}
	}
	checkFor(t, "dead letter", func() bool { q, _ := h.r.Queue("DLQ.p"); return q.Ready == 1 })
	if got := len(h.messageFrames()); got != 3 {
		t.Fatalf("delivered %d times, want MaxRedeliveries+1 = 3", got)
	}
}

// A topic subscription's NACK loop ends too: the delivery is dropped after
// MaxRedeliveries redeliveries.
func TestNackTopicLimit(t *testing.T) {
	h := startServer(t, Config{}, broker.Config{MaxRedeliveries: 1})
	h.connect()
	h.sendFrame(frame.SUBSCRIBE, nil, "id", "ts", "destination", "/topic/poison", "ack", "client-individual", "receipt", "s")
	h.waitFrame(frame.RECEIPT, "receipt-id", "s")
	h.sendFrame(frame.SEND, []byte("p"), "destination", "/topic/poison")
	ms := h.waitFrames("first", 1, func(f outFrame) bool { return f.Command == frame.MESSAGE })
	h.sendFrame(frame.NACK, nil, "id", ms[0].Header.Get("ack"))
	ms = h.waitFrames("redelivery", 2, func(f outFrame) bool { return f.Command == frame.MESSAGE })
	h.sendFrame(frame.NACK, nil, "id", ms[1].Header.Get("ack"), "receipt", "n")
	h.waitFrame(frame.RECEIPT, "receipt-id", "n")
	if st := h.r.Stats(); st.DeadLetterDropped != 1 {
		t.Fatalf("DeadLetterDropped = %d, want 1", st.DeadLetterDropped)
	}
	if got := len(h.messageFrames()); got != 2 {
		t.Fatalf("%d MESSAGEs, want 2", got)
	}
}
