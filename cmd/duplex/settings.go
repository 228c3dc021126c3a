package main

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// setting is one configuration key. The table of settings (settingsTable)
// is the single description of what can be configured: the TOML key, the
// flag, the environment variable (derived from the flag), the default, the
// help line and where the value goes. The config file, the environment and
// the command line all set values through it, so none of them can name a
// key the others lack.
type setting struct {
	key  string // TOML key: "addr", or "section.key" ("limits.max_frame_size")
	flag string // flag name without the dash
	def  string // default, in flag syntax ("" for none)
	help string
	// target is where the value goes: *string, *bool, *int, *int64,
	// *float64, *time.Duration, *[]string or *optBool.
	target any
	kind   kind
	enum   []string // kindEnum: the accepted words
	min    int64    // numbers: smallest accepted value (usually 0)
	negOK  bool     // durations: negative values are accepted
	// src is where the current value came from: "default", "file", "env"
	// or "flag".
	src string
}

// kind refines how a string or number is read and checked.
type kind uint8

const (
	kindPlain kind = iota
	kindAddr       // host:port, or "" for off
	kindPath       // a file or folder; relative ones in the config file are relative to its folder
	kindEnum       // one of setting.enum
	kindSize       // a byte count: an integer or a string with a unit ("4MiB")
)

// optBool is a boolean that can be left unset (allow_anonymous).
type optBool struct {
	set, v bool
}

func (b *optBool) String() string {
	if !b.set {
		return ""
	}
	return strconv.FormatBool(b.v)
}

// section is the TOML table a setting belongs to ("" for the top level).
func (s *setting) section() string {
	if i := strings.IndexByte(s.key, '.'); i >= 0 {
		return s.key[:i]
	}
	return ""
}

// name is the key inside its section.
func (s *setting) name() string { return s.key[strings.IndexByte(s.key, '.')+1:] }

// env is the environment variable of a setting: DUPLEX_ and the flag name
// upper-cased, dashes as underscores.
func (s *setting) env() string { return envName(s.flag) }

func envName(flag string) string {
	return "DUPLEX_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// String is the current value in flag syntax.
func (s *setting) String() string {
	switch p := s.target.(type) {
	case *string:
		return *p
	case *bool:
		return strconv.FormatBool(*p)
	case *optBool:
		return p.String()
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		return strconv.FormatInt(*p, 10)
	case *float64:
		return strconv.FormatFloat(*p, 'g', -1, 64)
	case *time.Duration:
		return p.String()
	case *[]string:
		return strings.Join(*p, ",")
	}
	return ""
}

// isBool says whether the flag takes no argument (-allow-anonymous).
func (s *setting) isBool() bool {
	switch s.target.(type) {
	case *bool, *optBool:
		return true
	}
	return false
}

// set parses v in flag syntax (defaults, environment, command line).
func (s *setting) set(v string) error {
	switch p := s.target.(type) {
	case *string:
		return s.setString(p, v)
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*p = b
	case *optBool:
		if v == "" {
			*p = optBool{}
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*p = optBool{set: true, v: b}
	case *int:
		n, err := s.parseInt(v, math.MaxInt32)
		if err != nil {
			return err
		}
		*p = int(n)
	case *int64:
		n, err := s.parseInt(v, math.MaxInt64)
		if err != nil {
			return err
		}
		*p = n
	case *float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a number", v)
		}
		if f < float64(s.min) {
			return fmt.Errorf("%v is below the minimum %d", f, s.min)
		}
		*p = f
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a duration (write it like \"250ms\", \"10s\", \"2h\")", v)
		}
		if d < 0 && !s.negOK {
			return fmt.Errorf("%v must not be negative", d)
		}
		*p = d
	case *[]string:
		var list []string
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		*p = list
	default:
		return fmt.Errorf("setting %s has no parser", s.key)
	}
	return nil
}

func (s *setting) setString(p *string, v string) error {
	switch s.kind {
	case kindAddr:
		if err := checkAddr(v); err != nil {
			return err
		}
	case kindEnum:
		if !slices.Contains(s.enum, v) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(s.enum, ", "))
		}
	}
	*p = v
	return nil
}

