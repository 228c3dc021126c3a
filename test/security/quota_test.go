package security

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// authConfig is password authentication for users a, b and admin (an
// admin), from a file made with `duplex passwd -b`.
func authConfig(t *testing.T) string {
	t.Helper()
	file := passwdFile(t, "a", "pw-a", "b", "pw-b", "admin", "pw-admin")
	return fmt.Sprintf("password_file = %q\nadmins = [\"admin\"]\n", file)
}

// retainedSeen subscribes a fresh admin client to filter and returns the
// retained messages it gets (topic → payload) before a marker published
// after the SUBSCRIBE: retained messages are sent on subscribing, so all of
// them come before the marker.
func retainedSeen(t *testing.T, p *proc, filter, markerTopic string) map[string]string {
	t.Helper()
	return retainedSeenAs(t, p, filter, markerTopic, "admin", "pw-admin")
}

// retainedSeenAs is retainedSeen logged in as user ("" = anonymous).
func retainedSeenAs(t *testing.T, p *proc, filter, markerTopic, user, pass string) map[string]string {
	t.Helper()
	c, _ := mustV5(t, p, "tcp", "", v5Login(uniq("seer-"), user, pass, true, 0))
	c.sub(t, filter, 1)
	marker := uniq("marker-")
	c.mustPub(t, markerTopic, 1, false, marker)
	seen := map[string]string{}
	for {
		m := c.next(t)
		if m.Topic == markerTopic && string(m.Payload) == marker {
			break
		}
		if !m.Retain {
			t.Fatalf("before the marker got a non-retained %s %q", m.Topic, m.Payload)
		}
		seen[m.Topic] = string(m.Payload)
	}
	_ = c.c.Disconnect(&paho.Disconnect{})
	return seen
}

func keys(m map[string]string) string {
	var k []string
	for t := range m {
		k = append(k, t)
	}
	sort.Strings(k)
	return strings.Join(k, " ")
}

// TestRetainedQuotaPerUser: with password authentication and
// [limits] max_retained_per_user = 5, user a's sixth retained topic gets v5
// PUBACK 0x97 (Quota exceeded) and is not retained — a new subscriber sees
// five — while replacing one of its five works and deleting one frees a
// place; over 3.1.1 the refused retain is dropped (the PUBACK carries no
// code) and still not retained. User b, the neighbour, retains its five and
// exchanges messages the whole time.
func TestRetainedQuotaPerUser(t *testing.T) {
	t.Parallel()
	p := startBroker(t, authConfig(t)+`
[limits]
max_retained_per_user = 5
`)
	nb := v5Neighbour(t, p, "ws", neighbourIP, "b", "pw-b")
	nb.mustExchange(t, 10)
	base := uniq("rq")
	a, _ := mustV5(t, p, "tcp", "", v5Login(uniq("a-"), "a", "pw-a", true, 0))
	for i := 1; i <= 5; i++ {
		a.mustPub(t, fmt.Sprintf("%s/a/%d", base, i), 1, true, fmt.Sprintf("a%d", i))
	}
	rc, err := a.publish(base+"/a/6", 1, true, []byte("a6"))
	t.Logf("user a's 6th retained topic: PUBACK %#02x (%v)", rc, err)
	if rc != 0x97 {
		t.Errorf("user a's 6th retained topic: PUBACK %#02x, want 0x97 (Quota exceeded)", rc)
	}
	// Fifty more refusals: logged, but not a line each.
	for i := 100; i < 150; i++ {
		if rc, err := a.publish(fmt.Sprintf("%s/a/%d", base, i), 1, true, []byte("more")); rc != 0x97 {
			t.Fatalf("user a's retained topic %d past the quota: PUBACK %#02x (%v)", i, rc, err)
		}
	}
	p.checkLogged(t, 51, 5, "retained", "max_retained_per_user")
	nb.mustExchange(t, 10)
	if seen := retainedSeen(t, p, base+"/a/#", base+"/a/marker"); len(seen) != 5 || seen[base+"/a/6"] != "" {
		t.Errorf("after the refusal a new subscriber sees %d retained topics [%s], want the first 5", len(seen), keys(seen))
	}
	// Replacing one of the five is not a new topic.
	a.mustPub(t, base+"/a/1", 1, true, "a1-new")
	// Deleting one (empty retained payload) frees a place for topic 6.
	a.mustPub(t, base+"/a/2", 1, true, "")
	if rc, err := a.publish(base+"/a/6", 1, true, []byte("a6")); err != nil || rc >= 0x80 {
		t.Errorf("after deleting one of its 5, user a's retained topic 6: PUBACK %#02x (%v), want success", rc, err)
	}
	// Over 3.1.1 a refused retain cannot be reported: it is dropped.
	a3, _ := mustV3(t, p, "tcp", "", uniq("a3-"), "a", "pw-a", true)
	a3.pub(t, base+"/a/7", 1, true, "a7")
	seen := retainedSeen(t, p, base+"/a/#", base+"/a/marker")
	want := map[string]string{base + "/a/1": "a1-new", base + "/a/3": "a3", base + "/a/4": "a4", base + "/a/5": "a5", base + "/a/6": "a6"}
	if len(seen) != len(want) {
		t.Errorf("retained topics of user a: [%s], want [%s]", keys(seen), keys(want))
	}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("retained %s = %q, want %q", k, seen[k], v)
		}
	}
	// User b is not affected by a's quota.
	b, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("b-"), "b", "pw-b", true, 0))
	for i := 1; i <= 5; i++ {
		b.mustPub(t, fmt.Sprintf("%s/b/%d", base, i), 1, true, fmt.Sprintf("b%d", i))
	}
	if seen := retainedSeen(t, p, base+"/b/#", base+"/b/marker"); len(seen) != 5 {
		t.Errorf("user b's retained topics: [%s], want 5", keys(seen))
	}
	nb.mustExchange(t, 10)
	nb.report(t)
}

