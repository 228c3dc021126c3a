package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duplexmq/duplex/broker"
)

// jwtTestSecret is a 32-byte HS256 secret.
const jwtTestSecret = "0123456789abcdef0123456789abcdef"

// Test keys are generated once per test binary (RSA generation is slow
// under -race).
var (
	jwtTestKeysOnce    sync.Once
	jwtRSA, jwtRSA2    *rsa.PrivateKey
	jwtEC256, jwtEC384 *ecdsa.PrivateKey
)

func jwtTestKeys(t testing.TB) {
	t.Helper()
	jwtTestKeysOnce.Do(func() {
		var err error
		if jwtRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if jwtRSA2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if jwtEC256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if jwtEC384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

func jwtWriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func jwtPubPEM(t testing.TB, pubs ...any) []byte {
	t.Helper()
	var out []byte
	for _, pub := range pubs {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out
}

func jwtB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf returns a JWK for a public key or an HMAC secret.
func jwkOf(t testing.TB, kid string, key any) map[string]any {
	t.Helper()
	switch k := key.(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "kid": kid, "n": jwtB64(k.N.Bytes()), "e": jwtB64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		pt, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"kty": "EC", "kid": kid, "crv": k.Curve.Params().Name, "x": jwtB64(pt[1 : 1+size]), "y": jwtB64(pt[1+size:])}
	case []byte:
		return map[string]any{"kty": "oct", "kid": kid, "k": jwtB64(k)}
	}
	t.Fatalf("jwkOf %T", key)
	return nil
}

func jwksFile(t testing.TB, keys ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return jwtWriteFile(t, "jwks.json", b)
}

// sign makes a token. hdr entries are added to the header (kid, crit).
func jwtSign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims, hdr map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwtRawToken builds a token from a header, claims and an HS256 signature by
// hand (for headers the library will not sign, such as alg none).
func jwtRawToken(hdr, claims map[string]any, secret []byte) string {
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	s := jwtB64(h) + "." + jwtB64(c)
	if secret == nil {
		return s + "."
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(s))
	return s + "." + jwtB64(mac.Sum(nil))
}

func jwtClaims(sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
}

func jwtSecretVerifier(t testing.TB, cfg JWTConfig) *JWTVerifier {
	t.Helper()
	cfg.SecretFile = jwtWriteFile(t, "secret", []byte(jwtTestSecret+"\n"))
	v, err := NewJWTVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func jwtPEMVerifier(t testing.TB, cfg JWTConfig, pubs ...any) *JWTVerifier {
	t.Helper()
	cfg.PublicKeyFile = jwtWriteFile(t, "pub.pem", jwtPubPEM(t, pubs...))
	v, err := NewJWTVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWTValidEachAlgorithm(t *testing.T) {
	jwtTestKeys(t)
	hs := jwtSecretVerifier(t, JWTConfig{})
	rs := jwtPEMVerifier(t, JWTConfig{}, &jwtRSA.PublicKey)
	es := jwtPEMVerifier(t, JWTConfig{}, &jwtEC256.PublicKey, &jwtEC384.PublicKey)
	cases := []struct {
		v   *JWTVerifier
		m   jwt.SigningMethod
		key any
	}{
		{hs, jwt.SigningMethodHS256, []byte(jwtTestSecret)},
		{hs, jwt.SigningMethodHS384, []byte(jwtTestSecret)},
		{hs, jwt.SigningMethodHS512, []byte(jwtTestSecret)},
		{rs, jwt.SigningMethodRS256, jwtRSA},
		{rs, jwt.SigningMethodRS384, jwtRSA},
		{rs, jwt.SigningMethodRS512, jwtRSA},
		{es, jwt.SigningMethodES256, jwtEC256},
		{es, jwt.SigningMethodES384, jwtEC384},
	}
	for _, c := range cases {
		t.Run(c.m.Alg(), func(t *testing.T) {
			exp := time.Now().Add(time.Hour).Truncate(time.Second)
			tok := jwtSign(t, c.m, c.key, jwt.MapClaims{"sub": "alice", "exp": exp.Unix()}, nil)
			if !LooksLikeJWT(tok) {
				t.Errorf("LooksLikeJWT(%s token) = false", c.m.Alg())
			}
			id, err := c.v.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Name != "alice" || id.Anonymous || id.Admin || id.Groups != nil || id.Rules != nil {
				t.Errorf("identity = %+v", id)
			}
			if !id.Expires.Equal(exp) {
				t.Errorf("Expires = %v, want exp %v (no leeway)", id.Expires, exp)
			}
		})
	}
}

func TestJWTAlgorithmsFollowKeys(t *testing.T) {
	jwtTestKeys(t)
	if got := strings.Join(jwtSecretVerifier(t, JWTConfig{}).Algorithms(), ","); got != "HS256,HS384,HS512" {
		t.Errorf("secret: %s", got)
	}
	if got := strings.Join(jwtPEMVerifier(t, JWTConfig{}, &jwtRSA.PublicKey).Algorithms(), ","); got != "RS256,RS384,RS512" {
		t.Errorf("RSA: %s", got)
	}
	if got := strings.Join(jwtPEMVerifier(t, JWTConfig{}, &jwtEC256.PublicKey).Algorithms(), ","); got != "ES256" {
		t.Errorf("P-256: %s", got)
	}
}

func TestJWTCertificatePEM(t *testing.T) {
	jwtTestKeys(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &jwtRSA.PublicKey, jwtRSA)
	if err != nil {
		t.Fatal(err)
	}
	p := jwtWriteFile(t, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	v, err := NewJWTVerifier(JWTConfig{PublicKeyFile: p})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(jwtSign(t, jwt.SigningMethodRS256, jwtRSA, jwtClaims("alice"), nil)); err != nil {
		t.Errorf("token against a certificate's key: %v", err)
	}
}

// jwtWantRefused checks that err refuses the token with a reason containing
// reason, wraps ErrBadCredentials and does not echo the token.
func jwtWantRefused(t *testing.T, tok string, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want refused with %q", reason)
	}
	if !errors.Is(err, broker.ErrBadCredentials) {
		t.Errorf("error %v does not wrap ErrBadCredentials", err)
	}
	var te *TokenError
	if !errors.As(err, &te) {
		t.Errorf("error %v is not a *TokenError", err)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("error %q, want it to contain %q", err, reason)
	}
	if len(tok) > 8 && strings.Contains(err.Error(), tok) {
		t.Errorf("error %q contains the token", err)
	}
	for _, seg := range strings.Split(tok, ".") {
		if len(seg) > 16 && strings.Contains(err.Error(), seg) {
			t.Errorf("error %q contains a token segment", err)
		}
	}
}

func TestJWTRefused(t *testing.T) {
	jwtTestKeys(t)
	hs := jwtSecretVerifier(t, JWTConfig{Audience: "duplex", Issuer: "https://idp.example"})
	rs := jwtPEMVerifier(t, JWTConfig{}, &jwtRSA.PublicKey)
	secret := []byte(jwtTestSecret)
	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "aud": "duplex", "iss": "https://idp.example", "exp": now.Add(time.Hour).Unix()}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	// The RSA public key's bytes used as an HMAC secret: the classic
	// algorithm-confusion forgery (RFC 8725 §2.1).
	rsaPEM := jwtPubPEM(t, &jwtRSA.PublicKey)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&jwtRSA.PublicKey)

	oversize := good()
	oversize["pad"] = strings.Repeat("x", MaxJWTSize)

	if _, err := hs.Verify(jwtSign(t, jwt.SigningMethodHS256, secret, good(), nil)); err != nil {
		t.Fatalf("the good token is refused: %v", err)
	}
	cases := []struct {
		name, tok, reason string
		v                 *JWTVerifier
	}{
		{"expired", jwtSign(t, jwt.SigningMethodHS256, secret, with("exp", now.Add(-time.Hour).Unix()), nil), "token expired", hs},
		{"not yet valid", jwtSign(t, jwt.SigningMethodHS256, secret, with("nbf", now.Add(time.Hour).Unix()), nil), "not valid yet", hs},
		{"issued in the future", jwtSign(t, jwt.SigningMethodHS256, secret, with("iat", now.Add(time.Hour).Unix()), nil), "issued in the future", hs},
		{"wrong audience", jwtSign(t, jwt.SigningMethodHS256, secret, with("aud", []string{"other", "more"}), nil), "wrong audience", hs},
		{"no audience", jwtSign(t, jwt.SigningMethodHS256, secret, with("aud", nil), nil), "wrong audience", hs},
		{"wrong issuer", jwtSign(t, jwt.SigningMethodHS256, secret, with("iss", "https://evil.example"), nil), "wrong issuer", hs},
		{"no issuer", jwtSign(t, jwt.SigningMethodHS256, secret, with("iss", nil), nil), "wrong issuer", hs},
		{"missing exp", jwtSign(t, jwt.SigningMethodHS256, secret, with("exp", nil), nil), "no exp", hs},
		{"exp not a number", jwtSign(t, jwt.SigningMethodHS256, secret, with("exp", "tomorrow"), nil), "wrong type", hs},
		{"forged signature", jwtSign(t, jwt.SigningMethodHS256, []byte("another secret of 32 bytes......"), good(), nil), "bad signature", hs},
		{"forged RSA signature", jwtSign(t, jwt.SigningMethodRS256, jwtRSA2, good(), nil), "bad signature", rs},
		{"alg none", jwtRawToken(map[string]any{"alg": "none", "typ": "JWT"}, good(), nil), "algorithm none not allowed", hs},
		{"alg none with signature", jwtRawToken(map[string]any{"alg": "none"}, good(), secret), "algorithm none not allowed", hs},
		{"HS256 with the RSA PEM as secret", jwtSign(t, jwt.SigningMethodHS256, rsaPEM, good(), nil), "algorithm HS256 not allowed", rs},
		{"HS256 with the RSA DER as secret", jwtSign(t, jwt.SigningMethodHS256, rsaDER, good(), nil), "algorithm HS256 not allowed", rs},
		{"RS256 against a secret", jwtSign(t, jwt.SigningMethodRS256, jwtRSA, good(), nil), "algorithm RS256 not allowed", hs},
		{"ES256 against an RSA key", jwtSign(t, jwt.SigningMethodES256, jwtEC256, good(), nil), "algorithm ES256 not allowed", rs},
		{"PS256", jwtSign(t, jwt.SigningMethodPS256, jwtRSA, good(), nil), "algorithm PS256 not allowed", rs},
		{"unknown alg", jwtRawToken(map[string]any{"alg": "XX999"}, good(), secret), "algorithm", hs},
		{"oversize", jwtSign(t, jwt.SigningMethodHS256, secret, oversize, nil), "more than 16384", hs},
		{"malformed", "abc.def", "malformed", hs},
		{"bad base64", "a!b.c$d.e%f", "malformed", hs},
		{"crit header", jwtSign(t, jwt.SigningMethodHS256, secret, good(), map[string]any{"crit": []string{"exp"}}), "critical", hs},
		{"kid not a string", jwtSign(t, jwt.SigningMethodHS256, secret, good(), map[string]any{"kid": 7}), "kid", hs},
		{"no sub", jwtSign(t, jwt.SigningMethodHS256, secret, with("sub", nil), nil), `no user name in claim "sub"`, hs},
		{"sub not a string", jwtSign(t, jwt.SigningMethodHS256, secret, with("sub", 42), nil), "no user name", hs},
		{"sub with a newline", jwtSign(t, jwt.SigningMethodHS256, secret, with("sub", "alice\nINFO forged"), nil), "bad user name", hs},
		{"empty", "", "malformed", hs},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := c.v.Verify(c.tok)
			jwtWantRefused(t, c.tok, err, c.reason)
			if !reflect.DeepEqual(id, broker.Identity{}) {
				t.Errorf("refused token returned identity %+v", id)
			}
		})
	}
}

func TestJWTLeeway(t *testing.T) {
	secret := []byte(jwtTestSecret)
	exp := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	tok := jwtSign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": exp.Unix()}, nil)
	id, err := jwtSecretVerifier(t, JWTConfig{Leeway: DefaultJWTLeeway}).Verify(tok)
	if err != nil {
		t.Fatalf("exp 5s ago with a 30s leeway: %v", err)
	}
	// Expires is when Verify starts refusing the token, so a connection
	// accepted within the leeway is not closed at once.
	if want := exp.Add(DefaultJWTLeeway); !id.Expires.Equal(want) {
		t.Errorf("Expires = %v, want exp+leeway %v", id.Expires, want)
	}
	_, err = jwtSecretVerifier(t, JWTConfig{}).Verify(tok)
	jwtWantRefused(t, tok, err, "token expired")

	nbf := jwtSign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(time.Hour).Unix(),
		"nbf": time.Now().Add(5 * time.Second).Unix(), "iat": time.Now().Add(5 * time.Second).Unix()}, nil)
	if _, err := jwtSecretVerifier(t, JWTConfig{Leeway: DefaultJWTLeeway}).Verify(nbf); err != nil {
		t.Errorf("nbf and iat 5s ahead with a 30s leeway: %v", err)
	}
	_, err = jwtSecretVerifier(t, JWTConfig{}).Verify(nbf)
	jwtWantRefused(t, nbf, err, "not valid yet")
}

