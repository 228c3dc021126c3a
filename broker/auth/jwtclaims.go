// JWT claims: turning a verified token's claims into an identity, and EMQX's
// ACL claim forms into rules.

package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duplexmq/duplex/broker"
)

// identity builds the identity from verified claims.
func (v *JWTVerifier) identity(claims jwt.MapClaims) (broker.Identity, error) {
	var id broker.Identity
	name, _ := claims[v.cfg.UsernameClaim].(string)
	if name == "" {
		return id, jwtErr("no user name in claim %q", v.cfg.UsernameClaim)
	}
	if !jwtCleanString(name) {
		return id, jwtErr("bad user name in claim %q", v.cfg.UsernameClaim)
	}
	id.Name = name
	if g, ok := claims[v.cfg.GroupsClaim]; ok && g != nil {
		groups, err := jwtStrings(g)
		if err != nil {
			return broker.Identity{}, jwtErr("bad claim %q: %s", v.cfg.GroupsClaim, err)
		}
		id.Groups = groups
	}
	id.Admin = claims[v.cfg.AdminClaim] == true
	for _, c := range [...]string{"role", "roles"} {
		if r, ok := claims[c]; ok && !id.Admin {
			roles, _ := jwtStrings(r)
			for _, s := range roles {
				if s == "admin" {
					id.Admin = true
				}
			}
		}
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return broker.Identity{}, jwtErr("token has no exp")
	}
	id.Expires = exp.Add(v.cfg.Leeway)
	if a, ok := claims[v.cfg.ACLClaim]; ok {
		rules, err := jwtACL(a)
		if err != nil {
			return broker.Identity{}, jwtErr("bad claim %q: %s", v.cfg.ACLClaim, err)
		}
		id.Rules = rules
	}
	return id, nil
}

// jwtCleanString reports whether s is valid UTF-8 without control
// characters (they would forge log lines) and at most MaxJWTPattern bytes.
func jwtCleanString(s string) bool {
	if len(s) > MaxJWTPattern || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return false
		}
	}
	return true
}

// jwtStrings reads a claim holding names: an array of strings, or one
// string with the names separated by spaces or commas.
func jwtStrings(v any) ([]string, error) {
	var out []string
	add := func(s string) error {
		if s == "" {
			return nil
		}
		if len(out) >= MaxJWTGroups {
			return fmt.Errorf("more than %d names", MaxJWTGroups)
		}
		if !jwtCleanString(s) {
			return errors.New("bad name")
		}
		out = append(out, s)
		return nil
	}
	switch x := v.(type) {
	case string:
		for _, s := range strings.FieldsFunc(x, func(r rune) bool { return r == ' ' || r == ',' }) {
			if err := add(s); err != nil {
				return nil, err
			}
		}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("not an array of strings")
			}
			if err := add(s); err != nil {
				return nil, err
			}
		}
	default:
		return nil, errors.New("not a string or an array of strings")
	}
	return out, nil
}

// jwtACL converts an ACL claim in EMQX's forms to rules.
//
// The list form (EMQX 5):
//
//	[{"permission": "allow"|"deny", "action": "publish"|"subscribe"|"all",
//	  "topic": "a/#"}, ...]
//
// with "topics": [...] for several patterns, and "queue" / "queues" for
// queue-name patterns (Duplex's own). EMQX's placeholders ${username} and
// ${clientid} become %u and %c; an "eq " prefix means the literal filter:
// kept when it has no wildcard. Conditions this ACL cannot express ("qos",
// "retain", an "eq" filter with wildcards) make an allow rule ignored
// (grant less) and a deny rule apply more widely (deny more).
//
// The object form (EMQX 4): {"pub": [...], "sub": [...], "all": [...]},
// every pattern allowed.
//
// Unknown members are refused, not ignored: a member we do not understand
// might have been meant to restrict.
func jwtACL(v any) ([]Rule, error) {
	rules := []Rule{}
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("rule %d is not an object", i)
			}
			var err error
			if rules, err = jwtACLRule(rules, m); err != nil {
				return nil, fmt.Errorf("rule %d: %s", i, err)
			}
		}
	case map[string]any:
		for _, key := range [...]string{"pub", "sub", "all"} {
			list, ok := x[key]
			if !ok {
				continue
			}
			pats, err := jwtPatternList(list)
			if err != nil {
				return nil, fmt.Errorf("%q: %s", key, err)
			}
			act := map[string]Action{"pub": ActionPublish, "sub": ActionSubscribe, "all": ActionAll}[key]
			for _, p := range pats {
				if rules, err = jwtAddRule(rules, Allow, act, p, false); err != nil {
					return nil, fmt.Errorf("%q: %s", key, err)
				}
			}
		}
		for key := range x {
			if key != "pub" && key != "sub" && key != "all" {
				return nil, fmt.Errorf("unknown member %q", key)
			}
		}
	default:
		return nil, errors.New("not a list or an object")
	}
	return rules, nil
}

