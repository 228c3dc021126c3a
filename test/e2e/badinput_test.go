package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"
	"github.com/gorilla/websocket"
)

// TestBadInput sends malformed or forbidden frames on raw connections. Each
// must get exactly one ERROR (message header, explanatory body, receipt-id
// when the bad frame had a receipt) and then the close, while a healthy
// go-stomp pair on the same server keeps exchanging messages before and
// after.
func TestBadInput(t *testing.T) {
	t.Parallel()
	const maxBody = 1024
	s := startServer(t, func(c *serverConfig) { c.Stomp.Limits.MaxBodyLength = maxBody })
	hpub := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	hsubc := connect(t, s, stomp.ConnOpt.AcceptVersion(stomp.V12))
	hsub := hsubc.subscribe(t, "/topic/healthy", stomp.AckAuto)
	baseSessions := len(s.Router.Sessions())

	big := strings.Repeat("x", 4*maxBody)
	cases := []struct {
		name      string
		noConnect bool   // send the bad frame as the first frame
		frame     string // sent as one text message
		wantMsg   string // required ERROR message header ("" = any non-empty)
		wantRcpt  string // required receipt-id ("" = none expected)
		wantCode  int    // required WebSocket close code (0 = any)
	}{
		{name: "garbage", frame: "garbage!!\nthis line has no colon\n\n\x00"},
		{name: "bad escape", frame: "SEND\ndestination:/topic/healthy\nx-bad:\\q\nreceipt:r-esc\n\nx\x00"},
		{name: "unknown command", frame: "FOO\nreceipt:r-foo\n\n\x00", wantRcpt: "r-foo"},
		{name: "lowercase command", frame: "send\ndestination:/topic/healthy\nreceipt:r-lower\n\nx\x00", wantRcpt: "r-lower"},
		{name: "oversize with content-length", frame: fmt.Sprintf("SEND\ndestination:/topic/oversize\ncontent-length:%d\nreceipt:r-big\n\n%s\x00", len(big), big),
			wantMsg: "frame too large", wantCode: 1009},
		{name: "oversize without content-length", frame: "SEND\ndestination:/topic/oversize\nreceipt:r-big2\n\n" + big + "\x00",
			wantMsg: "frame too large", wantCode: 1009},
		{name: "SEND without destination", frame: "SEND\nreceipt:r-nodest\n\nhi\x00", wantRcpt: "r-nodest"},
		{name: "SUBSCRIBE without destination", frame: "SUBSCRIBE\nid:1\nreceipt:r-subnodest\n\n\x00", wantRcpt: "r-subnodest"},
		{name: "SUBSCRIBE without id", frame: "SUBSCRIBE\ndestination:/topic/healthy\nreceipt:r-noid\n\n\x00", wantRcpt: "r-noid"},
		{name: "frame before CONNECT", noConnect: true, frame: "SEND\ndestination:/topic/healthy\nreceipt:r-early\n\nearly\x00", wantRcpt: "r-early"},
		{name: "SUBSCRIBE before CONNECT", noConnect: true, frame: "SUBSCRIBE\nid:1\ndestination:/topic/healthy\n\n\x00"},
		{name: "wildcard + in SEND topic", frame: "SEND\ndestination:/topic/healthy/+\nreceipt:r-plus\n\nx\x00", wantRcpt: "r-plus"},
		{name: "wildcard # in SEND topic", frame: "SEND\ndestination:/topic/#\nreceipt:r-hash\n\nx\x00", wantRcpt: "r-hash"},
		{name: "bad filter in SUBSCRIBE", frame: "SUBSCRIBE\nid:1\ndestination:/topic/a/#/b\nreceipt:r-filter\n\n\x00", wantRcpt: "r-filter"},
		{name: "unknown destination prefix", frame: "SEND\ndestination:/exchange/x\nreceipt:r-exch\n\nx\x00", wantRcpt: "r-exch"},
		{name: "ACK of an id never issued", frame: "ACK\nid:424242\nreceipt:r-ack\n\n\x00", wantRcpt: "r-ack"},
		{name: "NACK of an id never issued", frame: "NACK\nid:99\nreceipt:r-nack\n\n\x00", wantRcpt: "r-nack"},
		{name: "COMMIT of an unknown transaction", frame: "COMMIT\ntransaction:nope\nreceipt:r-tx\n\n\x00", wantRcpt: "r-tx"},
		{name: "SEND in an unknown transaction", frame: "SEND\ndestination:/topic/healthy\ntransaction:nope\nreceipt:r-txs\n\nx\x00", wantRcpt: "r-txs"},
		{name: "second CONNECT", frame: "CONNECT\naccept-version:1.2\nhost:x\nreceipt:r-conn\n\n\x00", wantRcpt: "r-conn"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, after := fmt.Sprintf("before-%d", i), fmt.Sprintf("after-%d", i)
			hpub.send(t, "/topic/healthy", before)
			recvBody(t, hsub, before)

			r := newRaw(t, s)
			if !tc.noConnect {
				r.connect()
			}
			// The server may close while an oversize frame is still being
			// written; a failed write is not the test's concern, what the
			// client reads is.
			if err := r.ws.writeRaw(websocket.TextMessage, []byte(tc.frame)); err != nil {
				t.Logf("writing the bad frame: %v", err)
			}
			frames, code := r.expectClosed(waitShort)
			t.Logf("frames %s, close code %d", describeFrames(frames), code)
			if len(frames) != 1 || frames[0].Command != "ERROR" {
				t.Fatalf("want exactly one ERROR then the close; got %s", describeFrames(frames))
			}
			ef := frames[0]
			msg, ok := ef.Header.Contains("message")
			switch {
			case !ok || msg == "":
				t.Errorf("ERROR without message header: %s", headerString(ef.Header))
			case tc.wantMsg != "" && msg != tc.wantMsg:
				t.Errorf("ERROR message:%q, want %q", msg, tc.wantMsg)
			}
			if len(ef.Body) == 0 {
				t.Errorf("ERROR without an explanatory body: %s", headerString(ef.Header))
			}
			if got, ok := ef.Header.Contains("receipt-id"); tc.wantRcpt != "" && got != tc.wantRcpt {
				t.Errorf("ERROR receipt-id:%q (present %v), want %q", got, ok, tc.wantRcpt)
			}
			if tc.wantCode != 0 && code != tc.wantCode {
				t.Errorf("WebSocket close code %d, want %d", code, tc.wantCode)
			}
			if code <= 0 {
				t.Errorf("connection dropped without a WebSocket close frame (code %d)", code)
			}

			// The healthy pair is unaffected, and nothing the bad client
			// sent reached it (the next message is the marker).
			hpub.send(t, "/topic/healthy", after)
			recvBody(t, hsub, after)
			checkFor(t, waitShort, func() error {
				if n := len(s.Router.Sessions()); n != baseSessions {
					return fmt.Errorf("%d sessions, want %d", n, baseSessions)
				}
				return nil
			})
		})
	}
}