// TestJWTVerifyConcurrent shares one verifier between goroutines, as the
// connections do (run with -race).
func TestJWTVerifyConcurrent(t *testing.T) {
	v := jwtSecretVerifier(t, JWTConfig{})
	good := jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), jwtClaims("alice"), nil)
	bad := jwtSign(t, jwt.SigningMethodHS256, []byte("another secret of 32 bytes......"), jwtClaims("eve"), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if id, err := v.Verify(good); err != nil || id.Name != "alice" {
					errs <- fmt.Errorf("good token: %+v, %v", id, err)
					return
				}
				if _, err := v.Verify(bad); err == nil {
					errs <- errors.New("forged token accepted")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestJWTAudienceList(t *testing.T) {
	v := jwtSecretVerifier(t, JWTConfig{Audience: "duplex"})
	c := jwtClaims("alice")
	c["aud"] = []string{"web", "duplex"}
	if _, err := v.Verify(jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), c, nil)); err != nil {
		t.Errorf("aud list containing the audience: %v", err)
	}
}

func TestJWTCustomClaimNames(t *testing.T) {
	v := jwtSecretVerifier(t, JWTConfig{UsernameClaim: "preferred_username", GroupsClaim: "teams", AdminClaim: "is_admin", ACLClaim: "perms"})
	tok := jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), jwt.MapClaims{
		"sub": "ignored", "preferred_username": "bob", "teams": []string{"ops"}, "is_admin": true,
		"perms": map[string]any{"sub": []string{"x/#"}}, "exp": time.Now().Add(time.Hour).Unix(),
	}, nil)
	id, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := broker.Identity{Name: "bob", Groups: []string{"ops"}, Admin: true, Expires: id.Expires,
		Rules: []Rule{{Access: Allow, Action: ActionSubscribe, Topic: "x/#"}}}
	if !reflect.DeepEqual(id, want) {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
}

