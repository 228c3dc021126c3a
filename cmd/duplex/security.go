package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/duplexmq/duplex/broker/auth"
)

// security is what the broker builds from the password, ACL, JWT and TLS
// settings, and reloads on SIGHUP.
type security struct {
	users *auth.Users
	cert  *tls.Certificate
}

// newSecurity loads the files the configuration names.
func newSecurity(o *options, log *slog.Logger) (*security, error) {
	sec := &security{}
	v := &o.v
	if v.PasswordFile != "" {
		u, err := auth.LoadPasswordFile(v.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
		sec.users = u
	}
	if v.TLS.CertFile != "" {
		c, err := tls.LoadX509KeyPair(v.TLS.CertFile, v.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file, tls.key_file: %w", err)
		}
		sec.cert = &c
	}
	return sec, nil
}
