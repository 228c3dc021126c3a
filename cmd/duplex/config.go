package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

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

// aclEntry is one [[acl]] table. Fields are decoded as any and checked by
// aclRule, so that errors name the key.
type aclEntry struct {
	User      any `toml:"user"`
	Group     any `toml:"group"`
	Anonymous any `toml:"anonymous"`
	Access    any `toml:"access"`
	Action    any `toml:"action"`
	Topic     any `toml:"topic"`
	Queue     any `toml:"queue"`
}

var anyType = reflect.TypeFor[any]()

// fileLayout is the Go type the config file is decoded into, built from
// the settings table: one field (of type any) per top-level key, one
// struct per section, plus [[acl]] and [groups]. Decoding into it with
// DisallowUnknownFields refuses unknown keys with their line.
type fileLayout struct {
	typ reflect.Type
	// index[i] is the field path of setting i.
	index [][]int
}

const (
	aclField    = "ACL"
	groupsField = "Groups"
)

func newFileLayout(table []*setting) fileLayout {
	var top []reflect.StructField
	secFields := map[string][]reflect.StructField{}
	l := fileLayout{index: make([][]int, len(table))}
	for i, s := range table {
		f := reflect.StructField{
			Name: fmt.Sprintf("F%d", i),
			Type: anyType,
			Tag:  reflect.StructTag(`toml:"` + s.name() + `"`),
		}
		if sec := s.section(); sec == "" {
			l.index[i] = []int{len(top)}
			top = append(top, f)
		} else {
			secFields[sec] = append(secFields[sec], f)
		}
	}
	for _, sec := range sections {
		secIdx := len(top)
		n := 0
		for i, s := range table {
			if s.section() == sec {
				l.index[i] = []int{secIdx, n}
				n++
			}
		}
		top = append(top, reflect.StructField{
			Name: "S" + strings.ToUpper(sec[:1]) + sec[1:],
			Type: reflect.StructOf(secFields[sec]),
			Tag:  reflect.StructTag(`toml:"` + sec + `"`),
		})
	}
	top = append(top,
		reflect.StructField{Name: aclField, Type: reflect.TypeFor[[]aclEntry](), Tag: `toml:"acl"`},
		reflect.StructField{Name: groupsField, Type: reflect.TypeFor[map[string]any](), Tag: `toml:"groups"`},
	)
	l.typ = reflect.StructOf(top)
	return l
}

// loadFile applies a config file over the current values.
func (o *options) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return o.applyTOML(path, data, dir)
}

// applyTOML applies a config file's contents; name is used in errors and
// relative paths are resolved against dir.
func (o *options) applyTOML(name string, data []byte, dir string) error {
	layout := newFileLayout(o.table)
	doc := reflect.New(layout.typ)
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(doc.Interface()); err != nil {
		return o.tomlError(name, err)
	}
	lines := keyLines(data)
	where := func(key string) string {
		if n, ok := lines[key]; ok {
			return fmt.Sprintf("%s:%d", name, n)
		}
		return name
	}
	for i, s := range o.table {
		f := doc.Elem().FieldByIndex(layout.index[i])
		if f.IsNil() {
			continue
		}
		if err := s.setTOML(f.Interface(), dir); err != nil {
			return fmt.Errorf("%s: %s: %w", where(s.key), s.key, err)
		}
		s.src = "file"
	}
	entries := doc.Elem().FieldByName(aclField).Interface().([]aclEntry)
	o.acl = o.acl[:0]
	for i, e := range entries {
		r, err := aclRule(e)
		if err != nil {
			return fmt.Errorf("%s: acl[%d] (the [[acl]] table number %d): %w", where(fmt.Sprintf("acl[%d]", i)), i, i+1, err)
		}
		o.acl = append(o.acl, r)
	}
	if g := doc.Elem().FieldByName(groupsField).Interface().(map[string]any); g != nil {
		o.groups = map[string][]string{}
		for name, members := range g {
			arr, ok := members.([]any)
			if !ok {
				return fmt.Errorf("%s: groups.%s: must be an array of user names, not %s", where("groups."+name), name, tomlType(members))
			}
			for j, m := range arr {
				u, ok := m.(string)
				if !ok || u == "" {
					return fmt.Errorf("%s: groups.%s: element %d must be a user name", where("groups."+name), name, j)
				}
				o.groups[name] = append(o.groups[name], u)
			}
		}
	}
	return nil
}

