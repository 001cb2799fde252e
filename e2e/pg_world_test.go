package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Agent tokens of the database tests.
const (
	analystToken = "analyst-static-TOKEN-0003"
	otherToken   = "other-static-TOKEN-0004"
)

// pgWorld is a keyhole whose rules hold database handles for the shared
// PostgreSQL, reached as pg.test (pinned to 127.0.0.1, with a certificate
// for that name).
type pgWorld struct {
	pg   *pgServer
	k    *keyhole
	addr string // the front's address for the handles on 127.0.0.1:0
}

// pgRules is the rules file of a pgWorld; extra is appended to the
// databases section (indented as its entries).
func pgRules(pg *pgServer, extra string) string {
	return fmt.Sprintf(`
databases:
  DB_PROD:
    listen: 127.0.0.1:0
    upstream: pg.test:%[1]d
    database: app
    user: env:PG_USER
    password: env:PG_PASSWORD
  DB_RO:
    listen: 127.0.0.1:0
    upstream: pg.test:%[1]d
    database: app
    user: env:PG_USER
    password: env:PG_PASSWORD
    read_only: true
  DB_TMP:
    listen: 127.0.0.1:0
    upstream: pg.test:%[1]d
    database: app
    user: env:PG_USER
    password: env:PG_PASSWORD
    read_only: true
    temporary_roles:
      ttl: 15m
      grants: ["SELECT ON users, orders"]
%[2]s
resolve:
  pg.test: 127.0.0.1
  other.test: 127.0.0.1
agents:
  analyst:
    token: env:ANALYST_TOKEN
    databases: [DB_PROD, DB_RO, DB_TMP]
  other:
    token: env:OTHER_TOKEN
`, pg.port, extra)
}

var frontLine = regexp.MustCompile(`msg="postgres front listening" listen=127\.0\.0\.1:0 addr=(\S+)`)

func newPGWorld(t *testing.T, extra string, env ...string) *pgWorld {
	t.Helper()
	pg := postgres(t)
	env = append(env, "PG_USER="+pgAppUser, "PG_PASSWORD="+pgAppPassword, "ANALYST_TOKEN="+analystToken, "OTHER_TOKEN="+otherToken)
	k := startKeyhole(t, pgRules(pg, extra), env...)
	w := &pgWorld{pg: pg, k: k}
	m := frontLine.FindStringSubmatch(k.stderr.String())
	if m == nil {
		t.Fatalf("keyhole did not log the postgres front's address:\n%s", k.stderr)
	}
	w.addr = m[1]
	t.Cleanup(func() {
		k.Stop()
		assertNoPGSecrets(t, k)
	})
	return w
}

// assertNoPGSecrets fails the test if the database passwords appear in
// anything keyhole wrote.
func assertNoPGSecrets(t *testing.T, k *keyhole) {
	t.Helper()
	// Under GOFLAGS=-race keyhole is built with the race detector.
	if i := strings.Index(k.stderr.String(), "WARNING: DATA RACE"); i >= 0 {
		t.Errorf("keyhole reported a data race:\n%s", k.stderr.String()[i:min(len(k.stderr.String()), i+4000)])
	}
	for name, out := range map[string]string{"stdout (audit log)": k.stdout.String(), "stderr": k.stderr.String()} {
		for i, v := range []string{pgAppPassword, pgSuperPassword} {
			if strings.Contains(out, v) {
				t.Errorf("keyhole's %s holds database password #%d", name, i)
			}
		}
	}
}

// dsn is a libpq connection string to handle db through the front.
func (w *pgWorld) dsn(user, password, db, sslmode string) string {
	host, port, _ := strings.Cut(w.addr, ":")
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=%s sslrootcert=%s connect_timeout=20", host, port, user, password, db, sslmode, w.k.CAFile)
}

// connect opens a pgconn session through the front.
func (w *pgWorld) connect(t *testing.T, user, password, db string) (*pgconn.PgConn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgconn.ParseConfig(w.dsn(user, password, db, "verify-full"))
	if err != nil {
		t.Fatal(err)
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

func (w *pgWorld) mustConnect(t *testing.T, user, password, db string) *pgconn.PgConn {
	t.Helper()
	c, err := w.connect(t, user, password, db)
	if err != nil {
		t.Fatalf("connect as %s to %s: %v", user, db, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// query runs one simple query and returns its rows as text.
func query(t *testing.T, c *pgconn.PgConn, sql string) ([][]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for _, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
		for _, row := range r.Rows {
			var out []string
			for _, v := range row {
				out = append(out, string(v))
			}
			rows = append(rows, out)
		}
	}
	return rows, nil
}

// pgError returns err's SQLSTATE and its ErrorResponse, or fails.
func pgError(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if err == nil || !asPgError(err, &pe) {
		t.Fatalf("got %v, want a PostgreSQL error", err)
	}
	return pe
}

func asPgError(err error, pe **pgconn.PgError) bool { return errors.As(err, pe) }

// auditPG waits for a postgres audit record that match accepts.
func (w *pgWorld) auditPG(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	return w.k.WaitAudit(t, func(r map[string]any) bool { return r["protocol"] == "postgres" && match(r) })
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeRules replaces k's rules file; keyhole reloads it within a second.
func writeRules(t *testing.T, k *keyhole, body string) {
	t.Helper()
	tmp := k.Rules + ".new"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, k.Rules); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// ctxBG is a context for setup steps, bounded to a minute.
func ctxBG(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func writeFileString(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
