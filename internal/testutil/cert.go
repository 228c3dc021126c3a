package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// WriteSelfSignedCert writes a self-signed ECDSA P-256 server certificate
// for 127.0.0.1 and localhost, valid for an hour either side of now, with
// the given serial number (tests that replace a certificate tell the two
// apart by it), to certFile and its key to keyFile. The key is written
// first: a reload between the two writes sees a mismatch and keeps the old
// pair.
func WriteSelfSignedCert(t testing.TB, certFile, keyFile string, serial int64) {
	t.Helper()
	writeCert(t, certFile, keyFile, &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "duplex test"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// WriteSelfSignedCA is WriteSelfSignedCert for mutual TLS: the certificate
// is its own CA (pass certFile as the CA too) and good for both ends of a
// connection, server and client auth (cluster routes).
func WriteSelfSignedCA(t testing.TB, certFile, keyFile string) {
	t.Helper()
	writeCert(t, certFile, keyFile, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "duplex test CA"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	})
}

// writeCert signs tmpl with a new P-256 key for 127.0.0.1 and localhost,
// valid for an hour either side of now, and writes the key, then the
// certificate.
func writeCert(t testing.TB, certFile, keyFile string, tmpl *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.IPAddresses, tmpl.DNSNames = []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
