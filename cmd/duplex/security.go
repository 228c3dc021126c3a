package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/broker/auth"
	"github.com/duplexmq/duplex/web"
)

// security is what the broker builds from the password, ACL, JWT and TLS
// settings, and reloads on SIGHUP.
type security struct {
	auth *auth.Service    // users, ACL rules, JWT keys
	tls  *web.TLSReloader // nil without a certificate
}

// newSecurity loads the files the configuration names, through the same
// constructors for duplex config check and for the broker.
func newSecurity(o *options, log *slog.Logger) (*security, error) {
	sec := &security{}
	svc, err := auth.New(o.authConfig(), log)
	if err != nil {
		return nil, err
	}
	sec.auth = svc
	v := &o.v
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

// authConfig is the auth package's view of the settings.
func (o *options) authConfig() auth.Config {
	v := &o.v
	c := auth.Config{
		PasswordFile: v.PasswordFile,
		ACLFile:      v.ACLFile,
		Rules:        o.acl,
		Admins:       v.Admins,
		Groups:       o.groups,
		JWT:          o.jwtConfig(),
		CertAuth:     v.TLS.ClientCerts != "off",
		CertUsername: v.TLS.CertUsername,
		Ban: auth.BanConfig{
			After:    v.Auth.BanAfter,
			Window:   v.Auth.BanWindow,
			BanTime:  v.Auth.BanTime,
			Delay:    v.Auth.FailureDelay,
			DelayMax: v.Auth.FailureDelayMax,
		},
	}
	if v.AllowAnonymous.set {
		allow := v.AllowAnonymous.v
		c.AllowAnonymous = &allow
	}
	// In the table 0 means never / none; in BanConfig a zero takes the
	// default and a negative value turns it off.
	if c.Ban.After == 0 {
		c.Ban.After = -1
	}
	if c.Ban.Delay == 0 {
		c.Ban.Delay = -1
	}
	return c
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

// wire puts the security pieces into the packages' configs: the auth
// service decides who connects and what they may do, and guards the
// management API unless it is open (the zero-config loopback default).
func (s *security) wire(o *options) {
	o.broker.Authenticator = s.auth
	o.broker.Authorizer = s.auth
	if !o.adminOpen() {
		o.web.AdminAuth = adminOnly{s.auth}
	}
}

// adminOnly guards the management API with the auth service but refuses
// anonymous identities: with no authentication configured the service makes
// every anonymous client an admin (zero config), which must not open the
// API once a listener leaves loopback.
type adminOnly struct{ a broker.Authenticator }

func (a adminOnly) Authenticate(ctx context.Context, c broker.Credentials) (broker.Identity, error) {
	id, err := a.a.Authenticate(ctx, c)
	if err == nil && (id.Anonymous || id.Name == "") {
		return broker.Identity{}, fmt.Errorf("%w: the management API needs a user login", broker.ErrBadCredentials)
	}
	return id, err
}

// reload re-reads the files on SIGHUP: users, ACL file, JWT keys and the
// TLS certificate. Connections stay up; new certificates apply to new
// handshakes. What fails to load keeps its previous state.
func (s *security) reload() error {
	var errs []error
	if err := s.auth.Reload(); err != nil {
		errs = append(errs, err)
	}
	if s.tls != nil {
		if err := s.tls.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
