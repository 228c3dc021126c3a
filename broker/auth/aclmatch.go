// ACL matching: Allow, the verdict of a rule set for one check, and the
// level-by-level covers and intersects of a pattern and a destination.

package auth

import (
	"slices"
	"strings"

	"github.com/duplexmq/duplex/broker"
)

// varState is how a %u or %c value can be substituted.
type varState uint8

const (
	varOK    varState = iota
	varEmpty          // never matches
	varBad            // allow rules do not apply; deny rules treat the level as '#'
)

func stateOf(v string) varState {
	switch {
	case v == "":
		return varEmpty
	case v[0] == '$' || strings.ContainsAny(v, "/+#\x00"):
		return varBad
	}
	return varOK
}

// subst carries the variable values of one check.
type subst struct {
	user, client   string
	uState, cState varState
}

// Allow reports whether id, connected with clientID, may do op on dest (a
// topic name, a topic filter for OpSubscribe, or a queue name). It does not
// allocate.
func (a *ACL) Allow(id broker.Identity, clientID string, op broker.Op, dest string) bool {
	return resolve(a.decide(id, clientID, op, dest), a != nil, id, op, dest)
}

// resolve turns a verdict into an answer: undecided falls to the `$SYS`
// rule and then to configured (denied when an ACL is configured).
func resolve(v verdict, configured bool, id broker.Identity, op broker.Op, dest string) bool {
	switch v {
	case allowed:
		return true
	case denied:
		return false
	}
	if (op == broker.OpPublish || op == broker.OpSubscribe) && isSys(dest) {
		return id.Admin
	}
	return !configured
}

// isSys reports whether a topic or filter lies under `$SYS`. A filter
// beginning with a wildcard never reaches it [MQTT-4.7.2-1].
func isSys(dest string) bool {
	return dest == "$SYS" || strings.HasPrefix(dest, "$SYS/")
}

// decide applies the rules that concern id and op to dest: every
// applicable deny first, then the allows until one covers.
func (a *ACL) decide(id broker.Identity, clientID string, op broker.Op, dest string) verdict {
	if a == nil {
		return undecided
	}
	if int(op) >= len(a.byOp) {
		return denied
	}
	l := &a.byOp[op]
	m := matcher{dest: dest, filter: op == broker.OpSubscribe}
	anon := id.Anonymous || id.Name == ""
	m.sv = subst{user: id.Name, client: clientID, cState: stateOf(clientID)}
	if anon {
		m.sv.user = ""
	}
	m.sv.uState = stateOf(m.sv.user)

	var user *opRules
	var member []string
	if !anon {
		user = l.users[id.Name]
		member = a.memberOf[id.Name]
	}
	for _, deny := range [2]bool{true, false} {
		hit := m.any(&l.everyone, deny)
		switch {
		case hit:
		case anon:
			hit = m.any(&l.anonymous, deny)
		default:
			hit = m.any(user, deny)
			// Each group once: from the groups map, then the identity's
			// own (a token's groups claim) not already seen.
			for i := 0; i < len(member) && !hit; i++ {
				hit = m.any(l.groups[member[i]], deny)
			}
			for i := 0; i < len(id.Groups) && !hit; i++ {
				g := id.Groups[i]
				if slices.Contains(member, g) || slices.Contains(id.Groups[:i], g) {
					continue
				}
				hit = m.any(l.groups[g], deny)
			}
		}
		if hit {
			if deny {
				return denied
			}
			return allowed
		}
	}
	return undecided
}

// matcher is one check's destination and variables.
type matcher struct {
	dest   string
	filter bool // dest is a topic filter (OpSubscribe)
	sv     subst
}

// any reports whether one of r's deny rules intersects dest (deny) or one
// of its allow rules covers it (!deny).
func (m *matcher) any(r *opRules, deny bool) bool {
	if r == nil {
		return false
	}
	if deny {
		for _, c := range r.deny {
			if intersects(&c.pat, m.dest, m.filter, &m.sv) {
				return true
			}
		}
		return false
	}
	for _, c := range r.allow {
		if covers(&c.pat, m.dest, m.filter, &m.sv) {
			return true
		}
	}
	return false
}

