package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestPostgresReadOnly: without temporary roles, PostgreSQL refuses writes
// (default_transaction_read_only) and keyhole refuses the statements that
// would turn that off; a session that turns it off anyway is closed.
func TestPostgresReadOnly(t *testing.T) {
	w := newPGWorld(t, "")
	c := w.mustConnect(t, "analyst", analystToken, "DB_RO")
	if _, err := query(t, c, "SELECT count(*) FROM users"); err != nil {
		t.Fatal(err)
	}
	_, err := query(t, c, "INSERT INTO notes (body) VALUES ('x')")
	if pe := pgError(t, err); pe.Code != "25006" {
		t.Fatalf("insert: got %s %s, want 25006 from PostgreSQL", pe.Code, pe.Message)
	}
	for _, q := range []string{
		"SET default_transaction_read_only = off",
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
		"BEGIN READ WRITE",
		"SET transaction_read_only = off; INSERT INTO notes (body) VALUES ('x')",
		"SELECT set_config('default_transaction_read_only', 'off', false)",
	} {
		t.Run(q, func(t *testing.T) {
			_, err := query(t, c, q)
			pe := pgError(t, err)
			if pe.Code != "25006" || !strings.Contains(pe.Detail, "reason: read_only") {
				t.Fatalf("got %s %q %q, want 25006 reason read_only", pe.Code, pe.Message, pe.Detail)
			}
			// The session goes on, still read-only: PostgreSQL itself
			// refuses the write.
			_, err = query(t, c, "INSERT INTO notes (body) VALUES ('x')")
			if pe := pgError(t, err); pe.Code != "25006" || strings.HasPrefix(pe.Message, "keyhole") {
				t.Fatalf("after the refusal: got %s %q, want PostgreSQL's 25006", pe.Code, pe.Message)
			}
		})
	}
	t.Run("extended protocol", func(t *testing.T) {
		ctx, cancel := ctxTimeout(30 * time.Second)
		defer cancel()
		_, err := c.Prepare(ctx, "breaker", "SELECT set_config('transaction_read_only', 'off', false)", nil)
		if pe := pgError(t, err); pe.Code != "25006" {
			t.Fatalf("got %s, want 25006", pe.Code)
		}
		if _, err := query(t, c, "SELECT 1"); err != nil {
			t.Fatalf("after the refusal: %v", err)
		}
	})
	t.Run("startup options are not passed on", func(t *testing.T) {
		need(t, "psql", "--version")
		host, port, _ := strings.Cut(w.addr, ":")
		out, err := runClient(t, []string{"PGHOST=" + host, "PGPORT=" + port, "PGUSER=analyst", "PGPASSWORD=" + analystToken,
			"PGDATABASE=DB_RO", "PGSSLMODE=disable", "PGOPTIONS=-c default_transaction_read_only=off"},
			"psql", "-X", "-A", "-t", "-c", "INSERT INTO notes (body) VALUES ('via options')")
		if err == nil || !strings.Contains(out, "read-only transaction") {
			t.Fatalf("PGOPTIONS turned read-only off: %v\n%s", err, out)
		}
		out, err = runClient(t, []string{"PGHOST=" + host, "PGPORT=" + port, "PGUSER=analyst", "PGPASSWORD=" + analystToken,
			"PGDATABASE=DB_RO", "PGSSLMODE=disable", "PGOPTIONS=-c work_mem=1234kB"},
			"psql", "-X", "-A", "-t", "-c", "SHOW work_mem")
		if err != nil || strings.Contains(out, "1234kB") {
			t.Fatalf("PGOPTIONS reached the server: %v\n%s", err, out)
		}
	})
	t.Run("dynamic SQL closes the session", func(t *testing.T) {
		c := w.mustConnect(t, "analyst", analystToken, "DB_RO")
		_, err := query(t, c, "DO $$ BEGIN EXECUTE 'SET default_transaction_' || 'read_' || 'only = off'; END $$")
		pe := pgError(t, err)
		if pe.Code != "25006" || !strings.Contains(pe.Message, "turned read-only mode off") {
			t.Fatalf("got %s %q, want the session closed", pe.Code, pe.Message)
		}
		if _, err := query(t, c, "INSERT INTO notes (body) VALUES ('x')"); err == nil {
			t.Fatal("the session wrote after turning read-only off")
		}
	})
	rows, err := query(t, w.mustConnect(t, "analyst", analystToken, "DB_PROD"), "SELECT count(*) FROM notes")
	if err != nil || rows[0][0] != "0" {
		t.Fatalf("notes: got %v, %v; want no rows written", rows, err)
	}
	w.auditPG(t, func(r map[string]any) bool { return r["reason"] == "read_only" && r["query"] == "BEGIN READ WRITE" })
}

