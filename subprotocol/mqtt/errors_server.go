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
	case errors.Is(err, broker.ErrCredentialExpired):
		// The token's exp passed: v5 DISCONNECT 0xA0 Maximum connect time;
		// 3.x just the close.
		return wire{CodeMaximumConnectTime, subprotocol.ClosePolicy, broker.CloseAuthFailed}
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
	case broker.CloseAdminAction:
		return CodeAdministrativeAction, subprotocol.ClosePolicy // 0x98 (MQTT 5 §3.14.2.1)
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

// connackCode maps a refused login (the Authenticator's error, or
// Router.Open's) to a v5 CONNACK reason code and the WebSocket close code
// after it; AppendPacket turns the reason code into the 3.x return code
// (v3ConnackCode): 0x86→0x04, 0x87→0x05, 0x8A→0x05, 0x85→0x02, 0x97 and
// 0x88→0x03.
func connackCode(err error) (ReasonCode, int) {
	switch {
	case errors.Is(err, broker.ErrBadCredentials):
		return CodeBadUsernameOrPassword, subprotocol.ClosePolicy
	case errors.Is(err, broker.ErrNotAuthorized):
		return CodeNotAuthorized, subprotocol.ClosePolicy
	case errors.Is(err, broker.ErrBanned):
		return CodeBanned, subprotocol.ClosePolicy
	case errors.Is(err, broker.ErrClientIDOwned):
		return CodeClientIdentifierNotValid, subprotocol.ClosePolicy
	case errors.Is(err, broker.ErrSessionQuota):
		return CodeQuotaExceeded, subprotocol.ClosePolicy
	case errors.Is(err, broker.ErrShuttingDown):
		return CodeServerUnavailable, subprotocol.CloseGoingAway
	}
	return CodeServerUnavailable, subprotocol.CloseInternal // the check itself failed
}

// pubackCode is the answer to a PUBLISH that Router.Publish returned err
// for: the PUBACK or PUBREC reason code, whether the message was refused
// outright (not delivered), and a non-nil fatal error when the connection
// must close instead.
//
//   - Not authorized: v5 0x87 (MQTT 5 §3.4.2.1); 3.x cannot refuse a
//     PUBLISH, so it is acknowledged as usual and dropped (counted), as
//     mosquitto does, and the connection is kept.
//   - Retained quota: delivered but not retained, which is what the
//     publisher asked for: v5 0x97 (never success); 3.x a normal
//     acknowledgement (counted).
//   - Durable subscriber quota (another client's stored queue is full):
//     delivered to every other subscriber, so the publisher is not told it
//     failed (clients resend on a code >= 0x80, which would punish the
//     well-behaved publisher for the offline subscriber): success in every
//     version; the router counts and logs the subscriber's loss.
//   - Invalid topic: v5 0x90. Store failure: v5 0x80 (not routed, the
//     client may retry); 3.x closes [MQTT-3.3.5-2].
func pubackCode(err error, version byte) (code ReasonCode, refused bool, fatal error) {
	v5 := version >= Version5
	switch {
	case err == nil:
		return CodeSuccess, false, nil
	case errors.Is(err, broker.ErrNotAuthorized):
		if !v5 {
			return CodeSuccess, true, nil
		}
		return CodeNotAuthorized, true, nil
	case errors.Is(err, broker.ErrRetainedQuota):
		if !v5 {
			return CodeSuccess, false, nil
		}
		return CodeQuotaExceeded, false, nil
	case errors.Is(err, broker.ErrQuotaExceeded):
		return CodeSuccess, false, nil
	case !v5:
		return 0, true, err
	case errors.Is(err, broker.ErrInvalidTopic):
		return CodeTopicNameInvalid, true, nil
	case errors.Is(err, broker.ErrStore):
		return CodeUnspecifiedError, true, nil
	}
	return 0, true, err
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
