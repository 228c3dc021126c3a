package crash_test

import (
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
)

// TestStompUnsubscribeAcrossKill, in each dialect: a plain UNSUBSCRIBE
// keeps the durable subscription and its backlog across SIGKILL, and an
// UNSUBSCRIBE with the durable header deletes it for good: after a SIGKILL
// it does not come back (with messages sent after the deletion).
func TestStompUnsubscribeAcrossKill(t *testing.T) {
	for _, d := range stompDialects {
		t.Run(d.name, func(t *testing.T) {
			srv := startServer(t, "stomp-unsubscribe-"+d.name)
			client := "unsub-" + d.name
			topic := "/topic/crash/unsub/" + d.name
			subHdrs := d.subHdrs(client)
			id := "topic-sub"
			if hasHeader(subHdrs, "id") {
				id = subHdrs[1]
			} else {
				subHdrs = append(subHdrs, "id", id)
			}
			// request writes f with a receipt and waits for it, failing on
			// anything but MESSAGE frames, which it returns.
			request := func(c *stompConn, f *frame.Frame) []*frame.Frame {
				t.Helper()
				rid := c.receiptID()
				f.Header.Set("receipt", rid)
				if err := c.write(f); err != nil {
					t.Fatalf("%s: %v", f.Command, err)
				}
				var msgs []*frame.Frame
				deadline := time.Now().Add(waitShort)
				for {
					r, err := c.read(deadline)
					if err != nil {
						t.Fatalf("%s: waiting for its RECEIPT: %v", f.Command, err)
					}
					switch {
					case r.Command == "RECEIPT" && r.Header.Get("receipt-id") == rid:
						return msgs
					case r.Command == "MESSAGE":
						msgs = append(msgs, r)
					case r.Command == "ERROR":
						t.Fatalf("%s: %v", f.Command, frameError(r))
					}
				}
			}
			// early holds MESSAGEs that came before the SUBSCRIBE's
			// RECEIPT: a backlog may be delivered as soon as the
			// consumer is attached (STOMP orders nothing between them).
			var early []*frame.Frame
			subscribe := func() *stompConn {
				t.Helper()
				c, err := dialStomp(srv, d.connHdrs(client)...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.close)
				h := append([]string{"destination", topic, "ack", "client-individual"}, subHdrs...)
				early = request(c, frame.New("SUBSCRIBE", h...))
				return c
			}
			// next returns the body of the next MESSAGE after sending
			// marker to the topic (the marker itself, when nothing was
			// waiting), ACKing it.
			next := func(c *stompConn, marker string) string {
				t.Helper()
				if len(early) > 0 {
					f := early[0]
					early = early[1:]
					_ = c.write(frame.New("ACK", "id", f.Header.Get("ack")))
					return string(f.Body)
				}
				snd := &stompSender{srv: srv}
				defer snd.close()
				if err := snd.send(topic, marker); err != nil {
					t.Fatalf("SEND %s: %v", marker, err)
				}
				for {
					f, err := c.read(time.Now().Add(waitShort))
					if err != nil {
						t.Fatalf("waiting for a MESSAGE: %v", err)
					}
					if f.Command == "MESSAGE" {
						_ = c.write(frame.New("ACK", "id", f.Header.Get("ack")))
						return string(f.Body)
					}
				}
			}
			send := func(body string) {
				t.Helper()
				snd := &stompSender{srv: srv}
				defer snd.close()
				if err := snd.send(topic, body); err != nil {
					t.Fatalf("SEND %s: %v", body, err)
				}
			}

			// A plain UNSUBSCRIBE keeps the subscription and its backlog.
			c := subscribe()
			request(c, frame.New("UNSUBSCRIBE", "id", id))
			send("kept")
			c.close()
			srv.kill9()
			srv.start()
			c = subscribe()
			if got := next(c, "marker 1"); got != "kept" {
				t.Errorf("after a plain UNSUBSCRIBE and SIGKILL, got %q first, want %q (the backlog)", got, "kept")
			}

			// UNSUBSCRIBE with the durable header deletes it.
			request(c, frame.New("UNSUBSCRIBE", subHdrs...))
			c.close()
			srv.kill9()
			srv.start()
			send("after the deletion")
			c = subscribe() // a new durable subscription
			if got := next(c, "marker 2"); got != "marker 2" {
				t.Errorf("after UNSUBSCRIBE with the durable header and SIGKILL, subscribing again got %q first: the deleted subscription came back", got)
			}
		})
	}
}
