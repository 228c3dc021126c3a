package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/duplexmq/duplex/broker"
)

// ACL is a compiled, immutable rule set. Allow answers without allocating:
// patterns are split into levels once, destinations are walked level by
// level, and %u / %c are compared in place.
//
// The semantics (SECURITY-PLAN "ACL semantics") for (identity, client id,
// op, dest), over the rules that apply to the identity (its user, one of its
// groups, anonymous clients, or everyone) and to the op (publish and
// queue-send: ActionPublish; subscribe and queue-receive: ActionSubscribe;
// Topic rules for topic ops, Queue rules for queue ops):
//
//   - deny wins: an applicable deny rule whose pattern intersects dest (some
//     topic matches both) refuses;
//   - else an applicable allow rule whose pattern covers dest (every topic
//     matching dest matches the pattern) permits;
//   - else nothing decides: `$SYS` topics are for admins only, and anything
//     else is refused (a non-nil ACL is a configured ACL). A nil *ACL
//     permits everything but `$SYS`, which stays admin-only.
//
// Filters beginning with a wildcard never match topics beginning with '$'
// [MQTT-4.7.2-1], in rules and in subscriptions alike: `#` neither grants
// nor denies `$SYS/...`.
//
// %u is the user name and %c the client id. An empty value never matches
// (anonymous clients match no %u rule). A value that cannot stand in a
// level (it holds '/', '+', '#' or NUL, or begins with '$') makes an allow
// rule not apply, and a deny rule apply as if the level were '#': such a
// client is refused rather than let through.
type ACL struct {
	byOp     [4]opLists          // indexed by broker.Op
	memberOf map[string][]string // user -> groups, from NewACL's groups map
	n        int
}

// opLists are the rules for one op, by whom they apply to.
type opLists struct {
	everyone, anonymous opRules
	users               map[string]*opRules // rules naming the user
	groups              map[string]*opRules // rules naming the group
}

// opRules are rules split by access: denies are checked first, all of
// them; allows only until one covers.
type opRules struct {
	deny, allow []*crule
}

func (r *opRules) add(c *crule) {
	if c.deny {
		r.deny = append(r.deny, c)
	} else {
		r.allow = append(r.allow, c)
	}
}

// verdict is what a rule set decides.
type verdict uint8

const (
	undecided verdict = iota
	allowed
	denied
)

type levelKind uint8

const (
	lvLit   levelKind = iota // literal level
	lvPlus                   // '+'
	lvHash                   // '#'
	lvSubst                  // literal text with %u / %c
)

type varKind uint8

const (
	varNone varKind = iota
	varUser
	varClient
)

// piece is part of a level holding %u or %c: literal text or a variable.
type piece struct {
	lit string
	v   varKind
}

type plevel struct {
	kind   levelKind
	lit    string  // lvLit
	pieces []piece // lvSubst
	user   bool    // lvSubst holds %u
	client bool    // lvSubst holds %c
}

// pattern is a compiled topic or queue pattern.
type pattern struct {
	levels []plevel
	user   bool // holds %u
	client bool // holds %c
}

// crule is a compiled Rule.
type crule struct {
	deny   bool
	queue  bool
	action Action
	pat    pattern
}

// NewACL compiles rules. groups maps a group name to its members; a Group
// rule applies to those members and to identities whose Groups name the
// group (a token's groups claim). Every rule is checked: exactly one of
// Topic and Queue, at most one of User, Group and Anonymous, a known Access
// and Action, and a pattern in MQTT filter syntax (MQTT 3.1.1 §4.7: '#' only
// as the whole last level, '+' only as a whole level) where %u and %c may
// stand for a whole level or part of one. The error names the rule by its
// index.
func NewACL(rules []Rule, groups map[string][]string) (*ACL, error) {
	a := &ACL{memberOf: make(map[string][]string), n: len(rules)}
	for i := range a.byOp {
		a.byOp[i].users = make(map[string]*opRules)
		a.byOp[i].groups = make(map[string]*opRules)
	}
	for g, members := range groups {
		for _, u := range members {
			if !slices.Contains(a.memberOf[u], g) {
				a.memberOf[u] = append(a.memberOf[u], g)
			}
		}
	}
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("acl rule %d: %w", i+1, err)
		}
		for op := range a.byOp {
			if !c.appliesTo(broker.Op(op)) {
				continue
			}
			l := &a.byOp[op]
			switch {
			case r.User != "":
				addTo(l.users, r.User, c)
			case r.Group != "":
				addTo(l.groups, r.Group, c)
			case r.Anonymous:
				l.anonymous.add(c)
			default:
				l.everyone.add(c)
			}
		}
	}
	return a, nil
}

