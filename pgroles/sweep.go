package pgroles

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"keyhole/rules"
)

// Sweep drops every role named with Prefix on d's upstream that this
// Manager does not serve: roles left by a keyhole that stopped without
// dropping them. Several keyhole replicas must therefore not share one
// upstream's temporary roles (see the README).
func (m *Manager) Sweep(ctx context.Context, d *rules.Database) error {
	m.sweepMu.Lock()
	defer m.sweepMu.Unlock()
	m.mu.Lock()
	m.swept[sweepKey(d)] = true
	live := map[string]bool{}
	for _, r := range m.roles {
		live[r.Name] = true
	}
	m.mu.Unlock()
	conn, err := m.connect(ctx, d)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", [][]byte{[]byte(Prefix)}, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("temporary roles: sweep %s: %w", d.Name, sqlState(res.Err))
	}
	var errs []error
	n := 0
	for _, row := range res.Rows {
		name := string(row[0])
		if live[name] {
			continue
		}
		if err := dropOn(ctx, conn, name); err != nil {
			errs = append(errs, fmt.Errorf("drop %s: %w", name, err))
			continue
		}
		n++
	}
	if n > 0 {
		m.log.Info("temporary roles swept", "database", d.Name, "dropped", n)
	}
	return errors.Join(errs...)
}

func sweepKey(d *rules.Database) string { return d.Name + "\x00" + d.Upstream }

// sweepOnce sweeps d's upstream the first time a role is made there.
func (m *Manager) sweepOnce(ctx context.Context, d *rules.Database) {
	m.mu.Lock()
	done := m.swept[sweepKey(d)]
	m.mu.Unlock()
	if done {
		return
	}
	if err := m.Sweep(ctx, d); err != nil {
		m.log.Warn("temporary roles not swept", "database", d.Name, "error", err)
	}
}

// Close stops expiring roles and drops every live one, for shutdown.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	roles := make([]*Role, 0, len(m.roles))
	for k, r := range m.roles {
		r.timer.Stop()
		roles = append(roles, r)
		delete(m.roles, k)
	}
	m.mu.Unlock()
	var errs []error
	for _, r := range roles {
		if err := m.drop(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("drop %s: %w", r.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Name returns the name of a role of agent: Prefix, the agent's name folded
// to [a-z0-9_] and cut to 30 bytes, and a random suffix.
func Name(agent, suffix string) string {
	var b strings.Builder
	b.WriteString(Prefix)
	for i := 0; i < len(agent) && i < 30; i++ {
		c := agent[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		default:
			c = '_'
		}
		b.WriteByte(c)
	}
	b.WriteByte('_')
	b.WriteString(suffix)
	return b.String()
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes a PostgreSQL string literal (standard_conforming_strings
// is on since PostgreSQL 9.1; keyhole's literals hold no backslash anyway).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// sqlState reduces a server error to its SQLSTATE and message, which name
// no password (keyhole's statements carry none).
func sqlState(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("SQLSTATE %s: %s", pe.Code, pe.Message)
	}
	return err
}

// Live returns the live roles, for tests and metrics.
func (m *Manager) Live() []*Role {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Role, 0, len(m.roles))
	for _, r := range m.roles {
		out = append(out, r)
	}
	return out
}
