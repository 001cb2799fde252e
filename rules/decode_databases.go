package rules

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"keyhole/secret"
)

// The databases section and the agents' databases field (CONTRACT.md Part 2
// "Databases"). Handles are decoded before agents, so that an agent naming
// an unknown handle is an error at its list item.

// maxRoleTTL bounds temporary_roles.ttl: a temporary role is a task's
// credential, not a standing one.
const maxRoleTTL = 24 * time.Hour

func (l *loader) databases(p pair) {
	pairs, _ := l.mapping(p.v, p.field)
	l.dbDefined = make(map[string]bool, len(pairs))
	l.set.Databases = make(map[string]*Database, len(pairs))
	for _, e := range pairs {
		l.dbDefined[e.key] = true
		valid := validEnvName(e.key) && len(e.key) <= 63
		switch {
		case !valid:
			l.errorf(e.k.Line, e.field, "not a valid database handle (want at most 63 letters, digits and '_', not starting with a digit)")
		case l.set.Secrets[e.key] != nil:
			valid = false
			l.errorf(e.k.Line, e.field, "the name is already a secret's (a token's secrets caveat names both)")
		}
		if d := l.database(e); d != nil && valid {
			l.set.Databases[d.Name] = d
		}
	}
}

func (l *loader) database(e pair) *Database {
	f, ok := l.fields(e.v, e.field, "listen", "upstream", "database", "user", "password", "tls", "read_only", "temporary_roles")
	if !ok {
		return nil
	}
	d := &Database{Name: e.key, Line: e.k.Line, TLS: TLSVerifyFull}
	valid := true
	if p, ok := l.required(f, "listen", e); ok {
		valid = l.dbAddr(p, false, &d.Listen, &d.ListenHost, nil) && valid
	} else {
		valid = false
	}
	if p, ok := l.required(f, "upstream", e); ok {
		valid = l.dbAddr(p, true, &d.Upstream, &d.UpstreamHost, &d.UpstreamPort) && valid
	} else {
		valid = false
	}
	if p, ok := l.required(f, "database", e); ok {
		if s, ok := l.str(p); ok && (s == "" || len(s) > 63 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
			l.errorf(p.v.Line, p.field, "want a database name of 1 to 63 bytes without control characters")
		} else {
			d.DBName = s
		}
	}
	if p, ok := l.required(f, "user", e); ok {
		d.User = l.source(p, func(v secret.Value, err error) { d.user, d.userErr = v, err })
	}
	if p, ok := l.required(f, "password", e); ok {
		d.Password = l.source(p, func(v secret.Value, err error) { d.password, d.passwordErr = v, err })
	}
	if p, ok := f["tls"]; ok {
		if s, ok := l.str(p); ok {
			switch m := TLSMode(s); m {
			case TLSVerifyFull, TLSRequire, TLSDisable:
				d.TLS = m
			default:
				l.errorf(p.v.Line, p.field, "unknown tls mode %s (want verify-full, require or disable)", brief(s))
			}
		}
	}
	if p, ok := f["read_only"]; ok {
		d.ReadOnly, _ = l.boolean(p)
	}
	if p, ok := f["temporary_roles"]; ok {
		d.TemporaryRoles = l.temporaryRoles(p, d.ReadOnly)
	}
	if !valid || d.User == nil || d.Password == nil || d.DBName == "" {
		return nil
	}
	return d
}

// dbAddr parses a listen or upstream address into *addr ("host:port") and
// *host (canonical); an upstream may leave out its port (5432).
func (l *loader) dbAddr(p pair, upstream bool, addr, host *string, port *int) bool {
	s, ok := l.str(p)
	if !ok {
		return false
	}
	h, portStr, err := net.SplitHostPort(s)
	if err != nil && upstream {
		h, portStr, err = net.SplitHostPort(s + ":5432")
	}
	if err != nil {
		l.errorf(p.v.Line, p.field, "want host:port, such as 127.0.0.1:15432")
		return false
	}
	canon, err := CanonicalHost(h)
	if err != nil {
		l.errorf(p.v.Line, p.field, "%v", err)
		return false
	}
	n, err := strconv.Atoi(portStr)
	switch {
	case err != nil || n < 0 || n > 65535 || portStr != strconv.Itoa(n):
		l.errorf(p.v.Line, p.field, "port %s: want a number from 1 to 65535", brief(portStr))
		return false
	case n == 0 && upstream:
		l.errorf(p.v.Line, p.field, "the upstream port must not be 0")
		return false
	}
	*addr, *host = net.JoinHostPort(canon, portStr), canon
	if port != nil {
		*port = n
	}
	return true
}

func (l *loader) temporaryRoles(p pair, readOnly bool) *TemporaryRoles {
	f, ok := l.fields(p.v, p.field, "ttl", "grants")
	if !ok {
		return nil
	}
	tr := &TemporaryRoles{}
	e := pair{k: p.k, v: p.v, field: p.field}
	if q, ok := l.required(f, "ttl", e); ok {
		if s, ok := l.str(q); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				l.errorf(q.v.Line, q.field, "want a duration such as 15m")
			case d < time.Second || d > maxRoleTTL:
				l.errorf(q.v.Line, q.field, "want a duration from 1s to %s", maxRoleTTL)
			default:
				tr.TTL = d
			}
		}
	}
	if q, ok := l.required(f, "grants", e); ok {
		tr.Grants, _ = parseList(l, q, func(s string) (Grant, string, error) {
			g, err := ParseGrant(s)
			if err == nil && readOnly && !g.ReadOnly() {
				err = errors.New("read_only allows only SELECT and USAGE grants")
			}
			return g, strings.ToUpper(strings.Join(strings.Fields(s), " ")), err
		})
		l.nonEmpty(q, "a temporary role needs at least one grant")
	}
	return tr
}

// agentDatabases parses an agent's databases list: handles defined in the
// databases section.
func (l *loader) agentDatabases(p pair) []string {
	names, _ := parseList(l, p, func(s string) (string, string, error) {
		switch {
		case l.dbDefined[s]:
			return s, s, nil
		case validEnvName(s) && len(s) <= 63:
			return "", "", fmt.Errorf("database %s is not defined in databases", s)
		}
		return "", "", errors.New("not the name of a database defined in databases")
	})
	return names
}
