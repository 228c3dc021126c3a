package mqtt

import (
	"errors"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// errTextFrame is a text WebSocket frame: MQTT must use binary frames, and
// the server closes the connection on any other [MQTT-6.0.0-1].
var errTextFrame = errors.New("mqtt: text WebSocket frame [MQTT-6.0.0-1]")

// wire is how an error reaches the client.
type wire struct {
	// code is the v5 reason code for DISCONNECT (or CONNACK before the
	// session); 0 sends no packet. MQTT 3.x never gets a DISCONNECT.
	code   ReasonCode
	ws     int                // WebSocket close code
	reason broker.CloseReason // for logs and stats
}

// wireError is the one mapping from an error to what the client sees
// (ARCHITECTURE §3.8): a v5 reason code, a WebSocket close code and a
// close reason. Internal failures get a generic code; the detail goes to
// the log only.
func wireError(err error) wire {
	var me Error
	switch {
	case errors.Is(err, errTextFrame):
		return wire{0, subprotocol.CloseUnsupported, broker.CloseProtocolError}
	case errors.As(err, &me):
		switch me.Code {
		case CodePacketTooLarge:
			return wire{me.Code, subprotocol.CloseTooBig, broker.CloseTooLarge}
		case CodeNotAuthorized, CodeQuotaExceeded, CodeReceiveMaximumExceeded, CodeBadAuthenticationMethod:
			return wire{me.Code, subprotocol.ClosePolicy, broker.CloseProtocolError}
		}
		return wire{me.Code, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrInvalidTopic):
		return wire{CodeTopicNameInvalid, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrInvalidFilter):
		return wire{CodeTopicFilterInvalid, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrNotAuthorized):
		return wire{CodeNotAuthorized, subprotocol.ClosePolicy, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrControlOverflow), errors.Is(err, broker.ErrTooManySubs):
		return wire{CodeQuotaExceeded, subprotocol.ClosePolicy, broker.CloseProtocolError}
	case errors.Is(err, broker.ErrShuttingDown), errors.Is(err, broker.ErrSessionClosed):
		return wire{CodeServerShuttingDown, subprotocol.CloseGoingAway, broker.CloseServerShutdown}
	}
	return wire{CodeUnspecifiedError, subprotocol.CloseInternal, broker.CloseInternalError}
}

// closeCode is the v5 DISCONNECT reason code and WebSocket close code for a
// session the server ends for reason (MQTT 5 §4.13): 0 sends no DISCONNECT.
func closeCode(reason broker.CloseReason) (ReasonCode, int) {
	switch reason {
	case broker.CloseSlowConsumer:
		return CodeQuotaExceeded, subprotocol.ClosePolicy
	case broker.CloseTakenOver:
		return CodeSessionTakenOver, subprotocol.ClosePolicy
	case broker.CloseServerShutdown:
		return CodeServerShuttingDown, subprotocol.CloseGoingAway
	case broker.CloseReadTimeout:
		return CodeKeepAliveTimeout, subprotocol.ClosePolicy
	case broker.CloseProtocolError:
		return CodeProtocolError, subprotocol.CloseProtocolError
	case broker.CloseTooLarge:
		return CodePacketTooLarge, subprotocol.CloseTooBig
	case broker.CloseInternalError:
		return CodeUnspecifiedError, subprotocol.CloseInternal
	}
	return 0, subprotocol.CloseNormal
}

// subackCode maps a SubscribeReplace failure to a v5 SUBACK reason code;
// AppendPacket sends every failure to 3.x clients as 0x80 [MQTT-3.9.3-2].
func subackCode(err error) ReasonCode {
	switch {
	case errors.Is(err, broker.ErrInvalidFilter):
		return CodeTopicFilterInvalid
	case errors.Is(err, broker.ErrNotAuthorized):
		return CodeNotAuthorized
	case errors.Is(err, broker.ErrTooManySubs):
		return CodeQuotaExceeded
	}
	return CodeUnspecifiedError
}
