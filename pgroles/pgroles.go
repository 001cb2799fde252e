// Package pgroles gives every agent task its own PostgreSQL role, the way a
// vault database engine leases credentials: keyhole logs in with the
// handle's administrator credentials and runs
//
//	CREATE ROLE "keyhole_tmp_analyst_3f9a0c12" LOGIN NOINHERIT PASSWORD 'SCRAM-SHA-256$...' VALID UNTIL '...'
//	GRANT SELECT ON TABLE "users", "orders" TO "keyhole_tmp_analyst_3f9a0c12"
//
// with exactly the grants of the rules, serves that task's sessions as the
// role, and when the role expires ends its sessions (pg_terminate_backend)
// and drops it (DROP OWNED BY, DROP ROLE). Roles left behind by a keyhole
// that stopped without dropping them are swept when a handle is first used.
//
// The role's password is random and never leaves keyhole: the CREATE ROLE
// statement carries only its SCRAM-SHA-256 verifier (which PostgreSQL
// accepts in place of a password), so the password is in no server log,
// pg_stat_statements entry or replication stream.
package pgroles

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"keyhole/rules"
	"keyhole/secret"
)

// Prefix starts the name of every role keyhole creates; Sweep drops roles
// with this prefix, so no other role may use it.
const Prefix = "keyhole_tmp_"

// Role is a temporary role of one agent task.
type Role struct {
	// Name is the role's name.
	Name string
	// Password is the role's password.
	Password secret.Value
	// Expires is when the role stops being valid and is dropped.
	Expires time.Time
	// Database is the handle the role was made for.
	Database string
	// Agent and Task are the agent and the task (token id, or "static")
	// the role serves.
	Agent, Task string

	timer *time.Timer
	key   key
	db    *rules.Database
}

// Connect opens an administrator session to a handle's upstream.
type Connect func(ctx context.Context, d *rules.Database) (*pgconn.PgConn, error)

// Manager creates, tracks and drops temporary roles. Its zero value is not
// usable: use New.
type Manager struct {
	connect  Connect
	onExpire func(*Role)
	log      *slog.Logger

	// sweepMu keeps a sweep from dropping a role being created: a sweep
	// holds it exclusively, a creation shared until its role is listed.
	sweepMu sync.RWMutex

	mu     sync.Mutex
	roles  map[key]*Role
	swept  map[string]bool // handle+upstream already swept
	making map[key]chan struct{}
	closed bool
}

type key struct{ db, upstream, agent, task string }

// New returns a Manager that reaches upstreams with connect and calls
// onExpire (which must not block long) before it drops an expired role, so
// that the caller can end its own sessions of the role first.
func New(connect Connect, onExpire func(*Role), log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{connect: connect, onExpire: onExpire, log: log,
		roles: map[key]*Role{}, swept: map[string]bool{}, making: map[key]chan struct{}{}}
}

// Acquire returns the live role of (agent, task) for d, creating it when
// there is none: valid until now + d's ttl, and never past notAfter (the
// task token's expiry; zero for none).
func (m *Manager) Acquire(ctx context.Context, d *rules.Database, agent, task string, notAfter time.Time) (r *Role, created bool, err error) {
	k := key{db: d.Name, upstream: d.Upstream, agent: agent, task: task}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, false, errors.New("temporary roles: shutting down")
		}
		if r := m.roles[k]; r != nil && time.Until(r.Expires) > time.Second {
			m.mu.Unlock()
			return r, false, nil
		}
		wait, busy := m.making[k]
		if !busy {
			m.making[k] = make(chan struct{})
			m.mu.Unlock()
			break
		}
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	m.sweepOnce(ctx, d)
	m.sweepMu.RLock()
	defer m.sweepMu.RUnlock()
	r, err = m.create(ctx, d, k, notAfter)
	m.mu.Lock()
	close(m.making[k])
	delete(m.making, k)
	if err == nil {
		m.roles[k] = r
		r.timer = time.AfterFunc(time.Until(r.Expires), func() { m.expire(r) })
	}
	m.mu.Unlock()
	return r, err == nil, err
}