func addTo(m map[string]*opRules, key string, c *crule) {
	r := m[key]
	if r == nil {
		r = &opRules{}
		m[key] = r
	}
	r.add(c)
}

// appliesTo reports whether the rule concerns op: Topic rules topic ops,
// Queue rules queue ops; ActionPublish publish and queue-send,
// ActionSubscribe subscribe and queue-receive.
func (c *crule) appliesTo(op broker.Op) bool {
	switch op {
	case broker.OpPublish:
		return !c.queue && c.action&ActionPublish != 0
	case broker.OpSubscribe:
		return !c.queue && c.action&ActionSubscribe != 0
	case broker.OpQueueSend:
		return c.queue && c.action&ActionPublish != 0
	case broker.OpQueueReceive:
		return c.queue && c.action&ActionSubscribe != 0
	}
	return false
}

// Len is the number of rules.
func (a *ACL) Len() int {
	if a == nil {
		return 0
	}
	return a.n
}

// compileRule checks and compiles one rule.
func compileRule(r Rule) (*crule, error) {
	who := 0
	if r.User != "" {
		who++
	}
	if r.Group != "" {
		who++
	}
	if r.Anonymous {
		who++
	}
	if who > 1 {
		return nil, errors.New("more than one of user, group and anonymous")
	}
	if r.Access != Allow && r.Access != Deny {
		return nil, fmt.Errorf("unknown access %d", r.Access)
	}
	if r.Action == 0 || r.Action&^ActionAll != 0 {
		return nil, fmt.Errorf("unknown action %d", r.Action)
	}
	if (r.Topic == "") == (r.Queue == "") {
		return nil, errors.New("exactly one of topic and queue must be set")
	}
	src := r.Topic
	if r.Queue != "" {
		src = r.Queue
	}
	p, err := compilePattern(src)
	if err != nil {
		return nil, err
	}
	return &crule{deny: r.Access == Deny, queue: r.Queue != "", action: r.Action, pat: p}, nil
}

// compilePattern splits an ACL pattern into levels. It must be a valid MQTT
// topic filter (broker.ValidFilter: [MQTT-4.7.1-2], [MQTT-4.7.1-3],
// [MQTT-4.7.3-1], [MQTT-4.7.3-2]); %u and %c are ordinary characters to
// that check and are found here.
func compilePattern(s string) (pattern, error) {
	if err := broker.ValidFilter(s); err != nil {
		return pattern{}, fmt.Errorf("pattern %q: %w", s, err)
	}
	var p pattern
	for _, lvl := range strings.Split(s, "/") {
		switch {
		case lvl == "+":
			p.levels = append(p.levels, plevel{kind: lvPlus})
		case lvl == "#":
			p.levels = append(p.levels, plevel{kind: lvHash})
		case strings.Contains(lvl, "%u") || strings.Contains(lvl, "%c"):
			l := plevel{kind: lvSubst}
			from := 0
			for j := 0; j+1 < len(lvl); j++ {
				if lvl[j] != '%' || (lvl[j+1] != 'u' && lvl[j+1] != 'c') {
					continue
				}
				if j > from {
					l.pieces = append(l.pieces, piece{lit: lvl[from:j]})
				}
				if lvl[j+1] == 'u' {
					l.pieces = append(l.pieces, piece{v: varUser})
					l.user, p.user = true, true
				} else {
					l.pieces = append(l.pieces, piece{v: varClient})
					l.client, p.client = true, true
				}
				j++
				from = j + 1
			}
			if from < len(lvl) {
				l.pieces = append(l.pieces, piece{lit: lvl[from:]})
			}
			p.levels = append(p.levels, l)
		default:
			p.levels = append(p.levels, plevel{kind: lvLit, lit: lvl})
		}
	}
	return p, nil
}
