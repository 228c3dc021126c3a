package mqtt

import (
	"slices"
	"testing"

	"github.com/duplexmq/duplex/broker"
)

// A client whose subscriptions overlap gets one PUBLISH per message, at
// the highest granted QoS, carrying the identifier of every matching
// subscription [MQTT-3.3.4-2] [MQTT-3.3.4-4]; with
// broker.Config.PerSubscriptionCopies, one per subscription, each with its
// own identifier [MQTT-3.3.4-5].
func TestOverlappingSubscriptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		level    byte
		perSub   bool
		wantQoS  []byte     // the PUBLISHes of o/x, in order of QoS
		wantIDs  [][]uint32 // their identifiers, sorted
		wantLast []uint32   // identifiers of o/end, which matches o/+ only
	}{
		{"v5 one copy", Version5, false, []byte{2}, [][]uint32{{1, 2}}, []uint32{1}},
		{"3.1.1 one copy", Version311, false, []byte{2}, [][]uint32{nil}, nil},
		{"v5 per subscription", Version5, true, []byte{0, 2}, [][]uint32{{1}, {2}}, []uint32{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(broker.Config{PerSubscriptionCopies: tc.perSub})
			sub := dial(t, r, Config{}, tc.level)
			sub.mustConnect("sub", true, nil)
			pub := dial(t, r, Config{}, tc.level)
			pub.mustConnect("pub", true, nil)
			for i, s := range []Subscription{{Filter: "o/+", QoS: 0}, {Filter: "o/x", QoS: 2}} {
				p := &Subscribe{PacketID: uint16(i + 1), Subscriptions: []Subscription{s}}
				if tc.level >= Version5 {
					p.Properties.SubscriptionIdentifier = []uint32{uint32(i + 1)}
				}
				sub.subscribePacket(p)
			}
			pub.send(&Publish{Topic: "o/x", QoS: 2, PacketID: 7, Payload: []byte("x")})
			pub.send(&Publish{Topic: "o/end", Payload: []byte("end")})
			sub.waitN("o/end", 1, func(p Packet) bool { return p.Type() == PUBLISH && p.(*Publish).Topic == "o/end" })
			var got []*Publish
			var last *Publish
			for _, p := range sub.publishes() {
				if string(p.Payload) == "end" {
					last = p
				} else {
					got = append(got, p)
				}
			}
			slices.SortFunc(got, func(a, b *Publish) int { return int(a.QoS) - int(b.QoS) })
			if len(got) != len(tc.wantQoS) {
				t.Fatalf("%d PUBLISHes of o/x, want %d", len(got), len(tc.wantQoS))
			}
			for i, p := range got {
				ids := slices.Clone(p.Properties.SubscriptionIdentifier)
				slices.Sort(ids)
				if p.QoS != tc.wantQoS[i] || !slices.Equal(ids, tc.wantIDs[i]) {
					t.Errorf("PUBLISH %d: QoS %d ids %v, want QoS %d ids %v", i, p.QoS, ids, tc.wantQoS[i], tc.wantIDs[i])
				}
			}
			if ids := last.Properties.SubscriptionIdentifier; !slices.Equal(ids, tc.wantLast) {
				t.Errorf("o/end ids %v, want %v", ids, tc.wantLast)
			}
		})
	}
}
