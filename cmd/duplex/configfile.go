// The config file: decoding TOML into a layout built from the settings table,
// errors that name the file, line and key, and the [[acl]] tables.

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/duplexmq/duplex/broker/auth"
)

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
