package mqtt

// Pingreq is the PINGREQ packet (MQTT 5 §3.12): no variable header, no
// payload.
type Pingreq struct{}

// Type returns PINGREQ.
func (*Pingreq) Type() PacketType { return PINGREQ }

func (*Pingreq) flags() byte                          { return 0 }
func (*Pingreq) size(byte) int                        { return 0 }
func (*Pingreq) appendBody(dst []byte, _ byte) []byte { return dst }

// Pingresp is the PINGRESP packet (MQTT 5 §3.13): no variable header, no
// payload.
type Pingresp struct{}

// Type returns PINGRESP.
func (*Pingresp) Type() PacketType { return PINGRESP }

func (*Pingresp) flags() byte                          { return 0 }
func (*Pingresp) size(byte) int                        { return 0 }
func (*Pingresp) appendBody(dst []byte, _ byte) []byte { return dst }

// Disconnect is the DISCONNECT packet (MQTT 5 §3.14, MQTT 3.1.1 §3.14). In
// MQTT 3.x it is empty and only a client sends it; in v5 either side may,
// with a reason code. Encoding for 3.x drops ReasonCode and Properties.
type Disconnect struct {
	ReasonCode ReasonCode // MQTT 5 only
	Properties Properties // MQTT 5 only
}

// Type returns DISCONNECT.
func (*Disconnect) Type() PacketType { return DISCONNECT }

func decodeDisconnect(c *cursor, v byte) (*Disconnect, error) {
	p := new(Disconnect)
	if v >= Version5 {
		var err error
		if p.ReasonCode, err = decodeReasonAndProps(c, &p.Properties, DISCONNECT, &disconnectCodes); err != nil {
			return nil, err
		}
	}
	return p, endOfPacket(c, DISCONNECT)
}

// decodeReasonAndProps reads the optional Reason Code and Properties of a v5
// DISCONNECT or AUTH: a Remaining Length of 0 means Success and none, of 1
// a code and no properties (MQTT 5 §3.14.2.1, §3.15.2.1). Codes outside
// valid are a protocol error.
func decodeReasonAndProps(c *cursor, props *Properties, t PacketType, valid *codeSet) (ReasonCode, error) {
	if c.left() == 0 {
		return CodeSuccess, nil
	}
	b, _ := c.readByte("reason code")
	code := ReasonCode(b)
	if !valid.has(code) {
		return code, protocolErr("invalid " + t.String() + " reason code")
	}
	if c.left() > 0 {
		if err := props.decode(c, t); err != nil {
			return code, err
		}
	}
	return code, nil
}

func (p *Disconnect) flags() byte { return 0 }

func (p *Disconnect) size(v byte) int {
	if v < Version5 {
		return 0
	}
	return reasonAndPropsSize(p.ReasonCode, &p.Properties, DISCONNECT)
}

func (p *Disconnect) appendBody(dst []byte, v byte) []byte {
	if v < Version5 {
		return dst
	}
	return appendReasonAndProps(dst, p.ReasonCode, &p.Properties, DISCONNECT)
}

// reasonAndPropsSize returns the encoded size of a v5 DISCONNECT or AUTH
// body, using the short forms when they apply.
func reasonAndPropsSize(code ReasonCode, props *Properties, t PacketType) int {
	n := props.size(t)
	switch {
	case n > 0:
		return 1 + varintLen(n) + n
	case code != CodeSuccess:
		return 1
	}
	return 0
}

func appendReasonAndProps(dst []byte, code ReasonCode, props *Properties, t PacketType) []byte {
	if props.isZero(t) {
		if code != CodeSuccess {
			dst = append(dst, byte(code))
		}
		return dst
	}
	return props.appendTo(append(dst, byte(code)), t)
}

// Auth is the MQTT 5 AUTH packet of enhanced authentication (MQTT 5 §3.15).
// Except in the empty form (Success, no properties), it must carry an
// Authentication Method.
type Auth struct {
	ReasonCode ReasonCode // CodeSuccess, CodeContinueAuthentication or CodeReAuthenticate
	Properties Properties
}

// Type returns AUTH.
func (*Auth) Type() PacketType { return AUTH }

func decodeAuth(c *cursor) (*Auth, error) {
	p := new(Auth)
	empty := c.left() == 0
	var err error
	if p.ReasonCode, err = decodeReasonAndProps(c, &p.Properties, AUTH, &authCodes); err != nil {
		return nil, err
	}
	// MQTT 5 §3.15.2.2.2: "It is a Protocol Error to omit the
	// Authentication Method".
	if !empty && p.Properties.AuthMethod == "" {
		return nil, protocolErr("AUTH without authentication method (MQTT 5 §3.15.2.2.2)")
	}
	return p, endOfPacket(c, AUTH)
}

func (p *Auth) flags() byte { return 0 }

func (p *Auth) size(byte) int { return reasonAndPropsSize(p.ReasonCode, &p.Properties, AUTH) }

func (p *Auth) appendBody(dst []byte, _ byte) []byte {
	return appendReasonAndProps(dst, p.ReasonCode, &p.Properties, AUTH)
}
