package broker

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// allClients pages through ClientPage with limit and returns the ids in
// page order, checking that every page but the last is full.
func allClients(t *testing.T, r *Router, limit int, q, sort string, online int, persistentOnly bool) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100 {
		page, next, err := r.ClientPage(cursor, limit, q, sort, online, persistentOnly)
		if err != nil {
			t.Fatalf("ClientPage(sort %q): %v", sort, err)
		}
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		if next == "" {
			return ids
		}
		if len(page) != limit {
			t.Fatalf("ClientPage(sort %q): %d items with a next cursor, want %d", sort, len(page), limit)
		}
		cursor = next
	}
	t.Fatal("ClientPage does not end")
	return nil
}

func TestClientPageSortAndPaging(t *testing.T) {
	r := New(Config{}, nil)
	if page, next, err := r.ClientPage("", 10, "", "", 0, false); err != nil || len(page) != 0 || next != "" {
		t.Fatalf("empty router: %v %q %v", page, next, err)
	}
	// msgs in: a 3, b 1, c 3, d 0, e 2; bytes out the reverse order of ids.
	in := map[SessionID]int{"a": 3, "b": 1, "c": 3, "d": 0, "e": 2}
	base := time.Now()
	for i, id := range []SessionID{"c", "a", "e", "b", "d"} {
		s := openSession(t, r, id)
		s.ConnectedAt = base.Add(time.Duration(i) * time.Second)
		for range in[id] {
			s.CountIn()
		}
		s.AddBytesOut(1000 - int(id[0]))
		s.AddBytesIn(i + 1)
	}
	for _, tc := range []struct {
		sort string
		want []string
	}{
		{"", []string{"a", "b", "c", "d", "e"}},
		{SortByID, []string{"a", "b", "c", "d", "e"}},
		{"-id", []string{"e", "d", "c", "b", "a"}},
		{SortByMsgsIn, []string{"d", "b", "e", "a", "c"}},
		{"-msgs_in", []string{"a", "c", "e", "b", "d"}}, // ties by id
		{SortByBytesOut, []string{"e", "d", "c", "b", "a"}},
		{"-bytes_out", []string{"a", "b", "c", "d", "e"}},
		{SortByBytesIn, []string{"c", "a", "e", "b", "d"}},
		{SortByConnectedAt, []string{"c", "a", "e", "b", "d"}}, // opened in this order
		{SortByQueued, []string{"a", "b", "c", "d", "e"}},
	} {
		for _, limit := range []int{1, 2, 5, 1000} {
			if got := allClients(t, r, limit, "", tc.sort, 0, false); !slices.Equal(got, tc.want) {
				t.Errorf("sort %q limit %d: %v, want %v", tc.sort, limit, got, tc.want)
			}
		}
	}
	// The last page ends with "", and a cursor past the end is empty.
	page, next, _ := r.ClientPage("d", 1, "", "", 0, false)
	if len(page) != 1 || page[0].ID != "e" || next != "" {
		t.Fatalf("page after d: %v next %q, want [e] and no cursor", page, next)
	}
	if page, next, _ := r.ClientPage("e", 10, "", "", 0, false); len(page) != 0 || next != "" {
		t.Fatalf("page after the last id: %v %q", page, next)
	}
	if _, _, err := r.ClientPage("", 10, "", "nope", 0, false); err == nil {
		t.Fatal("unknown sort key accepted")
	}
	for _, sort := range []string{"msgs_in", "-queued", "-id"} {
		if _, _, err := r.ClientPage("c", 10, "", sort, 0, false); err == nil {
			t.Fatalf("sort %q: an id as the cursor was accepted", sort)
		}
	}
	// A longer id sorts before its prefix descending.
	openSession(t, r, "ab")
	if got := allClients(t, r, 2, "a", "-id", 0, false); !slices.Equal(got, []string{"ab", "a"}) {
		t.Fatalf("-id over a, ab: %v", got)
	}
	if c := r.Counters(); c.BytesIn != 15 || c.BytesOut == 0 {
		t.Fatalf("Counters: BytesIn %d BytesOut %d, want 15 and the sessions' sum", c.BytesIn, c.BytesOut)
	}
}

