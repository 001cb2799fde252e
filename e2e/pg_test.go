package e2e

import (
	"strings"
	"testing"
)

func TestPostgresQuery(t *testing.T) {
	w := newPGWorld(t, "")
	c := w.mustConnect(t, "analyst", analystToken, "DB_PROD")
	rows, err := query(t, c, "SELECT count(*) FROM users")
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "100" {
		t.Fatalf("count: got %v, want 100", rows)
	}
	rec := w.auditPG(t, func(r map[string]any) bool { return r["query"] == "SELECT count(*) FROM users" })
	if rec["agent"] != "analyst" || rec["database"] != "DB_PROD" || rec["status"] != "ok" || rec["rows"] != float64(1) || rec["decision"] != "allow" {
		t.Errorf("audit record: got %v", rec)
	}
	if _, ok := rec["duration_ms"].(float64); !ok {
		t.Errorf("audit record has no duration_ms: %v", rec)
	}
	// The agent never sees the real user name.
	if got := c.ParameterStatus("session_authorization"); got != "analyst" {
		t.Errorf("session_authorization: got %q, want analyst", got)
	}
	_, err = query(t, c, "SELECT * FROM nope")
	pe := pgError(t, err)
	if pe.Code != "42P01" {
		t.Errorf("got %s, want 42P01", pe.Code)
	}
	w.auditPG(t, func(r map[string]any) bool {
		return r["status"] == "42P01" && strings.Contains(r["query"].(string), "nope")
	})
}
