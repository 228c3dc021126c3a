package mqtt

import (
	"bytes"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// Differential tests against paho.golang's packets, an independent MQTT 5
// codec (ARCHITECTURE.md §0 item 1: a test oracle, never a server
// dependency). Each packet goes both ways: our encoding decoded by paho, and
// paho's encoding decoded by us; the fields must match.

func TestPahoDifferential(t *testing.T) {
	var connect, subscribe, suback, disconnect *fixture
	for i := range fixtures {
		switch fixtures[i].name {
		case "5.0 CONNECT with properties and will":
			connect = &fixtures[i]
		case "5.0 SUBSCRIBE with options and subscription identifier":
			subscribe = &fixtures[i]
		case "5.0 SUBACK with reason string":
			suback = &fixtures[i]
		case "5.0 DISCONNECT server moved with properties":
			disconnect = &fixtures[i]
		}
	}
	// paho v0.23.0 packs Will Properties with the CONNECT rules and so drops
	// the PUBLISH-style ones (packets/connect.go: WillProperties.Pack(CONNECT)).
	pahoWill := *connect.p.(*Connect)
	pahoWill.Will = &Will{Topic: pahoWill.Will.Topic, Payload: pahoWill.Will.Payload, QoS: pahoWill.Will.QoS,
		Properties: Properties{WillDelay: 5, User: []UserProperty{{"w", "1"}}}}
	tests := []struct {
		name       string
		p          Packet
		fromPaho   Packet // what paho's encoding of p decodes to, when paho loses fields
		pahoCannot bool   // paho cannot decode our (valid) encoding
	}{
		{name: "CONNECT", p: connect.p, fromPaho: &pahoWill},
		{name: "CONNECT with will delay and user property only", p: &pahoWill},
		{name: "CONNECT minimal", p: &Connect{ProtocolLevel: Version5, ClientID: "c", KeepAlive: 30}},
		{name: "PUBLISH with properties", p: &Publish{QoS: 2, PacketID: 99, Retain: true, Topic: "a/b/c",
			Properties: Properties{PayloadFormat: 1, MessageExpiry: 0, HasMessageExpiry: true, ContentType: "text/plain",
				ResponseTopic: "reply/1", CorrelationData: []byte{0, 1, 2}, SubscriptionIdentifier: []uint32{268435455},
				TopicAlias: 7, User: []UserProperty{{"k1", "v1"}, {"k1", "v2"}}},
			Payload: []byte("payload")}},
		{name: "PUBLISH QoS 0", p: &Publish{Topic: "t", Payload: []byte{0xFF}}},
		{name: "SUBSCRIBE", p: subscribe.p},
		{name: "SUBACK", p: suback.p},
		{name: "DISCONNECT", p: disconnect.p},
		{name: "DISCONNECT with reason code only", p: &Disconnect{ReasonCode: CodeServerBusy}},
		// paho's Disconnect.Unpack reads a reason code unconditionally, so it
		// fails on the 2-byte form that MQTT 5 §3.14.2.1 allows.
		{name: "DISCONNECT short", p: &Disconnect{}, pahoCannot: true},
		{name: "CONNACK", p: &Connack{SessionPresent: true, Properties: Properties{AssignedClientID: "x", ReceiveMaximum: 10,
			HasMaximumQoS: true, MaximumQoS: 0, HasRetainAvailable: true, MaximumPacketSize: 1000,
			HasSharedSubAvailable: true, ReasonString: "hi"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Ours to paho.
			raw := AppendPacket(nil, tt.p, Version5)
			cp, err := packets.ReadPacket(bytes.NewReader(raw))
			switch {
			case tt.pahoCannot && err == nil:
				t.Errorf("paho now reads % x; drop pahoCannot", raw)
			case tt.pahoCannot:
			case err != nil:
				t.Fatalf("paho cannot read our % x: %v", raw, err)
			default:
				if got := fromPaho(t, cp); !equalPackets(got, tt.p) {
					t.Fatalf("paho read our encoding as\n%#v\nwant %#v", got, tt.p)
				}
			}
			// Paho to ours.
			var buf bytes.Buffer
			if _, err := toPaho(t, tt.p).WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			v := Version5
			if tt.p.Type() == CONNECT {
				v = 0
			}
			got, err := NewReader(&buf).ReadPacket(v)
			if err != nil {
				t.Fatalf("we cannot read paho's % x: %v", buf.Bytes(), err)
			}
			want := tt.p
			if tt.fromPaho != nil {
				want = tt.fromPaho
			}
			if !equalPackets(got, want) {
				t.Fatalf("we read paho's encoding as\n%#v\nwant %#v", got, want)
			}
		})
	}
}

// TestPahoRejects311Connect records ARCHITECTURE.md §0 item 1: paho cannot
// decode a 3.1.1 CONNECT, which is why the server has its own codec.
func TestPahoRejects311Connect(t *testing.T) {
	if _, err := packets.ReadPacket(bytes.NewReader(fixtures[0].raw)); err == nil {
		t.Skip("paho.golang now decodes 3.1.1 CONNECT; ARCHITECTURE.md §0 item 1 is out of date")
	}
	if _, err := NewReader(bytes.NewReader(fixtures[0].raw)).ReadPacket(0); err != nil {
		t.Fatal(err)
	}
}

func toPaho(t *testing.T, p Packet) *packets.ControlPacket {
	cp := packets.NewControlPacket(byte(p.Type()))
	switch p := p.(type) {
	case *Connect:
		c := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, CleanStart: p.CleanStart,
			KeepAlive: p.KeepAlive, Properties: toPahoProps(&p.Properties), ClientID: p.ClientID,
			UsernameFlag: p.HasUsername, Username: p.Username, PasswordFlag: p.HasPassword, Password: p.Password}
		if w := p.Will; w != nil {
			c.WillFlag, c.WillQOS, c.WillRetain = true, w.QoS, w.Retain
			c.WillTopic, c.WillMessage, c.WillProperties = w.Topic, w.Payload, toPahoProps(&w.Properties)
		}
		cp.Content = c
	case *Connack:
		cp.Content = &packets.Connack{SessionPresent: p.SessionPresent, ReasonCode: byte(p.ReasonCode),
			Properties: toPahoProps(&p.Properties)}
	case *Publish:
		cp.Content = &packets.Publish{Duplicate: p.Dup, QoS: p.QoS, Retain: p.Retain, Topic: p.Topic,
			PacketID: p.PacketID, Properties: toPahoProps(&p.Properties), Payload: p.Payload}
	case *Subscribe:
		s := &packets.Subscribe{PacketID: p.PacketID, Properties: toPahoProps(&p.Properties)}
		for _, x := range p.Subscriptions {
			s.Subscriptions = append(s.Subscriptions, packets.SubOptions{Topic: x.Filter, QoS: x.QoS,
				NoLocal: x.NoLocal, RetainAsPublished: x.RetainAsPublished, RetainHandling: x.RetainHandling})
		}
		cp.Content = s
	case *Suback:
		s := &packets.Suback{PacketID: p.PacketID, Properties: toPahoProps(&p.Properties)}
		for _, c := range p.ReasonCodes {
			s.Reasons = append(s.Reasons, byte(c))
		}
		cp.Content = s
	case *Disconnect:
		cp.Content = &packets.Disconnect{ReasonCode: byte(p.ReasonCode), Properties: toPahoProps(&p.Properties)}
	default:
		t.Fatalf("toPaho: %T", p)
	}
	return cp
}

func fromPaho(t *testing.T, cp *packets.ControlPacket) Packet {
	switch c := cp.Content.(type) {
	case *packets.Connect:
		p := &Connect{ProtocolLevel: c.ProtocolVersion, CleanStart: c.CleanStart, KeepAlive: c.KeepAlive,
			Properties: fromPahoProps(c.Properties), ClientID: c.ClientID, HasUsername: c.UsernameFlag,
			Username: c.Username, HasPassword: c.PasswordFlag, Password: nilIfEmpty(c.Password)}
		if c.WillFlag {
			p.Will = &Will{Properties: fromPahoProps(c.WillProperties), Topic: c.WillTopic,
				Payload: nilIfEmpty(c.WillMessage), QoS: c.WillQOS, Retain: c.WillRetain}
		}
		return p
	case *packets.Connack:
		return &Connack{SessionPresent: c.SessionPresent, ReasonCode: ReasonCode(c.ReasonCode),
			Properties: fromPahoProps(c.Properties)}
	case *packets.Publish:
		return &Publish{Dup: c.Duplicate, QoS: c.QoS, Retain: c.Retain, Topic: c.Topic, PacketID: c.PacketID,
			Properties: fromPahoProps(c.Properties), Payload: nilIfEmpty(c.Payload)}
	case *packets.Subscribe:
		p := &Subscribe{PacketID: c.PacketID, Properties: fromPahoProps(c.Properties)}
		for _, x := range c.Subscriptions {
			p.Subscriptions = append(p.Subscriptions, Subscription{Filter: x.Topic, QoS: x.QoS,
				NoLocal: x.NoLocal, RetainAsPublished: x.RetainAsPublished, RetainHandling: x.RetainHandling})
		}
		return p
	case *packets.Suback:
		p := &Suback{PacketID: c.PacketID, Properties: fromPahoProps(c.Properties), ReasonCodes: []ReasonCode{}}
		for _, r := range c.Reasons {
			p.ReasonCodes = append(p.ReasonCodes, ReasonCode(r))
		}
		return p
	case *packets.Disconnect:
		return &Disconnect{ReasonCode: ReasonCode(c.ReasonCode), Properties: fromPahoProps(c.Properties)}
	}
	t.Fatalf("fromPaho: %T", cp.Content)
	return nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func toPahoProps(p *Properties) *packets.Properties {
	q := &packets.Properties{ContentType: p.ContentType, ResponseTopic: p.ResponseTopic,
		CorrelationData: p.CorrelationData, AssignedClientID: p.AssignedClientID, AuthMethod: p.AuthMethod,
		AuthData: p.AuthData, ResponseInfo: p.ResponseInfo, ServerReference: p.ServerReference,
		ReasonString: p.ReasonString}
	if p.PayloadFormat != 0 {
		q.PayloadFormat = ptr(p.PayloadFormat)
	}
	if p.HasMessageExpiry {
		q.MessageExpiry = ptr(p.MessageExpiry)
	}
	if len(p.SubscriptionIdentifier) > 0 {
		q.SubscriptionIdentifier = ptr(int(p.SubscriptionIdentifier[0]))
	}
	if p.SessionExpiry != 0 {
		q.SessionExpiryInterval = ptr(p.SessionExpiry)
	}
	if p.HasServerKeepAlive {
		q.ServerKeepAlive = ptr(p.ServerKeepAlive)
	}
	if p.HasRequestProblemInfo {
		q.RequestProblemInfo = ptr(flagByte(p.RequestProblemInfo))
	}
	if p.WillDelay != 0 {
		q.WillDelayInterval = ptr(p.WillDelay)
	}
	if p.RequestResponseInfo {
		q.RequestResponseInfo = ptr(byte(1))
	}
	if p.ReceiveMaximum != 0 {
		q.ReceiveMaximum = ptr(p.ReceiveMaximum)
	}
	if p.TopicAliasMaximum != 0 {
		q.TopicAliasMaximum = ptr(p.TopicAliasMaximum)
	}
	if p.TopicAlias != 0 {
		q.TopicAlias = ptr(p.TopicAlias)
	}
	if p.HasMaximumQoS {
		q.MaximumQOS = ptr(p.MaximumQoS)
	}
	if p.HasRetainAvailable {
		q.RetainAvailable = ptr(flagByte(p.RetainAvailable))
	}
	for _, u := range p.User {
		q.User = append(q.User, packets.User{Key: u.Key, Value: u.Value})
	}
	if p.MaximumPacketSize != 0 {
		q.MaximumPacketSize = ptr(p.MaximumPacketSize)
	}
	if p.HasWildcardSubAvailable {
		q.WildcardSubAvailable = ptr(flagByte(p.WildcardSubAvailable))
	}
	if p.HasSubIDAvailable {
		q.SubIDAvailable = ptr(flagByte(p.SubIDAvailable))
	}
	if p.HasSharedSubAvailable {
		q.SharedSubAvailable = ptr(flagByte(p.SharedSubAvailable))
	}
	return q
}

func fromPahoProps(q *packets.Properties) (p Properties) {
	if q == nil {
		return p
	}
	p.ContentType, p.ResponseTopic, p.CorrelationData = q.ContentType, q.ResponseTopic, q.CorrelationData
	p.AssignedClientID, p.AuthMethod, p.AuthData = q.AssignedClientID, q.AuthMethod, q.AuthData
	p.ResponseInfo, p.ServerReference, p.ReasonString = q.ResponseInfo, q.ServerReference, q.ReasonString
	if q.PayloadFormat != nil {
		p.PayloadFormat = *q.PayloadFormat
	}
	if q.MessageExpiry != nil {
		p.MessageExpiry, p.HasMessageExpiry = *q.MessageExpiry, true
	}
	if q.SubscriptionIdentifier != nil {
		p.SubscriptionIdentifier = []uint32{uint32(*q.SubscriptionIdentifier)}
	}
	if q.SessionExpiryInterval != nil {
		p.SessionExpiry, p.HasSessionExpiry = *q.SessionExpiryInterval, true
	}
	if q.ServerKeepAlive != nil {
		p.ServerKeepAlive, p.HasServerKeepAlive = *q.ServerKeepAlive, true
	}
	if q.RequestProblemInfo != nil {
		p.RequestProblemInfo, p.HasRequestProblemInfo = *q.RequestProblemInfo == 1, true
	}
	if q.WillDelayInterval != nil {
		p.WillDelay = *q.WillDelayInterval
	}
	if q.RequestResponseInfo != nil {
		p.RequestResponseInfo = *q.RequestResponseInfo == 1
	}
	if q.ReceiveMaximum != nil {
		p.ReceiveMaximum = *q.ReceiveMaximum
	}
	if q.TopicAliasMaximum != nil {
		p.TopicAliasMaximum = *q.TopicAliasMaximum
	}
	if q.TopicAlias != nil {
		p.TopicAlias = *q.TopicAlias
	}
	if q.MaximumQOS != nil {
		p.MaximumQoS, p.HasMaximumQoS = *q.MaximumQOS, true
	}
	if q.RetainAvailable != nil {
		p.RetainAvailable, p.HasRetainAvailable = *q.RetainAvailable == 1, true
	}
	for _, u := range q.User {
		p.User = append(p.User, UserProperty{u.Key, u.Value})
	}
	if q.MaximumPacketSize != nil {
		p.MaximumPacketSize = *q.MaximumPacketSize
	}
	if q.WildcardSubAvailable != nil {
		p.WildcardSubAvailable, p.HasWildcardSubAvailable = *q.WildcardSubAvailable == 1, true
	}
	if q.SubIDAvailable != nil {
		p.SubIDAvailable, p.HasSubIDAvailable = *q.SubIDAvailable == 1, true
	}
	if q.SharedSubAvailable != nil {
		p.SharedSubAvailable, p.HasSharedSubAvailable = *q.SharedSubAvailable == 1, true
	}
	return p
}