// parseInt reads an integer, or for kindSize an integer with a unit (B,
// KB, MB, GB at powers of 1000; KiB, MiB, GiB at powers of 1024), and
// checks it against s.min and max.
func (s *setting) parseInt(v string, max int64) (int64, error) {
	v = strings.TrimSpace(v)
	mult := int64(1)
	num := v
	if s.kind == kindSize {
		for _, u := range sizeUnits {
			if strings.HasSuffix(v, u.suffix) {
				num, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
				break
			}
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		if s.kind == kindSize {
			return 0, fmt.Errorf("%q is not a size (bytes, or a number with KiB, MiB, GiB, KB, MB, GB)", v)
		}
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	if n != 0 && (n > max/mult || n < -max/mult) {
		return 0, fmt.Errorf("%s is too large", v)
	}
	n *= mult
	if n < s.min {
		if s.min == 0 {
			return 0, fmt.Errorf("%d must not be negative", n)
		}
		return 0, fmt.Errorf("%d must be at least %d", n, s.min)
	}
	return n, nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first: "MiB" before "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

// setTOML sets a value decoded from the config file. dir is the config
// file's folder, for relative paths.
func (s *setting) setTOML(v any, dir string) error {
	switch p := s.target.(type) {
	case *string:
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("must be a string, not %s", tomlType(v))
		}
		if s.kind == kindPath && str != "" && !filepath.IsAbs(str) {
			str = filepath.Join(dir, str)
		}
		return s.setString(p, str)
	case *bool, *optBool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("must be true or false, not %s", tomlType(v))
		}
		return s.set(strconv.FormatBool(b))
	case *int, *int64:
		switch n := v.(type) {
		case int64:
			return s.set(strconv.FormatInt(n, 10))
		case string:
			if s.kind == kindSize {
				return s.set(n)
			}
		}
		if s.kind == kindSize {
			return fmt.Errorf("must be a size (an integer number of bytes, or a string such as \"4MiB\"), not %s", tomlType(v))
		}
		return fmt.Errorf("must be an integer, not %s", tomlType(v))
	case *float64:
		switch n := v.(type) {
		case int64:
			return s.set(strconv.FormatInt(n, 10))
		case float64:
			return s.set(strconv.FormatFloat(n, 'g', -1, 64))
		}
		return fmt.Errorf("must be a number, not %s", tomlType(v))
	case *time.Duration:
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("must be a duration string such as \"10s\", not %s", tomlType(v))
		}
		return s.set(str)
	case *[]string:
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("must be an array of strings, not %s", tomlType(v))
		}
		list := make([]string, 0, len(arr))
		for i, e := range arr {
			str, ok := e.(string)
			if !ok {
				return fmt.Errorf("element %d must be a string, not %s", i, tomlType(e))
			}
			list = append(list, str)
		}
		*p = list
		return nil
	}
	return fmt.Errorf("setting %s has no parser", s.key)
}

// tomlType names the TOML type of a decoded value, for error messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// checkAddr accepts "" (off) or host:port with a numeric port.
func checkAddr(v string) error {
	if v == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port (%v)", v, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", v, port)
	}
	return nil
}

// isLoopback says whether a listen address only accepts connections from
// this machine: "localhost" or a loopback IP. An empty host (all
// interfaces), 0.0.0.0, :: and other names are not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// argName is the placeholder of the flag's value in duplex -h.
func (s *setting) argName() string {
	switch s.target.(type) {
	case *bool, *optBool:
		return ""
	case *time.Duration:
		return "DURATION"
	case *[]string:
		return "LIST"
	case *float64:
		return "NUMBER"
	case *int, *int64:
		if s.kind == kindSize {
			return "BYTES"
		}
		return "N"
	}
	switch s.kind {
	case kindAddr:
		return "HOST:PORT"
	case kindPath:
		return "PATH"
	case kindEnum:
		return strings.Join(s.enum, "|")
	}
	return "STRING"
}
