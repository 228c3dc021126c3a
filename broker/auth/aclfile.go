package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxACLLineLen bounds a line of an acl_file: a keyword, an access word and
// a pattern of at most 65535 bytes (MQTT 3.1.1 §1.5.3).
const MaxACLLineLen = 65535 + 64

// ParseACLFile reads rules in Mosquitto's acl_file syntax:
//
//	# comment
//	topic [read|write|readwrite|deny] TOPIC    (before any user line: anonymous clients)
//	user NAME                                   (following topic lines apply to NAME)
//	topic [read|write|readwrite|deny] TOPIC
//	pattern [read|write|readwrite|deny] TOPIC   (everyone, wherever it stands; %u %c)
//
// and two Duplex extensions: `group NAME` (following topic lines apply to
// members of NAME) and `queue [read|write|readwrite|deny] NAME` (a queue
// rule for the current user, group or anonymous clients). read is
// ActionSubscribe, write ActionPublish, readwrite (also the default when the
// access word is left out) ActionAll, deny a Deny of ActionAll. As in
// Mosquitto, the topic is the rest of the line and may hold spaces. Errors
// name the line.
func ParseACLFile(r io.Reader) ([]Rule, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxACLLineLen)
	var rules []Rule
	var who Rule // the current user / group / anonymous
	who.Anonymous = true
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if n == 1 {
			text = strings.TrimPrefix(text, "\ufeff") // some editors write one
		}
		line := strings.TrimSpace(text)
		if line == "" || line[0] == '#' {
			continue
		}
		kw, rest := firstWord(line)
		switch kw {
		case "user", "group":
			if rest == "" {
				return nil, fmt.Errorf("acl file line %d: %s without a name", n, kw)
			}
			who = Rule{}
			if kw == "user" {
				who.User = rest
			} else {
				who.Group = rest
			}
		case "topic", "pattern", "queue":
			access, action, target, err := parseAccess(rest)
			if err != nil {
				return nil, fmt.Errorf("acl file line %d: %s: %w", n, kw, err)
			}
			r := who
			if kw == "pattern" {
				r = Rule{}
			}
			r.Access, r.Action = access, action
			if kw == "queue" {
				r.Queue = target
			} else {
				r.Topic = target
			}
			if _, err := compileRule(r); err != nil {
				return nil, fmt.Errorf("acl file line %d: %w", n, err)
			}
			rules = append(rules, r)
		default:
			return nil, fmt.Errorf("acl file line %d: unknown keyword %q (want user, group, topic, pattern or queue)", n, kw)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("acl file: a line is longer than %d bytes", MaxACLLineLen)
		}
		return nil, fmt.Errorf("acl file: %w", err)
	}
	return rules, nil
}

// parseAccess reads `[read|write|readwrite|deny] TARGET`.
func parseAccess(s string) (Access, Action, string, error) {
	word, rest := firstWord(s)
	access, action := Allow, ActionAll
	switch word {
	case "read":
		action = ActionSubscribe
	case "write":
		action = ActionPublish
	case "readwrite":
	case "deny":
		access = Deny
	default:
		// No access word: the whole rest is the target, readwrite.
		rest = s
		word = ""
	}
	if rest == "" {
		if word != "" {
			return 0, 0, "", fmt.Errorf("%s without a pattern", word)
		}
		return 0, 0, "", errors.New("missing pattern")
	}
	return access, action, rest, nil
}

// firstWord splits s at its first space or tab; rest is trimmed.
func firstWord(s string) (word, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i+1:])
}
