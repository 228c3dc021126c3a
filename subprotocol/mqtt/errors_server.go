package mqtt

import (
	"errors"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/subprotocol"
)

// wire is how an error reaches the client.
type wire struct {
	// code is the v5 reason code for DISCONNECT (or CONNACK before the
	// session); 0 sends no packet. MQTT 3.x never gets a DISCONNECT.
	code   ReasonCode
	ws     int                // WebSocket close code
	reason broker.CloseReason // for logs and stats
}

// answers is the set of packets a broker error may be answered in.
type answers uint8

const (
	inDisconnect answers = 1 << iota // wireError: DISCONNECT, then the close
	inConnack                        // connackCode: a refused CONNECT
	inPuback                         // pubackCode: PUBACK, PUBREC
	inSuback                         // subackCode
	inUnsuback                       // unsubackCode
)

// brokerCode is one broker error's answer.
type brokerCode struct {
	err  error
	wire wire // the v5 reason code; the close when the connection ends
	in   answers
}

// brokerCodes is the one mapping from broker errors to what an MQTT client
// sees (ARCHITECTURE §3.8): the v5 reason code, and for an error that ends
// the connection the WebSocket close code and the close reason. The first
// row that matches (errors.Is) and lists the packet answers; the functions
// below add each packet's own rules: the codes it may carry (MQTT 5 §2.4),
// its answer to an error not listed, and what 3.x clients get.
var brokerCodes = [...]brokerCode{
	{broker.ErrInvalidTopic, wire{CodeTopicNameInvalid, subprotocol.CloseProtocolError, broker.CloseProtocolError}, inDisconnect | inPuback},
	{broker.ErrInvalidFilter, wire{CodeTopicFilterInvalid, subprotocol.CloseProtocolError, broker.CloseProtocolError}, inDisconnect | inSuback},
	// The token's exp passed: v5 DISCONNECT 0xA0 Maximum connect time; 3.x
	// just the close.
	{broker.ErrCredentialExpired, wire{CodeMaximumConnectTime, subprotocol.ClosePolicy, broker.CloseAuthFailed}, inDisconnect},
	{broker.ErrBadCredentials, wire{CodeBadUsernameOrPassword, subprotocol.ClosePolicy, broker.CloseAuthFailed}, inConnack},
	{broker.ErrNotAuthorized, wire{CodeNotAuthorized, subprotocol.ClosePolicy, broker.CloseProtocolError}, inDisconnect | inConnack | inPuback | inSuback},
	{broker.ErrBanned, wire{CodeBanned, subprotocol.ClosePolicy, broker.CloseAuthFailed}, inConnack},
	{broker.ErrClientIDOwned, wire{CodeClientIdentifierNotValid, subprotocol.ClosePolicy, broker.CloseAuthFailed}, inConnack},
	{broker.ErrSessionQuota, wire{CodeQuotaExceeded, subprotocol.ClosePolicy, broker.CloseAuthFailed}, inConnack},
	// Delivered but not retained (before ErrQuotaExceeded: Publish joins
	// both when both happened).
	{broker.ErrRetainedQuota, wire{CodeQuotaExceeded, 0, 0}, inPuback},
	// Another client's stored queue is full: the publisher is not told
	// (pubackCode).
	{broker.ErrQuotaExceeded, wire{CodeSuccess, 0, 0}, inPuback},
	{broker.ErrStore, wire{CodeUnspecifiedError, subprotocol.CloseInternal, broker.CloseInternalError}, inPuback},
	{broker.ErrControlOverflow, wire{CodeQuotaExceeded, subprotocol.ClosePolicy, broker.CloseProtocolError}, inDisconnect},
	{broker.ErrTooManySubs, wire{CodeQuotaExceeded, subprotocol.ClosePolicy, broker.CloseProtocolError}, inDisconnect | inSuback},
	// CONNACK has no 0x8B: connackCode answers 0x88 Server unavailable.
	{broker.ErrShuttingDown, wire{CodeServerShuttingDown, subprotocol.CloseGoingAway, broker.CloseServerShutdown}, inDisconnect | inConnack},
	{broker.ErrSessionClosed, wire{CodeServerShuttingDown, subprotocol.CloseGoingAway, broker.CloseServerShutdown}, inDisconnect},
	{broker.ErrNoSuchSub, wire{CodeNoSubscriptionExisted, 0, 0}, inUnsuback},
}

