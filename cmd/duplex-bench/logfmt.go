package main

import (
	"fmt"
	"strconv"
	"strings"
)

// logPair is one key=value of a log line.
type logPair struct{ key, value string }

// parseLogfmt splits a line in the format of Go's slog.TextHandler
// (key=value pairs separated by spaces, values quoted Go-style when they
// hold spaces, quotes or '=') into its pairs, in order, values unquoted.
func parseLogfmt(line string) ([]logPair, error) {
	var pairs []logPair
	s := strings.TrimRight(line, "\r\n")
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return pairs, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			return nil, fmt.Errorf("log line: no key=value at %q", clip(s, 40))
		}
		key := s[:eq]
		s = s[eq+1:]
		var value string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("log line: value of %s: bad quoting at %q", key, clip(s, 40))
			}
			value, _ = strconv.Unquote(q)
			s = s[len(q):]
			if s != "" && s[0] != ' ' {
				return nil, fmt.Errorf("log line: value of %s: text after the closing quote", key)
			}
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			value, s = s[:end], s[end:]
		}
		pairs = append(pairs, logPair{key, value})
	}
}

// logValue returns the value of key in pairs and whether it is there.
func logValue(pairs []logPair, key string) (string, bool) {
	for _, p := range pairs {
		if p.key == key {
			return p.value, true
		}
	}
	return "", false
}

// storeLoadedFields renders the broker's "store loaded" log line for a
// result line: its fields as key=value, without time, level, msg and the
// database file (a temporary path).
func storeLoadedFields(pairs []logPair) string {
	var parts []string
	for _, p := range pairs {
		switch p.key {
		case "time", "level", "msg", "file":
			continue
		}
		parts = append(parts, p.key+"="+p.value)
	}
	return strings.Join(parts, " ")
}

// isStoreLoaded tells whether a broker log line is its "store loaded" line.
func isStoreLoaded(line string) bool {
	return strings.Contains(line, ` msg="store loaded"`)
}

// clip shortens s to n bytes for an error message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