// tomlError turns go-toml's errors into ones that name the file, the line
// and the key.
func (o *options) tomlError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		var msgs []string
		for _, e := range strict.Errors {
			key := strings.Join(e.Key(), ".")
			row, _ := e.Position()
			msg := fmt.Sprintf("%s:%d: unknown key %q", name, row, key)
			if hint := o.suggest(e.Key()); hint != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", hint)
			}
			msgs = append(msgs, msg)
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		if key != "" {
			return fmt.Errorf("%s:%d: %s: %s", name, row, key, de.Error())
		}
		return fmt.Errorf("%s:%d: %s", name, row, de.Error())
	}
	return fmt.Errorf("%s: %w", name, err)
}

// suggest names a known key with the same last part as an unknown one: the
// key put in the wrong section, or a section key written with its flag's
// dashes.
func (o *options) suggest(key []string) string {
	if len(key) == 0 {
		return ""
	}
	last := strings.ReplaceAll(key[len(key)-1], "-", "_")
	for _, s := range o.table {
		if s.name() == last {
			if s.section() == "" {
				return fmt.Sprintf("%q at the top level", s.key)
			}
			return fmt.Sprintf("%q under [%s]", s.name(), s.section())
		}
	}
	return ""
}

// keyLines maps each key of a TOML document ("addr", "limits.max_frame_size",
// "acl[0]", "groups.ops") to its line, for error messages about values.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	table := ""
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var parts []string
			it := e.Key()
			for it.Next() {
				parts = append(parts, string(it.Node().Data))
			}
			table = strings.Join(parts, ".")
			if e.Kind == unstable.ArrayTable {
				n := arrays[table]
				arrays[table] = n + 1
				table = fmt.Sprintf("%s[%d]", table, n)
			}
			if it := e.Key(); it.Next() {
				lines[table] = p.Shape(it.Node().Raw).Start.Line
			}
		case unstable.KeyValue:
			var parts []string
			it := e.Key()
			first := true
			line := 0
			for it.Next() {
				if first {
					line = p.Shape(it.Node().Raw).Start.Line
					first = false
				}
				parts = append(parts, string(it.Node().Data))
			}
			key := strings.Join(parts, ".")
			if table != "" {
				key = table + "." + key
			}
			lines[key] = line
		}
	}
	return lines
}

// aclRule checks one [[acl]] table.
func aclRule(e aclEntry) (auth.Rule, error) {
	var r auth.Rule
	str := func(key string, v any) (string, error) {
		if v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s must be a string, not %s", key, tomlType(v))
		}
		if s == "" {
			return "", fmt.Errorf("%s must not be empty (leave it out instead)", key)
		}
		return s, nil
	}
	var err error
	if r.User, err = str("user", e.User); err != nil {
		return r, err
	}
	if r.Group, err = str("group", e.Group); err != nil {
		return r, err
	}
	if e.Anonymous != nil {
		b, ok := e.Anonymous.(bool)
		if !ok {
			return r, fmt.Errorf("anonymous must be true or false, not %s", tomlType(e.Anonymous))
		}
		r.Anonymous = b
	}
	who := 0
	for _, set := range []bool{r.User != "", r.Group != "", r.Anonymous} {
		if set {
			who++
		}
	}
	if who > 1 {
		return r, errors.New("set at most one of user, group and anonymous = true (none: the rule applies to everyone)")
	}
	access, err := str("access", e.Access)
	if err != nil {
		return r, err
	}
	switch access {
	case "allow":
		r.Access = auth.Allow
	case "deny":
		r.Access = auth.Deny
	case "":
		return r, errors.New(`access is required: "allow" or "deny"`)
	default:
		return r, fmt.Errorf(`access %q is not "allow" or "deny"`, access)
	}
	action, err := str("action", e.Action)
	if err != nil {
		return r, err
	}
	switch action {
	case "publish":
		r.Action = auth.ActionPublish
	case "subscribe":
		r.Action = auth.ActionSubscribe
	case "all", "":
		r.Action = auth.ActionAll
	default:
		return r, fmt.Errorf(`action %q is not "publish", "subscribe" or "all"`, action)
	}
	if r.Topic, err = str("topic", e.Topic); err != nil {
		return r, err
	}
	if r.Queue, err = str("queue", e.Queue); err != nil {
		return r, err
	}
	if (r.Topic == "") == (r.Queue == "") {
		return r, errors.New("set exactly one of topic (an MQTT topic pattern) and queue (a queue name pattern)")
	}
	return r, nil
}

