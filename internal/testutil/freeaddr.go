package testutil

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Ports FreeAddr picks from: below Linux's default ephemeral range
// (32768-60999), where the kernel hands out the ports of listeners bound
// to port 0 and of outgoing connections. A port taken from that range
// and released can be bound again by any process's port-0 listener (an
// embedded NATS server's client port, for one) before the test's broker
// binds it; a test then failed with "address already in use".
const (
	freePortLow  = 20000
	freePortHigh = 32000
)

var freePorts struct {
	mu   sync.Mutex
	used map[int]bool
}

// FreeAddr returns a loopback TCP address ("127.0.0.1:port") that was
// free a moment ago, for a listener a child process binds (a broker's
// cluster route port). Its port is outside the kernel's ephemeral range
// and never the same twice in one test binary, so neither another
// test's port-0 listener nor a later FreeAddr takes it meanwhile.
func FreeAddr() (string, error) {
	freePorts.mu.Lock()
	defer freePorts.mu.Unlock()
	if freePorts.used == nil {
		freePorts.used = map[int]bool{}
	}
	for range 1000 {
		p := freePortLow + rand.IntN(freePortHigh-freePortLow)
		if freePorts.used[p] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // another process has it
		}
		l.Close()
		freePorts.used[p] = true
		return addr, nil
	}
	return "", errors.New("testutil: no free loopback port below the ephemeral range")
}
