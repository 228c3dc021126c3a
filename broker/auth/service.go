package auth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
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
