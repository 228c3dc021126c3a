package crash_test

import (
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
)

// TestStompUnackedAcrossKill: a STOMP consumer (ack:client-individual)
// receives a message from a durable topic subscription (each dialect) and
// one from a /queue, acknowledges neither, and the broker is killed with
// SIGKILL while it is connected. After the restart, subscribing again
// must redeliver both.
func TestStompUnackedAcrossKill(t *testing.T) {
	for _, d := range stompDialects {
		t.Run(d.name, func(t *testing.T) {
			srv := startServer(t, "stomp-unacked-"+d.name)
			client := "unacked-" + d.name
			topic, queue := "/topic/crash/unacked/"+d.name, "/queue/crash-unacked-"+d.name
			subscribe := func() *stompConn {
				t.Helper()
				c, err := dialStomp(srv, d.connHdrs(client)...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.close)
				h := append([]string{"destination", topic, "ack", "client-individual"}, d.subHdrs(client)...)
				if !hasHeader(h, "id") {
					h = append(h, "id", "topic-sub")
				}
				for _, f := range []*frame.Frame{
					frame.New("SUBSCRIBE", h...),
					frame.New("SUBSCRIBE", "destination", queue, "ack", "client-individual", "id", "queue-sub"),
				} {
					if err := c.write(f); err != nil {
						t.Fatal(err)
					}
				}
				return c
			}
			// messages reads MESSAGE frames until it has one per
			// destination (ignoring anything else).
			messages := func(c *stompConn) map[string]*frame.Frame {
				t.Helper()
				got := map[string]*frame.Frame{}
				deadline := time.Now().Add(waitShort)
				for len(got) < 2 {
					f, err := c.read(deadline)
					if err != nil {
						t.Fatalf("waiting for a message from %s and %s (got %d): %v", topic, queue, len(got), err)
					}
					switch f.Command {
					case "MESSAGE":
						got[f.Header.Get("destination")] = f
					case "ERROR":
						t.Fatal(frameError(f))
					}
				}
				return got
			}
			c := subscribe()
			// The consumer's subscriptions are in place once a receipt on
			// its own connection is back; read it before sending.
			if err := c.write(frame.New("SEND", "destination", barrierDest, "receipt", "b")); err != nil {
				t.Fatal(err)
			}
			if f, err := c.read(time.Now().Add(waitShort)); err != nil || f.Command != "RECEIPT" {
				t.Fatalf("barrier: %v %v", f, err)
			}
			snd := &stompSender{srv: srv}
			defer snd.close()
			for _, dest := range []string{topic, queue} {
				if err := snd.send(dest, "unacked to "+dest); err != nil {
					t.Fatalf("SEND to %s: %v", dest, err)
				}
			}
			first := messages(c)
			snd.close()

			srv.kill9()
			srv.start()

			again := messages(subscribe())
			for _, dest := range []string{topic, queue} {
				if f, ok := again[dest]; !ok || string(f.Body) != string(first[dest].Body) {
					t.Errorf("%s: unacknowledged %q not redelivered after SIGKILL", dest, first[dest].Body)
				}
			}
		})
	}
}

// hasHeader reports whether key, value pairs h contain key.
func hasHeader(h []string, key string) bool {
	for i := 0; i+1 < len(h); i += 2 {
		if h[i] == key {
			return true
		}
	}
	return false
}
