package testutil

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddr: each address is bindable, below the ephemeral range, and
// never handed out twice.
func TestFreeAddr(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); p < freePortLow || p >= freePortHigh {
			t.Fatalf("%s outside [%d, %d)", addr, freePortLow, freePortHigh)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s not bindable: %v", addr, err)
		}
		l.Close()
	}
}
