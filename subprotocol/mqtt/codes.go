package mqtt

import "strconv"

// ReasonCode is an MQTT 5 Reason Code (MQTT 5 §2.4): a one-byte result in
// CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT and
// AUTH. Values below 0x80 report success, 0x80 and above failure. MQTT 3.1
// and 3.1.1 have only CONNACK return codes (Code3*) and the SUBACK failure
// 0x80; AppendPacket maps v5 codes onto them for older clients.
type ReasonCode byte

// MQTT 5 Reason Codes (MQTT 5 §2.4, table 2-6).
const (
	CodeSuccess                     ReasonCode = 0x00
	CodeNormalDisconnection         ReasonCode = 0x00
	CodeGrantedQoS0                 ReasonCode = 0x00
	CodeGrantedQoS1                 ReasonCode = 0x01
	CodeGrantedQoS2                 ReasonCode = 0x02
	CodeDisconnectWithWill          ReasonCode = 0x04
	CodeNoMatchingSubscribers       ReasonCode = 0x10
	CodeNoSubscriptionExisted       ReasonCode = 0x11
	CodeContinueAuthentication      ReasonCode = 0x18
	CodeReAuthenticate              ReasonCode = 0x19
	CodeUnspecifiedError            ReasonCode = 0x80
	CodeMalformedPacket             ReasonCode = 0x81
	CodeProtocolError               ReasonCode = 0x82
	CodeImplementationSpecificError ReasonCode = 0x83
	CodeUnsupportedProtocolVersion  ReasonCode = 0x84
	CodeClientIdentifierNotValid    ReasonCode = 0x85
	CodeBadUsernameOrPassword       ReasonCode = 0x86
	CodeNotAuthorized               ReasonCode = 0x87
	CodeServerUnavailable           ReasonCode = 0x88
	CodeServerBusy                  ReasonCode = 0x89
	CodeBanned                      ReasonCode = 0x8A
	CodeServerShuttingDown          ReasonCode = 0x8B
	CodeBadAuthenticationMethod     ReasonCode = 0x8C
	CodeKeepAliveTimeout            ReasonCode = 0x8D
	CodeSessionTakenOver            ReasonCode = 0x8E
	CodeTopicFilterInvalid          ReasonCode = 0x8F
	CodeTopicNameInvalid            ReasonCode = 0x90
	CodePacketIdentifierInUse       ReasonCode = 0x91
	CodePacketIdentifierNotFound    ReasonCode = 0x92
	CodeReceiveMaximumExceeded      ReasonCode = 0x93
	CodeTopicAliasInvalid           ReasonCode = 0x94
	CodePacketTooLarge              ReasonCode = 0x95
	CodeMessageRateTooHigh          ReasonCode = 0x96
	CodeQuotaExceeded               ReasonCode = 0x97
	CodeAdministrativeAction        ReasonCode = 0x98
	CodePayloadFormatInvalid        ReasonCode = 0x99
	CodeRetainNotSupported          ReasonCode = 0x9A
	CodeQoSNotSupported             ReasonCode = 0x9B
	CodeUseAnotherServer            ReasonCode = 0x9C
	CodeServerMoved                 ReasonCode = 0x9D
	CodeSharedSubsNotSupported      ReasonCode = 0x9E
	CodeConnectionRateExceeded      ReasonCode = 0x9F
	CodeMaximumConnectTime          ReasonCode = 0xA0
	CodeSubIDsNotSupported          ReasonCode = 0xA1
	CodeWildcardSubsNotSupported    ReasonCode = 0xA2
)

// MQTT 3.1 and 3.1.1 CONNACK return codes (MQTT 3.1.1 §3.2.2.3, table 3.1),
// and the 3.1.1 SUBACK failure code (§3.9.3). AppendPacket produces them from
// the v5 codes (see v3ConnackCode); a decoded 3.x CONNACK carries them as is.
const (
	Code3UnacceptableProtocolVersion ReasonCode = 0x01
	Code3IdentifierRejected          ReasonCode = 0x02
	Code3ServerUnavailable           ReasonCode = 0x03
	Code3BadUsernameOrPassword       ReasonCode = 0x04
	Code3NotAuthorized               ReasonCode = 0x05
	Code3SubackFailure               ReasonCode = 0x80
)

