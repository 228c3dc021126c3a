package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// The admin listings and actions run while sessions connect, subscribe,
// publish and leave (go test -race; a lock-order mistake hangs here).
func TestAdminConcurrent(t *testing.T) {
	r := New(Config{MaxPendingMsgs: 8}, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := SessionID(fmt.Sprintf("w%d-%d", w, i%5))
				o := SessionOptions{Protocol: "mqtt", Transport: "ws"}
				if i%2 == 0 {
					o.Expiry = time.Minute
				}
				s, err := r.Open(id, o)
				if err != nil {
					continue
				}
				_ = r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "k", Filter: fmt.Sprintf("t/%d/#", i%3), QoS: AtLeastOnce}})
				_ = r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "g", Filter: "t/+/x", Group: "g"}})
				_ = r.Subscribe(s, &Subscription{SubSpec: SubSpec{Key: "q", Queue: "jobs", Ack: AckClientIndividual}})
				_ = r.Publish(context.Background(), s, &Message{Topic: fmt.Sprintf("t/%d/x", i%4), Payload: []byte("p"), QoS: AtLeastOnce, Retain: i%7 == 0})
				_ = r.Publish(context.Background(), s, &Message{Queue: "jobs", Payload: []byte("j")})
				s.AddBytesIn(10)
				s.SetInflight(i % 3)
				drained(s)
				r.Close(s, CloseClientClosed)
			}
		}()
	}
	tp, _ := r.Tap("t/#", 16)
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, sort := range []string{"", "-queued", "msgs_in"} {
			if _, _, err := r.ClientPage("", 5, "", sort, 0, false); err != nil {
				t.Fatal(err)
			}
		}
		r.Client("w0-1")
		r.SubscriptionPage("", 5, "")
		r.TopicTree("t", "", 5)
		r.ShareGroupPage("", 5, "")
		r.RetainedPage("", 5, "t/")
		r.ConnCounts()
		r.Counters()
		_ = r.Disconnect("w1-2")
		_ = r.DeleteSession("w2-3")
		_, _ = r.PurgeQueue("jobs")
		_ = r.DeleteRetained("t/0/x")
		tapped(tp)
	}
	tp.Close()
	close(stop)
	wg.Wait()
}