// TestSessionQuotaPerUser: with [limits] max_sessions_per_user = 3, user
// a's fourth persistent session is refused — v5 CONNACK 0x97 (Quota
// exceeded), 3.1.1 CONNACK 3 (Server unavailable) — while resuming one of
// its three and non-persistent sessions work, and discarding one frees a
// place. User b, the neighbour, opens three persistent sessions and
// exchanges messages.
func TestSessionQuotaPerUser(t *testing.T) {
	t.Parallel()
	p := startBroker(t, authConfig(t)+`
[limits]
max_sessions_per_user = 3
`)
	nb := v5Neighbour(t, p, "tcp", neighbourIP, "b", "pw-b")
	nb.mustExchange(t, 10)
	base := uniq("sq")
	// Three persistent sessions of a: one v5 kept connected, one v5 and
	// one 3.1.1 offline.
	mustV5(t, p, "tcp", "", v5Login(base+"-a1", "a", "pw-a", true, 300))
	a2, _ := mustV5(t, p, "ws", "", v5Login(base+"-a2", "a", "pw-a", true, 300))
	_ = a2.c.Disconnect(&paho.Disconnect{})
	a3, _ := mustV3(t, p, "tcp", "", base+"-a3", "a", "pw-a", false)
	a3.c.Disconnect(100)

	nb.mustExchange(t, 10)
	nc, err := openMQTT(p, "tcp", "")
	if err != nil {
		t.Fatal(err)
	}
	_, ca, err := v5Connect(t, nc, v5Login(base+"-a4", "a", "pw-a", true, 300))
	code := byte(0xff)
	if ca != nil {
		code = ca.ReasonCode
	}
	t.Logf("user a's 4th persistent session (v5): CONNACK %#02x (%v)", code, err)
	if code != 0x97 {
		t.Errorf("user a's 4th persistent session (v5): CONNACK %#02x, want 0x97", code)
	}
	_, tok := v3Connect(t, p, "ws", "", base+"-a5", "a", "pw-a", false)
	t.Logf("user a's 4th persistent session (3.1.1): return code %d (%v)", tok.ReturnCode(), tok.Error())
	if tok.ReturnCode() != 3 {
		t.Errorf("user a's 4th persistent session (3.1.1): CONNACK %d, want 3", tok.ReturnCode())
	}
	nb.mustExchange(t, 10)

	// Not new sessions: resuming a2, and non-persistent sessions.
	_, ca2 := mustV5(t, p, "tcp", "", v5Login(base+"-a2", "a", "pw-a", false, 300))
	if !ca2.SessionPresent {
		t.Errorf("resuming a2: session present 0, want 1")
	}
	mustV5(t, p, "tcp", "", v5Login(base+"-a6", "a", "pw-a", true, 0))
	mustV3(t, p, "tcp", "", base+"-a7", "a", "pw-a", true)

	// User b: three persistent sessions of its own.
	for i := 1; i <= 3; i++ {
		c, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(fmt.Sprintf("%s-b%d", base, i), "b", "pw-b", true, 300))
		_ = c.c.Disconnect(&paho.Disconnect{})
	}

	// a discards a3 (3.1.1 clean session 1): a place is free again.
	c3, _ := mustV3(t, p, "tcp", "", base+"-a3", "a", "pw-a", true)
	c3.c.Disconnect(100)
	checkFor(t, waitShort, func() error {
		nc, err := openMQTT(p, "tcp", "")
		if err != nil {
			return err
		}
		c, ca, err := v5Connect(t, nc, v5Login(base+"-a4", "a", "pw-a", true, 300))
		if err != nil {
			return fmt.Errorf("after discarding a3, a4: CONNACK %+v: %v", ca, err)
		}
		_ = c.c.Disconnect(&paho.Disconnect{})
		return nil
	})
	nb.mustExchange(t, 10)
	nb.report(t)
}

