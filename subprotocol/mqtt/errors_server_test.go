package mqtt

import (
	"errors"
	"fmt"
	"testing"

	"github.com/duplexmq/duplex/broker"
	ws "github.com/duplexmq/duplex/subprotocol"
)

// TestBrokerErrorCodes pins what a client sees for every broker error in
// each packet that can answer one (brokerCodes and the functions over it).
func TestBrokerErrorCodes(t *testing.T) {
	const fatal = 0xFF // pubackCode closes the connection instead
	type want struct {
		disc      wire
		connack   ReasonCode
		connackWS int
		puback3   ReasonCode
		puback5   ReasonCode
		suback    ReasonCode
		unsuback  ReasonCode
		refused5  bool
		refused3  bool
	}
	internal := wire{CodeUnspecifiedError, ws.CloseInternal, broker.CloseInternalError}
	cases := []struct {
		err  error
		want want
	}{
		{broker.ErrInvalidTopic, want{wire{0x90, ws.CloseProtocolError, broker.CloseProtocolError}, 0x88, ws.CloseInternal, fatal, 0x90, 0x80, 0x80, true, true}},
		{broker.ErrInvalidFilter, want{wire{0x8F, ws.CloseProtocolError, broker.CloseProtocolError}, 0x88, ws.CloseInternal, fatal, fatal, 0x8F, 0x80, true, true}},
		{broker.ErrInvalidQueue, want{internal, 0x88, ws.CloseInternal, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrNotAuthorized, want{wire{0x87, ws.ClosePolicy, broker.CloseProtocolError}, 0x87, ws.ClosePolicy, 0x00, 0x87, 0x87, 0x80, true, true}},
		{broker.ErrBadCredentials, want{internal, 0x86, ws.ClosePolicy, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrBanned, want{internal, 0x8A, ws.ClosePolicy, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrClientIDOwned, want{internal, 0x85, ws.ClosePolicy, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrCredentialExpired, want{wire{0xA0, ws.ClosePolicy, broker.CloseAuthFailed}, 0x88, ws.CloseInternal, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrRetainedQuota, want{internal, 0x88, ws.CloseInternal, 0x00, 0x97, 0x80, 0x80, false, false}},
		{broker.ErrSessionQuota, want{internal, 0x97, ws.ClosePolicy, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrTooManySubs, want{wire{0x97, ws.ClosePolicy, broker.CloseProtocolError}, 0x88, ws.CloseInternal, fatal, fatal, 0x97, 0x80, true, true}},
		{broker.ErrNoSuchSub, want{internal, 0x88, ws.CloseInternal, fatal, fatal, 0x80, 0x11, true, true}},
		{broker.ErrSessionClosed, want{wire{0x8B, ws.CloseGoingAway, broker.CloseServerShutdown}, 0x88, ws.CloseInternal, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrControlOverflow, want{wire{0x97, ws.ClosePolicy, broker.CloseProtocolError}, 0x88, ws.CloseInternal, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrShuttingDown, want{wire{0x8B, ws.CloseGoingAway, broker.CloseServerShutdown}, 0x88, ws.CloseGoingAway, fatal, fatal, 0x80, 0x80, true, true}},
		{broker.ErrQuotaExceeded, want{internal, 0x88, ws.CloseInternal, 0x00, 0x00, 0x80, 0x80, false, false}},
		{broker.ErrStore, want{internal, 0x88, ws.CloseInternal, fatal, 0x80, 0x80, 0x80, true, true}},
		// Publish joins both quotas: the retained one decides.
		{errors.Join(broker.ErrQuotaExceeded, broker.ErrRetainedQuota), want{internal, 0x88, ws.CloseInternal, 0x00, 0x97, 0x80, 0x80, false, false}},
		{fmt.Errorf("%w: %w", broker.ErrBadCredentials, errors.New("no such user")), want{internal, 0x86, ws.ClosePolicy, fatal, fatal, 0x80, 0x80, true, true}},
		{errors.New("disk on fire"), want{internal, 0x88, ws.CloseInternal, fatal, fatal, 0x80, 0x80, true, true}},
	}
	for _, c := range cases {
		w := c.want
		if got := wireError(c.err); got != w.disc {
			t.Errorf("wireError(%v) = %+v, want %+v", c.err, got, w.disc)
		}
		if code, wsc := connackCode(c.err); code != w.connack || wsc != w.connackWS {
			t.Errorf("connackCode(%v) = %#x, %d; want %#x, %d", c.err, byte(code), wsc, byte(w.connack), w.connackWS)
		}
		for _, v := range []struct {
			version byte
			code    ReasonCode
			refused bool
		}{{Version311, w.puback3, w.refused3}, {Version5, w.puback5, w.refused5}} {
			code, refused, f := pubackCode(c.err, v.version)
			if v.code == fatal {
				if f == nil || !refused {
					t.Errorf("pubackCode(%v, %d) = %#x, %v, nil; want fatal", c.err, v.version, byte(code), refused)
				}
				continue
			}
			if f != nil || code != v.code || refused != v.refused {
				t.Errorf("pubackCode(%v, %d) = %#x, %v, %v; want %#x, %v", c.err, v.version, byte(code), refused, f, byte(v.code), v.refused)
			}
		}
		if got := subackCode(c.err); got != w.suback {
			t.Errorf("subackCode(%v) = %#x, want %#x", c.err, byte(got), byte(w.suback))
		}
		if got := unsubackCode(c.err); got != w.unsuback {
			t.Errorf("unsubackCode(%v) = %#x, want %#x", c.err, byte(got), byte(w.unsuback))
		}
	}
	// A codec Error carries its own code; a text frame only closes.
	if got := wireError(ws.ErrTextFrame); got != (wire{0, ws.CloseUnsupported, broker.CloseProtocolError}) {
		t.Errorf("wireError(text frame) = %+v", got)
	}
	if got := wireError(Error{Code: CodePacketTooLarge}); got != (wire{CodePacketTooLarge, ws.CloseTooBig, broker.CloseTooLarge}) {
		t.Errorf("wireError(packet too large) = %+v", got)
	}
}
