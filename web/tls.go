package web

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TLSConfig names the files of a TLS listener ([tls] in the config file).
type TLSConfig struct {
	// CertFile and KeyFile are the server's PEM certificate chain and
	// private key.
	CertFile, KeyFile string
	// ClientCAFile is a PEM bundle of the CAs that sign client
	// certificates; "" accepts none.
	ClientCAFile string
	// ClientCerts is "off", "optional" (a certificate, if given, must
	// verify) or "require". "" is "optional" with a ClientCAFile and "off"
	// without.
	ClientCerts string
}

// TLSReloader serves a certificate, key and client CA that Reload can
// replace while listeners run: a reload takes effect for new handshakes,
// and connections already established keep theirs.
//
// Session tickets: each load gets fresh ticket keys, so a session from
// before a reload is not resumed after it (a client certificate then
// verifies against the new CA); keys rotate every ticketKeyPeriod, the
// previous key staying valid for one more period.
type TLSReloader struct {
	c   TLSConfig
	cur atomic.Pointer[tls.Config] // the configuration of new handshakes

	mu      sync.Mutex   // rotation
	rotated atomic.Int64 // unix nanoseconds of the current key
	keys    [][32]byte   // current first
}

// ticketKeyPeriod is how long one session ticket key issues tickets (as
// crypto/tls's automatic rotation).
const ticketKeyPeriod = 24 * time.Hour

// NewTLS loads c's files. TLS 1.2 is the minimum version.
func NewTLS(c TLSConfig) (*TLSReloader, error) {
	switch c.ClientCerts {
	case "":
		c.ClientCerts = "off"
		if c.ClientCAFile != "" {
			c.ClientCerts = "optional"
		}
	case "off", "optional", "require":
	default:
		return nil, fmt.Errorf("tls.client_certs: %q is not off, optional or require", c.ClientCerts)
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("tls: set both tls.cert_file and tls.key_file")
	}
	if c.ClientCerts != "off" && c.ClientCAFile == "" {
		return nil, fmt.Errorf("tls.client_certs = %q needs tls.client_ca_file", c.ClientCerts)
	}
	r := &TLSReloader{c: c}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again. On error the previous certificate, key and
// CA stay in use.
func (r *TLSReloader) Reload() error {
	cert, err := tls.LoadX509KeyPair(r.c.CertFile, r.c.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: loading tls.cert_file %s and tls.key_file %s: %w", r.c.CertFile, r.c.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	if r.c.ClientCerts != "off" {
		pem, err := os.ReadFile(r.c.ClientCAFile)
		if err != nil {
			return fmt.Errorf("tls: reading tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: tls.client_ca_file %s holds no PEM certificate", r.c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if r.c.ClientCerts == "require" {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	key, err := newTicketKey()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.keys = [][32]byte{key}
	cfg.SetSessionTicketKeys(r.keys)
	r.rotated.Store(time.Now().UnixNano())
	r.cur.Store(cfg)
	r.mu.Unlock()
	return nil
}

func newTicketKey() ([32]byte, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("tls: session ticket key: %w", err)
	}
	return k, nil
}

// current is the configuration for a new handshake, its ticket keys
// rotated when due.
func (r *TLSReloader) current() *tls.Config {
	if time.Since(time.Unix(0, r.rotated.Load())) >= ticketKeyPeriod {
		r.mu.Lock()
		if time.Since(time.Unix(0, r.rotated.Load())) >= ticketKeyPeriod {
			if key, err := newTicketKey(); err == nil {
				r.keys = [][32]byte{key, r.keys[0]}
				r.cur.Load().SetSessionTicketKeys(r.keys)
				r.rotated.Store(time.Now().UnixNano())
			}
		}
		r.mu.Unlock()
	}
	return r.cur.Load()
}

// Config returns a tls.Config for tls.NewListener (or a TLS client test):
// every handshake takes the configuration loaded last, so Reload needs no
// new listener. TLS 1.2 minimum. Its NextProtos is empty: net/http then
// speaks HTTP/1.1, which WebSocket upgrades need.
func (r *TLSReloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current(), nil
		},
		// Not used while GetConfigForClient answers; for callers that
		// read the certificate from the outer config.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &r.cur.Load().Certificates[0], nil
		},
	}
}

// certNames are the names of a verified client certificate: its Subject
// Common Name first, then its DNS, e-mail and URI SANs; nil when the peer
// presented none or it was not verified.
func certNames(cs *tls.ConnectionState) []string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	c := cs.VerifiedChains[0][0]
	names := make([]string, 0, 1+len(c.DNSNames)+len(c.EmailAddresses)+len(c.URIs))
	if c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	names = append(names, c.DNSNames...)
	names = append(names, c.EmailAddresses...)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	return names
}