func TestJWTGroups(t *testing.T) {
	v := jwtSecretVerifier(t, JWTConfig{})
	cases := []struct {
		name   string
		groups any
		want   []string
		reason string
	}{
		{"array", []string{"ops", "dev"}, []string{"ops", "dev"}, ""},
		{"spaces and commas", " ops dev,qa ,, ", []string{"ops", "dev", "qa"}, ""},
		{"empty string", "", nil, ""},
		{"null", nil, nil, ""},
		{"number", 7, nil, "groups"},
		{"array with a number", []any{"ops", 7}, nil, "groups"},
		{"too many", strings.Repeat("g ", MaxJWTGroups+1), nil, "groups"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := jwtClaims("alice")
			cl["groups"] = c.groups
			tok := jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), cl, nil)
			id, err := v.Verify(tok)
			if c.reason != "" {
				jwtWantRefused(t, tok, err, c.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(id.Groups, c.want) {
				t.Errorf("groups = %q, want %q", id.Groups, c.want)
			}
		})
	}
}

func TestJWTAdmin(t *testing.T) {
	v := jwtSecretVerifier(t, JWTConfig{})
	cases := []struct {
		name  string
		extra jwt.MapClaims
		admin bool
	}{
		{"none", nil, false},
		{"admin true", jwt.MapClaims{"admin": true}, true},
		{"admin false", jwt.MapClaims{"admin": false}, false},
		{"admin string", jwt.MapClaims{"admin": "true"}, false},
		{"roles array", jwt.MapClaims{"roles": []string{"user", "admin"}}, true},
		{"roles without admin", jwt.MapClaims{"roles": []string{"user", "administrator"}}, false},
		{"role string", jwt.MapClaims{"role": "user admin"}, true},
		{"role other", jwt.MapClaims{"role": "user"}, false},
	}
	for _, c := range cases {
		cl := jwtClaims("alice")
		for k, val := range c.extra {
			cl[k] = val
		}
		id, err := v.Verify(jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), cl, nil))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if id.Admin != c.admin {
			t.Errorf("%s: Admin = %v, want %v", c.name, id.Admin, c.admin)
		}
	}
}

