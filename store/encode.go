package store

import (
	"encoding/binary"
	"fmt"
	"time"
)

// On-disk record format. Every record starts with one version byte; the
// fields follow in a fixed order. Integers are varints (encoding/binary),
// strings and byte slices are a uvarint length followed by the bytes, times
// are a presence byte followed by a varint of Unix nanoseconds. A change to
// the layout needs a new version byte and a new golden file in testdata/.
// Decoding checks every length against the bytes left, so a corrupt record
// gives ErrCorrupt and never allocates more than its own size.
//
// Version 2 (Session and Msg records) is version 1 followed by one more
// string, the owner (Session.Owner, Msg.Owner). The encoder writes the
// lowest version that holds the record: version 1 when the owner is "",
// so queued messages and ownerless sessions keep their version 1 bytes,
// and a version 1 record still decodes (with an empty owner). Sub records
// have only version 1.
const (
	recordV1 = 1
	recordV2 = 2
)

const (
	flagRetain  = 1 << 0
	flagExpires = 1 << 1

	flagCleanStart = 1 << 0
	flagWill       = 1 << 1

	flagNoLocal           = 1 << 0
	flagRetainAsPublished = 1 << 1
	flagDurable           = 1 << 2
)

type enc struct{ b []byte }

func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) string(s string)  { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.byte(0)
		return
	}
	e.byte(1)
	e.varint(t.UnixNano())
}

func (e *enc) msg(m *Msg) {
	e.uvarint(m.ID)
	e.string(m.Topic)
	e.string(m.Queue)
	e.bytes(m.Payload)
	e.string(m.ContentType)
	e.string(m.ResponseTopic)
	e.bytes(m.CorrelationData)
	e.byte(m.PayloadFormat)
	e.uvarint(uint64(len(m.Props)))
	for _, p := range m.Props {
		e.string(p.Key)
		e.string(p.Value)
	}
	e.byte(m.QoS)
	var f byte
	if m.Retain {
		f |= flagRetain
	}
	e.byte(f)
	e.time(m.Expires)
}

func encodeMsg(m *Msg) []byte {
	e := enc{b: make([]byte, 0, 64+len(m.Topic)+len(m.Payload)+len(m.Owner))}
	if m.Owner == "" {
		e.byte(recordV1)
		e.msg(m)
		return e.b
	}
	e.byte(recordV2)
	e.msg(m)
	e.string(m.Owner)
	return e.b
}

func encodeSession(s *Session) []byte {
	e := enc{b: make([]byte, 0, 64+len(s.State)+len(s.Owner))}
	v := byte(recordV1)
	if s.Owner != "" {
		v = recordV2
	}
	e.byte(v)
	e.string(s.ID)
	e.string(s.Protocol)
	e.varint(int64(s.Expiry))
	e.time(s.ExpiresAt)
	var f byte
	if s.CleanStart {
		f |= flagCleanStart
	}
	if s.Will != nil {
		f |= flagWill
	}
	e.byte(f)
	if s.Will != nil {
		e.varint(int64(s.Will.Delay))
		e.msg(&s.Will.Msg)
	}
	e.bytes(s.State)
	if v == recordV2 {
		e.string(s.Owner)
	}
	return e.b
}

func encodeSub(s *Sub) []byte {
	e := enc{b: make([]byte, 0, 32+len(s.Key)+len(s.Filter))}
	e.byte(recordV1)
	e.string(s.Key)
	e.string(s.Filter)
	e.string(s.Queue)
	e.string(s.Group)
	e.byte(s.QoS)
	var f byte
	if s.NoLocal {
		f |= flagNoLocal
	}
	if s.RetainAsPublished {
		f |= flagRetainAsPublished
	}
	if s.Durable {
		f |= flagDurable
	}
	e.byte(f)
	e.byte(s.RetainHandling)
	e.uvarint(uint64(s.SubID))
	return e.b
}

// dec reads a record; the first error sticks and later reads return zero
// values.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
}