// listener is one configured listen address.
type listener struct {
	key  string // config key, e.g. "tls.wss_addr"
	addr string
	tls  bool
	http bool // serves HTTP (WebSocket, API)
}

// listeners returns the configured listeners, off ones included.
func (o *options) listeners() []listener {
	v := &o.v
	return []listener{
		{key: "addr", addr: v.Addr, http: true},
		{key: "admin_addr", addr: v.AdminAddr, http: true},
		{key: "stomp_tcp_addr", addr: v.StompTCPAddr},
		{key: "mqtt_tcp_addr", addr: v.MQTTTCPAddr},
		{key: "tls.wss_addr", addr: v.TLS.WSSAddr, tls: true, http: true},
		{key: "tls.mqtt_tls_addr", addr: v.TLS.MQTTTLSAddr, tls: true},
		{key: "tls.stomp_tls_addr", addr: v.TLS.StompTLSAddr, tls: true},
	}
}

// authConfigured says whether any authentication is configured: a password
// file, a JWT key, or client certificates.
func (o *options) authConfigured() bool {
	v := &o.v
	return v.PasswordFile != "" || v.JWT.SecretFile != "" || v.JWT.PublicKeyFile != "" ||
		v.JWT.JWKSFile != "" || v.TLS.ClientCerts != "off"
}

// anonymousAllowed is allow_anonymous, or when unset whether no
// authentication is configured (Mosquitto 2's default, loopback only).
func (o *options) anonymousAllowed() bool {
	if o.v.AllowAnonymous.set {
		return o.v.AllowAnonymous.v
	}
	return !o.authConfigured()
}

// checkExposure refuses to serve anonymous clients from the network by
// accident: a listener without TLS on a non-loopback address, while
// anonymous clients are allowed, needs allow_anonymous = true written out.
func (o *options) checkExposure() error {
	if !o.anonymousAllowed() || (o.v.AllowAnonymous.set && o.v.AllowAnonymous.v) {
		return nil
	}
	for _, l := range o.listeners() {
		if l.addr == "" || l.tls || isLoopback(l.addr) {
			continue
		}
		return fmt.Errorf("refusing to start: %s %q is not a loopback address, and with no authentication configured "+
			"anyone who can reach it could connect, read and publish everything.\n"+
			"Require a login: set password_file (see duplex passwd), or [jwt] secret_file / public_key_file / jwks_file, "+
			"or [tls] client_certs = \"require\" (-password-file, -jwt-secret-file, -tls-client-certs).\n"+
			"Or, to accept anonymous clients from the network on purpose, set allow_anonymous = true (-allow-anonymous)",
			l.key, l.addr)
	}
	return nil
}

// adminOpen says whether the management API is served without a login:
// only in the zero-config default, no authentication configured and every
// HTTP listener on loopback.
func (o *options) adminOpen() bool {
	return !o.authConfigured() && o.httpOnLoopback()
}

// allOnLoopback says whether every listener is on loopback.
func (o *options) allOnLoopback() bool {
	for _, l := range o.listeners() {
		if l.addr != "" && !isLoopback(l.addr) {
			return false
		}
	}
	return true
}

// httpOnLoopback says whether every HTTP listener is on loopback.
func (o *options) httpOnLoopback() bool {
	for _, l := range o.listeners() {
		if l.http && l.addr != "" && !isLoopback(l.addr) {
			return false
		}
	}
	return true
}

