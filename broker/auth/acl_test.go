package auth

import (
	"fmt"
	"strings"
	"testing"

	"github.com/duplexmq/duplex/broker"
)

func mustPattern(t testing.TB, s string) *pattern {
	t.Helper()
	p, err := compilePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

var noVars = subst{uState: varEmpty, cState: varEmpty}

// TestCoversIntersects checks the two relations on filters. covers: every
// topic matching dest matches the pattern; intersects: some topic matches
// both. MQTT 3.1.1 §4.7.1.2 ('#' matches the parent and any child levels),
// §4.7.1.3 ('+' exactly one level), [MQTT-4.7.2-1] (no wildcard first level
// matches a '$' topic).
func TestCoversIntersects(t *testing.T) {
	cases := []struct {
		pat, dest          string
		covers, intersects bool
	}{
		{"a/+/c", "a/b/c", true, true},
		{"a/+/c", "a/+/c", true, true},
		{"a/+/c", "a/#", false, true},
		{"a/+/c", "a/b", false, false},
		{"a/+/c", "+/b/c", false, true},
		{"a/+/c", "a/b/c/d", false, false},
		{"a/b/#", "a/+/c", false, true},
		{"a/b/#", "#", false, true},
		{"a/b/#", "a/b", true, true}, // §4.7.1.2: '#' matches the parent level
		{"a/b/#", "a/b/#", true, true},
		{"a/b/#", "a/b/+/x", true, true},
		{"a/b/#", "a/c", false, false},
		{"a/b/#", "a", false, false},
		{"a/b", "a/#", false, true}, // a/b matches both
		{"a", "a/#", false, true},   // "a" matches a/# (parent)
		{"a", "a/+", false, false},
		{"#", "a/b", true, true},
		{"#", "#", true, true},
		{"+", "+", true, true},
		{"+", "#", false, true},
		{"+/+", "/x", true, true}, // §4.7.1.3: '+' matches an empty level
		{"a//b", "a//b", true, true},
		{"a//b", "a/+/b", false, true},
		// [MQTT-4.7.2-1]
		{"#", "$SYS/x", false, false},
		{"+/x", "$SYS/x", false, false},
		{"#", "$SYS/#", false, false},
		{"$SYS/#", "#", false, false},
		{"$SYS/#", "+/x", false, false},
		{"$SYS/#", "$SYS/x", true, true},
		{"$SYS/+", "$SYS/#", false, true},
		{"a/#", "a/$x", true, true}, // only the first level is special
	}
	for _, c := range cases {
		p := mustPattern(t, c.pat)
		if got := covers(p, c.dest, true, &noVars); got != c.covers {
			t.Errorf("covers(%q, %q) = %v, want %v", c.pat, c.dest, got, c.covers)
		}
		if got := intersects(p, c.dest, true, &noVars); got != c.intersects {
			t.Errorf("intersects(%q, %q) = %v, want %v", c.pat, c.dest, got, c.intersects)
		}
		if c.covers && !c.intersects {
			t.Errorf("bad case %q %q: covers without intersecting", c.pat, c.dest)
		}
	}
	// A publish topic is never a filter: '+' and '#' in it are plain text.
	if covers(mustPattern(t, "a/x"), "a/+", false, &noVars) || intersects(mustPattern(t, "a/x"), "a/#", false, &noVars) {
		t.Error("topic name wildcards treated as wildcards")
	}
}

func TestCompilePatternSubst(t *testing.T) {
	p := mustPattern(t, "d/pre-%u-%c%/%u/%%c/x%")
	sv := subst{user: "al", client: "c1"}
	for _, c := range []struct {
		dest string
		want bool
	}{
		{"d/pre-al-c1%/al/%c1/x%", true},
		{"d/pre-al-c1/al/%c1/x%", false},
		{"d/pre-al-c1%/al/c1/x%", false},
		{"d/pre-al-c1%/alx/%c1/x%", false},
	} {
		if got := covers(p, c.dest, false, &sv); got != c.want {
			t.Errorf("covers(%q) = %v, want %v", c.dest, got, c.want)
		}
	}
	if !p.user || !p.client || len(p.levels) != 5 {
		t.Fatalf("compiled %+v", p)
	}
}

func TestNewACLRefusals(t *testing.T) {
	for _, c := range []struct {
		r    Rule
		want string
	}{
		{Rule{Action: ActionAll}, "exactly one of topic and queue"},
		{Rule{Action: ActionAll, Topic: "a", Queue: "b"}, "exactly one of topic and queue"},
		{Rule{Action: 0, Topic: "a"}, "unknown action"},
		{Rule{Action: 8, Topic: "a"}, "unknown action"},
		{Rule{Access: 5, Action: ActionAll, Topic: "a"}, "unknown access"},
		{Rule{User: "u", Group: "g", Action: ActionAll, Topic: "a"}, "more than one"},
		{Rule{User: "u", Anonymous: true, Action: ActionAll, Topic: "a"}, "more than one"},
		{Rule{Action: ActionAll, Topic: "a/#/b"}, "MQTT-4.7.1-2"},
		{Rule{Action: ActionAll, Topic: "a/b#"}, "MQTT-4.7.1-2"},
		{Rule{Action: ActionAll, Topic: "a/b+"}, "MQTT-4.7.1-3"},
		{Rule{Action: ActionAll, Queue: "q\x00"}, "MQTT-4.7.3-2"},
		{Rule{Action: ActionAll, Topic: "\xff"}, "MQTT-1.5.3-1"},
	} {
		_, err := NewACL([]Rule{{Action: ActionAll, Topic: "ok"}, c.r}, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "acl rule 2") {
			t.Errorf("NewACL(%+v) = %v, want %q naming rule 2", c.r, err, c.want)
		}
	}
}

var (
	alice  = broker.Identity{Name: "alice"}
	bob    = broker.Identity{Name: "bob"} // member of ops through the groups map
	carol  = broker.Identity{Name: "carol", Groups: []string{"ops"}}
	anon   = broker.Identity{Anonymous: true}
	admin  = broker.Identity{Name: "root", Admin: true}
	ganon  = broker.Identity{Anonymous: true, Name: "alice"} // claims a name, is anonymous
	weird  = broker.Identity{Name: "a/b"}
	dollar = broker.Identity{Name: "$SYS"}
)

func TestACLAllow(t *testing.T) {
	rules := []Rule{
		{User: "alice", Action: ActionAll, Topic: "home/alice/#"},
		{User: "alice", Action: ActionPublish, Topic: "sensors/+/temp"},
		{User: "alice", Access: Deny, Action: ActionAll, Topic: "home/alice/private/#"},
		{Group: "ops", Action: ActionSubscribe, Topic: "logs/#"},
		{Group: "ops", Access: Deny, Action: ActionSubscribe, Topic: "logs/secret"},
		{Anonymous: true, Action: ActionSubscribe, Topic: "public/#"},
		{Action: ActionAll, Topic: "users/%u/#"},
		{Action: ActionPublish, Topic: "clients/%c"},
		{Action: ActionAll, Topic: "mixed/u-%u-c-%c/+"},
		{Access: Deny, Action: ActionAll, Topic: "deny/%u/x"},
		{Action: ActionAll, Topic: "deny/#"},
		{User: "alice", Action: ActionPublish, Queue: "orders"},
		{User: "alice", Action: ActionSubscribe, Queue: "q/%u/+"},
		{User: "mon", Action: ActionSubscribe, Topic: "$SYS/broker/load/#"},
		{User: "root", Access: Deny, Action: ActionSubscribe, Topic: "$SYS/secret"},
	}
	a, err := NewACL(rules, map[string][]string{"ops": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	mon := broker.Identity{Name: "mon"}
	cases := []struct {
		name   string
		id     broker.Identity
		client string
		op     broker.Op
		dest   string
		want   bool
	}{
		{"user allow", alice, "c", broker.OpPublish, "home/alice/x", true},
		{"user allow parent", alice, "c", broker.OpSubscribe, "home/alice", true},
		{"user allow filter", alice, "c", broker.OpSubscribe, "home/alice/pub/+", true},
		{"deny intersects + level", alice, "c", broker.OpSubscribe, "home/alice/+/t", false},
		{"deny wins topic", alice, "c", broker.OpPublish, "home/alice/private/k", false},
		{"deny wins filter that intersects", alice, "c", broker.OpSubscribe, "home/alice/#", false},
		{"deny wins + filter", alice, "c", broker.OpSubscribe, "home/alice/+/k", false},
		{"filter outside deny", alice, "c", broker.OpSubscribe, "home/alice/public/#", true},
		{"action publish only", alice, "c", broker.OpPublish, "sensors/k/temp", true},
		{"action publish only: no subscribe", alice, "c", broker.OpSubscribe, "sensors/k/temp", false},
		{"other user's rule", bob, "c", broker.OpPublish, "home/alice/x", false},
		{"group via map", bob, "c", broker.OpSubscribe, "logs/app", true},
		{"group via identity", carol, "c", broker.OpSubscribe, "logs/#", false}, // intersects logs/secret
		{"group via identity allow", carol, "c", broker.OpSubscribe, "logs/app/+", true},
		{"group deny", bob, "c", broker.OpSubscribe, "logs/secret", false},
		{"group action", bob, "c", broker.OpPublish, "logs/app", false},
		{"anonymous", anon, "c", broker.OpSubscribe, "public/x", true},
		{"anonymous rule not for users", alice, "c", broker.OpSubscribe, "public/x", false},
		{"anonymous gets no user rules", ganon, "c", broker.OpPublish, "home/alice/x", false},
		{"%u", alice, "c", broker.OpPublish, "users/alice/x", true},
		{"%u other user", alice, "c", broker.OpPublish, "users/bob/x", false},
		{"%u empty user never matches", anon, "c", broker.OpPublish, "users//x", false},
		{"%u with '/' does not allow", weird, "c", broker.OpPublish, "users/a/b/x", false},
		{"%u with '$' does not allow", dollar, "c", broker.OpPublish, "users/$SYS/x", false},
		{"%c", bob, "dev1", broker.OpPublish, "clients/dev1", true},
		{"%c other", bob, "dev1", broker.OpPublish, "clients/dev2", false},
		{"%c empty", bob, "", broker.OpPublish, "clients/", false},
		{"%c + in id", bob, "a+", broker.OpPublish, "clients/a+", false},
		{"%u %c in a level", alice, "k", broker.OpPublish, "mixed/u-alice-c-k/z", true},
		{"%u %c in a level, wrong", alice, "k", broker.OpPublish, "mixed/u-alice-c-kk/z", false},
		{"deny %u", alice, "c", broker.OpPublish, "deny/alice/x", false},
		{"deny %u other", alice, "c", broker.OpPublish, "deny/bob/x", true},
		{"deny %u empty does not match", anon, "c", broker.OpPublish, "deny//x", true},
		{"deny %u bad value fails closed", weird, "c", broker.OpPublish, "deny/zzz/q", false},
		{"deny %u bad value: other levels still compared", weird, "c", broker.OpPublish, "other/x", false},
		{"queue allow", alice, "c", broker.OpQueueSend, "orders", true},
		{"queue action", alice, "c", broker.OpQueueReceive, "orders", false},
		{"queue namespace apart from topics", alice, "c", broker.OpQueueSend, "home/alice/x", false},
		{"topic namespace apart from queues", alice, "c", broker.OpPublish, "orders", false},
		{"queue %u", alice, "c", broker.OpQueueReceive, "q/alice/1", true},
		{"queue names are not filters", alice, "c", broker.OpQueueReceive, "q/alice/#", true},
		{"nothing decides: denied", alice, "c", broker.OpPublish, "elsewhere", false},
		{"$SYS: admins subscribe", admin, "c", broker.OpSubscribe, "$SYS/broker/x", true},
		{"$SYS: admins publish", admin, "c", broker.OpPublish, "$SYS/broker/x", true},
		{"$SYS: others not", alice, "c", broker.OpSubscribe, "$SYS/broker/x", false},
		{"$SYS: explicit allow", mon, "c", broker.OpSubscribe, "$SYS/broker/load/1m", true},
		{"$SYS: explicit allow covers only", mon, "c", broker.OpSubscribe, "$SYS/#", false},
		{"$SYS: deny beats admin", admin, "c", broker.OpSubscribe, "$SYS/secret", false},
		{"$SYS: admin not superuser elsewhere", admin, "c", broker.OpPublish, "elsewhere", false},
		{"[MQTT-4.7.2-1] # does not reach $SYS", admin, "c", broker.OpSubscribe, "#", false},
		{"unknown op", alice, "c", broker.Op(9), "home/alice/x", false},
	}
	for _, c := range cases {
		if got := a.Allow(c.id, c.client, c.op, c.dest); got != c.want {
			t.Errorf("%s: Allow(%+v, %q, %v, %q) = %v, want %v", c.name, c.id, c.client, c.op, c.dest, got, c.want)
		}
	}
}

func TestNilACL(t *testing.T) {
	var a *ACL
	if !a.Allow(alice, "c", broker.OpPublish, "x/y") || !a.Allow(anon, "c", broker.OpSubscribe, "#") || !a.Allow(anon, "c", broker.OpQueueSend, "q") {
		t.Fatal("nil ACL refused")
	}
	if a.Allow(alice, "c", broker.OpSubscribe, "$SYS/#") || a.Allow(alice, "c", broker.OpPublish, "$SYS") {
		t.Fatal("nil ACL gave $SYS to a non-admin")
	}
	if !a.Allow(admin, "c", broker.OpSubscribe, "$SYS/#") {
		t.Fatal("nil ACL refused $SYS to an admin")
	}
	if a.Len() != 0 {
		t.Fatal("nil Len")
	}
	// An empty rule set is a configured ACL: it refuses.
	e, err := NewACL(nil, nil)
	if err != nil || e.Allow(alice, "c", broker.OpPublish, "x") {
		t.Fatal("empty ACL allowed")
	}
}

func TestParseACLFile(t *testing.T) {
	src := "\ufeff" + `# Mosquitto-style file (with a byte order mark)
topic read public/#
topic	pub/with space

user alice
topic write sensors/alice/+
topic deny secret/#
topic readwrite home/alice/#
queue read jobs/%u
pattern write devices/%c/status
user bob smith
topic read b/#
group ops
topic logs/#
queue deny q/private
`
	rules, err := ParseACLFile(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Anonymous: true, Action: ActionSubscribe, Topic: "public/#"},
		{Anonymous: true, Action: ActionAll, Topic: "pub/with space"},
		{User: "alice", Action: ActionPublish, Topic: "sensors/alice/+"},
		{User: "alice", Access: Deny, Action: ActionAll, Topic: "secret/#"},
		{User: "alice", Action: ActionAll, Topic: "home/alice/#"},
		{User: "alice", Action: ActionSubscribe, Queue: "jobs/%u"},
		{Action: ActionPublish, Topic: "devices/%c/status"},
		{User: "bob smith", Action: ActionSubscribe, Topic: "b/#"},
		{Group: "ops", Action: ActionAll, Topic: "logs/#"},
		{Group: "ops", Access: Deny, Action: ActionAll, Queue: "q/private"},
	}
	if len(rules) != len(want) {
		t.Fatalf("%d rules, want %d: %+v", len(rules), len(want), rules)
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, rules[i], want[i])
		}
	}
	a, err := NewACL(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Allow(anon, "c", broker.OpSubscribe, "public/x") || a.Allow(anon, "c", broker.OpPublish, "public/x") {
		t.Error("anonymous read rule")
	}
	if !a.Allow(bob, "dev7", broker.OpPublish, "devices/dev7/status") {
		t.Error("pattern applies to everyone")
	}
}

func TestParseACLFileErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"topic read a\nfoo bar\n", "line 2: unknown keyword \"foo\""},
		{"user\n", "line 1: user without a name"},
		{"group\n", "line 1: group without a name"},
		{"\n\ntopic read\n", "line 3: topic: read without a pattern"},
		{"topic\n", "line 1: topic: missing pattern"},
		{"user a\ntopic read a/#/b\n", "line 2: pattern \"a/#/b\""},
		{"pattern write a+\n", "line 1: pattern \"a+\""},
		{"Topic read a\n", "unknown keyword \"Topic\""},
		{"topic read " + strings.Repeat("a", MaxACLLineLen) + "\n", "longer than"},
	} {
		_, err := ParseACLFile(strings.NewReader(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseACLFile(%.40q) = %v, want %q", c.src, err, c.want)
		}
	}
}

