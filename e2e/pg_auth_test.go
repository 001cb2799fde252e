package e2e

import (
	"context"
	bin "encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPostgresLoginRefusals covers every way a login is refused: each gets
// an ErrorResponse with the SQLSTATE and reason an agent can act on, and an
// audit record, and nothing reaches the server as the agent.
func TestPostgresLoginRefusals(t *testing.T) {
	w := newPGWorld(t, "")
	narrow, _ := w.k.token(t, "mint", "--agent", "analyst", "--secrets", "DB_RO", "--ttl", "15m")
	expired, _ := w.k.token(t, "mint", "--agent", "analyst", "--ttl", "1s")
	revoked, revokedInfo := w.k.token(t, "mint", "--agent", "analyst", "--ttl", "15m")
	w.k.token(t, "revoke", strings.TrimSpace(strings.TrimPrefix(revokedInfo, "id:")))
	time.Sleep(2500 * time.Millisecond) // the 1s token expires (whole seconds); the revocation is seen within a second
	tests := []struct {
		name, user, pass, db string
		code, reason         string
	}{
		{"wrong token", "analyst", "wrong", "DB_PROD", "28P01", "proxy_auth_required"},
		{"unknown agent", "mallory", analystToken, "DB_PROD", "28P01", "proxy_auth_required"},
		{"agent without the handle", "other", otherToken, "DB_PROD", "42501", "agent_not_allowed"},
		{"token narrowed to another handle", "analyst", narrow, "DB_PROD", "42501", "agent_not_allowed"},
		{"expired token", "analyst", expired, "DB_PROD", "28P01", "token_expired"},
		{"revoked token", "analyst", revoked, "DB_PROD", "28P01", "token_revoked"},
		{"unknown handle", "analyst", analystToken, "DB_NOPE", "3D000", "unknown_secret"},
		{"real credentials", pgAppUser, pgAppPassword, "DB_PROD", "28P01", "proxy_auth_required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.connect(t, tc.user, tc.pass, tc.db)
			pe := pgError(t, err)
			if pe.Code != tc.code || !strings.Contains(pe.Detail, "reason: "+tc.reason) {
				t.Fatalf("got %s %q (%s), want %s reason %s", pe.Code, pe.Message, pe.Detail, tc.code, tc.reason)
			}
			if !strings.HasPrefix(pe.Message, "keyhole: ") {
				t.Errorf("message %q does not say it is keyhole's", pe.Message)
			}
			w.auditPG(t, func(r map[string]any) bool {
				return r["decision"] == "deny" && r["reason"] == tc.reason && r["database"] == tc.db
			})
		})
	}
	t.Run("narrowed token on its handle", func(t *testing.T) {
		c := w.mustConnect(t, "analyst", narrow, "DB_RO")
		if _, err := query(t, c, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		rec := w.auditPG(t, func(r map[string]any) bool { return r["database"] == "DB_RO" && r["query"] == "SELECT 1" })
		if rec["token_id"] == "" {
			t.Errorf("the record does not name the token: %v", rec)
		}
	})
}

// TestPostgresRevokedMidSession: the statement after a revocation is
// refused and the session closed.
func TestPostgresRevokedMidSession(t *testing.T) {
	w := newPGWorld(t, "")
	tok, info := w.k.token(t, "mint", "--agent", "analyst", "--ttl", "15m")
	c := w.mustConnect(t, "analyst", tok, "DB_PROD")
	if _, err := query(t, c, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	w.k.token(t, "revoke", strings.TrimSpace(strings.TrimPrefix(info, "id:")))
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := query(t, c, "SELECT 2")
		if err != nil {
			pe := pgError(t, err)
			if pe.Code != "28P01" || !strings.Contains(pe.Detail, "token_revoked") {
				t.Fatalf("got %s %s, want 28P01 token_revoked", pe.Code, pe.Detail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("statements still run 15s after the revocation")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := query(t, c, "SELECT 3"); err == nil {
		t.Fatal("the session stayed open after the refusal")
	}
	w.auditPG(t, func(r map[string]any) bool { return r["reason"] == "token_revoked" && r["query"] == "SELECT 2" })
}

// TestPostgresBadStartup: a garbage first packet and a 1 GiB declared
// length get an error at once, without keyhole reading or allocating
// what they announce.
func TestPostgresBadStartup(t *testing.T) {
	w := newPGWorld(t, "")
	huge := bin.BigEndian.AppendUint32(nil, 1<<30)
	for name, first := range map[string][]byte{
		"garbage":      []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"1 GiB length": append(huge, 0, 3, 0, 0),
		"protocol 2":   {0, 0, 0, 8, 0, 2, 0, 0},
		"truncated":    {0, 0, 0, 100, 0, 3, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", w.addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write(first); err != nil {
				t.Fatal(err)
			}
			if name == "truncated" {
				c.(*net.TCPConn).CloseWrite()
			}
			got, _ := io.ReadAll(c)
			if name != "truncated" && (len(got) == 0 || got[0] != 'E' || !strings.Contains(string(got), "08P01")) {
				t.Fatalf("got %q, want an ErrorResponse 08P01", got)
			}
		})
	}
	// The front still serves.
	c := w.mustConnect(t, "analyst", analystToken, "DB_PROD")
	if _, err := query(t, c, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresUpstreamFaults: an upstream that is down, has a certificate
// for another name, or rejects keyhole's password gives the agent a clear
// error that names no real user.
func TestPostgresUpstreamFaults(t *testing.T) {
	pg := postgres(t)
	down, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	extra := strings.NewReplacer("{PORT}", itoa(pg.port), "{DOWN}", itoa(down)).Replace(`  DB_DOWN:
    listen: 127.0.0.1:0
    upstream: pg.test:{DOWN}
    database: app
    user: env:PG_USER
    password: env:PG_PASSWORD
  DB_WRONGCERT:
    listen: 127.0.0.1:0
    upstream: other.test:{PORT}
    database: app
    user: env:PG_USER
    password: env:PG_PASSWORD
  DB_BADPW:
    listen: 127.0.0.1:0
    upstream: pg.test:{PORT}
    database: app
    user: env:PG_USER
    password: env:PG_WRONG
  DB_PRIVATE:
    listen: 127.0.0.1:0
    upstream: 127.0.0.1:{PORT}
    database: app
    user: env:PG_USER
    password: env:PG_PASSWORD
`)
	w := newPGWorld(t, extra, "PG_WRONG=not-the-password")
	rewriteAgents(t, w, "DB_DOWN, DB_WRONGCERT, DB_BADPW, DB_PRIVATE")
	for db, reason := range map[string]string{"DB_DOWN": "upstream_unreachable", "DB_WRONGCERT": "upstream_tls", "DB_BADPW": "secret_unavailable", "DB_PRIVATE": "private_address"} {
		t.Run(db, func(t *testing.T) {
			_, err := w.connect(t, "analyst", analystToken, db)
			pe := pgError(t, err)
			if !strings.Contains(pe.Detail, "reason: "+reason) {
				t.Fatalf("got %s %q %q, want reason %s", pe.Code, pe.Message, pe.Detail, reason)
			}
			if strings.Contains(pe.Message+pe.Detail+pe.Hint, pgAppUser) {
				t.Errorf("the error names the real user: %q", pe.Message)
			}
		})
	}
}

// rewriteAgents gives analyst the handles dbs too, through a reload.
func rewriteAgents(t *testing.T, w *pgWorld, dbs string) {
	t.Helper()
	k := w.k
	body := readFile(t, k.Rules)
	body = strings.Replace(body, "databases: [DB_PROD, DB_RO, DB_TMP]", "databases: [DB_PROD, DB_RO, DB_TMP, "+dbs+"]", 1)
	writeRules(t, k, body)
	// Wait until the new rules let analyst in (any answer but agent_not_allowed).
	db := strings.TrimSpace(strings.Split(dbs, ",")[0])
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cfg, _ := pgconn.ParseConfig(w.dsn("analyst", analystToken, db, "verify-full"))
		c, err := pgconn.ConnectConfig(ctx, cfg)
		cancel()
		if err == nil {
			c.Close(context.Background())
			return
		}
		var pe *pgconn.PgError
		if !asPgError(err, &pe) || !strings.Contains(pe.Detail, "agent_not_allowed") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the reload did not give analyst the new handles")
}
