package cluster

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/duplexmq/duplex/broker"
)

// The message ⇄ NATS message encoding. The payload is the NATS payload;
// every other field of broker.Message that means something on another node
// is a header, set only when it is not the zero value. Values are escaped
// like subject tokens (subject.go: printable ASCII, "%" for the empty
// string), so that a value may hold anything, CR and LF included, and
// survives NATS's header parsing (which trims spaces) byte for byte.
const (
	hdrNode    = "Duplex-Node"   // sending node's id and boot: the receiver drops its own
	hdrSeq     = "Duplex-Seq"    // sending node's message number: copies for overlapping subscriptions are dropped
	hdrTopic   = "Duplex-Topic"  // EncodeTopic of the topic, on the long subject only
	hdrCT      = "Duplex-CT"     // ContentType
	hdrRT      = "Duplex-RT"     // ResponseTopic
	hdrReplyTo = "Duplex-Reply"  // ReplyTo
	hdrCorr    = "Duplex-Corr"   // CorrelationData (bytes, escaped)
	hdrPF      = "Duplex-PF"     // PayloadFormat, decimal
	hdrProp    = "Duplex-Prop"   // one value per Props entry, in order, duplicates kept: token(key) "." token(value)
	hdrQoS     = "Duplex-QoS"    // QoS, decimal
	hdrRetain  = "Duplex-Retain" // "1" when Retain
	hdrFrom    = "Duplex-From"   // From
	hdrOrigin  = "Duplex-Origin" // Origin
	hdrTTL     = "Duplex-TTL"    // Expires as the milliseconds left when sent (clocks need not agree)
)

// esc is a header value: the token encoding of s.
func esc(s string) string { return string(appendToken(nil, s)) }

// origin identifies one run of one node: its id and a boot number.
type origin struct {
	node string
	boot string
}

// encodeMsg returns the NATS message for m, published by node o with
// number seq, on its topic's subject, or with the topic in a header on
// the long subject or, retained, the retained one. It returns nil when m
// has already expired.
func encodeMsg(subs Subjects, o origin, seq uint64, m *broker.Message, now time.Time) *nats.Msg {
	subj, long := subs.Topic(m.Topic)
	if m.Retain {
		subj, long = subs.Retained, true
	}
	h := make(nats.Header, 8)
	h.Set(hdrNode, o.node+"."+o.boot)
	h.Set(hdrSeq, strconv.FormatUint(seq, 10))
	if long {
		h.Set(hdrTopic, EncodeTopic(m.Topic))
	}
	set := func(k, v string) {
		if v != "" {
			h.Set(k, esc(v))
		}
	}
	set(hdrCT, m.ContentType)
	set(hdrRT, m.ResponseTopic)
	set(hdrReplyTo, m.ReplyTo)
	if m.CorrelationData != nil {
		h.Set(hdrCorr, esc(string(m.CorrelationData)))
	}
	if m.PayloadFormat != 0 {
		h.Set(hdrPF, strconv.Itoa(int(m.PayloadFormat)))
	}
	for _, p := range m.Props {
		h.Add(hdrProp, esc(p.Key)+"."+esc(p.Value))
	}
	if m.QoS != 0 {
		h.Set(hdrQoS, strconv.Itoa(int(m.QoS)))
	}
	if m.Retain {
		h.Set(hdrRetain, "1")
	}
	set(hdrFrom, string(m.From))
	set(hdrOrigin, m.Origin)
	if !m.Expires.IsZero() {
		left := m.Expires.Sub(now).Milliseconds()
		if left <= 0 {
			return nil
		}
		h.Set(hdrTTL, strconv.FormatInt(left, 10))
	}
	return &nats.Msg{Subject: subj, Header: h, Data: m.Payload}
}

var errHeader = errors.New("cluster: malformed message header")

// decodeMsg is encodeMsg's inverse: the message, the sending node and its
// message number. now is the receive time (Expires = now + TTL).
func decodeMsg(subs Subjects, nm *nats.Msg, now time.Time) (*broker.Message, string, uint64, error) {
	h := nm.Header
	m := &broker.Message{Payload: nm.Data}
	var err error
	if nm.Subject == subs.Long || nm.Subject == subs.Retained {
		if m.Topic, err = DecodeTopic(h.Get(hdrTopic)); err != nil {
			return nil, "", 0, err
		}
	} else if m.Topic, err = subs.TopicOf(nm.Subject); err != nil {
		return nil, "", 0, err
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	get := func(k string) string {
		v := h.Get(k)
		if v == "" || err != nil {
			return ""
		}
		var s string
		s, err = decodeToken(v)
		return s
	}
	m.ContentType = get(hdrCT)
	m.ResponseTopic = get(hdrRT)
	m.ReplyTo = get(hdrReplyTo)
	if h.Get(hdrCorr) != "" {
		m.CorrelationData = []byte(get(hdrCorr))
	}
	m.From = broker.SessionID(get(hdrFrom))
	m.Origin = get(hdrOrigin)
	if err != nil {
		return nil, "", 0, err
	}
	if props := h.Values(hdrProp); len(props) > 0 {
		m.Props = make([]broker.Property, len(props))
		for i, p := range props {
			k, v, ok := strings.Cut(p, ".")
			if !ok {
				return nil, "", 0, errHeader
			}
			if m.Props[i].Key, err = decodeToken(k); err != nil {
				return nil, "", 0, err
			}
			if m.Props[i].Value, err = decodeToken(v); err != nil {
				return nil, "", 0, err
			}
		}
	}
	small := func(k string, max int) (int, error) {
		v := h.Get(k)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > max {
			return 0, errHeader
		}
		return n, nil
	}
	pf, err1 := small(hdrPF, 255)
	qos, err2 := small(hdrQoS, 2)
	if err := errors.Join(err1, err2); err != nil {
		return nil, "", 0, err
	}
	m.PayloadFormat, m.QoS = byte(pf), broker.QoS(qos)
	m.Retain = h.Get(hdrRetain) == "1"
	if v := h.Get(hdrTTL); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			return nil, "", 0, errHeader
		}
		m.Expires = now.Add(time.Duration(ms) * time.Millisecond)
	}
	seq, err := strconv.ParseUint(h.Get(hdrSeq), 10, 64)
	if err != nil {
		return nil, "", 0, errHeader
	}
	return m, h.Get(hdrNode), seq, nil
}