func TestJWTACLClaim(t *testing.T) {
	v := jwtSecretVerifier(t, JWTConfig{})
	cases := []struct {
		name string
		acl  string // JSON
		want []Rule
	}{
		{"list", `[
			{"permission":"allow","action":"publish","topic":"t/${username}/#"},
			{"permission":"deny","action":"subscribe","topic":"t/secret/#"},
			{"permission":"allow","action":"all","topics":["a/+","b/${clientid}"]},
			{"permission":"allow","action":"subscribe","queue":"jobs/%u"},
			{"permission":"deny","action":"publish","queues":["q/#"]}
		]`, []Rule{
			{Access: Allow, Action: ActionPublish, Topic: "t/%u/#"},
			{Access: Deny, Action: ActionSubscribe, Topic: "t/secret/#"},
			{Access: Allow, Action: ActionAll, Topic: "a/+"},
			{Access: Allow, Action: ActionAll, Topic: "b/%c"},
			{Access: Allow, Action: ActionSubscribe, Queue: "jobs/%u"},
			{Access: Deny, Action: ActionPublish, Queue: "q/#"},
		}},
		{"eq and conditions", `[
			{"permission":"allow","action":"subscribe","topic":"eq a/b"},
			{"permission":"allow","action":"subscribe","topic":"eq a/#"},
			{"permission":"deny","action":"subscribe","topic":"eq c/#"},
			{"permission":"allow","action":"publish","topic":"d","qos":[0]},
			{"permission":"deny","action":"publish","topic":"e","retain":true}
		]`, []Rule{
			{Access: Allow, Action: ActionSubscribe, Topic: "a/b"},
			{Access: Deny, Action: ActionSubscribe, Topic: "c/#"},
			{Access: Deny, Action: ActionPublish, Topic: "e"},
		}},
		{"object", `{"pub":["p/1","p/2"],"sub":["s/#"],"all":["x/%u"]}`, []Rule{
			{Access: Allow, Action: ActionPublish, Topic: "p/1"},
			{Access: Allow, Action: ActionPublish, Topic: "p/2"},
			{Access: Allow, Action: ActionSubscribe, Topic: "s/#"},
			{Access: Allow, Action: ActionAll, Topic: "x/%u"},
		}},
		{"object with a string", `{"sub":"s/#"}`, []Rule{{Access: Allow, Action: ActionSubscribe, Topic: "s/#"}}},
		{"empty list", `[]`, []Rule{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var acl any
			if err := json.Unmarshal([]byte(c.acl), &acl); err != nil {
				t.Fatal(err)
			}
			cl := jwtClaims("alice")
			cl["acl"] = acl
			id, err := v.Verify(jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), cl, nil))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := id.Rules.([]Rule)
			if !ok || got == nil {
				t.Fatalf("Rules = %#v, want a non-nil []Rule", id.Rules)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("rules:\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestJWTACLClaimRefused(t *testing.T) {
	v := jwtSecretVerifier(t, JWTConfig{})
	// 256 rules of the list form do not fit in a 16 KiB token; "topics"
	// lists do.
	half := make([]string, MaxJWTRules/2+1)
	for i := range half {
		half[i] = "a"
	}
	many := []any{
		map[string]any{"permission": "allow", "action": "publish", "topics": half},
		map[string]any{"permission": "deny", "action": "publish", "topics": half},
	}
	manyTopics := make([]string, MaxJWTRules+1)
	for i := range manyTopics {
		manyTopics[i] = "a"
	}
	long := strings.Repeat("a", MaxJWTPattern+1)
	cases := []struct {
		name string
		acl  any
	}{
		{"too many rules", many},
		{"too many topics", []any{map[string]any{"permission": "allow", "action": "publish", "topics": manyTopics}}},
		{"too many in object", map[string]any{"pub": manyTopics}},
		{"long pattern", []any{map[string]any{"permission": "allow", "action": "publish", "topic": long}}},
		{"long pattern in object", map[string]any{"sub": []string{long}}},
		{"not a list", "pub a/b"},
		{"item not an object", []any{"a/b"}},
		{"bad permission", []any{map[string]any{"permission": "maybe", "action": "publish", "topic": "a"}}},
		{"bad action", []any{map[string]any{"permission": "allow", "action": "read", "topic": "a"}}},
		{"no topic", []any{map[string]any{"permission": "allow", "action": "publish"}}},
		{"topic and queue", []any{map[string]any{"permission": "allow", "action": "publish", "topic": "a", "queue": "b"}}},
		{"topic not a string", []any{map[string]any{"permission": "allow", "action": "publish", "topic": 1}}},
		{"unknown member", []any{map[string]any{"permission": "allow", "action": "publish", "topic": "a", "clientid": "x"}}},
		{"unknown object member", map[string]any{"pub": []string{"a"}, "deny": []string{"b"}}},
		{"empty pattern", []any{map[string]any{"permission": "allow", "action": "publish", "topic": ""}}},
		{"bad wildcard", []any{map[string]any{"permission": "allow", "action": "publish", "topic": "a/b#"}}},
		{"hash not last", map[string]any{"sub": []string{"#/a"}}},
		{"unknown placeholder", []any{map[string]any{"permission": "deny", "action": "publish", "topic": "a/${peerhost}"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := jwtClaims("alice")
			cl["acl"] = c.acl
			tok := jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), cl, nil)
			_, err := v.Verify(tok)
			jwtWantRefused(t, tok, err, `bad claim "acl"`)
		})
	}
	// Exactly at the limits is accepted.
	cl := jwtClaims("alice")
	cl["acl"] = []any{
		map[string]any{"permission": "allow", "action": "publish", "topics": manyTopics[:MaxJWTRules-1]},
		map[string]any{"permission": "allow", "action": "publish", "topic": strings.Repeat("a", MaxJWTPattern)},
	}
	id, err := v.Verify(jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), cl, nil))
	if err != nil {
		t.Fatalf("%d rules, one pattern of %d bytes: %v", MaxJWTRules, MaxJWTPattern, err)
	}
	if n := len(id.Rules.([]Rule)); n != MaxJWTRules {
		t.Errorf("%d rules, want %d", n, MaxJWTRules)
	}
}