// TestExpiredSessionRemoved: with [limits] session_expiry = "2s", a 3.1.1
// clean-session-0 session is removed 2 s after its connection ends: it
// leaves /api/sessions (asked with admin credentials), and a message
// published for it meanwhile is gone — reconnecting finds no session and no
// message. A v5 session asking for 300 s (under max_session_expiry) keeps
// the same message; asking for 0xFFFFFFFF gets max_session_expiry (1h) back
// in CONNACK. A live neighbour exchanges messages the whole time.
func TestExpiredSessionRemoved(t *testing.T) {
	t.Parallel()
	p := startBroker(t, authConfig(t)+`
[limits]
session_expiry = "2s"
max_session_expiry = "1h"
`)
	nb := v3Neighbour(t, p, "tcp", neighbourIP, "b", "pw-b")
	nb.mustExchange(t, 10)
	topic := uniq("exp/t")
	id3 := uniq("exp-v311-")
	id5 := uniq("exp-v5-")

	listed := func() (bool, bool) {
		code, body := p.apiGet(t, "/api/sessions", "admin", "pw-admin")
		if code != 200 {
			t.Fatalf("/api/sessions as admin: HTTP %d: %s", code, truncate(body, 200))
		}
		return strings.Contains(body, `"`+id3+`"`), strings.Contains(body, `"`+id5+`"`)
	}

	// The management API is for admins once authentication is on.
	for _, c := range []struct{ user, pass string }{{"", ""}, {"a", "pw-a"}, {"admin", "wrong"}} {
		code, _ := p.apiGet(t, "/api/sessions", c.user, c.pass)
		if code != 401 && code != 403 {
			t.Errorf("/api/sessions as %q/%q: HTTP %d, want 401 or 403", c.user, c.pass, code)
		}
	}

	// The v5 session that must outlive it, offline.
	v5c, _ := mustV5(t, p, "tcp", "", v5Login(id5, "b", "pw-b", true, 300))
	v5c.sub(t, topic, 1)
	_ = v5c.c.Disconnect(&paho.Disconnect{})

	c3, _ := mustV3(t, p, "tcp", "", id3, "a", "pw-a", false)
	c3.sub(t, topic, 1)
	if l3, _ := listed(); !l3 {
		t.Fatalf("/api/sessions does not list %s while it is connected", id3)
	}
	c3.c.Disconnect(100)
	disconnected := time.Now()
	pub, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("exp-pub-"), "b", "pw-b", true, 0))
	pub.mustPub(t, topic, 1, false, "meanwhile")

	var gone time.Duration
	err := nb.during(func() {
		checkFor(t, 20*time.Second, func() error {
			if l3, _ := listed(); l3 {
				return fmt.Errorf("%s still listed %v after its connection ended (session_expiry 2s)", id3, time.Since(disconnected).Round(time.Millisecond))
			}
			return nil
		})
		gone = time.Since(disconnected)
	})
	if err != nil {
		t.Error(err)
	}
	t.Logf("3.1.1 session %s left /api/sessions %v after its connection ended (session_expiry 2s)", id3, gone.Round(time.Millisecond))
	if _, l5 := listed(); !l5 {
		t.Errorf("the v5 session %s (expiry 300 s) is no longer listed", id5)
	}

	// Reconnecting: no session, and the message is not delivered.
	r3, tok := mustV3(t, p, "tcp", "", id3, "a", "pw-a", false)
	if tok.SessionPresent() {
		t.Errorf("%s reconnected after expiry: session present 1, want 0", id3)
	}
	r3.sub(t, topic, 1)
	marker := uniq("marker-")
	pub.mustPub(t, topic, 1, false, marker)
	if m := r3.next(t); string(m.Payload()) != marker {
		t.Errorf("%s after expiry got %q first, want only the marker %q", id3, m.Payload(), marker)
	}

	// The v5 session kept its message.
	r5, ca := mustV5(t, p, "tcp", "", v5Login(id5, "b", "pw-b", false, 300))
	if !ca.SessionPresent {
		t.Errorf("v5 session %s (expiry 300 s): session present 0 after %v", id5, time.Since(disconnected).Round(time.Millisecond))
	}
	if m := r5.next(t); string(m.Payload) != "meanwhile" {
		t.Errorf("v5 session %s: got %q, want the message published while it was offline", id5, m.Payload)
	}

	// 0xFFFFFFFF is capped at max_session_expiry.
	_, ca = mustV5(t, p, "tcp", "", v5Login(uniq("exp-max-"), "b", "pw-b", true, 0xFFFFFFFF))
	if ca.Properties == nil || ca.Properties.SessionExpiryInterval == nil || *ca.Properties.SessionExpiryInterval != 3600 {
		var got any = "absent"
		if ca.Properties != nil && ca.Properties.SessionExpiryInterval != nil {
			got = *ca.Properties.SessionExpiryInterval
		}
		t.Errorf("CONNACK Session Expiry Interval for a request of 0xFFFFFFFF: %v, want 3600 (max_session_expiry 1h)", got)
	}
	nb.mustExchange(t, 10)
	nb.report(t)
}

