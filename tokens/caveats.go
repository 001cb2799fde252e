package tokens

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"keyhole/rules"
)

// maxUnix is the latest expiry a token may carry: the end of year 9999.
const maxUnix = 253402300799

// caveat is a caveat after interpretation. Which fields are set depends on
// kind.
type caveat struct {
	kind    kind
	agent   string              // kindAgent
	id      string              // kindAgent (the root id), kindID
	expires int64               // kindExpires: unix seconds
	names   []string            // kindSecrets, kindHosts, kindMethods: as written
	hosts   []rules.HostPattern // kindHosts
}

// interpret checks and decodes the caveats of a token: the first binds the
// agent and the root id and no other may; every other caveat must be of a
// known kind and well formed. Errors wrap ErrInvalid and name the caveat by
// index, never quoting its contents.
func interpret(raw []rawCaveat) ([]caveat, error) {
	out := make([]caveat, len(raw))
	for i, rc := range raw {
		if (i == 0) != (rc.kind == kindAgent) {
			if i == 0 {
				return nil, fmt.Errorf("%w: caveat 0 is %s, want agent", ErrInvalid, rc.kind)
			}
			return nil, fmt.Errorf("%w: caveat %d: a second agent caveat", ErrInvalid, i)
		}
		c, err := interpretOne(rc)
		if err != nil {
			return nil, fmt.Errorf("%w: caveat %d (%s): %v", ErrInvalid, i, rc.kind, err)
		}
		out[i] = c
	}
	return out, nil
}

func interpretOne(rc rawCaveat) (caveat, error) {
	c := caveat{kind: rc.kind}
	switch rc.kind {
	case kindAgent:
		l, err := readList(rc.body)
		if err != nil {
			return c, err
		}
		if len(l) != 2 {
			return c, fmt.Errorf("has %d items, want 2", len(l))
		}
		if checkAgent(l[0]) != nil || checkID(l[1]) != nil {
			return c, errors.New("bad agent name or id")
		}
		c.agent, c.id = l[0], l[1]
	case kindID:
		if checkID(string(rc.body)) != nil {
			return c, errors.New("bad id")
		}
		c.id = string(rc.body)
	case kindExpires:
		v, w, err := readUvarint(rc.body)
		if err != nil || w != len(rc.body) || v == 0 || v > maxUnix {
			return c, errors.New("bad time")
		}
		c.expires = int64(v)
	case kindSecrets, kindMethods, kindHosts:
		l, err := readList(rc.body)
		if err != nil {
			return c, err
		}
		if len(l) == 0 {
			return c, errors.New("empty list")
		}
		if rc.kind == kindHosts {
			c.hosts = make([]rules.HostPattern, len(l))
		}
		for i, s := range l {
			var err error
			if rc.kind == kindHosts {
				c.hosts[i], err = rules.ParseHostPattern(s)
			} else {
				_, err = checkItem(rc.kind, s)
			}
			if err != nil {
				return c, fmt.Errorf("item %d is not valid", i)
			}
		}
		c.names = l
	default:
		return c, errors.New("unknown kind")
	}
	return c, nil
}

// checkItem checks one entry of a secrets, hosts or methods list and
// returns it in canonical form.
func checkItem(k kind, s string) (string, error) {
	switch k {
	case kindSecrets:
		return s, checkSecretName(s)
	case kindHosts:
		p, err := rules.ParseHostPattern(s)
		return p.String(), err
	case kindMethods:
		return s, checkMethod(s)
	}
	return "", errors.New("not a list")
}

// checkAgent accepts what a proxy user name can carry: 1 to 128 bytes of
// UTF-8 without control characters or ':'.
func checkAgent(s string) error {
	if s == "" || len(s) > 128 || !utf8.ValidString(s) {
		return fmt.Errorf("agent name %q: want 1 to 128 bytes of UTF-8", s)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ':' }); i >= 0 {
		return fmt.Errorf("agent name %q: character %q is not allowed", s, s[i])
	}
	return nil
}

// checkID accepts 1 to 64 bytes of [A-Za-z0-9._-] starting with a letter or
// digit (so an id never reads as a command-line flag), except ids that start
// with Prefix (so an id never reads as a token).
func checkID(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("id %q: want 1 to 64 characters", s)
	}
	if !isAlnum(s[0]) || strings.HasPrefix(s, Prefix) {
		return fmt.Errorf("id %q: must start with a letter or digit, and not with %q", s, Prefix)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("id %q: character %q is not allowed; use [A-Za-z0-9._-]", s, c)
		}
	}
	return nil
}

// checkSecretName accepts placeholder names: [A-Za-z_][A-Za-z0-9_]*.
func checkSecretName(s string) error {
	if s == "" || len(s) > 256 || '0' <= s[0] && s[0] <= '9' {
		return fmt.Errorf("secret name %q: want [A-Za-z_][A-Za-z0-9_]*", s)
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' {
			return fmt.Errorf("secret name %q: want [A-Za-z_][A-Za-z0-9_]*", s)
		}
	}
	return nil
}

// checkMethod accepts an upper-case HTTP method of up to 32 bytes: letters,
// digits, '-' and '_'.
func checkMethod(s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("method %q: want 1 to 32 characters", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("method %q: character %q is not allowed", s, c)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

// summary is what the caveats of a token say about its identity and expiry.
type summary struct {
	agent   string
	ids     []string  // root first
	expires time.Time // earliest; zero when no caveat sets one
}

func summarize(cs []caveat) summary {
	var s summary
	for _, c := range cs {
		switch c.kind {
		case kindAgent:
			s.agent = c.agent
			s.ids = append(s.ids, c.id)
		case kindID:
			s.ids = append(s.ids, c.id)
		case kindExpires:
			if t := time.Unix(c.expires, 0).UTC(); s.expires.IsZero() || t.Before(s.expires) {
				s.expires = t
			}
		}
	}
	return s
}

// uniqueSorted returns a sorted copy of list without duplicates.
func uniqueSorted(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}
