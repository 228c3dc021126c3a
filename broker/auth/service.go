package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexmq/duplex/broker"
)

// MaxACLFileSize bounds the acl_file; a bigger one is refused before it is
// read.
const MaxACLFileSize = 16 << 20

// Config is the authentication and authorisation configuration (top-level
// keys password_file, acl_file, admins, allow_anonymous, [groups], [[acl]],
// [jwt], [auth], and [tls] cert_username).
type Config struct {
	PasswordFile string // password_file: bcrypt users (LoadPasswordFile)
	ACLFile      string // acl_file: Mosquitto-style rules (ParseACLFile)
	Rules        []Rule // [[acl]] rules, checked before the acl_file's
	// Admins are the user names with the admin role (admins).
	Admins []string
	// Groups maps a group name to its members ([groups]).
	Groups map[string][]string
	// AllowAnonymous is allow_anonymous; nil: true only when no
	// authentication method (password file, JWT, certificates) is
	// configured.
	AllowAnonymous *bool
	// JWT is the [jwt] section; JWT authentication is on when a key source
	// is set (JWTConfig.Enabled). Start from DefaultJWTConfig.
	JWT JWTConfig
	// CertAuth makes a verified TLS client certificate a credential: its
	// name is the user name when the client gives no login.
	CertAuth bool
	// CertUsername is which certificate name becomes the user: "cn"
	// (default: the Subject Common Name) or "san" (the first subject
	// alternative name).
	CertUsername string
	// Ban is the failure policy per source address ([auth]).
	Ban BanConfig
}

// Service is Duplex's Authenticator and Authorizer: password file, JWT and
// client certificates in, ACL rules out. Files are loaded by New and again
// by Reload; each load is an immutable state swapped in atomically, so
// checks never take a lock. It is safe for concurrent use.
type Service struct {
	cfg        Config
	log        *slog.Logger
	admins     map[string]bool
	userGroups map[string][]string // user -> groups, from Config.Groups
	ban        *BanTracker
	logs       *LogLimiter
	bcryptSem  chan struct{} // bounds concurrent bcrypt runs

	reloadMu sync.Mutex
	state    atomic.Pointer[state]

	// now and wait are the clock, replaceable in tests.
	now  func() time.Time
	wait func(ctx context.Context, d time.Duration)

	successes, failures, banned, bans, anonymous, anonRefused atomic.Uint64
	reloads, reloadFailures                                   atomic.Uint64
}

// state is what the files gave; never modified once published.
type state struct {
	users *Users       // nil: no password file
	acl   *ACL         // nil: no ACL configured
	jwt   *JWTVerifier // nil: JWT off
	gen   uint64
}

// ServiceStats are the Service's counters since New.
type ServiceStats struct {
	Successes        uint64 // logins accepted with credentials
	Failures         uint64 // logins refused for bad credentials
	Banned           uint64 // logins refused because the source was banned
	Bans             uint64 // sources banned
	Anonymous        uint64 // anonymous logins accepted
	AnonymousRefused uint64 // anonymous logins refused
	Reloads          uint64 // successful reloads
	ReloadFailures   uint64 // failed reloads (the old state kept)
	Sources          int    // source addresses with recent failures or a ban
	Users            int    // users in the password file
	Rules            int    // configured ACL rules
	Generation       uint64
}

// New checks cfg and loads its files. Errors name the file or key.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch cfg.CertUsername {
	case "":
		cfg.CertUsername = "cn"
	case "cn", "san":
	default:
		return nil, fmt.Errorf("tls.cert_username %q: want \"cn\" or \"san\"", cfg.CertUsername)
	}
	s := &Service{
		cfg:        cfg,
		log:        log,
		admins:     make(map[string]bool, len(cfg.Admins)),
		userGroups: make(map[string][]string),
		ban:        NewBanTracker(cfg.Ban),
		logs:       NewLogLimiter(10*time.Second, 4096),
		bcryptSem:  make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		now:        time.Now,
		wait:       sleepCtx,
	}
	for _, a := range cfg.Admins {
		s.admins[a] = true
	}
	for g, members := range cfg.Groups {
		for _, u := range members {
			s.userGroups[u] = append(s.userGroups[u], g)
		}
	}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	st.gen = 1
	s.state.Store(st)
	return s, nil
}

