package main

import (
	"bytes"
	"strings"
	"testing"
)

// feed parses all frames in chunks, each chunk standing for one WebSocket
// message, and returns "COMMAND|body" per frame.
func feed(t *testing.T, chunks ...string) []string {
	t.Helper()
	p := parser{limit: 1 << 20}
	var f frame
	var out []string
	for _, c := range chunks {
		if err := p.fill(strings.NewReader(c)); err != nil {
			t.Fatal(err)
		}
		for {
			ok, err := p.next(&f)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			out = append(out, string(f.command)+"|"+string(f.body))
		}
	}
	return out
}

func TestParserCoalescedFrames(t *testing.T) {
	msg := "MESSAGE\ndestination:/topic/a\ncontent-length:3\n\na\x00b\x00" +
		"\n\r\n" + // heart-beats between frames
		"MESSAGE\r\ndestination:/topic/a\r\n\r\nplain\x00" +
		"RECEIPT\nreceipt-id:7\n\n\x00"
	got := feed(t, msg)
	want := []string{"MESSAGE|a\x00b", "MESSAGE|plain", "RECEIPT|"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParserFrameSplitAcrossMessages(t *testing.T) {
	full := "MESSAGE\ncontent-length:5\n\nhel\x00o\x00"
	for i := 1; i < len(full); i++ {
		got := feed(t, full[:i], full[i:])
		if len(got) != 1 || got[0] != "MESSAGE|hel\x00o" {
			t.Fatalf("split at %d: got %q", i, got)
		}
	}
}

func TestParserRejectsBadContentLength(t *testing.T) {
	p := parser{limit: 1 << 20}
	p.fill(strings.NewReader("MESSAGE\ncontent-length:2\n\nabc\x00"))
	var f frame
	if _, err := p.next(&f); err == nil {
		t.Fatal("want an error for a body longer than content-length")
	}
}

func TestHeaderFirstWins(t *testing.T) {
	p := parser{limit: 1 << 20}
	p.fill(strings.NewReader("ERROR\nmessage:slow\\cconsumer\nmessage:second\n\n\x00"))
	var f frame
	if ok, err := p.next(&f); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if got := f.errorText(); got != `"slow:consumer"` {
		t.Fatalf("errorText %s", got)
	}
}

func TestEncodersRoundTrip(t *testing.T) {
	var b []byte
	b = appendConnect(b, "127.0.0.1", "", "")
	b = appendSubscribe(b, "1", "/topic/a:b", "r1")
	b = appendSend(b, sendPrefix("/topic/a", 4), 9, []byte{0, 1, 2, 3})
	b = appendDisconnect(b, byeReceipt)
	p := parser{limit: 1 << 20}
	p.fill(bytes.NewReader(b))
	var f frame
	var cmds []string
	for {
		ok, err := p.next(&f)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		cmds = append(cmds, string(f.command))
		if f.is("SUBSCRIBE") {
			if d, _ := f.header("destination"); unescapeHeader(d) != "/topic/a:b" {
				t.Fatalf("destination %q", d)
			}
		}
		if f.is("SEND") {
			if r, _ := f.header("receipt"); string(r) != "9" || !bytes.Equal(f.body, []byte{0, 1, 2, 3}) {
				t.Fatalf("SEND receipt %q body %v", r, f.body)
			}
		}
	}
	if strings.Join(cmds, " ") != "CONNECT SUBSCRIBE SEND DISCONNECT" {
		t.Fatalf("commands %v", cmds)
	}
}

// TestConnectWithLogin: -user and -password become the STOMP CONNECT's
// login and passcode headers.
func TestConnectWithLogin(t *testing.T) {
	got := string(appendConnect(nil, "127.0.0.1", "bench", "s3cret"))
	want := "CONNECT\naccept-version:1.2\nhost:127.0.0.1\nlogin:bench\npasscode:s3cret\nheart-beat:0,0\n\n\x00"
	if got != want {
		t.Fatalf("CONNECT = %q, want %q", got, want)
	}
}