// TestQuotasAnonymous: anonymous clients on a broker that lets them in
// next to authenticated ones (password_file with allow_anonymous = true), or
// on a public address (0.0.0.0, allow_anonymous = true written out), are
// held to the quotas by what identifies them: persistent sessions count per
// source address (max_sessions_per_user = 2: the third from 127.0.0.2 gets
// v5 CONNACK 0x97 / 3.1.1 CONNACK 3, while 127.0.0.3 still opens its own),
// and so do retained topics (max_retained_per_user = 3: the fourth gets v5
// PUBREC 0x97 at QoS 2, and at QoS 0 is silently not retained; another
// client id from the same address is refused too — rotating client ids
// does not get around the quota — while another address still retains).
// In the zero configuration anonymous clients count per client id, and the
// loopback pool is exempt from the session quota by design
// (broker.Config.MaxSessionsPerUser).
func TestQuotasAnonymous(t *testing.T) {
	t.Parallel()
	const limits = `
[limits]
max_sessions_per_user = 2
max_retained_per_user = 3
`
	t.Run("password_file+allow_anonymous", func(t *testing.T) {
		t.Parallel()
		anonymousQuotas(t, startBroker(t, authConfig(t)+"allow_anonymous = true\n"+limits), true)
	})
	t.Run("zero-config", func(t *testing.T) {
		t.Parallel()
		anonymousQuotas(t, startBroker(t, limits), false)
	})
	t.Run("public+allow_anonymous", func(t *testing.T) {
		t.Parallel()
		p := startBroker(t, "allow_anonymous = true\n"+limits, "-addr", "0.0.0.0:0")
		_, port, _ := net.SplitHostPort(p.HTTP)
		p.HTTP = "127.0.0.1:" + port
		anonymousQuotas(t, p, true)
	})
}

