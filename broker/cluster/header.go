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
// is in the headers, most of them in one (hdrMeta), so that a message
// costs few header lines to write and parse:
//
//	Duplex: <node>.<boot>.<seq>.<qos>.<retain>.<pf>.<ttl>.<ct>.<rt>.<reply>.<corr>.<from>.<origin>
//	Duplex-Prop: <key>.<value>      one per user property, in order, duplicates kept
//	Duplex-Topic: <EncodeTopic>     on the long and retained subjects only
//	Duplex-Not-Stored: 1            a QoS 1/2 message the durable stream did not keep
//
// node and boot identify the sending run (its own messages are dropped),
// seq is its message number (copies for overlapping subscriptions are
// dropped), qos, retain (0 or 1), pf (PayloadFormat) and ttl (Expires as
// the milliseconds left when sent, 0 for never: the nodes' clocks need not
// agree) are decimal; the strings are subject tokens (subject.go: printable
// ASCII without '.', "%" for the empty string) or "*" (which no token is)
// for an absent value. So a value may hold anything, CR and LF included,
// and survives NATS's header parsing (which trims spaces) byte for byte.
//
// Duplex-Not-Stored marks a QoS 1/2 message that DurablePublish did not
// store because no cluster-durable subscription wanted it
// (durable_interest.go): a receiving node hands it to its cluster-durable
// subscriptions from this copy (broker.Message.NotInCluster). Without it,
// they skip a QoS 1/2 message, which the durable stream brings them; a
// node of an earlier version never sets it and stored every such message.
const (
	hdrMeta  = "Duplex"
	hdrProp  = "Duplex-Prop"
	hdrTopic = "Duplex-Topic"

	hdrNotStored = "Duplex-Not-Stored"

	metaFields = 13
	absent     = "*"
)

// esc is a header value: the token encoding of s.
func esc(s string) string { return string(appendToken(nil, s)) }

// origin identifies one run of one node: its id and a boot number, both
// tokens.
type origin struct {
	node string
	boot string
}

// encodeMsg returns the NATS message for m, published by node o with
// number seq, on its topic's subject, or with the topic in a header on
// the long subject or, retained, the retained one. It returns nil when m
// has already expired.
func encodeMsg(subs Subjects, o origin, seq uint64, m *broker.Message, now time.Time) *nats.Msg {
	var ttl int64
	if !m.Expires.IsZero() {
		if ttl = m.Expires.Sub(now).Milliseconds(); ttl <= 0 {
			return nil
		}
	}
	subj, long := subs.Topic(m.Topic)
	if m.Retain {
		subj, long = subs.Retained, true
	}
	b := make([]byte, 0, 64+len(o.node)+len(m.ContentType)+len(m.ResponseTopic)+len(m.ReplyTo)+len(m.CorrelationData)+len(m.From))
	b = append(append(append(b, o.node...), '.'), o.boot...)
	b = strconv.AppendUint(append(b, '.'), seq, 10)
	b = strconv.AppendUint(append(b, '.'), uint64(m.QoS), 10)
	if m.Retain {
		b = append(b, ".1"...)
	} else {
		b = append(b, ".0"...)
	}
	b = strconv.AppendUint(append(b, '.'), uint64(m.PayloadFormat), 10)
	b = strconv.AppendInt(append(b, '.'), ttl, 10)
	str := func(s string, present bool) {
		b = append(b, '.')
		if !present {
			b = append(b, absent...)
		} else {
			b = appendToken(b, s)
		}
	}
	str(m.ContentType, m.ContentType != "")
	str(m.ResponseTopic, m.ResponseTopic != "")
	str(m.ReplyTo, m.ReplyTo != "")
	str(string(m.CorrelationData), m.CorrelationData != nil)
	str(string(m.From), m.From != "")
	str(m.Origin, m.Origin != "")
	h := nats.Header{hdrMeta: {string(b)}}
	if len(m.Props) > 0 {
		props := make([]string, len(m.Props))
		for i, p := range m.Props {
			props[i] = string(appendToken(append(appendToken(nil, p.Key), '.'), p.Value))
		}
		h[hdrProp] = props
	}
	if long {
		h[hdrTopic] = []string{EncodeTopic(m.Topic)}
	}
	if m.NotInCluster() {
		h[hdrNotStored] = []string{"1"}
	}
	return &nats.Msg{Subject: subj, Header: h, Data: m.Payload}
}

var errHeader = errors.New("cluster: malformed message header")

// decodeMsg is encodeMsg's inverse: the message, the sending node (node
// "." boot) and its message number. now is the receive time (Expires =
// now + ttl).
func decodeMsg(subs Subjects, nm *nats.Msg, now time.Time) (*broker.Message, string, uint64, error) {
	h := nm.Header
	m := &broker.Message{Payload: nm.Data}
	var err error
	if nm.Subject == subs.Long || nm.Subject == subs.Retained {
		m.Topic, err = DecodeTopic(h.Get(hdrTopic))
	} else {
		m.Topic, err = subs.TopicOf(nm.Subject)
	}
	if err != nil {
		return nil, "", 0, err
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	full := h.Get(hdrMeta)
	meta := full
	var f [metaFields]string
	for i := range f {
		var ok bool
		if f[i], meta, ok = strings.Cut(meta, "."); !ok && i < metaFields-1 {
			return nil, "", 0, errHeader
		}
	}
	if meta != "" {
		return nil, "", 0, errHeader
	}
	seq, err1 := strconv.ParseUint(f[2], 10, 64)
	qos, err2 := strconv.ParseUint(f[3], 10, 8)
	pf, err3 := strconv.ParseUint(f[5], 10, 8)
	ttl, err4 := strconv.ParseInt(f[6], 10, 64)
	if errors.Join(err1, err2, err3, err4) != nil || qos > 2 || ttl < 0 || (f[4] != "0" && f[4] != "1") {
		return nil, "", 0, errHeader
	}
	m.QoS, m.Retain, m.PayloadFormat = broker.QoS(qos), f[4] == "1", byte(pf)
	if ttl > 0 {
		m.Expires = now.Add(time.Duration(ttl) * time.Millisecond)
	}
	str := func(tok string) (string, bool) {
		if tok == absent || err != nil {
			return "", false
		}
		var s string
		s, err = decodeToken(tok)
		return s, true
	}
	m.ContentType, _ = str(f[7])
	m.ResponseTopic, _ = str(f[8])
	m.ReplyTo, _ = str(f[9])
	if corr, ok := str(f[10]); ok {
		m.CorrelationData = []byte(corr)
	}
	from, _ := str(f[11])
	m.From = broker.SessionID(from)
	m.Origin, _ = str(f[12])
	if err != nil {
		return nil, "", 0, err
	}
	if _, ok := h[hdrNotStored]; ok {
		m.SetNotInCluster(true)
	}
	if props := h[hdrProp]; len(props) > 0 {
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
	return m, full[:len(f[0])+1+len(f[1])], seq, nil
}
