//go:build !unix

package web

// WriteReady reports false where the socket cannot be asked: deliveries
// are then always written by the connection's write goroutine.
func (t *wsTransport) WriteReady() bool { return false }
