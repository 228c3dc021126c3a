package auth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestJWKSKidSelection(t *testing.T) {
	jwtTestKeys(t)
	hmacKey := []byte("a JWKS oct key of at least 32 bytes")
	p := jwksFile(t,
		jwkOf(t, "rsa-1", &jwtRSA.PublicKey),
		jwkOf(t, "rsa-2", &jwtRSA2.PublicKey),
		jwkOf(t, "ec-1", &jwtEC256.PublicKey),
		jwkOf(t, "hs-1", hmacKey),
	)
	v, err := NewJWTVerifier(JWTConfig{JWKSFile: p})
	if err != nil {
		t.Fatal(err)
	}
	ok := []struct {
		name string
		m    jwt.SigningMethod
		key  any
		kid  any
	}{
		{"rsa-1", jwt.SigningMethodRS256, jwtRSA, "rsa-1"},
		{"rsa-2", jwt.SigningMethodRS512, jwtRSA2, "rsa-2"},
		{"ec-1", jwt.SigningMethodES256, jwtEC256, "ec-1"},
		{"hs-1", jwt.SigningMethodHS256, hmacKey, "hs-1"},
		{"no kid tries each key", jwt.SigningMethodRS256, jwtRSA2, nil},
	}
	for _, c := range ok {
		hdr := map[string]any{}
		if c.kid != nil {
			hdr["kid"] = c.kid
		}
		id, err := v.Verify(jwtSign(t, c.m, c.key, jwtClaims("alice"), hdr))
		if err != nil || id.Name != "alice" {
			t.Errorf("%s: %+v, %v", c.name, id, err)
		}
	}
	bad := []struct {
		name, tok, reason string
	}{
		{"unknown kid", jwtSign(t, jwt.SigningMethodRS256, jwtRSA, jwtClaims("alice"), map[string]any{"kid": "rsa-9"}), "unknown key id"},
		{"kid of another key", jwtSign(t, jwt.SigningMethodRS256, jwtRSA2, jwtClaims("alice"), map[string]any{"kid": "rsa-1"}), "bad signature"},
		{"kid of a key of another type", jwtSign(t, jwt.SigningMethodRS256, jwtRSA, jwtClaims("alice"), map[string]any{"kid": "ec-1"}), "unknown key id"},
		{"ES384 has no key", jwtSign(t, jwt.SigningMethodES384, jwtEC384, jwtClaims("alice"), map[string]any{"kid": "ec-1"}), "algorithm ES384 not allowed"},
		{"HS256 with the RSA key's n as secret", jwtSign(t, jwt.SigningMethodHS256, []byte(jwtB64(jwtRSA.N.Bytes())), jwtClaims("alice"), map[string]any{"kid": "rsa-1"}), "unknown key id"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(c.tok)
			jwtWantRefused(t, c.tok, err, c.reason)
		})
	}
}