var reasonCodeNames = map[ReasonCode]string{
	0x00: "success",
	0x01: "granted QoS 1",
	0x02: "granted QoS 2",
	0x04: "disconnect with will message",
	0x10: "no matching subscribers",
	0x11: "no subscription existed",
	0x18: "continue authentication",
	0x19: "re-authenticate",
	0x80: "unspecified error",
	0x81: "malformed packet",
	0x82: "protocol error",
	0x83: "implementation specific error",
	0x84: "unsupported protocol version",
	0x85: "client identifier not valid",
	0x86: "bad user name or password",
	0x87: "not authorized",
	0x88: "server unavailable",
	0x89: "server busy",
	0x8A: "banned",
	0x8B: "server shutting down",
	0x8C: "bad authentication method",
	0x8D: "keep alive timeout",
	0x8E: "session taken over",
	0x8F: "topic filter invalid",
	0x90: "topic name invalid",
	0x91: "packet identifier in use",
	0x92: "packet identifier not found",
	0x93: "receive maximum exceeded",
	0x94: "topic alias invalid",
	0x95: "packet too large",
	0x96: "message rate too high",
	0x97: "quota exceeded",
	0x98: "administrative action",
	0x99: "payload format invalid",
	0x9A: "retain not supported",
	0x9B: "QoS not supported",
	0x9C: "use another server",
	0x9D: "server moved",
	0x9E: "shared subscriptions not supported",
	0x9F: "connection rate exceeded",
	0xA0: "maximum connect time",
	0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}

// String returns the MQTT 5 name of c in lower case ("malformed packet"),
// or its hex value if the code is not defined. 0x00 reads "success" though
// it is also "normal disconnection" and "granted QoS 0".
func (c ReasonCode) String() string {
	if s, ok := reasonCodeNames[c]; ok {
		return s
	}
	return "reason code 0x" + strconv.FormatUint(uint64(c), 16)
}

// IsError reports whether c reports a failure (MQTT 5 §2.4: "Reason Code
// values of 0x80 or greater indicate failure").
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// v3ConnackCode maps a v5 CONNACK reason code to the nearest MQTT 3.1/3.1.1
// return code (MQTT 3.1.1 §3.2.2.3). Codes below 0x80 pass through, so the
// 3.x codes themselves (Code3*) can be given directly.
func v3ConnackCode(c ReasonCode) ReasonCode {
	switch {
	case c < 0x80:
		return c
	case c == CodeUnsupportedProtocolVersion:
		return Code3UnacceptableProtocolVersion
	case c == CodeClientIdentifierNotValid:
		return Code3IdentifierRejected
	case c == CodeBadUsernameOrPassword:
		return Code3BadUsernameOrPassword
	case c == CodeNotAuthorized, c == CodeBanned, c == CodeBadAuthenticationMethod:
		return Code3NotAuthorized
	}
	return Code3ServerUnavailable
}

// v3SubackCode maps a v5 SUBACK reason code to MQTT 3.1.1: any failure is
// 0x80 [MQTT-3.9.3-2].
func v3SubackCode(c ReasonCode) ReasonCode {
	if c >= 0x80 {
		return Code3SubackFailure
	}
	return c
}

// Error is a decode or protocol failure that carries its MQTT 5 Reason Code,
// so that one value is both the Go error and what to send: a v5 server puts
// Code in CONNACK or DISCONNECT (and Reason in the Reason String property if
// the client asked for problem information); a 3.x server closes the
// connection, or for CodeUnsupportedProtocolVersion and
// CodeClientIdentifierNotValid first sends the CONNACK return code
// (MQTT 3.1.1 §3.2.2.3). errors.Is(err, ErrMalformedPacket) matches any
// Error with the same Code, whatever its Reason.
type Error struct {
	Code   ReasonCode
	Reason string // the failed check, with its spec citation; may be empty
}

// Error returns "mqtt: <code name>: <reason>".
func (e Error) Error() string {
	if e.Reason == "" {
		return "mqtt: " + e.Code.String()
	}
	return "mqtt: " + e.Code.String() + ": " + e.Reason
}

// Is reports whether target is an Error with the same Code.
func (e Error) Is(target error) bool {
	t, ok := target.(Error)
	return ok && t.Code == e.Code
}

