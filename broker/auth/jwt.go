package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duplexmq/duplex/broker"
)

// Limits on tokens, checked before parsing or before building rules.
const (
	// MaxJWTSize bounds a token (its compact serialization).
	MaxJWTSize = 16 << 10
	// MaxJWTRules bounds the rules a token's ACL claim may carry.
	MaxJWTRules = 256
	// MaxJWTPattern bounds one topic or queue pattern of an ACL claim.
	MaxJWTPattern = 1 << 10
	// MaxJWTGroups bounds the groups a token may name.
	MaxJWTGroups = 256
)

// DefaultJWTLeeway is the clock skew allowed on exp, nbf and iat.
const DefaultJWTLeeway = 30 * time.Second

// JWTConfig is the [jwt] section of the config. At least one key source
// (SecretFile, PublicKeyFile, JWKSFile) must be set for JWT authentication;
// several may be set together.
type JWTConfig struct {
	// SecretFile holds the HMAC secret (HS256; HS384 and HS512 are
	// accepted with the same key): at least 32 bytes, a trailing newline
	// is dropped.
	SecretFile string
	// PublicKeyFile holds PEM public keys or certificates: RSA keys verify
	// RS256/RS384/RS512, EC keys the ES algorithm of their curve.
	PublicKeyFile string
	// JWKSFile holds a JSON Web Key Set (RFC 7517); tokens pick a key by
	// kid.
	JWKSFile string
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// UsernameClaim names the claim holding the user name (default "sub").
	UsernameClaim string
	// GroupsClaim names the claim holding the groups: an array of strings
	// or one string separated by spaces or commas (default "groups").
	GroupsClaim string
	// AdminClaim names a boolean claim that makes the user an admin
	// (default "admin"); a "role" or "roles" claim containing "admin" does
	// too.
	AdminClaim string
	// ACLClaim names the claim carrying ACL rules in EMQX's forms (default
	// "acl").
	ACLClaim string
	// Leeway is the clock skew allowed on exp, nbf and iat, taken as
	// given: zero means none (the config's default, 30s, is in
	// DefaultJWTConfig); negative is refused.
	Leeway time.Duration
}

// DefaultJWTConfig returns the config's defaults (no key source): the claim
// names and a 30s leeway.
func DefaultJWTConfig() JWTConfig {
	return JWTConfig{UsernameClaim: "sub", GroupsClaim: "groups", AdminClaim: "admin", ACLClaim: "acl", Leeway: DefaultJWTLeeway}
}

// Enabled reports whether a key source is configured.
func (c JWTConfig) Enabled() bool {
	return c.SecretFile != "" || c.PublicKeyFile != "" || c.JWKSFile != ""
}

// withDefaults fills the empty claim names (Leeway is taken as given).
func (c JWTConfig) withDefaults() JWTConfig {
	d := DefaultJWTConfig()
	if c.UsernameClaim == "" {
		c.UsernameClaim = d.UsernameClaim
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = d.GroupsClaim
	}
	if c.AdminClaim == "" {
		c.AdminClaim = d.AdminClaim
	}
	if c.ACLClaim == "" {
		c.ACLClaim = d.ACLClaim
	}
	return c
}

// JWTVerifier checks JSON Web Tokens (RFC 7519) and turns them into
// identities. It is immutable and safe for concurrent use; reload by
// building a new one.
type JWTVerifier struct {
	cfg    JWTConfig
	keys   []jwtKey
	algs   jwtAlgs
	parser *jwt.Parser
}

// NewJWTVerifier loads the configured keys. Errors name the config key, the
// file and what is wrong with it.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if !cfg.Enabled() {
		return nil, errors.New("jwt: no key source: set jwt.secret_file, jwt.public_key_file or jwt.jwks_file")
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("jwt: leeway %v is negative", cfg.Leeway)
	}
	v := &JWTVerifier{cfg: cfg.withDefaults()}
	if cfg.SecretFile != "" {
		k, err := jwtLoadSecret(cfg.SecretFile)
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, k)
	}
	if cfg.PublicKeyFile != "" {
		ks, err := jwtLoadPEM(cfg.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, ks...)
	}
	if cfg.JWKSFile != "" {
		ks, err := jwtLoadJWKS(cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, ks...)
	}
	for _, k := range v.keys {
		v.algs |= k.algs
	}
	v.parser = v.newParser()
	return v, nil
}

func (v *JWTVerifier) newParser() *jwt.Parser {
	opts := []jwt.ParserOption{
		// Only the algorithms of the configured keys: never "none", never
		// HS* when only public keys are configured (RFC 8725 §2.1, §3.1).
		jwt.WithValidMethods(v.algs.names()),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.cfg.Leeway),
	}
	if v.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.cfg.Audience))
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	return jwt.NewParser(opts...)
}

