package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
)

// Limits on key material. Files are read whole, so their size is checked
// first.
const (
	// MaxKeyFileSize bounds a secret, PEM or JWKS file.
	MaxKeyFileSize = 1 << 20
	// MaxJWKSKeys bounds the keys of a JSON Web Key Set (a token without a
	// kid is tried against each key of its algorithm).
	MaxJWKSKeys = 100
	// MinHMACKeySize is the shortest HMAC secret accepted: RFC 7518 §3.2
	// requires a key at least as long as the hash output (256 bits for
	// HS256).
	MinHMACKeySize = 32
	// MinRSAKeyBits and MaxRSAKeyBits bound an RSA public key: RFC 7518
	// §3.3 requires 2048 bits; the upper bound caps the cost of a
	// verification.
	MinRSAKeyBits = 2048
	MaxRSAKeyBits = 8192
)

// jwtAlgs is a set of JWS algorithms (RFC 7518 §3.1) this package verifies.
type jwtAlgs uint16

const (
	jwtAlgHS256 jwtAlgs = 1 << iota
	jwtAlgHS384
	jwtAlgHS512
	jwtAlgRS256
	jwtAlgRS384
	jwtAlgRS512
	jwtAlgES256
	jwtAlgES384
	jwtAlgES512

	jwtAlgHMAC = jwtAlgHS256 | jwtAlgHS384 | jwtAlgHS512
	jwtAlgRSA  = jwtAlgRS256 | jwtAlgRS384 | jwtAlgRS512
)

// jwtAlgNames lists the algorithms in bit order.
var jwtAlgNames = [...]string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}