// benchRules is a 20-rule ACL of the usual shape: per-user trees, group
// reads, %u and %c patterns, denies.
func benchRules() []Rule {
	var rs []Rule
	for i := range 6 {
		rs = append(rs, Rule{User: fmt.Sprintf("user%d", i), Action: ActionAll, Topic: fmt.Sprintf("home/user%d/#", i)})
	}
	rs = append(rs,
		Rule{User: "alice", Action: ActionAll, Topic: "home/alice/#"},
		Rule{User: "alice", Access: Deny, Action: ActionAll, Topic: "home/alice/private/#"},
		Rule{User: "alice", Action: ActionPublish, Topic: "sensors/+/temperature"},
		Rule{Group: "ops", Action: ActionSubscribe, Topic: "logs/#"},
		Rule{Group: "ops", Access: Deny, Action: ActionSubscribe, Topic: "logs/secret/#"},
		Rule{Anonymous: true, Action: ActionSubscribe, Topic: "public/#"},
		Rule{Action: ActionAll, Topic: "users/%u/#"},
		Rule{Action: ActionPublish, Topic: "devices/%c/status"},
		Rule{Action: ActionSubscribe, Topic: "devices/+/status"},
		Rule{Access: Deny, Action: ActionPublish, Topic: "devices/+/admin/#"},
		Rule{Action: ActionSubscribe, Topic: "broadcast/#"},
		Rule{User: "alice", Action: ActionPublish, Queue: "orders"},
		Rule{User: "alice", Action: ActionSubscribe, Queue: "jobs/%u"},
		Rule{Action: ActionAll, Topic: "chat/%u/+"},
	)
	return rs
}