// brokerAnswer returns the row of brokerCodes for err in packet, if any.
func brokerAnswer(err error, packet answers) (brokerCode, bool) {
	for _, bc := range brokerCodes {
		if bc.in&packet != 0 && errors.Is(err, bc.err) {
			return bc, true
		}
	}
	return brokerCode{}, false
}

// wireError maps an error that ends the connection to what the client
// sees: a v5 reason code (DISCONNECT), a WebSocket close code and a close
// reason. A codec or protocol Error carries its own code; a text frame
// gets no packet, only the close [MQTT-6.0.0-1]; broker errors come from
// brokerCodes. Internal failures get a generic code; the detail goes to
// the log only.
func wireError(err error) wire {
	var me Error
	switch {
	case errors.Is(err, subprotocol.ErrTextFrame):
		return wire{0, subprotocol.CloseUnsupported, broker.CloseProtocolError}
	case errors.As(err, &me):
		switch me.Code {
		case CodePacketTooLarge:
			return wire{me.Code, subprotocol.CloseTooBig, broker.CloseTooLarge}
		case CodeNotAuthorized, CodeQuotaExceeded, CodeReceiveMaximumExceeded, CodeBadAuthenticationMethod:
			return wire{me.Code, subprotocol.ClosePolicy, broker.CloseProtocolError}
		}
		return wire{me.Code, subprotocol.CloseProtocolError, broker.CloseProtocolError}
	}
	if bc, ok := brokerAnswer(err, inDisconnect); ok {
		return bc.wire
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
// 0x88→0x03. A code CONNACK cannot carry becomes 0x88 Server unavailable;
// an error not in brokerCodes means the check itself failed.
func connackCode(err error) (ReasonCode, int) {
	bc, ok := brokerAnswer(err, inConnack)
	switch {
	case !ok:
		return CodeServerUnavailable, subprotocol.CloseInternal
	case !connackCodes.has(bc.wire.code):
		return CodeServerUnavailable, bc.wire.ws
	}
	return bc.wire.code, bc.wire.ws
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
//   - Anything else closes the connection (wireError).
func pubackCode(err error, version byte) (code ReasonCode, refused bool, fatal error) {
	if err == nil {
		return CodeSuccess, false, nil
	}
	bc, ok := brokerAnswer(err, inPuback)
	if !ok {
		return 0, true, err
	}
	delivered := bc.err == broker.ErrRetainedQuota || bc.err == broker.ErrQuotaExceeded
	switch {
	case version >= Version5:
		return bc.wire.code, !delivered, nil
	case delivered:
		return CodeSuccess, false, nil
	case bc.err == broker.ErrNotAuthorized:
		return CodeSuccess, true, nil
	}
	return 0, true, err
}

// subackCode maps a SubscribeReplace failure to a v5 SUBACK reason code;
// AppendPacket sends every failure to 3.x clients as 0x80 [MQTT-3.9.3-2].
func subackCode(err error) ReasonCode {
	if bc, ok := brokerAnswer(err, inSuback); ok {
		return bc.wire.code
	}
	return CodeUnspecifiedError
}

// unsubackCode maps an Unsubscribe failure to a v5 UNSUBACK reason code
// (MQTT 5 §3.11.3); 3.x UNSUBACK has none.
func unsubackCode(err error) ReasonCode {
	if bc, ok := brokerAnswer(err, inUnsuback); ok {
		return bc.wire.code
	}
	return CodeUnspecifiedError
}