// jwtAlgByName returns the bit of an algorithm name, 0 when unsupported
// (none, PS256, EdDSA, …).
func jwtAlgByName(name string) jwtAlgs {
	for i, n := range jwtAlgNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// names returns the algorithm names in the set.
func (a jwtAlgs) names() []string {
	var out []string
	for i, n := range jwtAlgNames {
		if a&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// jwtKey is one verification key with the algorithms it may verify: an
// HMAC key only HS*, an RSA key only RS*, an EC key only the ES algorithm
// of its curve, so a token can never pick an algorithm its key was not
// made for (RFC 8725 §3.1).
type jwtKey struct {
	kid  string // "" for keys from the secret or PEM file: they match any kid
	algs jwtAlgs
	key  any // []byte, *rsa.PublicKey or *ecdsa.PublicKey
}

// jwtReadKeyFile reads a key file of at most MaxKeyFileSize bytes. what is
// the config key naming the file, for the error.
func jwtReadKeyFile(what, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwt: %s: %w", what, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxKeyFileSize {
		return nil, fmt.Errorf("jwt: %s %s: file is %d bytes, more than the %d allowed", what, path, st.Size(), MaxKeyFileSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("jwt: %s %s: %w", what, path, err)
	}
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("jwt: %s %s: file is more than the %d bytes allowed", what, path, MaxKeyFileSize)
	}
	return b, nil
}

// jwtLoadSecret reads an HMAC secret: the file's bytes without a trailing
// newline.
func jwtLoadSecret(path string) (jwtKey, error) {
	b, err := jwtReadKeyFile("secret_file", path)
	if err != nil {
		return jwtKey{}, err
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) < MinHMACKeySize {
		return jwtKey{}, fmt.Errorf("jwt: secret_file %s: secret is %d bytes; HS256 needs at least %d random bytes (RFC 7518 §3.2), e.g. from `head -c 48 /dev/urandom | base64`",
			path, len(b), MinHMACKeySize)
	}
	return jwtKey{algs: jwtAlgHMAC, key: b}, nil
}

// jwtLoadPEM reads public keys from a PEM file: PUBLIC KEY (PKIX, RSA or
// EC), RSA PUBLIC KEY (PKCS #1) or CERTIFICATE blocks, in any number (for
// key rotation). Private keys are refused: the broker only verifies.
func jwtLoadPEM(path string) ([]jwtKey, error) {
	b, err := jwtReadKeyFile("public_key_file", path)
	if err != nil {
		return nil, err
	}
	var keys []jwtKey
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var pub any
		switch blk.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			if strings.Contains(blk.Type, "PRIVATE") {
				return nil, fmt.Errorf("jwt: public_key_file %s: PEM block %d is a %s; give the public key (openssl pkey -pubout)", path, n, blk.Type)
			}
			return nil, fmt.Errorf("jwt: public_key_file %s: PEM block %d is a %q, want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", path, n, blk.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("jwt: public_key_file %s: PEM block %d (%s): %w", path, n, blk.Type, err)
		}
		k, err := jwtPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("jwt: public_key_file %s: PEM block %d: %w", path, n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwt: public_key_file %s: no PEM block found", path)
	}
	return keys, nil
}

// jwtPublicKey checks an RSA or EC public key and returns it with its
// algorithms.
func jwtPublicKey(pub any) (jwtKey, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if err := jwtCheckRSA(p); err != nil {
			return jwtKey{}, err
		}
		return jwtKey{algs: jwtAlgRSA, key: p}, nil
	case *ecdsa.PublicKey:
		a := jwtECAlg(p.Curve)
		if a == 0 {
			return jwtKey{}, fmt.Errorf("EC curve %s is not supported (want P-256, P-384 or P-521)", p.Curve.Params().Name)
		}
		return jwtKey{algs: a, key: p}, nil
	}
	return jwtKey{}, fmt.Errorf("%T keys are not supported (want RSA or EC)", pub)
}

func jwtCheckRSA(p *rsa.PublicKey) error {
	if bits := p.N.BitLen(); bits < MinRSAKeyBits || bits > MaxRSAKeyBits {
		return fmt.Errorf("RSA key has %d bits, want %d to %d", bits, MinRSAKeyBits, MaxRSAKeyBits)
	}
	if p.E < 3 || p.E%2 == 0 {
		return fmt.Errorf("RSA key has a bad exponent %d", p.E)
	}
	return nil
}

// jwtECAlg is the one ES algorithm for a curve (RFC 7518 §3.4).
func jwtECAlg(c elliptic.Curve) jwtAlgs {
	switch c {
	case elliptic.P256():
		return jwtAlgES256
	case elliptic.P384():
		return jwtAlgES384
	case elliptic.P521():
		return jwtAlgES512
	}
	return 0
}

// jwk is a JSON Web Key (RFC 7517 §4, RFC 7518 §6) as far as we read it.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	// RSA
	N string `json:"n"`
	E string `json:"e"`
	// EC
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	// oct
	K string `json:"k"`
}

// jwtLoadJWKS reads a JSON Web Key Set file.
func jwtLoadJWKS(path string) ([]jwtKey, error) {
	b, err := jwtReadKeyFile("jwks_file", path)
	if err != nil {
		return nil, err
	}
	keys, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("jwt: jwks_file %s: %w", path, err)
	}
	return keys, nil
}

// parseJWKS parses a JSON Web Key Set (RFC 7517 §5): {"keys":[...]}. Keys
// whose use is set to something other than "sig", and keys of a type or
// algorithm this package does not verify (OKP, PS256, …) are skipped, as
// §5 recommends; a key of a known type that is malformed is an error, since
// it means the file is not what the operator thinks. At least one usable
// key is required.
func parseJWKS(b []byte) ([]jwtKey, error) {
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("JWKS is more than %d bytes", MaxKeyFileSize)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`not a JSON Web Key Set: no "keys" array`)
	}
	if len(set.Keys) > MaxJWKSKeys {
		return nil, fmt.Errorf("%d keys, more than the %d allowed", len(set.Keys), MaxJWKSKeys)
	}
	var keys []jwtKey
	var skipped []string
	for i, raw := range set.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		name := fmt.Sprintf("key %d", i)
		if j.Kid != "" {
			name = fmt.Sprintf("key %d (kid %q)", i, j.Kid)
		}
		if j.Use != "" && j.Use != "sig" {
			skipped = append(skipped, fmt.Sprintf("%s: use %q", name, j.Use))
			continue
		}
		k, skip, err := parseJWK(&j)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if skip != "" {
			skipped = append(skipped, name+": "+skip)
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("no usable signing key (skipped %s)", strings.Join(skipped, "; "))
		}
		return nil, errors.New("no keys")
	}
	return keys, nil
}