// TestPostgresTemporaryRoles: a task's sessions run as its own role, with
// only the grants; the audit names the role; the role ends with its ttl.
func TestPostgresTemporaryRoles(t *testing.T) {
	pg := postgres(t)
	// A leftover from a keyhole that did not stop cleanly is swept.
	if err := pg.exec(ctxBG(t), "app", pgAppUser, pgAppPassword, "DROP ROLE IF EXISTS keyhole_tmp_leftover_00000000", "CREATE ROLE keyhole_tmp_leftover_00000000 LOGIN"); err != nil {
		t.Fatal(err)
	}
	w := newPGWorld(t, `  DB_SHORT:
    listen: 127.0.0.1:0
    upstream: pg.test:`+itoa(pg.port)+`
    database: app
    user: env:PG_USER
    password: env:PG_PASSWORD
    temporary_roles:
      ttl: 3s
      grants: ["SELECT ON users"]
`)
	rewriteAgents(t, w, "DB_SHORT")
	tok, info := w.k.token(t, "mint", "--agent", "analyst", "--ttl", "15m")
	id := strings.TrimSpace(strings.TrimPrefix(info, "id:"))
	c := w.mustConnect(t, "analyst", tok, "DB_TMP")
	rows, err := query(t, c, "SELECT current_user, session_user")
	if err != nil {
		t.Fatal(err)
	}
	role := rows[0][0]
	if !strings.HasPrefix(role, "keyhole_tmp_analyst_") || rows[0][1] != role {
		t.Fatalf("current_user, session_user: got %v, want the task's role", rows)
	}
	if got := c.ParameterStatus("session_authorization"); got != role {
		t.Errorf("session_authorization: got %q, want %q", got, role)
	}
	if _, err := query(t, c, "SELECT count(*) FROM orders"); err != nil {
		t.Errorf("a granted table: %v", err)
	}
	_, err = query(t, c, "SELECT * FROM secrets_table")
	if pe := pgError(t, err); pe.Code != "42501" {
		t.Errorf("an ungranted table: got %s, want 42501", pe.Code)
	}
	rec := w.auditPG(t, func(r map[string]any) bool { return r["query"] == "SELECT count(*) FROM orders" })
	if rec["role"] != role || rec["token_id"] != id {
		t.Errorf("audit: got role %v token %v, want %s %s", rec["role"], rec["token_id"], role, id)
	}
	w.k.WaitAudit(t, func(r map[string]any) bool {
		return r["event"] == "temporary_role_created" && r["role"] == role && r["token_id"] == id && r["agent"] == "analyst"
	})
	// A second session of the same task uses the same role; another task
	// gets another.
	c2 := w.mustConnect(t, "analyst", tok, "DB_TMP")
	if rows, _ := query(t, c2, "SELECT current_user"); rows == nil || rows[0][0] != role {
		t.Errorf("second session of the task: got %v, want %s", rows, role)
	}
	c3 := w.mustConnect(t, "analyst", analystToken, "DB_TMP")
	if rows, _ := query(t, c3, "SELECT current_user"); rows == nil || rows[0][0] == role {
		t.Errorf("another task: got %v, want another role", rows)
	}
	if rows, _ := query(t, c3, "SELECT count(*) FROM pg_roles WHERE rolname = 'keyhole_tmp_leftover_00000000'"); rows == nil || rows[0][0] != "0" {
		t.Errorf("the leftover role was not swept: %v", rows)
	}

	t.Run("expiring mid-session", func(t *testing.T) {
		c := w.mustConnect(t, "analyst", analystToken, "DB_SHORT")
		rows, err := query(t, c, "SELECT current_user")
		if err != nil {
			t.Fatal(err)
		}
		short := rows[0][0]
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := query(t, c, "SELECT 1")
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the session outlived its role by 30s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		admin, err := pg.super(ctxBG(t), "app")
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctxBG(t))
		for {
			rows, err := query(t, admin, "SELECT count(*) FROM pg_roles WHERE rolname = '"+short+"'")
			if err != nil {
				t.Fatal(err)
			}
			if rows[0][0] == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the expired role was not dropped")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	// At shutdown keyhole drops the roles it made.
	w.k.Stop()
	admin, err := pg.super(ctxBG(t), "app")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctxBG(t))
	if rows, err := query(t, admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'keyhole\\_tmp\\_%'"); err != nil || rows[0][0] != "0" {
		t.Errorf("roles left after shutdown: %v %v", rows, err)
	}
	if t.Failed() {
		for _, l := range strings.Split(w.k.stderr.String(), "\n") {
			if strings.Contains(l, "role") {
				t.Log(l)
			}
		}
	}
}