func BenchmarkACLAllow20Rules(b *testing.B) {
	a, err := NewACL(benchRules(), map[string][]string{"ops": {"alice"}})
	if err != nil {
		b.Fatal(err)
	}
	id := broker.Identity{Name: "alice", Groups: []string{"ops"}}
	if !a.Allow(id, "dev1", broker.OpPublish, "users/alice/devices/dev1/temp") {
		b.Fatal("not allowed")
	}
	b.ReportAllocs()
	for b.Loop() {
		a.Allow(id, "dev1", broker.OpPublish, "users/alice/devices/dev1/temp")
	}
}

func TestACLAllowDoesNotAllocate(t *testing.T) {
	a, err := NewACL(benchRules(), map[string][]string{"ops": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	id := broker.Identity{Name: "alice", Groups: []string{"ops"}}
	for _, c := range []struct {
		op   broker.Op
		dest string
	}{
		{broker.OpPublish, "users/alice/devices/dev1/temp"},
		{broker.OpPublish, "devices/dev1/status"},
		{broker.OpSubscribe, "logs/+/x"},
		{broker.OpSubscribe, "$SYS/#"},
		{broker.OpQueueReceive, "jobs/alice"},
	} {
		if n := testing.AllocsPerRun(100, func() { a.Allow(id, "dev1", c.op, c.dest) }); n != 0 {
			t.Errorf("Allow(%v, %q): %v allocations", c.op, c.dest, n)
		}
	}
}

// naiveAllow is the reference for publish topics: substitute %u and %c
// textually, split with broker.MatchTopic, deny wins, then allow, then the
// default.
func naiveAllow(rules []Rule, groups map[string][]string, id broker.Identity, clientID, topic string) bool {
	anon := id.Anonymous || id.Name == ""
	user := id.Name
	if anon {
		user = ""
	}
	applies := func(r Rule) bool {
		if r.Topic == "" || r.Action&ActionPublish == 0 {
			return false
		}
		switch {
		case r.User != "":
			return !anon && r.User == user
		case r.Group != "":
			if anon {
				return false
			}
			for _, g := range id.Groups {
				if g == r.Group {
					return true
				}
			}
			for _, u := range groups[r.Group] {
				if u == user {
					return true
				}
			}
			return false
		case r.Anonymous:
			return anon
		}
		return true
	}
	bad := func(v string) bool { return v != "" && (v[0] == '$' || strings.ContainsAny(v, "/+#\x00")) }
	// match substitutes the pattern textually, level by level; for a deny
	// rule, the first level holding a bad value becomes '#'.
	match := func(r Rule) bool {
		vals := map[byte]string{'u': user, 'c': clientID}
		anyBad := false
		for k, v := range vals {
			if strings.Contains(r.Topic, "%"+string(k)) {
				if v == "" {
					return false
				}
				anyBad = anyBad || bad(v)
			}
		}
		if anyBad && r.Access == Allow {
			return false
		}
		var out []string
		for _, l := range strings.Split(r.Topic, "/") {
			var sb strings.Builder
			hasBad := false
			for j := 0; j < len(l); j++ {
				if l[j] == '%' && j+1 < len(l) && (l[j+1] == 'u' || l[j+1] == 'c') {
					v := vals[l[j+1]]
					hasBad = hasBad || bad(v)
					sb.WriteString(v)
					j++
					continue
				}
				sb.WriteByte(l[j])
			}
			if hasBad {
				out = append(out, "#")
				break
			}
			out = append(out, sb.String())
		}
		return broker.MatchTopic(strings.Join(out, "/"), topic)
	}
	allow := false
	for _, r := range rules {
		if !applies(r) {
			continue
		}
		if match(r) {
			if r.Access == Deny {
				return false
			}
			allow = true
		}
	}
	if allow {
		return true
	}
	if topic == "$SYS" || strings.HasPrefix(topic, "$SYS/") {
		return id.Admin
	}
	return false
}

// FuzzACL compares Allow for publish topics with naiveAllow.
func FuzzACL(f *testing.F) {
	f.Add("home/alice/#", "home/+/x", "users/%u/#", "d/%c-%u/+", "home/alice/x", "alice", "dev1", false, false, false)
	f.Add("#", "$SYS/#", "+/+", "a/%u%c", "$SYS/x", "bob", "c", true, true, false)
	f.Add("a/b", "a/+", "%u", "%c/#", "a/b", "a/b", "+", false, false, true)
	f.Add("+", "#", "x/%u", "x", "x/", "", "", false, true, false)
	f.Fuzz(func(t *testing.T, p1, p2, p3, p4, topic, user, client string, admin, anonymous, inGroup bool) {
		if broker.ValidTopicName(topic) != nil || len(topic) > 200 || len(user) > 50 || len(client) > 50 {
			return
		}
		var rules []Rule
		for i, p := range []string{p1, p2, p3, p4} {
			if broker.ValidFilter(p) != nil || len(p) > 200 {
				continue
			}
			r := Rule{Topic: p, Action: ActionPublish}
			if i%2 == 1 {
				r.Access = Deny
			}
			switch i {
			case 0:
				r.User = "alice"
			case 1:
				r.Group = "g"
			case 2:
				r.Anonymous = true
			}
			rules = append(rules, r)
		}
		a, err := NewACL(rules, map[string][]string{"g": {"bob"}})
		if err != nil {
			t.Fatalf("NewACL(%+v): %v", rules, err)
		}
		id := broker.Identity{Name: user, Admin: admin, Anonymous: anonymous}
		if inGroup {
			id.Groups = []string{"g", "g"}
		}
		got := a.Allow(id, client, broker.OpPublish, topic)
		want := naiveAllow(rules, map[string][]string{"g": {"bob"}}, id, client, topic)
		if got != want {
			t.Fatalf("Allow(%+v, %q, %q) = %v, reference %v; rules %+v", id, client, topic, got, want, rules)
		}
	})
}

// FuzzCoversIntersects checks covers and intersects on filters against
// broker.MatchTopic with a topic t: if t matches dest and the pattern covers
// dest, t matches the pattern; if t matches both, they intersect.
func FuzzCoversIntersects(f *testing.F) {
	f.Add("a/+/c", "a/#", "a/b/c")
	f.Add("a/b/#", "+/+/c", "a/b/c")
	f.Add("#", "$SYS/#", "$SYS/x")
	f.Add("+/+", "#", "/x")
	f.Add("a", "a/#", "a")
	f.Fuzz(func(t *testing.T, pat, dest, topic string) {
		if len(pat) > 100 || len(dest) > 100 || len(topic) > 100 ||
			broker.ValidFilter(pat) != nil || broker.ValidFilter(dest) != nil || broker.ValidTopicName(topic) != nil {
			return
		}
		p, err := compilePattern(pat)
		if err != nil {
			t.Fatal(err)
		}
		sv := subst{user: "u", client: "c"}
		inDest := broker.MatchTopic(dest, topic)
		inPat := broker.MatchTopic(strings.NewReplacer("%u", "u", "%c", "c").Replace(pat), topic)
		cv, is := covers(&p, dest, true, &sv), intersects(&p, dest, true, &sv)
		if cv && !is {
			t.Fatalf("covers(%q, %q) without intersecting", pat, dest)
		}
		if inDest && cv && !inPat {
			t.Fatalf("covers(%q, %q) but %q matches only dest", pat, dest, topic)
		}
		if inDest && inPat && !is {
			t.Fatalf("intersects(%q, %q) = false but %q matches both", pat, dest, topic)
		}
		// A topic name as dest: covers, intersects and matching agree.
		if cv, is := covers(&p, topic, false, &sv), intersects(&p, topic, false, &sv); cv != inPat || is != inPat {
			t.Fatalf("topic %q, pattern %q: covers %v intersects %v, match %v", topic, pat, cv, is, inPat)
		}
	})
}

// FuzzParseACLFile: no panic, and whatever parses compiles.
func FuzzParseACLFile(f *testing.F) {
	f.Add("topic read a/#\nuser bob\ntopic deny a/b\npattern write d/%c/#\ngroup g\nqueue q/%u\n# c\n")
	f.Add("user\n")
	f.Add("topic\tread\t+/+\n")
	f.Fuzz(func(t *testing.T, src string) {
		rules, err := ParseACLFile(strings.NewReader(src))
		if err != nil {
			return
		}
		if _, err := NewACL(rules, nil); err != nil {
			t.Fatalf("parsed rules do not compile: %v", err)
		}
	})
}

// BenchmarkACLAllow20RulesSubscribe is a subscribe filter against the same
// 20 rules (intersects and covers on filters).
func BenchmarkACLAllow20RulesSubscribe(b *testing.B) {
	a, err := NewACL(benchRules(), map[string][]string{"ops": {"alice"}})
	if err != nil {
		b.Fatal(err)
	}
	id := broker.Identity{Name: "alice", Groups: []string{"ops"}}
	if !a.Allow(id, "dev1", broker.OpSubscribe, "logs/app/+") {
		b.Fatal("not allowed")
	}
	b.ReportAllocs()
	for b.Loop() {
		a.Allow(id, "dev1", broker.OpSubscribe, "logs/app/+")
	}
}

// TestMosquittoExampleACLFile parses Mosquitto's aclfile.example (2.0) as
// shipped and checks what it grants.
func TestMosquittoExampleACLFile(t *testing.T) {
	src := `# This affects access control for clients with no username.
topic read $SYS/#

# This only affects clients with username "roger".
user roger
topic foo/bar

# This affects all clients.
pattern write $SYS/broker/connection/%c/state
`
	rules, err := ParseACLFile(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewACL(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	roger := broker.Identity{Name: "roger"}
	for _, c := range []struct {
		id   broker.Identity
		op   broker.Op
		dest string
		want bool
	}{
		{anon, broker.OpSubscribe, "$SYS/#", true}, // an explicit rule opens $SYS
		{anon, broker.OpPublish, "$SYS/x", false},
		{roger, broker.OpSubscribe, "$SYS/#", false},
		{roger, broker.OpPublish, "foo/bar", true},
		{roger, broker.OpSubscribe, "foo/bar", true},
		{roger, broker.OpSubscribe, "foo/+", false},
		{anon, broker.OpPublish, "foo/bar", false},
		{roger, broker.OpPublish, "$SYS/broker/connection/dev1/state", true},
		{roger, broker.OpPublish, "$SYS/broker/connection/dev2/state", false},
	} {
		if got := a.Allow(c.id, "dev1", c.op, c.dest); got != c.want {
			t.Errorf("Allow(%q, %v, %q) = %v, want %v", c.id.Name, c.op, c.dest, got, c.want)
		}
	}
}
