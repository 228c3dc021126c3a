package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/duplexmq/duplex/broker"
	"github.com/duplexmq/duplex/broker/auth"
	"github.com/duplexmq/duplex/store"
	"github.com/duplexmq/duplex/subprotocol/mqtt"
	"github.com/duplexmq/duplex/subprotocol/stomp"
	"github.com/duplexmq/duplex/web"
)

// options is the whole configuration: the raw values of every setting, the
// file-only parts, and the packages' Config structs derived from them.
type options struct {
	v     values
	table []*setting

	configFile string // -config / DUPLEX_CONFIG; "" for none
	version    bool   // -version

	acl    []auth.Rule         // [[acl]]
	groups map[string][]string // [groups]

	// Derived by finish.
	sync     store.SyncPolicy
	logLevel slog.Level
	broker   broker.Config
	stomp    stomp.Config
	mqtt     mqtt.Config
	web      web.Config
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// lookupEnv is os.LookupEnv, a parameter so that tests need not touch the
// process environment.
type lookupEnv func(string) (string, bool)

// newOptions returns the built-in defaults.
func newOptions() *options {
	o := &options{}
	o.table = settingsTable(&o.v)
	for _, s := range o.table {
		if err := s.set(s.def); err != nil {
			panic(fmt.Sprintf("default of %s: %v", s.key, err)) // a bug in the table
		}
		s.src = "default"
	}
	return o
}

// lookup finds a setting by key.
func (o *options) lookup(key string) *setting {
	for _, s := range o.table {
		if s.key == key {
			return s
		}
	}
	return nil
}

// flagRecorder is a flag.Value that only records what the command line
// said, so that the flags can be applied after the config file and the
// environment they override.
type flagRecorder struct {
	s   *setting
	got *[]flagValue
}

type flagValue struct {
	s *setting
	v string
}

func (r flagRecorder) String() string {
	if r.s == nil {
		return ""
	}
	return r.s.def
}
func (r flagRecorder) Set(v string) error { *r.got = append(*r.got, flagValue{r.s, v}); return nil }
func (r flagRecorder) IsBoolFlag() bool   { return r.s != nil && r.s.isBool() }

// parseOptions reads the configuration: built-in defaults, then the config
// file (-config or DUPLEX_CONFIG), then DUPLEX_* variables, then flags,
// each overriding the one before.
func parseOptions(args []string, env lookupEnv) (*options, error) {
	o := newOptions()
	fs := flag.NewFlagSet("duplex", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var given []flagValue
	for _, s := range o.table {
		fs.Var(flagRecorder{s, &given}, s.flag, s.help)
	}
	fs.StringVar(&o.configFile, "config", "", "TOML config file")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (subcommands: compact, passwd, config check, help)", fs.Arg(0))
	}
	if o.version {
		return o, nil
	}
	if o.configFile == "" {
		o.configFile, _ = env("DUPLEX_CONFIG")
	}
	if o.configFile != "" {
		if err := o.loadFile(o.configFile); err != nil {
			return nil, err
		}
	}
	onCommandLine := map[*setting]bool{}
	for _, g := range given {
		onCommandLine[g.s] = true
	}
	for _, s := range o.table {
		if onCommandLine[s] {
			continue // a malformed variable does not matter when the flag overrides it
		}
		if v, ok := env(s.env()); ok {
			if err := s.set(v); err != nil {
				return nil, fmt.Errorf("%s (key %s): %w", s.env(), s.key, err)
			}
			s.src = "env"
		}
	}
	for _, g := range given {
		if err := g.s.set(g.v); err != nil {
			return nil, usagef("-%s (key %s): %w", g.s.flag, g.s.key, err)
		}
		g.s.src = "flag"
	}
	if err := o.finish(); err != nil {
		return nil, err
	}
	return o, nil
}