// jwtACLRule appends the rules of one list-form entry.
func jwtACLRule(rules []Rule, m map[string]any) ([]Rule, error) {
	var access Access
	switch m["permission"] {
	case "allow":
		access = Allow
	case "deny":
		access = Deny
	default:
		return nil, errors.New(`"permission" must be "allow" or "deny"`)
	}
	var act Action
	switch m["action"] {
	case "publish":
		act = ActionPublish
	case "subscribe":
		act = ActionSubscribe
	case "all":
		act = ActionAll
	default:
		return nil, errors.New(`"action" must be "publish", "subscribe" or "all"`)
	}
	conditional := false
	var pats []string
	queue, kinds := false, 0
	for key, val := range m {
		var err error
		switch key {
		case "permission", "action":
		case "qos", "retain":
			conditional = true
		case "topic", "queue":
			kinds++
			queue = key == "queue"
			s, ok := val.(string)
			if !ok {
				return nil, fmt.Errorf("%q is not a string", key)
			}
			pats = append(pats, s)
		case "topics", "queues":
			kinds++
			queue = key == "queues"
			if pats, err = jwtPatternList(val); err != nil {
				return nil, fmt.Errorf("%q: %s", key, err)
			}
		default:
			return nil, fmt.Errorf("unknown member %q", key)
		}
	}
	if kinds != 1 {
		return nil, errors.New(`want exactly one of "topic", "topics", "queue", "queues"`)
	}
	if conditional && access == Allow {
		return rules, nil // cannot grant only for some QoS or retain flag: grant nothing
	}
	for _, p := range pats {
		var err error
		if rules, err = jwtAddRule(rules, access, act, p, queue); err != nil {
			return nil, err
		}
	}
	return rules, nil
}

// jwtPatternList reads an array of pattern strings.
func jwtPatternList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
		return nil, errors.New("not an array of strings")
	}
	if len(list) > MaxJWTRules {
		return nil, fmt.Errorf("more than %d rules", MaxJWTRules)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, errors.New("not an array of strings")
		}
		out = append(out, s)
	}
	return out, nil
}

// jwtAddRule checks a pattern, translates EMQX's syntax and appends the
// rule.
func jwtAddRule(rules []Rule, access Access, act Action, pat string, queue bool) ([]Rule, error) {
	if len(rules) >= MaxJWTRules {
		return nil, fmt.Errorf("more than %d rules", MaxJWTRules)
	}
	if len(pat) > MaxJWTPattern {
		return nil, fmt.Errorf("pattern of %d bytes, more than %d", len(pat), MaxJWTPattern)
	}
	exact := false
	if rest, ok := strings.CutPrefix(pat, "eq "); ok {
		pat, exact = rest, true
	}
	pat = strings.NewReplacer("${username}", "%u", "${clientid}", "%c").Replace(pat)
	if strings.Contains(pat, "${") {
		return nil, errors.New("unsupported placeholder in pattern")
	}
	if err := jwtCheckPattern(pat); err != nil {
		return nil, err
	}
	if exact && strings.ContainsAny(pat, "+#") && access == Allow {
		return rules, nil // "eq a/#" grants only the filter itself: not expressible, grant nothing
	}
	r := Rule{Access: access, Action: act}
	if queue {
		r.Queue = pat
	} else {
		r.Topic = pat
	}
	return append(rules, r), nil
}

// jwtCheckPattern checks a pattern as NewACL will: a valid MQTT topic
// filter (broker.ValidFilter), so a token's rules always compile.
func jwtCheckPattern(p string) error {
	if err := broker.ValidFilter(p); err != nil {
		return fmt.Errorf("pattern: %w", err)
	}
	return nil
}