// anonymousQuotas checks the retained quota per client id, or, when
// byAddress is set, the retained and session quotas per source address.
func anonymousQuotas(t *testing.T, p *proc, byAddress bool) {
	base := uniq("anon")
	// The neighbour holds a persistent session from its own address.
	nbc, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(base+"-nb-persistent", "", "", true, 300))
	_ = nbc.c.Disconnect(&paho.Disconnect{})
	nb := v5Neighbour(t, p, "ws", neighbourIP, "", "")
	nb.mustExchange(t, 10)
	if byAddress {
		anonymousSessions(t, p, base)
	}
	nb.mustExchange(t, 10)

	// Retained, per client id or per address.
	x, _ := mustV5(t, p, "tcp", offenderIP, v5Login(base+"-x", "", "", true, 0))
	for i := 1; i <= 3; i++ {
		x.mustPub(t, fmt.Sprintf("%s/x/%d", base, i), 1, true, fmt.Sprintf("x%d", i))
	}
	if rc, err := x.publish(base+"/x/4", 2, true, []byte("x4")); rc != 0x97 {
		t.Errorf("4th retained topic of an anonymous client id at QoS 2: PUBREC %#02x (%v), want 0x97", rc, err)
	}
	if _, err := x.publish(base+"/x/5", 0, true, []byte("x5")); err != nil {
		t.Fatalf("QoS 0 retained publish: %v", err)
	}
	y, _ := mustV5(t, p, "tcp", offenderIP, v5Login(base+"-y", "", "", true, 0))
	rc, err := y.publish(base+"/y/1", 1, true, []byte("y1"))
	switch {
	case byAddress && rc != 0x97:
		t.Errorf("another anonymous client id from the same address: retained publish PUBACK %#02x (%v), want 0x97 (anonymous clients count per address)", rc, err)
	case !byAddress && (err != nil || rc >= 0x80):
		t.Errorf("another anonymous client id: retained publish PUBACK %#02x (%v), want success (zero config: per client id)", rc, err)
	}
	z, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(base+"-z", "", "", true, 0))
	if rc, err := z.publish(base+"/z/1", 1, true, []byte("z1")); err != nil || rc >= 0x80 {
		t.Errorf("an anonymous client from another address: retained publish PUBACK %#02x (%v), want success", rc, err)
	}
	seen := retainedSeenAs(t, p, base+"/#", base+"/marker", "", "")
	want := []string{base + "/x/1", base + "/x/2", base + "/x/3", base + "/z/1"}
	if !byAddress {
		want = []string{base + "/x/1", base + "/x/2", base + "/x/3", base + "/y/1", base + "/z/1"}
	}
	if keys(seen) != strings.Join(want, " ") {
		t.Errorf("retained topics: [%s], want [%s]", keys(seen), strings.Join(want, " "))
	}
	nb.mustExchange(t, 10)
	nb.report(t)
}

// anonymousSessions: two persistent sessions from offenderIP, the third
// refused; another address still opens one.
func anonymousSessions(t *testing.T, p *proc, base string) {
	for i := 1; i <= 2; i++ {
		c, _ := mustV5(t, p, "tcp", offenderIP, v5Login(fmt.Sprintf("%s-%d", base, i), "", "", true, 300))
		_ = c.c.Disconnect(&paho.Disconnect{})
	}
	nc, err := openMQTT(p, "tcp", offenderIP)
	if err != nil {
		t.Fatal(err)
	}
	_, ca, err := v5Connect(t, nc, v5Login(base+"-3", "", "", true, 300))
	code := byte(0xff)
	if ca != nil {
		code = ca.ReasonCode
	}
	if code != 0x97 {
		t.Errorf("third anonymous persistent session from %s (v5): CONNACK %#02x (%v), want 0x97", offenderIP, code, err)
	}
	_, tok := v3Connect(t, p, "ws", offenderIP, base+"-4", "", "", false)
	if tok.ReturnCode() != 3 {
		t.Errorf("third anonymous persistent session from %s (3.1.1): CONNACK %d (%v), want 3", offenderIP, tok.ReturnCode(), tok.Error())
	}
	// Another address is not affected: a second persistent session there.
	c2, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(base+"-nb-persistent-2", "", "", true, 300))
	_ = c2.c.Disconnect(&paho.Disconnect{})
}

