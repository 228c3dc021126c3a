package broker

import (
	"errors"
	"slices"
	"sync"
	"testing"
)

// fakeSharePeers is a fakePeers that also carries share groups.
type fakeSharePeers struct {
	fakePeers
	smu    sync.Mutex
	shares []string // "+group/filter" or "-group/filter", in order
}

func (p *fakeSharePeers) ShareInterest(group, filter string, add bool) {
	p.smu.Lock()
	defer p.smu.Unlock()
	sign := "-"
	if add {
		sign = "+"
	}
	p.shares = append(p.shares, sign+group+"/"+filter)
}

// TestPeersShareGroups: with SharePeers a group is declared once through
// ShareInterest (not Interest), a publication is forwarded but not handed
// to a local member (the cluster picks the node), and PublishToShare
// gives one member of that group the message and nobody else.
func TestPeersShareGroups(t *testing.T) {
	fp := &fakeSharePeers{}
	r := New(Config{Peers: fp}, nil)
	a, b, c, plain := openSession(t, r, "a"), openSession(t, r, "b"), openSession(t, r, "c"), openSession(t, r, "plain")
	shareSub(t, r, a, "g", "s/+")
	shareSub(t, r, b, "g", "s/+")
	shareSub(t, r, c, "h", "s/+")
	topicSub(t, r, plain, "1", "s/+")

	publishTopic(t, r, nil, "s/local", "local")
	if err := r.PublishFromPeer(&Message{Topic: "s/remote", Payload: []byte("remote")}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Session{a, b, c} {
		if got := drainedBodies(s); len(got) != 0 {
			t.Fatalf("%s got %v through the index; the cluster picks share members", s.ID, got)
		}
	}
	if got := drainedBodies(plain); !slices.Equal(got, []string{"local", "remote"}) {
		t.Fatalf("plain subscriber got %v", got)
	}
	if _, fwd := fp.snapshot(); !slices.Equal(fwd, []string{"s/local"}) {
		t.Fatalf("forwarded %v", fwd)
	}

	for i, body := range []string{"1", "2", "3", "4"} {
		m := &Message{Topic: "s/x", Payload: []byte(body), QoS: AtLeastOnce}
		if i == 3 {
			m.Topic = "other/x" // came on a subject that carries more (long, retained)
		}
		if err := r.PublishToShare("g", "s/+", m); err != nil {
			t.Fatal(err)
		}
	}
	ga, gb := drainedBodies(a), drainedBodies(b)
	if len(ga)+len(gb) != 3 || len(ga) == 0 || len(gb) == 0 {
		t.Fatalf("group g: a got %v, b got %v; want 1, 2, 3 shared round robin", ga, gb)
	}
	if got := drainedBodies(c); len(got) != 0 {
		t.Fatalf("group h got %v from g's messages", got)
	}
	if got := drainedBodies(plain); len(got) != 0 {
		t.Fatalf("plain subscriber got %v from a share group's messages", got)
	}
	if err := r.PublishToShare("nobody", "s/+", &Message{Topic: "s/x"}); !errors.Is(err, ErrNoShareMember) {
		t.Fatalf("PublishToShare to a group with no member here: %v", err)
	}

	r.Close(a, CloseClientClosed)
	r.Close(b, CloseClientClosed)
	r.Close(c, CloseClientClosed)
	fp.smu.Lock()
	got := slices.Clone(fp.shares)
	fp.smu.Unlock()
	if want := []string{"+g/s/+", "+h/s/+", "-g/s/+", "-h/s/+"}; !slices.Equal(got, want) {
		t.Fatalf("ShareInterest = %v, want %v", got, want)
	}
	if in, _ := fp.snapshot(); !slices.Equal(in, []string{"+s/+"}) {
		t.Fatalf("Interest = %v: only the plain subscription counts", in)
	}
}
