package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runClient runs a client with env and returns its combined output.
func runClient(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(baseEnv(), env...)
	timer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestPostgresClients runs the seed's query_db flow with real clients:
// psql, Python's psycopg2 and Node's pg, each with the agent name as user,
// its token as password and the handle as database; none of them sees the
// real password, and each statement is audited.
func TestPostgresClients(t *testing.T) {
	w := newPGWorld(t, "")
	host, port, _ := strings.Cut(w.addr, ":")
	env := []string{"PGHOST=" + host, "PGPORT=" + port, "PGUSER=analyst", "PGPASSWORD=" + analystToken,
		"PGDATABASE=DB_PROD", "PGSSLMODE=verify-full", "PGSSLROOTCERT=" + w.k.CAFile, "PGCONNECT_TIMEOUT=20"}
	t.Run("psql", func(t *testing.T) {
		psql := "psql"
		need(t, psql, "--version")
		out, err := runClient(t, env, psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "SELECT count(*) FROM users", "-c", "SELECT 'psql-' || current_database()")
		if err != nil || !strings.Contains(out, "100\n") {
			t.Fatalf("psql: %v\n%s", err, out)
		}
		w.auditPG(t, func(r map[string]any) bool {
			return r["query"] == "SELECT count(*) FROM users" && r["rows"] == float64(1)
		})
		out, err = runClient(t, append(env, "PGPASSWORD=wrong"), psql, "-X", "-c", "SELECT 1")
		if err == nil || !strings.Contains(out, "keyhole: authentication failed") {
			t.Fatalf("psql with a wrong token: %v\n%s", err, out)
		}
	})
	t.Run("psycopg2", func(t *testing.T) {
		py := "/usr/bin/python3" // Debian's, with python3-psycopg2
		need(t, py, "-c", "import psycopg2")
		script := `
import psycopg2
conn = psycopg2.connect("")
cur = conn.cursor()
cur.execute("SELECT count(*) FROM orders WHERE user_id = %s", (7,))
print("orders", cur.fetchone()[0])
cur.execute("SELECT name FROM users WHERE id = %s", ("3",))
print("name", cur.fetchone()[0])
conn.close()
`
		out, err := runClient(t, env, py, "-c", script)
		if err != nil || !strings.Contains(out, "orders 10") || !strings.Contains(out, "name user 3") {
			t.Fatalf("psycopg2: %v\n%s", err, out)
		}
		w.auditPG(t, func(r map[string]any) bool { return r["query"] == "SELECT name FROM users WHERE id = '3'" })
	})
	t.Run("node pg", func(t *testing.T) {
		node := "node"
		need(t, node, "--version")
		mod := filepath.Join(npmDir(), "node_modules", "pg")
		if _, err := os.Stat(mod); err != nil {
			missing(t, "node's pg is not installed in %s", npmDir())
		}
		abs, _ := filepath.Abs(mod)
		script := `
const fs = require('fs');
const { Client } = require(process.argv[1]);
const c = new Client({ ssl: { ca: fs.readFileSync(process.env.PGSSLROOTCERT), servername: process.env.PGHOST } });
(async () => {
  await c.connect();
  const r = await c.query('SELECT count(*)::int AS n FROM users WHERE id <= $1', [25]);
  console.log('node', r.rows[0].n);
  await c.end();
})().catch(e => { console.error('error', e.message); process.exit(1); });
`
		out, err := runClient(t, env, node, "-e", script, abs)
		if err != nil || !strings.Contains(out, "node 25") {
			t.Fatalf("node: %v\n%s", err, out)
		}
		w.auditPG(t, func(r map[string]any) bool {
			return r["query"] == "SELECT count(*)::int AS n FROM users WHERE id <= $1"
		})
	})
	for _, out := range []string{w.k.stdout.String()} {
		if strings.Contains(out, analystToken) {
			t.Error("the audit log holds the agent's token")
		}
	}
}
