package mqtt

import (
	"sync"

	"github.com/duplexmq/duplex/subprotocol"
)

// conns maps a test transport to its server connection, for white-box
// checks.
var (
	connsMu sync.Mutex
	conns   = map[subprotocol.Transport]*conn{}
)

func init() {
	testHookNewConn = func(t subprotocol.Transport, c *conn) {
		connsMu.Lock()
		conns[t] = c
		connsMu.Unlock()
	}
}
