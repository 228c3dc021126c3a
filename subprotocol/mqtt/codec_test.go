package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestValidTopicFilter(t *testing.T) {
	tests := []struct {
		filter string
		ok     bool
	}{
		{"a", true}, {"a/b/c", true}, {"#", true}, {"+", true}, {"a/#", true}, {"a/+/b", true},
		{"+/+", true}, {"/", true}, {"//", true}, {"a//b", true}, {"/+", true}, {"$SYS/#", true},
		{"$share/g/a/#", true}, {"$share/g/#", true}, {"$share/g//", true}, {"$share", true}, {"$sharex/a", true},
		{"", false}, {"a#", false}, {"a/#/b", false}, {"#/a", false}, {"a/b#", false}, {"##", false},
		{"a+", false}, {"+a", false}, {"a/+b/c", false}, {"++", false},
		{"$share/g", false}, {"$share/", false}, {"$share//a", false}, {"$share/g+/a", false},
		{"$share/g#/a", false}, {"$share/g/", false}, {"$share/g/a+", false},
	}
	for _, tt := range tests {
		err := ValidTopicFilter(tt.filter)
		if (err == nil) != tt.ok {
			t.Errorf("ValidTopicFilter(%q) = %v, want ok=%v", tt.filter, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrTopicFilterInvalid) {
			t.Errorf("ValidTopicFilter(%q) = %v, want code 0x8F", tt.filter, err)
		}
	}
}

func TestValidTopicName(t *testing.T) {
	for name, ok := range map[string]bool{"a": true, "/": true, "a//b": true, "$SYS/x": true,
		"": false, "a/+": false, "#": false, "a#b": false} {
		if err := ValidTopicName(name); (err == nil) != ok {
			t.Errorf("ValidTopicName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestSharedFilter(t *testing.T) {
	tests := []struct{ in, name, filter string }{
		{"$share/g/a/b", "g", "a/b"},
		{"$share/g/#", "g", "#"},
		{"a/b", "", "a/b"},
		{"$share", "", "$share"},
	}
	for _, tt := range tests {
		name, filter, ok := SharedFilter(tt.in)
		if name != tt.name || filter != tt.filter || ok != (tt.name != "") {
			t.Errorf("SharedFilter(%q) = %q, %q, %v", tt.in, name, filter, ok)
		}
	}
}

func TestVarint(t *testing.T) {
	for _, v := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, maxVarint} {
		enc := appendVarint(nil, v)
		if len(enc) != varintLen(v) {
			t.Errorf("%d: %d bytes, varintLen %d", v, len(enc), varintLen(v))
		}
		c := cursor{buf: enc}
		got, err := c.readVarint("v")
		if err != nil || int(got) != v || c.left() != 0 {
			t.Errorf("%d: decoded %d, %v", v, got, err)
		}
	}
}

func TestValidUTF8(t *testing.T) {
	tests := []struct {
		s  string
		ok bool
	}{
		{"", true}, {"abc", true}, {"héllo", true}, {"\U0001F600", true}, {"\uFEFF", true},
		{"a\x00", false}, {"\xC3\x28", false}, {"\xED\xA0\x80", false}, {"\xC0\x80", false},
		{"\xF4\x90\x80\x80", false}, {"é\x00", false},
	}
	for _, tt := range tests {
		if err := validUTF8([]byte(tt.s), "s"); (err == nil) != tt.ok {
			t.Errorf("validUTF8(%q) = %v, want ok=%v", tt.s, err, tt.ok)
		}
	}
}

func TestError(t *testing.T) {
	err := fmt.Errorf("reading: %w", malformed("PUBLISH QoS 3 [MQTT-3.3.1-4]"))
	if !errors.Is(err, ErrMalformedPacket) || errors.Is(err, ErrProtocolError) {
		t.Fatalf("errors.Is does not compare codes: %v", err)
	}
	var e Error
	if !errors.As(err, &e) || e.Code != CodeMalformedPacket {
		t.Fatalf("errors.As: %#v", e)
	}
	if got := e.Error(); got != "mqtt: malformed packet: PUBLISH QoS 3 [MQTT-3.3.1-4]" {
		t.Errorf("Error() = %q", got)
	}
	if got := ErrPacketTooLarge.Error(); got != "mqtt: packet too large" {
		t.Errorf("Error() = %q", got)
	}
}

func TestReasonCodeString(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := ReasonCode(c).String()
		if s == "" || (c >= 0x80 && c <= 0xA2 && strings.HasPrefix(s, "reason code")) {
			t.Errorf("ReasonCode(0x%02x).String() = %q", c, s)
		}
	}
	if CodeSuccess.IsError() || !CodeMalformedPacket.IsError() {
		t.Error("IsError")
	}
	if s := PacketType(3).String(); s != "PUBLISH" {
		t.Errorf("PacketType(3) = %q", s)
	}
	if PINGRESP.FromClient() || !PUBLISH.FromClient() || !AUTH.FromClient() || PacketType(0).FromClient() {
		t.Error("FromClient")
	}
}

// TestReasonCodeSets checks that every code a packet may carry is named.
func TestReasonCodeSets(t *testing.T) {
	for _, s := range []*codeSet{&connackCodes, &pubackCodes, &pubrelCodes, &subackCodes, &unsubackCodes, &disconnectCodes, &authCodes} {
		for c := 0; c < 256; c++ {
			if s.has(ReasonCode(c)) && strings.HasPrefix(ReasonCode(c).String(), "reason code") {
				t.Errorf("0x%02x is in a set but has no name", c)
			}
		}
	}
}
