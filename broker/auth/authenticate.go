// Authentication: Service.Authenticate and the credential checks, failure
// accounting and logging behind it.

package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// The reasons logged (and wrapped) for failed
// logins; none holds a password or token.
var (
	errNoPasswordFile = errors.New("no password file configured")
	errNoJWT          = errors.New("token given but JWT is not configured")
	errWrongPassword  = errors.New("unknown user or wrong password")
	errNoUser         = errors.New("password without a user name")
	errLoginMismatch  = errors.New("login does not match the token's user")
	errNoCertName     = errors.New("certificate has no usable name")
)

// Authenticate implements broker.Authenticator.
//
//   - A banned source (the host of c.RemoteAddr; IPv6 by /64) is refused at
//     once with ErrBanned.
//   - A token (c.Token, or with JWT configured a c.Passcode that looks like
//     a JWT) is verified; a login, when given, must be the token's user.
//   - A login is checked against the password file.
//   - Without a login, a verified client certificate (c.CertNames, with
//     CertAuth) names the user.
//   - With nothing, the client is anonymous: accepted when
//     AnonymousAllowed, as an admin when no authentication method is
//     configured (the zero-config loopback default), else ErrNotAuthorized.
//
// With no authentication method configured, credentials cannot be checked
// and are ignored: the client is anonymous (as with Mosquitto without a
// password file), so existing clients that send login/passcode keep working.
//
// A failure (ErrBadCredentials) is counted against the source, answered
// after a delay that grows per failure (or when ctx ends), logged at most
// once per source per 10 s, and bans the source after BanConfig.After
// failures. A success forgets the source's failures.
func (s *Service) Authenticate(ctx context.Context, c broker.Credentials) (broker.Identity, error) {
	st := s.state.Load()
	key := sourceKey(c.RemoteAddr)
	if s.ban.Banned(key, s.now()) {
		s.banned.Add(1)
		s.logf(key, "login refused: source banned", c, nil)
		return broker.Identity{}, fmt.Errorf("%w: %s", broker.ErrBanned, key)
	}
	if !s.AuthEnabled() {
		return s.anon(c)
	}
	id, user, err := s.check(ctx, st, c)
	if errors.Is(err, errAnonymous) {
		return s.anon(c)
	}
	if err != nil {
		if errors.Is(err, broker.ErrBadCredentials) {
			return broker.Identity{}, s.fail(ctx, key, user, c, err)
		}
		return broker.Identity{}, err
	}
	s.ban.Succeed(key)
	s.successes.Add(1)
	return id, nil
}

// errAnonymous: the client gave no credentials.
var errAnonymous = errors.New("anonymous")

// check verifies c's credentials; user is the name it claimed (for logs).
func (s *Service) check(ctx context.Context, st *state, c broker.Credentials) (id broker.Identity, user string, err error) {
	token := c.Token
	if token == "" && st.jwt != nil && LooksLikeJWT(c.Passcode) {
		token = c.Passcode
	}
	if token != "" {
		if st.jwt == nil {
			return id, c.Login, fmt.Errorf("%w: %w", broker.ErrBadCredentials, errNoJWT)
		}
		id, err = st.jwt.Verify(token)
		if err != nil {
			return broker.Identity{}, c.Login, err
		}
		if c.Login != "" && c.Login != id.Name {
			return broker.Identity{}, c.Login, fmt.Errorf("%w: %w", broker.ErrBadCredentials, errLoginMismatch)
		}
		name := id.Name
		id, err = s.finish(id)
		return id, name, err
	}
	certName := ""
	if s.cfg.CertAuth {
		certName = s.certName(c.CertNames)
	}
	switch {
	case c.Login != "" && certName != "" && c.Login == certName && c.Passcode == "":
		// A certificate client that repeats its name as the login.
		id, err = s.finish(broker.Identity{Name: certName})
		return id, certName, err
	case c.Login != "":
		if st.users == nil {
			return id, c.Login, fmt.Errorf("%w: %w", broker.ErrBadCredentials, errNoPasswordFile)
		}
		ok, err := s.checkPassword(ctx, st.users, c.Login, c.Passcode)
		if err != nil {
			return id, c.Login, err
		}
		if !ok {
			return id, c.Login, fmt.Errorf("%w: %w", broker.ErrBadCredentials, errWrongPassword)
		}
		id, err = s.finish(broker.Identity{Name: c.Login})
		return id, c.Login, err
	case c.Passcode != "":
		return id, "", fmt.Errorf("%w: %w", broker.ErrBadCredentials, errNoUser)
	case s.cfg.CertAuth && len(c.CertNames) > 0:
		if certName == "" {
			return id, "", fmt.Errorf("%w: %w", broker.ErrBadCredentials, errNoCertName)
		}
		id, err = s.finish(broker.Identity{Name: certName})
		return id, certName, err
	}
	return id, "", errAnonymous
}

