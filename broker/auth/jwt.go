package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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