func TestNewJWTVerifierErrors(t *testing.T) {
	jwtTestKeys(t)
	privDER, _ := x509.MarshalPKCS8PrivateKey(jwtRSA)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	huge := make([]byte, MaxKeyFileSize+1)
	cases := []struct {
		name string
		cfg  func(t *testing.T) JWTConfig
		want []string
	}{
		{"no source", func(*testing.T) JWTConfig { return JWTConfig{Audience: "x"} }, []string{"secret_file", "public_key_file", "jwks_file"}},
		{"negative leeway", func(t *testing.T) JWTConfig {
			return JWTConfig{SecretFile: jwtWriteFile(t, "s", []byte(jwtTestSecret)), Leeway: -time.Second}
		}, []string{"leeway", "negative"}},
		{"missing secret file", func(*testing.T) JWTConfig {
			return JWTConfig{SecretFile: filepath.Join(t.TempDir(), "nope")}
		}, []string{"secret_file", "nope"}},
		{"short secret", func(t *testing.T) JWTConfig {
			return JWTConfig{SecretFile: jwtWriteFile(t, "s", []byte("short secret\n"))}
		}, []string{"secret_file", "12 bytes", "at least 32"}},
		{"huge secret file", func(t *testing.T) JWTConfig {
			return JWTConfig{SecretFile: jwtWriteFile(t, "s", huge)}
		}, []string{"secret_file", "more than"}},
		{"private key", func(t *testing.T) JWTConfig {
			return JWTConfig{PublicKeyFile: jwtWriteFile(t, "k.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}
		}, []string{"public_key_file", "k.pem", "PRIVATE KEY", "public key"}},
		{"not PEM", func(t *testing.T) JWTConfig {
			return JWTConfig{PublicKeyFile: jwtWriteFile(t, "k.pem", []byte("hello"))}
		}, []string{"public_key_file", "no PEM block"}},
		{"garbage PEM", func(t *testing.T) JWTConfig {
			return JWTConfig{PublicKeyFile: jwtWriteFile(t, "k.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}
		}, []string{"public_key_file", "PEM block 1"}},
		{"small RSA key", func(t *testing.T) JWTConfig {
			return JWTConfig{PublicKeyFile: jwtWriteFile(t, "k.pem", jwtPubPEM(t, &small.PublicKey))}
		}, []string{"public_key_file", "1024 bits"}},
		{"huge JWKS", func(t *testing.T) JWTConfig {
			return JWTConfig{JWKSFile: jwtWriteFile(t, "j.json", huge)}
		}, []string{"jwks_file", "more than"}},
		{"bad JWKS", func(t *testing.T) JWTConfig {
			return JWTConfig{JWKSFile: jwtWriteFile(t, "j.json", []byte(`{"keys":[{"kty":"oct","kid":"k1","k":"c2hvcnQ"}]}`))}
		}, []string{"jwks_file", "j.json", `kid "k1"`, "at least 32"}},
		{"good secret, bad PEM", func(t *testing.T) JWTConfig {
			return JWTConfig{SecretFile: jwtWriteFile(t, "s", []byte(jwtTestSecret)), PublicKeyFile: jwtWriteFile(t, "k.pem", []byte("x"))}
		}, []string{"public_key_file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := NewJWTVerifier(c.cfg(t))
			if err == nil {
				t.Fatalf("NewJWTVerifier = %v, want an error", v)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestJWTSecretTrailingNewline(t *testing.T) {
	for _, content := range []string{jwtTestSecret, jwtTestSecret + "\n", jwtTestSecret + "\r\n"} {
		v, err := NewJWTVerifier(JWTConfig{SecretFile: jwtWriteFile(t, "s", []byte(content))})
		if err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		if _, err := v.Verify(jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), jwtClaims("a"), nil)); err != nil {
			t.Errorf("secret file %q: %v", content, err)
		}
	}
}

func TestJWTConfigDefaults(t *testing.T) {
	if (JWTConfig{Audience: "x"}).Enabled() {
		t.Error("Enabled without a key source")
	}
	for _, c := range []JWTConfig{{SecretFile: "a"}, {PublicKeyFile: "a"}, {JWKSFile: "a"}} {
		if !c.Enabled() {
			t.Errorf("%+v not Enabled", c)
		}
	}
	want := DefaultJWTConfig()
	if want.Leeway != 30*time.Second {
		t.Errorf("default leeway %v, want 30s", want.Leeway)
	}
	want.Leeway = 0 // taken as given: "0s" in the config means none
	if got := (JWTConfig{}).withDefaults(); got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	hdr := jwtB64([]byte(`{"alg":"HS256","typ":"JWT"}`))
	cases := []struct {
		s    string
		want bool
	}{
		{hdr + ".eyJzdWIiOiJhIn0.c2ln", true},
		{hdr + ".eyJzdWIiOiJhIn0.", true}, // unsigned: Verify refuses it
		{"", false},
		{"password", false},
		{"a.b", false},
		{"a.b.c", false},
		{hdr + ".e30.c2ln.more", false},
		{hdr + "..c2ln", false},
		{hdr + ".e30=.c2ln", false},
		{hdr + ".e3 0.c2ln", false},
		{jwtB64([]byte(`{"typ":"JWT"}`)) + ".e30.c2ln", false},
		{jwtB64([]byte(`["alg"]`)) + ".e30.c2ln", false},
		{jwtB64([]byte(`{"alg":""}`)) + ".e30.c2ln", false},
		{jwtB64([]byte(`{"alg":1}`)) + ".e30.c2ln", false},
		{hdr + "." + strings.Repeat("A", MaxJWTSize) + ".c2ln", false},
		{"my.pass.word", false},
	}
	for _, c := range cases {
		if got := LooksLikeJWT(c.s); got != c.want {
			t.Errorf("LooksLikeJWT(%.60q) = %v, want %v", c.s, got, c.want)
		}
	}
}

// FuzzJWTVerify feeds Verify arbitrary tokens and, to reach the claim and
// ACL parsing behind the signature, arbitrary claims signed with the
// verifier's secret. It must never panic, accept only with a user name,
// and refuse only with a TokenError that does not echo the input.
func FuzzJWTVerify(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "secret")
	if err := os.WriteFile(p, []byte(jwtTestSecret), 0o600); err != nil {
		f.Fatal(err)
	}
	v, err := NewJWTVerifier(JWTConfig{SecretFile: p, Audience: "duplex"})
	if err != nil {
		f.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour).Unix()
	good := jwtSign(f, jwt.SigningMethodHS256, []byte(jwtTestSecret), jwt.MapClaims{"sub": "a", "aud": "duplex", "exp": exp}, nil)
	f.Add(good, []byte(`{"sub":"a","aud":"duplex","exp":`+jwtJSONNum(exp)+`,"acl":[{"permission":"allow","action":"all","topic":"a/#"}]}`))
	f.Add("a.b.c", []byte(`{"sub":"a","aud":"duplex","exp":`+jwtJSONNum(exp)+`,"acl":{"pub":["a"],"sub":["#"]},"groups":"x y","roles":["admin"]}`))
	f.Add(jwtRawToken(map[string]any{"alg": "none"}, map[string]any{"sub": "a"}, nil), []byte(`{"sub":"a","exp":1e300}`))
	f.Add("", []byte(`{"sub":"a","aud":["duplex"],"exp":`+jwtJSONNum(exp)+`,"acl":[{"permission":"deny","action":"publish","topics":["eq x/#","${username}/+"]}]}`))
	hdr := jwtB64([]byte(`{"alg":"HS256","typ":"JWT"}`))
	f.Fuzz(func(t *testing.T, raw string, claims []byte) {
		check := func(tok string) {
			id, err := v.Verify(tok)
			if err != nil {
				var te *TokenError
				if !errors.As(err, &te) || !errors.Is(err, broker.ErrBadCredentials) {
					t.Fatalf("error %v is not a TokenError wrapping ErrBadCredentials", err)
				}
				if len(tok) > 32 && strings.Contains(err.Error(), tok) {
					t.Fatalf("error echoes the token")
				}
				return
			}
			if id.Name == "" || id.Expires.IsZero() {
				t.Fatalf("accepted with identity %+v", id)
			}
			if r, ok := id.Rules.([]Rule); ok && len(r) > MaxJWTRules {
				t.Fatalf("%d rules", len(r))
			}
		}
		check(raw)
		LooksLikeJWT(raw)
		if len(claims) > MaxJWTSize {
			return
		}
		s := hdr + "." + jwtB64(claims)
		mac := hmac.New(sha256.New, []byte(jwtTestSecret))
		mac.Write([]byte(s))
		check(s + "." + jwtB64(mac.Sum(nil)))
	})
}

func jwtJSONNum(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