// checkPassword runs the bcrypt check, at most GOMAXPROCS at a time so a
// flood of logins queues instead of taking every core. If ctx ends while
// it queues, the error is ctx's (not a failed login).
func (s *Service) checkPassword(ctx context.Context, u *Users, user, password string) (bool, error) {
	select {
	case s.bcryptSem <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("auth: login abandoned: %w", ctx.Err())
	}
	defer func() { <-s.bcryptSem }()
	return u.Check(user, password), nil
}

// certName picks the certificate name that becomes the user: CertNames[0]
// (the Subject CN) for "cn", the first non-empty SAN for "san". Names with
// control characters are refused.
func (s *Service) certName(names []string) string {
	var n string
	if s.cfg.CertUsername == "san" {
		for _, v := range names[min(1, len(names)):] {
			if v != "" {
				n = v
				break
			}
		}
	} else if len(names) > 0 {
		n = names[0]
	}
	if n == "" || ValidUserName(n) != nil {
		return ""
	}
	return n
}

// finish adds the configured groups and admin role, and compiles a
// token's rules once, so Allow does not; rules that do not compile refuse
// the token.
func (s *Service) finish(id broker.Identity) (broker.Identity, error) {
	if g := s.userGroups[id.Name]; len(g) > 0 {
		id.Groups = append(append([]string(nil), id.Groups...), g...)
	}
	if s.admins[id.Name] {
		id.Admin = true
	}
	if rs, ok := id.Rules.([]Rule); ok && rs != nil {
		a, err := NewACL(rs, nil)
		if err != nil {
			return broker.Identity{}, fmt.Errorf("%w: token acl: %v", broker.ErrBadCredentials, err)
		}
		id.Rules = a
	}
	return id, nil
}

// anon accepts or refuses a client without credentials.
func (s *Service) anon(c broker.Credentials) (broker.Identity, error) {
	if !s.AnonymousAllowed() {
		s.anonRefused.Add(1)
		s.logf(sourceKey(c.RemoteAddr), "login refused: anonymous clients not allowed", c, nil)
		return broker.Identity{}, fmt.Errorf("%w: anonymous clients are not allowed (allow_anonymous)", broker.ErrNotAuthorized)
	}
	s.anonymous.Add(1)
	return broker.Identity{Anonymous: true, Admin: !s.AuthEnabled()}, nil
}

// fail counts a failed login, waits the source's delay and returns err.
func (s *Service) fail(ctx context.Context, key, user string, c broker.Credentials, err error) error {
	s.failures.Add(1)
	delay, banned := s.ban.Fail(key, s.now())
	if banned {
		s.bans.Add(1)
	}
	s.logf(key, "login failed", c, err, "user", clip(user), "banned", banned)
	if delay > 0 {
		s.wait(ctx, delay)
	}
	return err
}

// logf logs one line per source per 10 s, with the count of lines held
// back. Never the password or the token.
func (s *Service) logf(key, msg string, c broker.Credentials, err error, attrs ...any) {
	ok, n := s.logs.Allow(key, s.now())
	if !ok {
		return
	}
	args := append([]any{"source", key, "protocol", c.Protocol, "transport", c.Transport}, attrs...)
	if err != nil {
		args = append(args, "reason", err.Error())
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	s.log.Warn(msg, args...)
}

// clip bounds a client-chosen string for a log line.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// sourceKey is the per-source key of a remote address: the IP without the
// port, IPv4-mapped addresses unmapped, IPv6 reduced to its /64 (one
// subscriber's allocation, which an attacker could otherwise walk).
func sourceKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return clip(host)
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}
