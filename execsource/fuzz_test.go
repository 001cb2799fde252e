package execsource

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseOutput checks that ParseOutput never panics, never quotes the
// output in an error, and that a JSON object it accepts gives exactly its
// "value".
func FuzzParseOutput(f *testing.F) {
	for _, s := range []string{"sk_plain\n", `{"value":"v","ttl_seconds":60}`, `{"value":"v","expires_at":"2030-01-01T00:00:00Z"}`,
		`{"value":`, `{"value":"v","ttl_seconds":1e999}`, `{"value":"v"}{}`, " {\"value\":\"a\\nb\"}", "{}", "{\"value\":null}"} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, out []byte) {
		v, exp, err := ParseOutput(out, now)
		if err != nil {
			switch err {
			case errNotJSON, errTrailing, errNoValue, errBoth, errExpiresAt, errTTL:
			default:
				t.Fatalf("got %q, want one of the fixed errors", err)
			}
			return
		}
		trimmed := bytes.TrimLeft(out, " \t\r\n")
		if len(trimmed) > 0 && trimmed[0] == '{' {
			var o struct{ Value string }
			if json.Unmarshal(trimmed, &o) != nil || o.Value != string(v) {
				t.Fatalf("accepted JSON gives a value other than its \"value\"")
			}
			if !exp.IsZero() && exp.Before(now) && !bytes.Contains(out, []byte("expires_at")) {
				t.Fatal("a ttl gave an expiry in the past")
			}
			return
		}
		if !exp.IsZero() {
			t.Fatal("plain output has an expiry")
		}
		if !bytes.HasPrefix(out, v) || len(out)-len(v) > 2 {
			t.Fatal("plain output lost more than its trailing newline")
		}
	})
}
