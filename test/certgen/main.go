// Command certgen writes a throw-away test PKI for the TLS tests of the
// interop suite: `go run ./test/certgen DIR`.
//
// It writes, in DIR (created if missing):
//
//	ca.pem, ca-key.pem                  the test CA
//	server.pem, server-key.pem          a server certificate for 127.0.0.1, ::1 and localhost
//	server2.pem, server2-key.pem        another one from the same CA (a certificate reload)
//	client.pem, client-key.pem          a client certificate, Subject CN "device-1",
//	                                    DNS SAN "device-1.devices.test"
//	other-ca.pem                        a second CA the broker does not trust
//	untrusted-client.pem, untrusted-client-key.pem
//	                                    the same names from the other CA
//
// Keys are ECDSA P-256 in PKCS #8; certificates are valid from an hour ago
// for a day. Only crypto/x509 and the standard library are used.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: certgen DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "certgen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := newCA("Duplex test CA")
	if err != nil {
		return err
	}
	if err := write(dir, "ca", ca.cert.Raw, ca.key); err != nil {
		return err
	}
	other, err := newCA("Duplex untrusted test CA")
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "other-ca.pem"), "CERTIFICATE", other.cert.Raw); err != nil {
		return err
	}
	server := func() *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: "localhost"},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
	}
	client := func() *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: "device-1"},
			DNSNames:    []string{"device-1.devices.test"},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
	}
	for _, leaf := range []struct {
		name string
		tmpl *x509.Certificate
		by   issuer
	}{
		{"server", server(), ca},
		{"server2", server(), ca},
		{"client", client(), ca},
		{"untrusted-client", client(), other},
	} {
		der, key, err := sign(leaf.tmpl, leaf.by)
		if err != nil {
			return fmt.Errorf("%s: %w", leaf.name, err)
		}
		if err := write(dir, leaf.name, der, key); err != nil {
			return err
		}
	}
	return nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

func newCA(name string) (issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issuer{}, err
	}
	sn, err := serial()
	if err != nil {
		return issuer{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return issuer{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return issuer{}, err
	}
	return issuer{cert, key}, nil
}

func sign(tmpl *x509.Certificate, by issuer) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, by.cert, &key.PublicKey, by.key)
	return der, key, err
}

// write stores NAME.pem and NAME-key.pem.
func write(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, name+".pem"), "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", pk)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
