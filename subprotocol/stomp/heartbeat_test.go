package stomp

import (
	"testing"
	"time"
)

func TestParseHeartBeat(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		v       string
		present bool
		cx, cy  time.Duration
		ok      bool
	}{
		{"", false, 0, 0, true}, // absent: 0,0
		{"garbage", false, 0, 0, true},
		{"0,0", true, 0, 0, true},
		{"10,20", true, 10 * ms, 20 * ms, true},
		{" 10 , 20 ", true, 10 * ms, 20 * ms, true},
		{"5000,0", true, 5000 * ms, 0, true},
		{"2147483647,0", true, 2147483647 * ms, 0, true}, // 2^31-1
		{"", true, 0, 0, false},
		{",", true, 0, 0, false},
		{"10", true, 0, 0, false},
		{"10,", true, 0, 0, false},
		{",10", true, 0, 0, false},
		{"a,b", true, 0, 0, false},
		{"-1,5", true, 0, 0, false},
		{"5,-1", true, 0, 0, false},
		{"+5,5", true, 0, 0, false},
		{"1.5,2", true, 0, 0, false},
		{"10,20,30", true, 0, 0, false},
		{"2147483648,0", true, 0, 0, false}, // does not fit in 31 bits
		{"0,99999999999999999999", true, 0, 0, false},
		{"10;20", true, 0, 0, false},
	} {
		cx, cy, err := parseHeartBeat(tc.v, tc.present)
		if (err == nil) != tc.ok {
			t.Errorf("parseHeartBeat(%q, %v) error = %v, want ok=%v", tc.v, tc.present, err, tc.ok)
			continue
		}
		if cx != tc.cx || cy != tc.cy {
			t.Errorf("parseHeartBeat(%q, %v) = %v, %v; want %v, %v", tc.v, tc.present, cx, cy, tc.cx, tc.cy)
		}
	}
}

func TestNegotiateHeartBeat(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name             string
		cx, cy, min      time.Duration
		wantSend, wantRv time.Duration
	}{
		{"client offers nothing", 0, 0, s, 0, 0},
		{"both ways, above min", 5 * s, 10 * s, s, 10 * s, 5 * s},
		{"raised to min", 100 * time.Millisecond, 200 * time.Millisecond, s, s, s},
		{"client only wants to receive", 0, 2 * s, s, 2 * s, 0},
		{"client only sends", 3 * s, 0, s, 0, 3 * s},
		{"min zero keeps client values", 100 * time.Millisecond, 200 * time.Millisecond, 0, 200 * time.Millisecond, 100 * time.Millisecond},
		{"negative min disables", 5 * s, 5 * s, -1, 0, 0},
		{"equal to min", s, s, s, s, s},
	} {
		send, recv := negotiateHeartBeat(tc.cx, tc.cy, tc.min)
		if send != tc.wantSend || recv != tc.wantRv {
			t.Errorf("%s: negotiateHeartBeat(%v, %v, %v) = send %v recv %v; want %v, %v",
				tc.name, tc.cx, tc.cy, tc.min, send, recv, tc.wantSend, tc.wantRv)
		}
	}
}

func TestFormatHeartBeat(t *testing.T) {
	for _, tc := range []struct {
		send, recv time.Duration
		want       string
	}{
		{0, 0, "0,0"},
		{10 * time.Second, 5 * time.Second, "10000,5000"},
		{1500 * time.Microsecond, 0, "1,0"},
	} {
		if got := formatHeartBeat(tc.send, tc.recv); got != tc.want {
			t.Errorf("formatHeartBeat(%v, %v) = %q, want %q", tc.send, tc.recv, got, tc.want)
		}
	}
	// What the server formats, a client parses back to the same values.
	cx, cy, err := parseHeartBeat(formatHeartBeat(10*time.Second, 250*time.Millisecond), true)
	if err != nil || cx != 10*time.Second || cy != 250*time.Millisecond {
		t.Errorf("round trip = %v, %v, %v", cx, cy, err)
	}
}