func (d *dec) byte(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// raw returns the next length-prefixed field, aliasing d.b.
func (d *dec) raw(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) bytes(what string) []byte {
	p := d.raw(what)
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *dec) string(what string) string { return string(d.raw(what)) }

func (d *dec) time(what string) time.Time {
	switch d.byte(what) {
	case 0:
		return time.Time{}
	case 1:
		n := d.varint(what)
		if d.err != nil {
			return time.Time{}
		}
		return time.Unix(0, n).UTC()
	default:
		d.fail(what)
		return time.Time{}
	}
}

func (d *dec) flags(what string, known byte) byte {
	f := d.byte(what)
	if f&^known != 0 {
		d.fail(what)
	}
	return f
}

// version reads the version byte and checks it is at most maxVersion.
func (d *dec) version(what string, maxVersion byte) byte {
	v := d.byte(what + " version")
	if d.err == nil && (v < recordV1 || v > maxVersion) {
		d.err = fmt.Errorf("%w: %s record version %d", ErrCorrupt, what, v)
	}
	return v
}

func (d *dec) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(what + " (trailing bytes)")
	}
	return d.err
}

func (d *dec) msg(m *Msg) {
	m.ID = d.uvarint("msg id")
	m.Topic = d.string("msg topic")
	m.Queue = d.string("msg queue")
	m.Payload = d.bytes("msg payload")
	m.ContentType = d.string("msg content type")
	m.ResponseTopic = d.string("msg response topic")
	m.CorrelationData = d.bytes("msg correlation data")
	m.PayloadFormat = d.byte("msg payload format")
	n := d.uvarint("msg props")
	// Each property takes at least two bytes: bound the allocation.
	if d.err == nil && n > uint64(len(d.b)/2) {
		d.fail("msg props")
	}
	if d.err == nil && n > 0 {
		m.Props = make([]Prop, n)
		for i := range m.Props {
			m.Props[i].Key = d.string("msg prop key")
			m.Props[i].Value = d.string("msg prop value")
		}
	}
	m.QoS = d.byte("msg qos")
	m.Retain = d.flags("msg flags", flagRetain)&flagRetain != 0
	m.Expires = d.time("msg expires")
}

func decodeMsg(b []byte) (Msg, error) {
	var m Msg
	d := dec{b: b}
	v := d.version("msg", recordV2)
	d.msg(&m)
	if v == recordV2 {
		m.Owner = d.string("msg owner")
	}
	if err := d.end("msg"); err != nil {
		return Msg{}, err
	}
	return m, nil
}

func decodeSession(b []byte) (Session, error) {
	var s Session
	d := dec{b: b}
	v := d.version("session", recordV2)
	s.ID = d.string("session id")
	s.Protocol = d.string("session protocol")
	s.Expiry = time.Duration(d.varint("session expiry"))
	s.ExpiresAt = d.time("session expires at")
	f := d.flags("session flags", flagCleanStart|flagWill)
	s.CleanStart = f&flagCleanStart != 0
	if f&flagWill != 0 && d.err == nil {
		s.Will = &Will{Delay: time.Duration(d.varint("will delay"))}
		d.msg(&s.Will.Msg)
	}
	s.State = d.bytes("session state")
	if v == recordV2 {
		s.Owner = d.string("session owner")
	}
	if err := d.end("session"); err != nil {
		return Session{}, err
	}
	return s, nil
}

func decodeSub(b []byte) (Sub, error) {
	var s Sub
	d := dec{b: b}
	d.version("sub", recordV1)
	s.Key = d.string("sub key")
	s.Filter = d.string("sub filter")
	s.Queue = d.string("sub queue")
	s.Group = d.string("sub group")
	s.QoS = d.byte("sub qos")
	f := d.flags("sub flags", flagNoLocal|flagRetainAsPublished|flagDurable)
	s.NoLocal = f&flagNoLocal != 0
	s.RetainAsPublished = f&flagRetainAsPublished != 0
	s.Durable = f&flagDurable != 0
	s.RetainHandling = d.byte("sub retain handling")
	id := d.uvarint("sub id")
	if id > 1<<32-1 {
		d.fail("sub id")
	}
	s.SubID = uint32(id)
	if err := d.end("sub"); err != nil {
		return Sub{}, err
	}
	return s, nil
}

// payloadLen reads the payload length of an encoded Msg record without
// decoding it (Count); a malformed record counts as its whole size.
func payloadLen(val []byte) int64 {
	if len(val) == 0 || (val[0] != recordV1 && val[0] != recordV2) {
		return int64(len(val))
	}
	b := val[1:]
	if _, n := binary.Uvarint(b); n > 0 { // ID
		b = b[n:]
	} else {
		return int64(len(val))
	}
	for i := 0; i < 2; i++ { // topic, queue
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return int64(len(val))
		}
		b = b[n+int(l):]
	}
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return int64(len(val))
	}
	return int64(l)
}