// parseJWK converts one key. skip is non-empty for a key this package does
// not use (with the reason).
func parseJWK(j *jwk) (k jwtKey, skip string, err error) {
	k.kid = j.Kid
	var want jwtAlgs // the algorithms of the key type
	switch j.Kty {
	case "RSA":
		want = jwtAlgRSA
	case "EC":
		switch j.Crv {
		case "P-256":
			want = jwtAlgES256
		case "P-384":
			want = jwtAlgES384
		case "P-521":
			want = jwtAlgES512
		default:
			return k, fmt.Sprintf("EC curve %q not supported", j.Crv), nil
		}
	case "oct":
		want = jwtAlgHMAC
	case "":
		return k, "", errors.New(`no "kty"`)
	default:
		return k, fmt.Sprintf("kty %q not supported", j.Kty), nil
	}
	k.algs = want
	if j.Alg != "" {
		a := jwtAlgByName(j.Alg)
		if a == 0 {
			return k, fmt.Sprintf("alg %q not supported", j.Alg), nil
		}
		if a&want == 0 {
			return k, "", fmt.Errorf("alg %q does not fit kty %q", j.Alg, j.Kty)
		}
		k.algs = a
	}
	switch j.Kty {
	case "RSA":
		n, err := jwkBytes("n", j.N)
		if err != nil {
			return k, "", err
		}
		e, err := jwkBytes("e", j.E)
		if err != nil {
			return k, "", err
		}
		if len(e) > 4 {
			return k, "", errors.New(`"e" is too large`)
		}
		var ev int
		for _, c := range e {
			ev = ev<<8 | int(c)
		}
		if len(n) > MaxRSAKeyBits/8+1 {
			return k, "", fmt.Errorf(`"n" is more than %d bits`, MaxRSAKeyBits)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}
		if err := jwtCheckRSA(pub); err != nil {
			return k, "", err
		}
		k.key = pub
	case "EC":
		var curve elliptic.Curve
		switch want {
		case jwtAlgES256:
			curve = elliptic.P256()
		case jwtAlgES384:
			curve = elliptic.P384()
		default:
			curve = elliptic.P521()
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err := jwkBytes("x", j.X)
		if err != nil {
			return k, "", err
		}
		y, err := jwkBytes("y", j.Y)
		if err != nil {
			return k, "", err
		}
		// RFC 7518 §6.2.1.2: x and y are the full size of a coordinate.
		if len(x) != size || len(y) != size {
			return k, "", fmt.Errorf(`"x" and "y" must be %d bytes each for %s`, size, j.Crv)
		}
		pt := make([]byte, 0, 1+2*size)
		pt = append(append(append(pt, 4), x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
		if err != nil {
			return k, "", fmt.Errorf("bad EC point: %w", err)
		}
		k.key = pub
	case "oct":
		b, err := jwkBytes("k", j.K)
		if err != nil {
			return k, "", err
		}
		if len(b) < MinHMACKeySize {
			return k, "", fmt.Errorf("HMAC key is %d bytes, want at least %d (RFC 7518 §3.2)", len(b), MinHMACKeySize)
		}
		k.key = b
	}
	return k, "", nil
}

// jwkBytes decodes a base64url member (RFC 7518 §2: no padding; trailing
// padding is tolerated).
func jwkBytes(member, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("no %q", member)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%q is not base64url: %w", member, err)
	}
	return b, nil
}
