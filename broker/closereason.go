package broker

// CloseReason is why a session ended (nats ClosedState). Protocols turn it
// into a final frame and a WebSocket close code; logs and stats show String().
type CloseReason uint8

// Close reasons.
const (
	CloseNone CloseReason = iota
	CloseClientClosed
	CloseProtocolError
	CloseAuthFailed
	CloseReadTimeout
	CloseWriteTimeout
	CloseSlowConsumer
	CloseTakenOver
	CloseServerShutdown
	CloseTooLarge
	CloseInternalError
	CloseTransportError
	// CloseAdminAction: an operator disconnected the client (admin API).
	CloseAdminAction
)

var closeReasonNames = [...]string{
	CloseNone:           "none",
	CloseClientClosed:   "client closed",
	CloseProtocolError:  "protocol error",
	CloseAuthFailed:     "authentication failed",
	CloseReadTimeout:    "read timeout",
	CloseWriteTimeout:   "write timeout",
	CloseSlowConsumer:   "slow consumer",
	CloseTakenOver:      "session taken over",
	CloseServerShutdown: "server shutdown",
	CloseTooLarge:       "frame too large",
	CloseInternalError:  "internal error",
	CloseTransportError: "connection lost",
	CloseAdminAction:    "disconnected by an administrator",
}

func (r CloseReason) String() string {
	if int(r) < len(closeReasonNames) {
		return closeReasonNames[r]
	}
	return "unknown"
}
