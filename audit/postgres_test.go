package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestStatementRecord(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 30, 0, 123e6, time.UTC)
	tests := []struct {
		name string
		s    Statement
		line string // the readable line after the time
	}{
		{"ok", Statement{Time: at, RequestID: "r1", Agent: "analyst", Database: "DB_PROD", Query: "SELECT count(*) FROM users", Rows: 1, Status: "ok", Decision: Allow, Duration: 820 * time.Microsecond},
			"  analyst     allow  ok     postgres DB_PROD                  SELECT count(*) FROM users  rows=1  0.82ms\n"},
		{"error with role", Statement{Time: at, RequestID: "r1", Agent: "analyst", TokenID: "t1", Database: "DB_PROD", Role: "keyhole_tmp_x", Query: "DELETE FROM users", Status: "42501", Decision: Allow},
			"  analyst     allow  42501  postgres DB_PROD(keyhole_tmp_x)   DELETE FROM users  rows=0  0.00ms\n"},
		{"refused login", Statement{Time: at, RequestID: "r2", Agent: "analyst", Database: "DB_PROD", Status: "28P01", Decision: Deny, Reason: "token_revoked"},
			"  analyst     deny   28P01  postgres DB_PROD                  -  token_revoked  0.00ms\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := New(&buf).Statement(&tc.s); err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			if m["protocol"] != "postgres" || m["status"] != tc.s.Status || m["database"] != "DB_PROD" {
				t.Errorf("got %v", m)
			}
			e, err := ParseEntry(bytes.TrimSpace(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			p := &Printer{W: &out, Loc: time.UTC}
			if err := p.Print(&e); err != nil {
				t.Fatal(err)
			}
			if got, want := out.String(), "2026-11-26 10:30:00.123Z"+tc.line; got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestStatementQueryBounded(t *testing.T) {
	var buf bytes.Buffer
	q := strings.Repeat("é", MaxQuery) // 2 bytes each
	if err := New(&buf).Statement(&Statement{Query: q, Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if got := len(m["query"].(string)); got != MaxQuery {
		t.Errorf("query length: got %d, want %d", got, MaxQuery)
	}
}

func TestTextStatusOnlyOnPostgres(t *testing.T) {
	for _, line := range []string{
		`{"time":"2026-11-26T10:30:00Z","status":"ok"}`,
		`{"time":"2026-11-26T10:30:00Z","protocol":"postgres","status":"bad status"}`,
	} {
		if _, err := ParseEntry([]byte(line)); err == nil {
			t.Errorf("%s: got no error", line)
		}
	}
}