// cutLevel splits the first level off s.
func cutLevel(s string) (lvl, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// destKind classifies a level of dest; only a filter has wildcards.
func destKind(lvl string, filter bool) levelKind {
	if filter {
		switch lvl {
		case "+":
			return lvPlus
		case "#":
			return lvHash
		}
	}
	return lvLit
}

func isWild(k levelKind) bool { return k == lvPlus || k == lvHash }

// dollar reports whether a pattern level (literal or substituted) begins
// with '$'. Substituted values never begin with '$' (stateOf).
func (l *plevel) dollar() bool {
	switch l.kind {
	case lvLit:
		return strings.HasPrefix(l.lit, "$")
	case lvSubst:
		return l.pieces[0].v == varNone && strings.HasPrefix(l.pieces[0].lit, "$")
	}
	return false
}

// substEq reports whether the substituted level l equals lvl, comparing in
// place.
func (l *plevel) substEq(lvl string, sv *subst) bool {
	for _, pc := range l.pieces {
		s := pc.lit
		switch pc.v {
		case varUser:
			s = sv.user
		case varClient:
			s = sv.client
		}
		if !strings.HasPrefix(lvl, s) {
			return false
		}
		lvl = lvl[len(s):]
	}
	return lvl == ""
}

// usable reports whether p's variables all have usable values, and whether
// one of them is bad. An empty value makes the rule never apply, bad or not.
func (p *pattern) usable(sv *subst) (ok, bad bool) {
	if (p.user && sv.uState == varEmpty) || (p.client && sv.cState == varEmpty) {
		return false, false
	}
	bad = (p.user && sv.uState == varBad) || (p.client && sv.cState == varBad)
	return !bad, bad
}

// levelBad reports whether a substituted level uses a bad value.
func (l *plevel) levelBad(sv *subst) bool {
	return (l.user && sv.uState == varBad) || (l.client && sv.cState == varBad)
}

// covers reports whether every topic matching dest matches p (for a topic
// name: whether it matches). MQTT 3.1.1 §4.7.1: '#' matches the parent
// level and any number of child levels, '+' exactly one level.
func covers(p *pattern, dest string, filter bool, sv *subst) bool {
	if ok, _ := p.usable(sv); !ok {
		return false
	}
	rest, done := dest, false
	for i := range p.levels {
		pl := &p.levels[i]
		if done {
			// dest ended; only a final '#' (its parent level) still matches.
			return pl.kind == lvHash
		}
		var lvl string
		var more bool
		lvl, rest, more = cutLevel(rest)
		done = !more
		dk := destKind(lvl, filter)
		// [MQTT-4.7.2-1] a wildcard first level does not match '$' topics.
		if i == 0 && isWild(pl.kind) && dk == lvLit && strings.HasPrefix(lvl, "$") {
			return false
		}
		switch pl.kind {
		case lvHash:
			return true
		case lvPlus:
			if dk == lvHash {
				return false
			}
		case lvLit:
			if dk != lvLit || lvl != pl.lit {
				return false
			}
		case lvSubst:
			if dk != lvLit || !pl.substEq(lvl, sv) {
				return false
			}
		}
	}
	return done
}

// intersects reports whether some topic matches both p and dest (for a
// topic name: whether it matches p). A pattern level with a bad %u / %c
// value counts as '#' (fail closed for deny rules).
func intersects(p *pattern, dest string, filter bool, sv *subst) bool {
	ok, bad := p.usable(sv)
	if !ok && !bad {
		return false
	}
	rest, done := dest, false
	for i := range p.levels {
		pl := &p.levels[i]
		kind := pl.kind
		if kind == lvSubst && pl.levelBad(sv) {
			kind = lvHash
		}
		if done {
			return kind == lvHash
		}
		var lvl string
		var more bool
		lvl, rest, more = cutLevel(rest)
		done = !more
		dk := destKind(lvl, filter)
		if i == 0 {
			// [MQTT-4.7.2-1] a wildcard first level on either side never
			// meets a '$' level on the other.
			if isWild(kind) && dk == lvLit && strings.HasPrefix(lvl, "$") {
				return false
			}
			if isWild(dk) && !isWild(kind) && pl.dollar() {
				return false
			}
		}
		if kind == lvHash || dk == lvHash {
			return true
		}
		if kind == lvPlus || dk == lvPlus {
			continue
		}
		switch kind {
		case lvLit:
			if lvl != pl.lit {
				return false
			}
		case lvSubst:
			if !pl.substEq(lvl, sv) {
				return false
			}
		}
	}
	if done {
		return true
	}
	// The pattern ended and dest goes on: only a '#' next in dest (matching
	// its parent level) meets it.
	lvl, _, _ := cutLevel(rest)
	return filter && lvl == "#"
}