func TestClientPageFilters(t *testing.T) {
	r := New(Config{}, nil)
	open := func(id SessionID, o SessionOptions) *Session {
		s, err := r.Open(id, o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	open("s1", SessionOptions{Protocol: "stomp", RemoteAddr: "10.0.0.1:5", ClientID: "kitchen", Transport: "ws"})
	open("s2", SessionOptions{Protocol: "mqtt", RemoteAddr: "10.0.0.2:5", Identity: Identity{Name: "alice"}, Transport: "tcp"})
	p := open("dev-7", SessionOptions{Protocol: "mqtt", RemoteAddr: "192.168.1.9:5", Expiry: time.Hour, Transport: "wss"})
	open("dev-8", SessionOptions{Protocol: "mqtt", RemoteAddr: "192.168.1.10:5", Expiry: time.Hour, Transport: "wss"})
	r.Close(p, CloseClientClosed) // kept offline

	for _, tc := range []struct {
		q          string
		online     int
		persistent bool
		want       []string
	}{
		{"", 0, false, []string{"dev-7", "dev-8", "s1", "s2"}},
		{"kitchen", 0, false, []string{"s1"}},       // client id
		{"alice", 0, false, []string{"s2"}},         // user
		{"10.0.0.", 0, false, []string{"s1", "s2"}}, // remote address
		{"dev", 0, false, []string{"dev-7", "dev-8"}},
		{"", 1, false, []string{"dev-8", "s1", "s2"}},
		{"", -1, false, []string{"dev-7"}},
		{"", 0, true, []string{"dev-7", "dev-8"}},
		{"", 1, true, []string{"dev-8"}},
		{"nobody", 0, false, nil},
	} {
		if got := allClients(t, r, 1, tc.q, "", tc.online, tc.persistent); !slices.Equal(got, tc.want) {
			t.Errorf("q %q online %d persistent %v: %v, want %v", tc.q, tc.online, tc.persistent, got, tc.want)
		}
	}
	counts := r.ConnCounts()
	want := []ConnCount{{"mqtt", "", "tcp", 1}, {"mqtt", "", "wss", 1}, {"stomp", "", "ws", 1}}
	if !slices.Equal(counts, want) {
		t.Fatalf("ConnCounts = %v, want %v", counts, want)
	}
}

func TestClientInfoFields(t *testing.T) {
	r := New(Config{MaxPendingMsgs: 4}, nil)
	s := openOpts(t, r, "c", SessionOptions{Transport: "ws", KeepAlive: 30 * time.Second, ClientID: "dev"})
	topicSub(t, r, s, "k", "t/#")
	publishTopic(t, r, nil, "t/1", "hello")
	s.SetInflight(3)
	s.AddBytesIn(10)
	s.AddBytesOut(20)
	ci, subs, ok := r.Client("c")
	if !ok {
		t.Fatal("Client(c) not found")
	}
	if ci.Transport != "ws" || ci.KeepAlive != 30*time.Second || ci.ClientID != "dev" || ci.Inflight != 3 ||
		ci.BytesIn != 10 || ci.BytesOut != 20 || ci.Queued != 1 || ci.QueuedBytes == 0 || ci.Slow != SlowOK ||
		!ci.Online || ci.Persistent || ci.Subs != 1 {
		t.Fatalf("ClientInfo = %+v", ci)
	}
	if len(subs) != 1 || subs[0].Key != "k" || subs[0].Filter != "t/#" || subs[0].Kind != "topic" || subs[0].ClientID != "dev" {
		t.Fatalf("subscriptions = %+v", subs)
	}
	publishTopic(t, r, nil, "t/2", "hello") // 2 of 4: half full
	if ci, _, _ := r.Client("c"); ci.Slow != SlowBacklog {
		t.Fatalf("Slow = %q with 2 of 4 queued, want backlog", ci.Slow)
	}
	s.Close(CloseSlowConsumer)
	if ci, _, _ := r.Client("c"); ci.Slow != SlowClosed || ci.Online || ci.Transport != "" {
		t.Fatalf("closed as a slow consumer: %+v", ci)
	}
	if _, _, ok := r.Client("nobody"); ok {
		t.Fatal("Client(nobody) found")
	}

	// A persistent session kept offline: expiry, backlog.
	p := openOpts(t, r, "p", SessionOptions{Expiry: time.Hour})
	mqttSub(t, r, p, "q/#")
	before := time.Now()
	r.Close(p, CloseClientClosed)
	publishQoS(t, r, "q/1", "kept", AtLeastOnce)
	ci, _, _ = r.Client("p")
	if !ci.Persistent || ci.Expiry != time.Hour || ci.Backlog != 1 || ci.Online ||
		ci.ExpiresAt.Before(before.Add(time.Hour)) || ci.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Fatalf("offline persistent session: %+v", ci)
	}
	c := r.Counters()
	if c.Published != 3 || c.NoSubscriber != 0 {
		t.Fatalf("Counters = %+v", c)
	}
	publishQoS(t, r, "nobody/listens", "x", AtMostOnce)
	if c := r.Counters(); c.NoSubscriber != 1 {
		t.Fatalf("NoSubscriber = %d, want 1", c.NoSubscriber)
	}
}

// The plan path (a durable subscription exists) counts no-subscriber
// messages too.
func TestCountersNoSubscriberPlanPath(t *testing.T) {
	r := New(Config{}, nil)
	s := openSession(t, r, "s")
	durableSub(t, r, s, "d/#", "n")
	publishQoS(t, r, "d/1", "x", AtLeastOnce)
	publishQoS(t, r, "other", "x", AtLeastOnce)
	r.PublishBatch(nil, []PublishReq{{Msg: &Message{Topic: "other", Payload: []byte("y")}}})
	if n := r.Counters().NoSubscriber; n != 2 {
		t.Fatalf("NoSubscriber = %d, want 2", n)
	}
}

func TestSubscriptionPage(t *testing.T) {
	r := New(Config{}, nil)
	a := openOpts(t, r, "a", SessionOptions{Identity: Identity{Name: "ann"}})
	b := openSession(t, r, "b")
	topicSub(t, r, a, "k1", "x/y")
	topicSub(t, r, b, "k1", "x/y")
	topicSub(t, r, b, "k2", "m")
	if err := r.Subscribe(a, &Subscription{SubSpec: SubSpec{Key: "q", Queue: "jobs", Ack: AckClient}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Subscribe(b, &Subscription{SubSpec: SubSpec{Key: "$share/g/s", Filter: "s", Group: "g"}}); err != nil {
		t.Fatal(err)
	}
	durableSub(t, r, b, "d/#", "sub-0")

	want := []string{"$durable/sub-0 b s", "jobs a q", "m b k2", "s b $share/g/s", "x/y a k1", "x/y b k1"}
	for _, limit := range []int{1, 4, 100} {
		var got []string
		cursor := ""
		for {
			page, next := r.SubscriptionPage(cursor, limit, "")
			for _, si := range page {
				got = append(got, si.Filter+si.Queue+" "+si.SessionID+" "+si.Key)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		// A durable subscription shows its binding's filter and its queue.
		for i, g := range got {
			got[i] = strings.Replace(g, "d/#$durable", "$durable", 1)
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: %q, want %q", limit, got, want)
		}
	}
	page, _ := r.SubscriptionPage("", 10, "ann") // user
	if len(page) != 2 || page[0].Kind != "queue" || page[0].Queue != "jobs" || page[0].Ack != "client" || page[1].User != "ann" {
		t.Fatalf("q=ann: %+v", page)
	}
	page, _ = r.SubscriptionPage("", 10, "durable")
	if len(page) != 1 || page[0].Kind != "durable" || page[0].Filter != "d/#" {
		t.Fatalf("durable: %+v", page)
	}
	page, _ = r.SubscriptionPage("", 10, "s")
	if i := slices.IndexFunc(page, func(si SubscriptionInfo) bool { return si.Group == "g" }); i < 0 || page[i].Kind != "share" {
		t.Fatalf("share: %+v", page)
	}
	// A bare filter as the cursor starts at its first subscription.
	if page, _ := r.SubscriptionPage("m", 1, ""); len(page) != 1 || page[0].Filter != "m" {
		t.Fatalf("after m: %+v", page)
	}
	if page, next := r.SubscriptionPage("x/y\x00b\x00k1", 10, ""); len(page) != 0 || next != "" {
		t.Fatalf("after the last: %+v %q", page, next)
	}

	groups, next := r.ShareGroupPage("", 10, "")
	if len(groups) != 1 || groups[0] != (ShareGroupInfo{Group: "g", Filter: "s", Members: 1}) || next != "" {
		t.Fatalf("ShareGroupPage = %+v %q", groups, next)
	}
	c := openSession(t, r, "c")
	if err := r.Subscribe(c, &Subscription{SubSpec: SubSpec{Key: "$share/g/s", Filter: "s", Group: "g"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Subscribe(c, &Subscription{SubSpec: SubSpec{Key: "$share/a/s", Filter: "s", Group: "a"}}); err != nil {
		t.Fatal(err)
	}
	groups, next = r.ShareGroupPage("", 1, "")
	if len(groups) != 1 || groups[0].Group != "a" || next == "" {
		t.Fatalf("first share page = %+v %q", groups, next)
	}
	groups, next = r.ShareGroupPage(next, 1, "")
	if len(groups) != 1 || groups[0].Group != "g" || groups[0].Members != 2 || next != "" {
		t.Fatalf("second share page = %+v %q", groups, next)
	}
	if groups, _ := r.ShareGroupPage("", 10, "zz"); len(groups) != 0 {
		t.Fatalf("q=zz: %+v", groups)
	}
}

// BenchmarkClientPage: a page of 100 among 10k sessions, by id and by a
// numeric key.
func BenchmarkClientPage(b *testing.B) {
	r := New(Config{}, nil)
	for i := range 10_000 {
		s := openSession(b, r, SessionID("client-"+strings.Repeat("x", i%7)+time.Duration(i).String()))
		topicSub(b, r, s, "k", "t/"+time.Duration(i).String())
	}
	for _, sort := range []string{"", "-msgs_in"} {
		b.Run("sort="+sort, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.ClientPage("", 100, "", sort, 0, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("subscriptions", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.SubscriptionPage("", 100, "")
		}
	})
	b.Run("topics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.TopicTree("t", "", 100)
		}
	})
}