// TestRetainedQuotaGlobalAndBytes: the total cap (max_retained = 8) refuses
// with v5 PUBACK 0x97 — never a success that is not retained, the issue's
// complaint — once users a (5, its own cap) and b (3) fill it; a retained
// byte quota per user (max_retained_bytes_per_user = 1000) refuses the
// publish that would cross it while smaller ones fit. The neighbour
// exchanges messages throughout.
func TestRetainedQuotaGlobalAndBytes(t *testing.T) {
	t.Parallel()
	t.Run("total", func(t *testing.T) {
		t.Parallel()
		p := startBroker(t, authConfig(t)+`
[limits]
max_retained = 8
max_retained_per_user = 5
`)
		nb := v5Neighbour(t, p, "ws", neighbourIP, "b", "pw-b")
		nb.mustExchange(t, 10)
		base := uniq("rg")
		a, _ := mustV5(t, p, "tcp", offenderIP, v5Login(uniq("a-"), "a", "pw-a", true, 0))
		for i := 1; i <= 6; i++ {
			rc, err := a.publish(fmt.Sprintf("%s/a/%d", base, i), 1, true, []byte("a"))
			if (i <= 5) != (rc < 0x80) || (i > 5 && rc != 0x97) {
				t.Errorf("user a's retained topic %d: PUBACK %#02x (%v)", i, rc, err)
			}
		}
		b, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("b-"), "b", "pw-b", true, 0))
		for i := 1; i <= 4; i++ {
			rc, err := b.publish(fmt.Sprintf("%s/b/%d", base, i), 1, true, []byte("b"))
			switch {
			case i <= 3 && rc >= 0x80:
				t.Errorf("user b's retained topic %d (total %d of 8): PUBACK %#02x (%v), want success", i, 5+i, rc, err)
			case i == 4 && rc != 0x97:
				t.Errorf("user b's retained topic 4 past the total cap of 8: PUBACK %#02x (%v), want 0x97", rc, err)
			}
		}
		seen := retainedSeen(t, p, base+"/#", base+"/marker")
		if len(seen) != 8 || seen[base+"/a/6"] != "" || seen[base+"/b/4"] != "" {
			t.Errorf("retained topics: [%s], want a/1..5 and b/1..3", keys(seen))
		}
		nb.mustExchange(t, 10)
		nb.report(t)
	})
	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		p := startBroker(t, authConfig(t)+`
[limits]
max_retained_bytes_per_user = 1000
`)
		nb := v5Neighbour(t, p, "ws", neighbourIP, "b", "pw-b")
		nb.mustExchange(t, 10)
		base := uniq("rb")
		a, _ := mustV5(t, p, "tcp", offenderIP, v5Login(uniq("a-"), "a", "pw-a", true, 0))
		pay := strings.Repeat("x", 400)
		a.mustPub(t, base+"/a/1", 1, true, pay)
		a.mustPub(t, base+"/a/2", 1, true, pay)
		if rc, err := a.publish(base+"/a/3", 1, true, []byte(pay)); rc != 0x97 {
			t.Errorf("user a's third 400-byte retained message (1200 > 1000 bytes): PUBACK %#02x (%v), want 0x97", rc, err)
		}
		a.mustPub(t, base+"/a/4", 1, true, strings.Repeat("y", 150)) // 950 bytes: fits
		b, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("b-"), "b", "pw-b", true, 0))
		b.mustPub(t, base+"/b/1", 1, true, pay)
		b.mustPub(t, base+"/b/2", 1, true, pay)
		seen := retainedSeen(t, p, base+"/#", base+"/marker")
		if keys(seen) != strings.Join([]string{base + "/a/1", base + "/a/2", base + "/a/4", base + "/b/1", base + "/b/2"}, " ") {
			t.Errorf("retained topics: [%s], want a/1 a/2 a/4 b/1 b/2", keys(seen))
		}
		nb.mustExchange(t, 10)
		nb.report(t)
	})
}