func TestJWKSAlgAndUse(t *testing.T) {
	jwtTestKeys(t)
	sigOnly := jwkOf(t, "sig", &jwtRSA.PublicKey)
	sigOnly["use"], sigOnly["alg"] = "sig", "RS384"
	enc := jwkOf(t, "enc", &jwtRSA2.PublicKey)
	enc["use"] = "enc"
	okp := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"}
	v, err := NewJWTVerifier(JWTConfig{JWKSFile: jwksFile(t, sigOnly, enc, okp)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(v.Algorithms(), ","); got != "RS384" {
		t.Errorf("Algorithms = %s, want RS384 (the alg of the only usable key)", got)
	}
	if _, err := v.Verify(jwtSign(t, jwt.SigningMethodRS384, jwtRSA, jwtClaims("a"), map[string]any{"kid": "sig"})); err != nil {
		t.Errorf("RS384 with the sig key: %v", err)
	}
	tok := jwtSign(t, jwt.SigningMethodRS256, jwtRSA, jwtClaims("a"), map[string]any{"kid": "sig"})
	_, err = v.Verify(tok)
	jwtWantRefused(t, tok, err, "algorithm RS256 not allowed")
	tok = jwtSign(t, jwt.SigningMethodRS384, jwtRSA2, jwtClaims("a"), map[string]any{"kid": "enc"})
	_, err = v.Verify(tok)
	jwtWantRefused(t, tok, err, "unknown key id")
}

func TestJWKSPEMAndSecretTogether(t *testing.T) {
	jwtTestKeys(t)
	v, err := NewJWTVerifier(JWTConfig{
		SecretFile:    jwtWriteFile(t, "s", []byte(jwtTestSecret)),
		PublicKeyFile: jwtWriteFile(t, "p.pem", jwtPubPEM(t, &jwtEC256.PublicKey)),
		JWKSFile:      jwksFile(t, jwkOf(t, "r", &jwtRSA.PublicKey)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{
		jwtSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), jwtClaims("a"), nil),
		jwtSign(t, jwt.SigningMethodES256, jwtEC256, jwtClaims("a"), map[string]any{"kid": "from-another-idp"}),
		jwtSign(t, jwt.SigningMethodRS256, jwtRSA, jwtClaims("a"), map[string]any{"kid": "r"}),
	} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%v", err)
		}
	}
	// An unknown kid still falls back to the kid-less keys, which must
	// verify the signature.
	tok := jwtSign(t, jwt.SigningMethodRS256, jwtRSA2, jwtClaims("a"), map[string]any{"kid": "r"})
	_, err = v.Verify(tok)
	jwtWantRefused(t, tok, err, "bad signature")
}

func TestParseJWKSErrors(t *testing.T) {
	jwtTestKeys(t)
	ec := jwkOf(t, "e", &jwtEC256.PublicKey)
	short := func(m map[string]any, k, v string) map[string]any {
		c := map[string]any{}
		for a, b := range m {
			c[a] = b
		}
		c[k] = v
		return c
	}
	rsa := jwkOf(t, "r", &jwtRSA.PublicKey)
	tooMany := make([]map[string]any, MaxJWKSKeys+1)
	for i := range tooMany {
		tooMany[i] = ec
	}
	cases := []struct {
		name string
		set  any
		want string
	}{
		{"not JSON", "nope", "not a JSON Web Key Set"},
		{"no keys", map[string]any{"k": 1}, `no "keys"`},
		{"empty keys", map[string]any{"keys": []any{}}, "no keys"},
		{"too many", map[string]any{"keys": tooMany}, "more than the 100"},
		{"no kty", map[string]any{"keys": []any{map[string]any{"kid": "x"}}}, `no "kty"`},
		{"all skipped", map[string]any{"keys": []any{map[string]any{"kty": "OKP"}, short(ec, "use", "enc")}}, "no usable signing key"},
		{"EC point not on curve", map[string]any{"keys": []any{short(ec, "y", jwtB64(make([]byte, 32)))}}, "bad EC point"},
		{"EC short x", map[string]any{"keys": []any{short(ec, "x", jwtB64(make([]byte, 31)))}}, "32 bytes"},
		{"EC bad base64", map[string]any{"keys": []any{short(ec, "x", "!!")}}, "base64url"},
		{"EC alg mismatch", map[string]any{"keys": []any{short(ec, "alg", "RS256")}}, "does not fit"},
		{"RSA no n", map[string]any{"keys": []any{short(rsa, "n", "")}}, `no "n"`},
		{"RSA small n", map[string]any{"keys": []any{short(rsa, "n", jwtB64(make([]byte, 128)))}}, "bits"},
		{"RSA even e", map[string]any{"keys": []any{short(rsa, "e", jwtB64([]byte{2}))}}, "exponent"},
		{"RSA huge e", map[string]any{"keys": []any{short(rsa, "e", jwtB64([]byte{1, 2, 3, 4, 5}))}}, "too large"},
		{"RSA huge n", map[string]any{"keys": []any{short(rsa, "n", jwtB64(make([]byte, 2000)))}}, "more than 8192 bits"},
		{"oct short", map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": jwtB64([]byte("short"))}}}, "at least 32"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := json.Marshal(c.set)
			keys, err := parseJWKS(b)
			if err == nil {
				t.Fatalf("parseJWKS = %d keys, want an error", len(keys))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

// FuzzParseJWKS checks that no key set makes the parser panic and that
// every key it returns is usable.
func FuzzParseJWKS(f *testing.F) {
	jwtTestKeys(f)
	for _, k := range []map[string]any{jwkOf(f, "r", &jwtRSA.PublicKey), jwkOf(f, "e", &jwtEC256.PublicKey), jwkOf(f, "h", []byte(jwtTestSecret))} {
		b, _ := json.Marshal(map[string]any{"keys": []any{k}})
		f.Add(b)
	}
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-521","x":"","y":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := parseJWKS(b)
		if err != nil {
			return
		}
		if len(keys) == 0 || len(keys) > MaxJWKSKeys {
			t.Fatalf("%d keys without an error", len(keys))
		}
		for _, k := range keys {
			if k.algs == 0 || k.key == nil {
				t.Fatalf("unusable key %+v", k)
			}
		}
	})
}