// finish checks the values together and derives the packages' configs.
func (o *options) finish() error {
	v := &o.v
	var err error
	if o.sync, err = store.ParseSyncPolicy(v.Sync); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := o.logLevel.UnmarshalText([]byte(v.LogLevel)); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}

	// Listeners.
	if v.Addr == "" && v.TLS.WSSAddr == "" {
		return errors.New("addr and tls.wss_addr are both empty: set at least one")
	}
	seen := map[string]string{}
	for _, l := range o.listeners() {
		if l.addr == "" {
			continue
		}
		if _, port, _ := net.SplitHostPort(l.addr); port == "0" {
			continue // port 0 picks a free port each time
		}
		if other, ok := seen[l.addr]; ok {
			return fmt.Errorf("%s and %s are both %q", other, l.key, l.addr)
		}
		seen[l.addr] = l.key
	}
	var tlsUsers []string
	for _, l := range o.listeners() {
		if l.tls && l.addr != "" {
			tlsUsers = append(tlsUsers, l.key)
		}
	}
	if v.TLS.ClientCerts != "off" {
		tlsUsers = append(tlsUsers, "tls.client_certs")
		if v.TLS.ClientCAFile == "" {
			return fmt.Errorf("tls.client_certs = %q needs tls.client_ca_file (the CA that signs client certificates)", v.TLS.ClientCerts)
		}
		if len(tlsUsers) == 1 {
			return fmt.Errorf("tls.client_certs = %q needs a TLS listener: set tls.wss_addr, tls.mqtt_tls_addr or tls.stomp_tls_addr", v.TLS.ClientCerts)
		}
	}
	if (v.TLS.CertFile == "") != (v.TLS.KeyFile == "") {
		return errors.New("tls.cert_file and tls.key_file go together: set both or neither")
	}
	if len(tlsUsers) > 0 && v.TLS.CertFile == "" {
		return fmt.Errorf("%s needs tls.cert_file and tls.key_file", tlsUsers[0])
	}
	for key, d := range map[string]time.Duration{
		"limits.http_idle_timeout":        v.Limits.HTTPIdleTimeout,
		"limits.http_read_header_timeout": v.Limits.HTTPReadHeaderTimeout,
		"limits.connect_timeout":          v.Limits.ConnectTimeout,
		"auth.ban_window":                 v.Auth.BanWindow,
		"auth.ban_time":                   v.Auth.BanTime,
		"auth.failure_delay_max":          v.Auth.FailureDelayMax,
		"shutdown_grace":                  v.ShutdownGrace,
	} {
		if d == 0 {
			return fmt.Errorf("%s must be above 0", key)
		}
	}
	for _, a := range v.Admins {
		if a == "" {
			return errors.New("admins: empty user name")
		}
	}

	// Broker. In the table 0 means "no limit" for the quotas; in
	// broker.Config that is a negative value (0 takes the default).
	l := &v.Limits
	noLimit := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	b := &o.broker
	b.MaxPendingMsgs = l.MaxPendingMsgs
	b.MaxPendingBytes = l.MaxPendingBytes
	if b.SlowConsumer, err = broker.ParseSlowConsumerPolicy(l.SlowConsumer); err != nil {
		return fmt.Errorf("limits.slow_consumer: %w", err)
	}
	b.MaxSubsPerSession = l.MaxSubscriptionsPerSession
	b.MaxSubscriptions = int(noLimit(int64(l.MaxSubscriptions)))
	b.MaxQueueDepth = l.MaxQueueDepth
	b.MaxQueueBytes = l.MaxQueueBytes
	b.MaxRedeliveries = int(noLimit(int64(l.MaxRedeliveries)))
	if err := broker.CheckDeadLetter(v.Stomp.DeadLetterPrefix, v.Stomp.DeadLetterTopic); err != nil {
		return fmt.Errorf("stomp.dead_letter_prefix, stomp.dead_letter_topic: %w", err)
	}
	b.DeadLetterPrefix, b.NoDeadLetter = v.Stomp.DeadLetterPrefix, v.Stomp.DeadLetterPrefix == ""
	b.DeadLetterTopic, b.NoDeadLetterTopic = v.Stomp.DeadLetterTopic, v.Stomp.DeadLetterTopic == ""
	b.PerSubscriptionCopies = v.MQTT.PerSubscriptionCopies
	b.MaxRetained = int(noLimit(int64(l.MaxRetained)))
	b.MaxRetainedBytes = noLimit(l.MaxRetainedBytes)
	b.MaxRetainedPerUser = int(noLimit(int64(l.MaxRetainedPerUser)))
	b.MaxRetainedBytesPerUser = noLimit(l.MaxRetainedBytesPerUser)
	b.MaxSessionsPerUser = int(noLimit(int64(l.MaxSessionsPerUser)))
	b.MaxOfflineMsgs = l.MaxSessionQueue
	b.MaxOfflineBytes = noLimit(l.MaxSessionQueueBytes)
	// Anonymous clients own their sessions by source address (so one
	// cannot resume another's session, and the session quota counts per
	// address) everywhere but in the zero-config loopback pool: with
	// authentication, with a listener off loopback, or behind a proxy.
	b.AnonymousOwnerByAddress = o.authConfigured() || !o.allOnLoopback() || len(v.Web.TrustedProxies) > 0
	// Sessions stored before the cap existed (or with a longer expiry) get
	// it at the restore; 0 is no cap in both.
	b.MaxSessionExpiry = l.MaxSessionExpiry

	// STOMP.
	s := &o.stomp
	s.HeartbeatMin = v.Stomp.HeartbeatMin
	s.HeartbeatGrace = v.Stomp.HeartbeatGrace
	s.HeartbeatSlack = v.Stomp.HeartbeatSlack
	if s.HeartbeatSlack == 0 {
		s.HeartbeatSlack = -1 // explicit zero: no slack
	}
	s.TopicSeparator = v.Stomp.TopicSeparator[0]
	s.ConnectTimeout = l.ConnectTimeout
	s.Limits.MaxBodyLength = l.MaxFrameSize
	s.MaxFrameBeforeLogin = l.MaxFrameSizeBeforeLogin
	s.PublishRate = l.PublishRate
	s.PublishBurst = l.PublishBurst
	s.PublishBytesRate = float64(l.PublishBytesRate)
	s.MaxOutboundHeaders = l.MaxOutboundHeaders

	// MQTT.
	if l.SessionExpiry == 0 {
		return errors.New("limits.session_expiry must be above 0 (use a short duration such as \"1s\")")
	}
	m := &o.mqtt
	m.MaxPacketSize = l.MaxFrameSize + 64<<10
	m.MaxPacketBeforeLogin = l.MaxFrameSizeBeforeLogin
	m.ConnectTimeout = l.ConnectTimeout
	m.DefaultSessionExpiry = l.SessionExpiry
	m.MaxSessionExpiry = l.MaxSessionExpiry
	if m.MaxSessionExpiry == 0 {
		m.MaxSessionExpiry = -1 // no cap
	}
	m.PublishRate = l.PublishRate
	m.PublishBurst = l.PublishBurst
	m.PublishBytesRate = float64(l.PublishBytesRate)
	m.MaxOutboundHeaders = l.MaxOutboundHeaders

	// Web.
	w := &o.web
	w.AllowedOrigins = v.Web.AllowedOrigins
	w.MaxMessageSize = v.Web.MaxMessageSize
	if w.MaxMessageSize == 0 {
		// Above the largest STOMP frame (a MaxFrameSize body and 64 KiB
		// of headers) and MQTT packet (MaxFrameSize + 64 KiB): a frame
		// just over those gets the protocol's own error over WebSocket as
		// over TCP, and only what is far beyond gets 1009.
		w.MaxMessageSize = int64(max(s.Limits.WithDefaults().MaxHeaderBytes+l.MaxFrameSize, m.MaxPacketSize)) + web.ReadLimitMargin
	}
	w.AllowedHosts = v.Web.AllowedHosts
	if len(w.AllowedHosts) == 0 && o.httpOnLoopback() {
		w.AllowedHosts = web.LoopbackHosts
	}
	if w.TrustedProxies, err = web.ParseTrustedProxies(v.Web.TrustedProxies); err != nil {
		return fmt.Errorf("web.trusted_proxies: %w", err)
	}
	w.MaxConnections = l.MaxConnections
	w.MaxConnectionsPerIP = int(noLimit(int64(l.MaxConnectionsPerIP)))
	w.ConnectRatePerIP = l.ConnectRatePerIP
	if w.ConnectRatePerIP == 0 {
		w.ConnectRatePerIP = -1
	}
	w.ConnectBurstPerIP = l.ConnectBurstPerIP
	w.HTTPIdleTimeout = l.HTTPIdleTimeout
	w.HTTPReadHeaderTimeout = l.HTTPReadHeaderTimeout
	w.SeparateAdmin = v.AdminAddr != ""
	return nil
}