// TestSessionQueueQuota: an offline persistent session keeps at most
// [limits] max_session_queue (5) messages (and max_session_queue_bytes:
// 1000 bytes of 300-byte messages is 3); the rest are not kept for it. The
// offender here is the subscriber that went away: a well-behaved v5
// publisher on the same topic must not be told its message failed (PUBACK
// >= 0x80, which clients treat as "not accepted" and resend) when it reached
// every other subscriber, and the online neighbour receives every message.
func TestSessionQueueQuota(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, limits string
		size, want   int
	}{
		{"messages", "max_session_queue = 5", 10, 5},
		{"bytes", "max_session_queue_bytes = 1000", 300, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := startBroker(t, "\n[limits]\n"+c.limits+"\n")
			topic := uniq("sq/t")
			off := uniq("sq-offline-")
			offlineSubscriber(t, p, offenderIP, off, topic)
			online, _ := mustV5(t, p, "ws", neighbourIP, v5Login(uniq("sq-online-"), "", "", true, 0))
			online.sub(t, topic, 1)
			pub, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("sq-pub-"), "", "", true, 0))
			const n = 10
			var codes []string
			failed := 0
			for i := range n {
				payload := fmt.Sprintf("%d|%s", i, strings.Repeat("p", c.size))
				rc, err := pub.publish(topic, 1, false, []byte(payload))
				codes = append(codes, fmt.Sprintf("%#02x", rc))
				if rc >= 0x80 || (err != nil && rc == 0) {
					failed++
				}
				if m := online.next(t); !strings.HasPrefix(string(m.Payload), fmt.Sprintf("%d|", i)) {
					t.Fatalf("online subscriber got %q, want message %d", truncate(string(m.Payload), 10), i)
				}
			}
			t.Logf("well-behaved publisher's PUBACKs with the offline session's queue full after %d: %s", c.want, strings.Join(codes, " "))
			if failed > 0 {
				t.Errorf("the well-behaved publisher got %d failure PUBACKs for messages every online subscriber received, because another client's offline queue was full", failed)
			}
			// The offline session gets its quota's worth, no more.
			r, ca := mustV5(t, p, "tcp", offenderIP, v5Login(off, "", "", false, 300))
			if !ca.SessionPresent {
				t.Fatalf("offline session %s not present", off)
			}
			// It receives c.want stored messages; then, with its queue
			// drained, the next thing is a marker published afterwards.
			for i := range c.want {
				if m := r.next(t); !strings.HasPrefix(string(m.Payload), fmt.Sprintf("%d|", i)) {
					t.Fatalf("offline session's stored message %d: got %q", i, truncate(string(m.Payload), 10))
				}
			}
			// Its acknowledgements processed (nothing stored any more), the
			// marker is live.
			checkFor(t, waitShort, func() error {
				if v, ok := p.sessionField(t, off, "StoredMsgs", "", ""); !ok || v != float64(0) {
					return fmt.Errorf("session %s listed %v, StoredMsgs %v", off, ok, v)
				}
				return nil
			})
			got := c.want
			marker := uniq("marker-")
			if rc, err := pub.publish(topic, 1, false, []byte(marker)); err != nil && rc < 0x80 {
				t.Fatalf("marker: %v", err)
			}
			for m := r.next(t); string(m.Payload) != marker; m = r.next(t) {
				got++
			}
			t.Logf("offline session kept %d of %d messages (%s)", got, n, c.limits)
			if got != c.want {
				t.Errorf("offline session kept %d messages, want %d (%s)", got, c.want, c.limits)
			}
		})
	}
}

// TestQuotaBypasses: the quotas hold against the side doors. A will
// message with the retain flag is a retained publish too: user a, at its
// max_retained_per_user (3), cannot get a fourth retained topic by
// crashing with a retained will. And a session that connects with Session
// Expiry 0 (not persistent, not counted) cannot become persistent past
// max_sessions_per_user (2) by asking for an expiry in its DISCONNECT
// [MQTT-3.14.2-2]: reconnecting finds no session. The neighbour exchanges
// messages throughout.
func TestQuotaBypasses(t *testing.T) {
	t.Parallel()
	p := startBroker(t, authConfig(t)+`
[limits]
max_retained_per_user = 3
max_sessions_per_user = 2
`)
	nb := v5Neighbour(t, p, "tcp", neighbourIP, "b", "pw-b")
	nb.mustExchange(t, 10)
	base := uniq("byp")

	t.Run("retained-will", func(t *testing.T) {
		a, _ := mustV5(t, p, "tcp", offenderIP, v5Login(uniq("a-"), "a", "pw-a", true, 0))
		for i := 1; i <= 3; i++ {
			a.mustPub(t, fmt.Sprintf("%s/a/%d", base, i), 1, true, "a")
		}
		// A v5 CONNECT with a QoS 1 retained will on a fourth topic, then
		// the connection dropped without DISCONNECT.
		nc, err := openMQTT(p, "tcp", offenderIP)
		if err != nil {
			t.Fatal(err)
		}
		r := newRawMQTT(nc)
		b := appendStr(nil, "MQTT")
		b = append(b, 5, 0x02|0x04|0x08|0x20|0x80|0x40, 0, 60, 0) // clean, will QoS 1, will retain, user, password
		b = appendStr(b, uniq("a-will-"))
		b = append(b, 0) // will properties
		b = appendStr(b, base+"/a/4")
		b = appendStr(b, "will")
		b = appendStr(appendStr(b, "a"), "pw-a")
		if err := r.write(packet(0x10, b)); err != nil {
			t.Fatal(err)
		}
		if ca, err := r.read(waitShort); err != nil || ca.typ() != 2 || ca.body[1] != 0 {
			t.Fatalf("CONNECT with a retained will: %v %v", ca, err)
		}
		// Watch the will's topic, then crash.
		w, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("will-watch-"), "b", "pw-b", true, 0))
		w.sub(t, base+"/a/4", 1)
		nc.Close()
		if m := w.next(t); string(m.Payload) != "will" {
			t.Fatalf("will watcher got %q", m.Payload)
		}
		seen := retainedSeen(t, p, base+"/a/#", base+"/a/marker")
		if len(seen) != 3 {
			t.Errorf("after a retained will past the quota, user a has %d retained topics [%s], want 3", len(seen), keys(seen))
		}
	})

	t.Run("disconnect-expiry", func(t *testing.T) {
		for i := 1; i <= 2; i++ {
			c, _ := mustV5(t, p, "tcp", offenderIP, v5Login(fmt.Sprintf("%s-s%d", base, i), "a", "pw-a", true, 300))
			_ = c.c.Disconnect(&paho.Disconnect{})
		}
		id := base + "-s3"
		nc, err := openMQTT(p, "tcp", offenderIP)
		if err != nil {
			t.Fatal(err)
		}
		r := newRawMQTT(nc)
		if err := r.write(connectPacket(connectSpec{level: 5, id: id, clean: true, user: "a", pass: "pw-a"})); err != nil {
			t.Fatal(err)
		}
		if ca, err := r.read(waitShort); err != nil || ca.typ() != 2 || ca.body[1] != 0 {
			t.Fatalf("CONNECT with expiry 0: %v %v", ca, err)
		}
		// DISCONNECT, normal, with Session Expiry Interval 300.
		_ = r.write([]byte{0xE0, 7, 0x00, 5, 0x11, 0, 0, 0x01, 0x2c})
		pkts, err := r.untilClosed(waitShort)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkts) != 1 || pkts[0].typ() != 14 || pkts[0].body[0] != 0x82 {
			t.Errorf("DISCONNECT asking for an expiry after CONNECT with none: the server answered %v, want DISCONNECT 0x82 (Protocol Error)", pkts)
		}
		// Clean Start 0, no expiry: a session kept for id would be resumed.
		_, ca := mustV5(t, p, "tcp", offenderIP, v5Login(id, "a", "pw-a", false, 0))
		if ca.SessionPresent {
			t.Errorf("a third session of user a (quota 2) became persistent through its DISCONNECT's Session Expiry Interval")
		}
	})
	nb.mustExchange(t, 10)
	nb.report(t)
}