// Algorithms returns the JWS algorithms the verifier accepts.
func (v *JWTVerifier) Algorithms() []string { return v.algs.names() }

// TokenError is why a token was refused. It wraps broker.ErrBadCredentials;
// Reason is short and never contains the token.
type TokenError struct {
	Reason string
}

func (e *TokenError) Error() string { return "jwt: " + e.Reason }

// Unwrap makes errors.Is(err, broker.ErrBadCredentials) true.
func (e *TokenError) Unwrap() error { return broker.ErrBadCredentials }

func jwtErr(format string, args ...any) error {
	return &TokenError{Reason: fmt.Sprintf(format, args...)}
}

// Verify checks a token's signature and claims and returns its identity:
// Name from the username claim, Groups, Admin, Expires (exp plus the
// leeway: the moment Verify starts refusing the token), and Rules ([]Rule
// from the ACL claim, each with User empty: they apply to the token's
// holder; nil when the token has no ACL claim, a non-nil empty slice when
// it has an empty one). Every error is a *TokenError wrapping
// broker.ErrBadCredentials.
func (v *JWTVerifier) Verify(token string) (broker.Identity, error) {
	if len(token) > MaxJWTSize {
		return broker.Identity{}, jwtErr("token is %d bytes, more than %d", len(token), MaxJWTSize)
	}
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(token, claims, v.keyFor)
	if err != nil {
		return broker.Identity{}, v.reason(t, claims, err)
	}
	// RFC 7515 §4.1.11: a "crit" header names extensions the recipient
	// must understand; we understand none.
	if _, ok := t.Header["crit"]; ok {
		return broker.Identity{}, jwtErr("unsupported critical header")
	}
	return v.identity(claims)
}

// keyFor picks the keys that may verify t: those made for its algorithm
// and, when t names a kid, the JWKS keys with that kid plus the keys
// without one (secret and PEM file). The library tries each.
func (v *JWTVerifier) keyFor(t *jwt.Token) (any, error) {
	alg := jwtAlgByName(t.Method.Alg())
	kid, hasKid := "", false
	if h, ok := t.Header["kid"]; ok {
		s, ok := h.(string)
		if !ok {
			return nil, jwtErr("malformed token: kid is not a string")
		}
		kid, hasKid = s, true
	}
	var set jwt.VerificationKeySet
	for i := range v.keys {
		k := &v.keys[i]
		if k.algs&alg == 0 || hasKid && k.kid != "" && k.kid != kid {
			continue
		}
		set.Keys = append(set.Keys, k.key)
	}
	switch {
	case len(set.Keys) == 0 && hasKid:
		return nil, jwtErr("unknown key id")
	case len(set.Keys) == 0:
		return nil, jwtErr("no key for algorithm %s", t.Method.Alg())
	case len(set.Keys) == 1:
		return set.Keys[0], nil
	}
	return set, nil
}

// reason turns a parser error into a short TokenError.
func (v *JWTVerifier) reason(t *jwt.Token, claims jwt.MapClaims, err error) error {
	var te *TokenError
	if errors.As(err, &te) {
		return te
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return jwtErr("malformed token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t != nil && t.Method != nil && jwtAlgByName(t.Method.Alg())&v.algs == 0 {
			return jwtErr("algorithm %s not allowed", t.Method.Alg())
		}
		return jwtErr("bad signature")
	case errors.Is(err, jwt.ErrTokenUnverifiable) && !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return jwtErr("unknown or missing algorithm")
	case errors.Is(err, jwt.ErrTokenExpired):
		return jwtErr("token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return jwtErr("token not valid yet")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return jwtErr("token issued in the future")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return jwtErr("wrong audience")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return jwtErr("wrong issuer")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		if _, ok := claims["exp"]; !ok {
			return jwtErr("token has no exp")
		}
		if _, ok := claims["aud"]; !ok && v.cfg.Audience != "" {
			return jwtErr("wrong audience")
		}
		if _, ok := claims["iss"]; !ok && v.cfg.Issuer != "" {
			return jwtErr("wrong issuer")
		}
		return jwtErr("missing claim")
	case errors.Is(err, jwt.ErrInvalidType):
		return jwtErr("claim of the wrong type")
	}
	return jwtErr("invalid token")
}

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

// LooksLikeJWT reports whether s has the shape of a JWS compact
// serialization (RFC 7515 §7.1): three base64url segments separated by two
// dots, the first decoding to a JSON object with an "alg" member. It is a
// cheap test to tell a token from a password; Verify decides.
func LooksLikeJWT(s string) bool {
	if len(s) > MaxJWTSize {
		return false
	}
	h, rest, ok := strings.Cut(s, ".")
	if !ok {
		return false
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || h == "" || p == "" || len(h) > 1024 {
		return false
	}
	for _, seg := range [...]string{h, p, sig} {
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	return json.Unmarshal(b, &hdr) == nil && hdr.Alg != ""
}
