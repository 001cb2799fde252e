package rules

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"keyhole/secret"
)

// The origins of a secret that is not in the rules file but in keyhole's
// store (see Secret.Origin).
const (
	// OriginCaptured is a credential captured from an upstream response.
	OriginCaptured = "captured"
	// OriginIntake is a value a human handed in through an intake link.
	OriginIntake = "intake"
)

// StoredPolicy is where a value kept in keyhole's store may be sent, as the
// rules file spells a secret's fields. It mirrors store.Policy, which this
// package cannot name (the store imports rules).
type StoredPolicy struct {
	Hosts          []string
	Headers        []string
	Methods        []string
	Paths          []string
	AllowPlaintext bool
}

// StoredSecret returns the secret of a value kept in keyhole's store with
// its own policy (a captured or taken-in value): it belongs to the agent
// owner only, its source is store:NAME, and it stops being served at
// expires (zero: never). The policy is checked as the rules file's fields
// would be; the error names the field, never the value.
func StoredSecret(name, owner, origin string, p StoredPolicy, v secret.Value, expires time.Time) (*Secret, error) {
	if !validEnvName(name) {
		return nil, errors.New("not a valid secret name")
	}
	if owner == "" {
		return nil, errors.New("a stored secret with a policy needs an owner agent")
	}
	if len(p.Hosts) == 0 {
		return nil, errors.New("hosts: must not be empty")
	}
	src, err := ParseSource("store:"+name, "")
	if err != nil {
		return nil, err
	}
	s := &Secret{Name: name, Env: name, Source: src, Owner: owner, Origin: origin,
		AllowPlaintext: p.AllowPlaintext, value: v, expires: expires}
	if v.IsZero() {
		s.err = fmt.Errorf("%s: the value is empty", src)
	}
	if s.Hosts, err = parseEach(p.Hosts, parseHost, "hosts"); err != nil {
		return nil, err
	}
	if s.Headers, err = parseEach(p.Headers, parseHeader, "headers"); err != nil {
		return nil, err
	}
	if s.Methods, err = parseEach(p.Methods, parseMethod, "methods"); err != nil {
		return nil, err
	}
	if s.Paths, err = parseEach(p.Paths, parsePath, "paths"); err != nil {
		return nil, err
	}
	return s, nil
}

// parseEach parses every item of list; nil stays nil (any).
func parseEach[T any](list []string, parse func(string) (T, string, error), field string) ([]T, error) {
	if list == nil {
		return nil, nil
	}
	out := make([]T, 0, len(list))
	for i, item := range list {
		v, _, err := parse(item)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// WithStored returns a set that has s's rules and, besides its secrets,
// the stored secrets extra (see StoredSecret), whose hosts are admitted
// for egress like any secret's. A stored secret whose name the rules file
// already uses is left out: the rules file wins. Without extra it returns
// s itself. s is not modified.
func (s *Set) WithStored(extra []*Secret) *Set {
	if len(extra) == 0 {
		return s
	}
	out := *s
	out.Secrets = maps.Clone(s.Secrets)
	if out.Secrets == nil {
		out.Secrets = make(map[string]*Secret, len(extra))
	}
	for _, sec := range extra {
		if _, taken := out.Secrets[sec.Name]; !taken {
			out.Secrets[sec.Name] = sec
		}
	}
	out.compile()
	return &out
}