func (m *Manager) create(ctx context.Context, d *rules.Database, k key, notAfter time.Time) (*Role, error) {
	now := time.Now()
	expires := now.Add(d.TemporaryRoles.TTL)
	if !notAfter.IsZero() && notAfter.Before(expires) {
		expires = notAfter
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:]) // never fails on Linux
	r := &Role{Name: Name(k.agent, hex.EncodeToString(suffix[:])), Expires: expires.Truncate(time.Second), Database: d.Name, Agent: k.agent, Task: k.task, key: k, db: d}
	pw := make([]byte, 32)
	_, _ = rand.Read(pw)
	r.Password = secret.New([]byte(hex.EncodeToString(pw)))
	verifier, err := scramVerifier(r.Password)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE ROLE %s LOGIN NOINHERIT PASSWORD %s VALID UNTIL %s",
		quoteIdent(r.Name), quoteLiteral(verifier), quoteLiteral(r.Expires.UTC().Format(time.RFC3339)))
	for _, g := range d.TemporaryRoles.Grants {
		b.WriteString(";\n")
		b.WriteString(grantSQL(g, r.Name))
	}
	conn, err := m.connect(ctx, d)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	// One simple Query: the role and its grants commit together, or not at
	// all.
	if _, err := conn.Exec(ctx, b.String()).ReadAll(); err != nil {
		return nil, fmt.Errorf("temporary roles: create a role for %s: %w", d.Name, sqlState(err))
	}
	m.log.Info("temporary role created", "database", d.Name, "role", r.Name, "agent", k.agent, "token_id", k.task, "expires", r.Expires)
	return r, nil
}

// grantSQL is the GRANT of g to role, every name quoted.
func grantSQL(g rules.Grant, role string) string {
	names := make([]string, len(g.Names))
	for i, n := range g.Names {
		parts := make([]string, len(n))
		for j, p := range n {
			parts[j] = quoteIdent(p)
		}
		names[i] = strings.Join(parts, ".")
	}
	return fmt.Sprintf("GRANT %s ON %s %s TO %s", strings.Join(g.Privileges, ", "), g.Object, strings.Join(names, ", "), quoteIdent(role))
}

// expire ends the role's sessions and drops it.
func (m *Manager) expire(r *Role) {
	m.mu.Lock()
	if m.roles[r.key] == r {
		delete(m.roles, r.key)
	}
	m.mu.Unlock()
	if m.onExpire != nil {
		m.onExpire(r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.drop(ctx, r); err != nil {
		m.log.Error("temporary role not dropped; it is swept at the next start", "role", r.Name, "error", err)
		return
	}
	m.log.Info("temporary role dropped", "database", r.Database, "role", r.Name)
}

// drop drops r with the administrator of the handle it was made under.
func (m *Manager) drop(ctx context.Context, r *Role) error {
	conn, err := m.connect(ctx, r.db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return dropOn(ctx, conn, r.Name)
}

// dropOn ends the role's server sessions and drops it.
func dropOn(ctx context.Context, conn *pgconn.PgConn, role string) error {
	if _, err := conn.ExecParams(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
		[][]byte{[]byte(role)}, nil, nil, nil).Close(); err != nil {
		return sqlState(err)
	}
	// DROP OWNED BY needs membership in the role; a CREATEROLE
	// administrator may grant it to itself (PostgreSQL 15 does not make the
	// creator a member; 16 gives it ADMIN OPTION, which suffices).
	q := fmt.Sprintf("GRANT %s TO CURRENT_USER; DROP OWNED BY %s; DROP ROLE IF EXISTS %s", quoteIdent(role), quoteIdent(role), quoteIdent(role))
	if _, err := conn.Exec(ctx, q).ReadAll(); err != nil {
		return sqlState(err)
	}
	return nil
}