// Errors by reason code. Test for them with errors.Is, which compares the
// code only; the Error returned by ReadPacket also names the failed check.
var (
	ErrUnspecified                = Error{Code: CodeUnspecifiedError}
	ErrMalformedPacket            = Error{Code: CodeMalformedPacket}
	ErrProtocolError              = Error{Code: CodeProtocolError}
	ErrImplementationSpecific     = Error{Code: CodeImplementationSpecificError}
	ErrUnsupportedProtocolVersion = Error{Code: CodeUnsupportedProtocolVersion}
	ErrClientIdentifierNotValid   = Error{Code: CodeClientIdentifierNotValid}
	ErrBadUsernameOrPassword      = Error{Code: CodeBadUsernameOrPassword}
	ErrNotAuthorized              = Error{Code: CodeNotAuthorized}
	ErrServerUnavailable          = Error{Code: CodeServerUnavailable}
	ErrServerBusy                 = Error{Code: CodeServerBusy}
	ErrServerShuttingDown         = Error{Code: CodeServerShuttingDown}
	ErrBadAuthenticationMethod    = Error{Code: CodeBadAuthenticationMethod}
	ErrKeepAliveTimeout           = Error{Code: CodeKeepAliveTimeout}
	ErrSessionTakenOver           = Error{Code: CodeSessionTakenOver}
	ErrTopicFilterInvalid         = Error{Code: CodeTopicFilterInvalid}
	ErrTopicNameInvalid           = Error{Code: CodeTopicNameInvalid}
	ErrPacketIdentifierInUse      = Error{Code: CodePacketIdentifierInUse}
	ErrPacketIdentifierNotFound   = Error{Code: CodePacketIdentifierNotFound}
	ErrReceiveMaximumExceeded     = Error{Code: CodeReceiveMaximumExceeded}
	ErrTopicAliasInvalid          = Error{Code: CodeTopicAliasInvalid}
	ErrPacketTooLarge             = Error{Code: CodePacketTooLarge}
	ErrQuotaExceeded              = Error{Code: CodeQuotaExceeded}
	ErrAdministrativeAction       = Error{Code: CodeAdministrativeAction}
	ErrPayloadFormatInvalid       = Error{Code: CodePayloadFormatInvalid}
	ErrRetainNotSupported         = Error{Code: CodeRetainNotSupported}
	ErrQoSNotSupported            = Error{Code: CodeQoSNotSupported}
	ErrSharedSubsNotSupported     = Error{Code: CodeSharedSubsNotSupported}
	ErrSubIDsNotSupported         = Error{Code: CodeSubIDsNotSupported}
	ErrWildcardSubsNotSupported   = Error{Code: CodeWildcardSubsNotSupported}
)

// malformed returns a Malformed Packet error (0x81) for the failed check.
func malformed(reason string) error { return Error{Code: CodeMalformedPacket, Reason: reason} }

// protocolErr returns a Protocol Error (0x82) for the failed check.
func protocolErr(reason string) error { return Error{Code: CodeProtocolError, Reason: reason} }

// Valid reason codes per packet type, MQTT 5 §3.2.2.2, §3.4.2.1, §3.6.2.1,
// §3.9.3, §3.11.3, §3.14.2.1 and §3.15.2.1. A bit n set in word n/64 means
// code n is valid.
type codeSet [4]uint64

func newCodeSet(codes ...ReasonCode) (s codeSet) {
	for _, c := range codes {
		s[c/64] |= 1 << (c % 64)
	}
	return s
}

func (s *codeSet) has(c ReasonCode) bool { return s[c/64]&(1<<(c%64)) != 0 }

var (
	connackCodes = newCodeSet(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
		0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	pubackCodes     = newCodeSet(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99) // PUBACK, PUBREC
	pubrelCodes     = newCodeSet(0x00, 0x92)                                           // PUBREL, PUBCOMP
	subackCodes     = newCodeSet(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	unsubackCodes   = newCodeSet(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	disconnectCodes = newCodeSet(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E,
		0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
		0xA0, 0xA1, 0xA2)
	authCodes   = newCodeSet(0x00, 0x18, 0x19)
	v3SubackSet = newCodeSet(0x00, 0x01, 0x02, 0x80) // [MQTT-3.9.3-2]
)