// load reads the files into a new state.
func (s *Service) load() (*state, error) {
	st := &state{}
	if p := s.cfg.PasswordFile; p != "" {
		u, err := LoadPasswordFile(p)
		if err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
		st.users = u
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows" {
			// Mosquitto 2 warns likewise: bcrypt slows guessing, it
			// does not stop it.
			s.log.Warn("password_file is readable by other users; chmod 600 it", "file", p, "mode", fi.Mode().Perm().String())
		}
	}
	if s.cfg.ACLFile != "" || len(s.cfg.Rules) > 0 {
		rules := append([]Rule(nil), s.cfg.Rules...)
		if p := s.cfg.ACLFile; p != "" {
			data, err := readBounded(p, MaxACLFileSize)
			if err != nil {
				return nil, fmt.Errorf("acl_file: %w", err)
			}
			fr, err := ParseACLFile(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("acl_file %s: %w", p, err)
			}
			rules = append(rules, fr...)
		}
		a, err := NewACL(rules, s.cfg.Groups)
		if err != nil {
			return nil, fmt.Errorf("[[acl]]: %w", err)
		}
		st.acl = a
	}
	if s.cfg.JWT.Enabled() {
		v, err := NewJWTVerifier(s.cfg.JWT)
		if err != nil {
			return nil, err
		}
		st.jwt = v
	}
	return st, nil
}

// Reload re-reads the password file, the acl_file and the JWT keys and
// swaps them in at once. On error the old state stays and the error names
// the file. Generation changes with every successful reload.
func (s *Service) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	st, err := s.load()
	if err != nil {
		s.reloadFailures.Add(1)
		return err
	}
	st.gen = s.state.Load().gen + 1
	s.state.Store(st)
	s.reloads.Add(1)
	return nil
}

// Generation implements broker.Generationer: it changes with every rule
// set (each successful Reload).
func (s *Service) Generation() uint64 { return s.state.Load().gen }

// AuthEnabled reports whether an authentication method is configured: a
// password file, JWT or client certificates.
func (s *Service) AuthEnabled() bool {
	return s.cfg.PasswordFile != "" || s.cfg.JWT.Enabled() || s.cfg.CertAuth
}

// AnonymousAllowed reports whether clients without credentials may connect:
// allow_anonymous when set, else only when no authentication method is
// configured (Mosquitto 2's default, issue 8 "safe default").
func (s *Service) AnonymousAllowed() bool {
	if s.cfg.AllowAnonymous != nil {
		return *s.cfg.AllowAnonymous
	}
	return !s.AuthEnabled()
}

// Stats returns the counters.
func (s *Service) Stats() ServiceStats {
	st := s.state.Load()
	return ServiceStats{
		Successes:        s.successes.Load(),
		Failures:         s.failures.Load(),
		Banned:           s.banned.Load(),
		Bans:             s.bans.Load(),
		Anonymous:        s.anonymous.Load(),
		AnonymousRefused: s.anonRefused.Load(),
		Reloads:          s.reloads.Load(),
		ReloadFailures:   s.reloadFailures.Load(),
		Sources:          s.ban.Len(),
		Users:            st.users.Len(),
		Rules:            st.acl.Len(),
		Generation:       st.gen,
	}
}

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

// Allow implements broker.Authorizer with the plan's semantics (see ACL):
// the rules a token carried (id.Rules) decide first, then the configured
// rules; when neither decides, `$SYS` is for admins and anything else is
// refused if any ACL is configured (or the token carried rules), else
// allowed.
func (s *Service) Allow(id broker.Identity, clientID string, op broker.Op, dest string) bool {
	st := s.state.Load()
	var tok *ACL
	switch r := id.Rules.(type) {
	case *ACL:
		tok = r
	case []Rule:
		if r != nil {
			a, err := NewACL(r, nil)
			if err != nil {
				return false
			}
			tok = a
		}
	}
	if v := tok.decide(id, clientID, op, dest); v != undecided {
		return v == allowed
	}
	v := st.acl.decide(id, clientID, op, dest)
	return resolve(v, st.acl != nil || tok != nil, id, op, dest)
}

var (
	_ broker.Authenticator = (*Service)(nil)
	_ broker.Authorizer    = (*Service)(nil)
	_ broker.Generationer  = (*Service)(nil)
)
