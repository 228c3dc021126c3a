package stomp

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// protoError is a STOMP protocol violation found by the state machine:
// message goes in the ERROR frame's message header, detail in its body.
type protoError struct {
	message string
	detail  string
	headers []string // extra ERROR headers, key/value pairs (e.g. version)
}

func (e *protoError) Error() string { return "stomp: " + e.message + ": " + e.detail }

func protocolErr(message, format string, args ...any) error {
	return &protoError{message: message, detail: fmt.Sprintf(format, args...)}
}

// loginError is a refused login: the Authenticator's error or Router.Open's
// (client id owned, session quota). wireError answers every refusal with
// "access refused" (or "quota exceeded") so that a client learns nothing
// about which check failed.
type loginError struct{ err error }

func (e loginError) Error() string { return "stomp: login refused: " + e.err.Error() }
func (e loginError) Unwrap() error { return e.err }

// wire is how an error reaches the client.
type wire struct {
	message, detail string
	headers         []string
	code            int                // WebSocket close code
	reason          broker.CloseReason // for logs and stats
}

// wireError is the one mapping from an error to what the client sees
// (ARCHITECTURE §3.8). Internal failures get a generic message; the detail
// goes to the log only.
func wireError(err error) wire {
	var pe *protoError
	var le loginError
	switch {
	case errors.As(err, &le):
		switch {
		case errors.Is(err, broker.ErrSessionQuota):
			return wire{"quota exceeded", "too many persistent sessions for this user", nil, subprotocol.ClosePolicy, broker.CloseAuthFailed}
		case errors.Is(err, broker.ErrBadCredentials), errors.Is(err, broker.ErrNotAuthorized), errors.Is(err, broker.ErrBanned):
			return wire{"access refused", "bad login or passcode, or not allowed to connect", nil, subprotocol.ClosePolicy, broker.CloseAuthFailed}
		case errors.Is(err, broker.ErrClientIDOwned):
			return wire{"access refused", "the client-id belongs to another user", nil, subprotocol.ClosePolicy, broker.CloseAuthFailed}
		}
		return wireError(le.err) // shutting down, internal failure
	case errors.Is(err, broker.ErrCredentialExpired):
		return wire{"credential expired", "the credential this connection logged in with expired; log in again", nil, subprotocol.ClosePolicy, broker.CloseAuthFailed}
	case errors.As(err, &pe):
		return wire{pe.message, pe.detail, pe.headers, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	case IsSizeError(err):
		return wire{"frame too large", err.Error(), nil, subprotocol.CloseTooBig, broker.CloseTooLarge}
	case isFrameError(err):
		return wire{"malformed frame", err.Error(), nil, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrInvalidTopic), errors.Is(err, broker.ErrInvalidFilter), errors.Is(err, broker.ErrInvalidQueue):
		return wire{"invalid destination", err.Error(), nil, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrNotAuthorized):
		return wire{"not authorized", "not authorized for this destination", nil, subprotocol.ClosePolicy, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrDuplicateSub):
		return wire{"duplicate subscription id", err.Error(), nil, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrNoSuchSub):
		return wire{"no such subscription", err.Error(), nil, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrTooManySubs):
		return wire{"too many subscriptions", err.Error(), nil, subprotocol.ClosePolicy, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrQuotaExceeded), errors.Is(err, broker.ErrRetainedQuota), errors.Is(err, broker.ErrSessionQuota):
		return wire{"quota exceeded", err.Error(), nil, subprotocol.ClosePolicy, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrStore):
		return wire{"message not stored", "the broker could not write the message to disk; it was not delivered", nil, subprotocol.CloseInternal, broker.CloseInternalError}
	case errors.Is(err, broker.ErrQueueFull):
		return wire{"queue full", err.Error(), nil, subprotocol.ClosePolicy, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrQueueExclusive):
		return wire{"access refused", err.Error(), nil, subprotocol.ClosePolicy, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrControlOverflow):
		return wire{"too many outstanding replies", "the client sends faster than it reads its receipts", nil, subprotocol.ClosePolicy, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrShuttingDown), errors.Is(err, broker.ErrSessionClosed):
		return wire{"server shutting down", "", nil, subprotocol.CloseGoingAway, broker.CloseServerShutdown}
	}
	return wire{"internal error", "", nil, subprotocol.CloseInternal, broker.CloseInternalError}
}

// errorFrame builds an ERROR frame (STOMP 1.2 §ERROR): a message header, the
// detail as a text/plain body, and receipt-id when bad carried a receipt.
func errorFrame(message, detail string, bad *frame.Frame, extra ...string) *frame.Frame {
	f := frame.New("ERROR", "message", message)
	for i := 0; i+1 < len(extra); i += 2 {
		f.Header.Add(extra[i], extra[i+1])
	}
	if bad != nil {
		if r, ok := bad.Header.Contains("receipt"); ok {
			f.Header.Add("receipt-id", r)
		}
	}
	if detail != "" {
		f.Body = []byte(detail)
		f.Header.Add("content-type", "text/plain")
		f.Header.Add("content-length", strconv.Itoa(len(f.Body)))
	}
	return f
}

// closeFrame is the ERROR a session gets when the server ends it.
func closeFrame(reason broker.CloseReason) (*frame.Frame, int) {
	switch reason {
	case broker.CloseSlowConsumer:
		return errorFrame("slow consumer", "the connection fell too far behind its messages and was closed; reconnect and read faster", nil), subprotocol.ClosePolicy
	case broker.CloseServerShutdown:
		return errorFrame("server shutting down", "", nil), subprotocol.CloseGoingAway
	case broker.CloseAdminAction:
		return errorFrame("disconnected by an administrator", "", nil), subprotocol.ClosePolicy
	case broker.CloseTakenOver:
		return errorFrame("session taken over", "another connection took over this session", nil), subprotocol.ClosePolicy
	case broker.CloseReadTimeout:
		return errorFrame("heart-beat timeout", "no frame or heart-beat arrived in time", nil), subprotocol.ClosePolicy
	}
	return nil, subprotocol.CloseNormal
}

// isFrameError reports an error of the frame Reader (malformed or too large).
func isFrameError(err error) bool {
	for _, e := range frameErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