// TestExpiryCancelledOnResume: a 3.1.1 clean-session-0 session resumed
// before session_expiry (1s) runs out is not removed when the first
// expiry would have come: still connected 1.5 s after its first
// disconnect, it keeps its subscription and receives; after its second
// disconnect it expires again (the time is logged).
func TestExpiryCancelledOnResume(t *testing.T) {
	t.Parallel()
	p := startBroker(t, `
[limits]
session_expiry = "1s"
`)
	id := uniq("resume-")
	topic := uniq("resume/t")
	c, _ := mustV3(t, p, "tcp", "", id, "", "", false)
	c.sub(t, topic, 1)
	c.c.Disconnect(100)
	first := time.Now()
	c2, tok := mustV3(t, p, "tcp", "", id, "", "", false)
	if !tok.SessionPresent() {
		t.Fatalf("resumed within session_expiry: session present 0")
	}
	pub, _ := mustV5(t, p, "tcp", neighbourIP, v5Login(uniq("resume-pub-"), "", "", true, 0))
	// Let the first expiry's moment pass while connected (the scenario's
	// time, not a synchronization), publishing meanwhile.
	i := 0
	for time.Since(first) < 1500*time.Millisecond {
		pub.mustPub(t, topic, 1, false, fmt.Sprintf("m%d", i))
		if m := c2.next(t); string(m.Payload()) != fmt.Sprintf("m%d", i) {
			t.Fatalf("resumed session got %q, want m%d", m.Payload(), i)
		}
		i++
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := p.sessionField(t, id, "ID", "", ""); !ok {
		t.Fatalf("resumed session %s not listed %v after its first disconnect", id, time.Since(first))
	}
	c2.c.Disconnect(100)
	second := time.Now()
	checkFor(t, waitLong, func() error {
		if _, ok := p.sessionField(t, id, "ID", "", ""); ok {
			return fmt.Errorf("%s still listed %v after its second disconnect", id, time.Since(second))
		}
		return nil
	})
	t.Logf("resumed session received %d messages across the first expiry; removed %v after its second disconnect", i, time.Since(second).Round(time.Millisecond))
}
