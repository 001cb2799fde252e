package rules

import (
	"strings"
	"testing"
	"time"
)

const dbBase = `databases:
  DB_PROD:
    listen: 127.0.0.1:15432
    upstream: db.internal:5432
    database: app
    user: env:DB_USER
    password: env:DB_PASSWORD
`

func TestDatabases(t *testing.T) {
	t.Setenv("DB_USER", "real_user")
	t.Setenv("DB_PASSWORD", "real-password-123")
	s, err := LoadData("x.yaml", []byte(dbBase+`    read_only: true
    tls: require
    temporary_roles:
      ttl: 15m
      grants: ["SELECT ON users, public.Orders", "usage on schema reports"]
  DB_TWO:
    listen: 127.0.0.1:15432
    upstream: "[::1]"
    database: other
    user: env:DB_USER
    password: env:DB_PASSWORD
agents:
  analyst:
    token: env:DB_USER
    databases: [DB_PROD]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Summary(), "x.yaml: ok: 0 secrets, 1 agent, egress default allow (0 allow, 0 deny), 0 pins, 2 databases"; got != want {
		t.Errorf("summary: got %q, want %q", got, want)
	}
	d := s.Databases["DB_PROD"]
	if d.Listen != "127.0.0.1:15432" || d.UpstreamHost != "db.internal" || d.UpstreamPort != 5432 || d.DBName != "app" || !d.ReadOnly || d.TLS != TLSRequire {
		t.Errorf("DB_PROD: got %+v", d)
	}
	if d.TemporaryRoles == nil || d.TemporaryRoles.TTL != 15*time.Minute || len(d.TemporaryRoles.Grants) != 2 {
		t.Fatalf("temporary_roles: got %+v", d.TemporaryRoles)
	}
	g := d.TemporaryRoles.Grants[0]
	if strings.Join(g.Privileges, ",") != "SELECT" || g.Object != "TABLE" || len(g.Names) != 2 || strings.Join(g.Names[1], ".") != "public.orders" {
		t.Errorf("grant 0: got %+v", g)
	}
	if g := d.TemporaryRoles.Grants[1]; g.Object != "SCHEMA" || g.Privileges[0] != "USAGE" {
		t.Errorf("grant 1: got %+v", g)
	}
	if two := s.Databases["DB_TWO"]; two.Upstream != "[::1]:5432" || two.TLS != TLSVerifyFull {
		t.Errorf("DB_TWO: got %+v", two)
	}
	if got := len(s.DatabasesAt("127.0.0.1:15432")); got != 2 {
		t.Errorf("handles at the shared address: got %d, want 2", got)
	}
	if !s.Agents["analyst"].MayUseDatabase("DB_PROD") || s.Agents["analyst"].MayUseDatabase("DB_TWO") {
		t.Error("analyst's databases are wrong")
	}
	u, p, err := d.Credentials()
	if err != nil || u.Reveal() != "real_user" || p.Reveal() != "real-password-123" {
		t.Errorf("credentials not read: %v", err)
	}
}

func TestDatabaseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"bad listen", strings.Replace(dbBase, "127.0.0.1:15432", "nowhere", 1), "x.yaml:3: databases.DB_PROD.listen: want host:port, such as 127.0.0.1:15432"},
		{"bad listen port", strings.Replace(dbBase, "127.0.0.1:15432", "127.0.0.1:99999", 1), `x.yaml:3: databases.DB_PROD.listen: port "99999": want a number from 1 to 65535`},
		{"bad upstream", strings.Replace(dbBase, "db.internal:5432", "db..internal:5432", 1), `x.yaml:4: databases.DB_PROD.upstream: host "db..internal": empty label`},
		{"upstream port 0", strings.Replace(dbBase, "db.internal:5432", "db.internal:0", 1), "x.yaml:4: databases.DB_PROD.upstream: the upstream port must not be 0"},
		{"unknown tls", dbBase + "    tls: prefer\n", `x.yaml:8: databases.DB_PROD.tls: unknown tls mode "prefer" (want verify-full, require or disable)`},
		{"unknown field", dbBase + "    sslmode: disable\n", "x.yaml:8: databases.DB_PROD.sslmode: unknown field (want one of listen, upstream, database, user, password, tls, read_only, temporary_roles)"},
		{"missing password", strings.Replace(dbBase, "    password: env:DB_PASSWORD\n", "", 1), "x.yaml:2: databases.DB_PROD.password: is required"},
		{"bad source", strings.Replace(dbBase, "env:DB_PASSWORD", "hunter2", 1), "x.yaml:7: databases.DB_PROD.password: want env:VAR, file:/path, exec:PROGRAM ARG..., vault:PATH#FIELD or store:NAME"},
		{"bad handle", strings.Replace(dbBase, "DB_PROD:", "db-prod:", 1), "x.yaml:2: databases.db-prod: not a valid database handle (want at most 63 letters, digits and '_', not starting with a digit)"},
		{"handle is a secret", "secrets:\n  DB_PROD: {source: env:X, hosts: [a.example]}\n" + dbBase, "x.yaml:4: databases.DB_PROD: the name is already a secret's (a token's secrets caveat names both)"},
		{"unknown grant", dbBase + "    temporary_roles: {ttl: 15m, grants: [\"SELECT ON users; DROP TABLE x\"]}\n", "x.yaml:8: databases.DB_PROD.temporary_roles.grants[0]: not a plain identifier (letters, digits, '_' and '$', not starting with a digit or '$'; at most 63 bytes)"},
		{"bad privilege", dbBase + "    temporary_roles: {ttl: 15m, grants: [\"OWN ON users\"]}\n", "x.yaml:8: databases.DB_PROD.temporary_roles.grants[0]: unknown privilege (want SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER, USAGE, ALL)"},
		{"no ON", dbBase + "    temporary_roles: {ttl: 15m, grants: [\"SELECT users\"]}\n", `x.yaml:8: databases.DB_PROD.temporary_roles.grants[0]: want PRIVILEGES ON NAMES, such as "SELECT ON users, orders"`},
		{"write grant under read_only", dbBase + "    read_only: true\n    temporary_roles: {ttl: 15m, grants: [\"INSERT ON users\"]}\n", "x.yaml:9: databases.DB_PROD.temporary_roles.grants[0]: read_only allows only SELECT and USAGE grants"},
		{"empty grants", dbBase + "    temporary_roles: {ttl: 15m, grants: []}\n", "x.yaml:8: databases.DB_PROD.temporary_roles.grants: must not be empty (a temporary role needs at least one grant)"},
		{"bad ttl", dbBase + "    temporary_roles: {ttl: 48h, grants: [SELECT ON t]}\n", "x.yaml:8: databases.DB_PROD.temporary_roles.ttl: want a duration from 1s to 24h0m0s"},
		{"agent names an unknown database", dbBase + "agents:\n  a:\n    token: env:T\n    databases: [DB_NOPE]\n", "x.yaml:11: agents.a.databases[0]: database DB_NOPE is not defined in databases"},
		{"agent databases not a list", dbBase + "agents:\n  a:\n    token: env:T\n    databases: DB_PROD\n", "x.yaml:11: agents.a.databases: must be a list, got a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.in))
			got := "<nil>"
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestParseGrantRoundTrip(t *testing.T) {
	for _, s := range []string{"SELECT ON users", "select, insert on table a.b, c", "ALL PRIVILEGES ON ALL TABLES IN SCHEMA public", "USAGE ON SEQUENCE s"} {
		if _, err := ParseGrant(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func FuzzParseGrant(f *testing.F) {
	for _, s := range []string{"SELECT ON users, orders", "USAGE ON SCHEMA x", "ALL ON ALL TABLES IN SCHEMA public", "SELECT ON a.b.c", "x ON \"y\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGrant(s)
		if err != nil {
			return
		}
		// Every accepted name is a plain identifier: nothing keyhole puts
		// in a GRANT statement can break out of its quoting.
		for _, n := range g.Names {
			for _, p := range n {
				if !validIdent(p) || strings.ToLower(p) != p {
					t.Fatalf("accepted name part %q", p)
				}
			}
		}
		if len(g.Privileges) == 0 || len(g.Names) == 0 {
			t.Fatalf("accepted %q with no privileges or names", s)
		}
	})
}
