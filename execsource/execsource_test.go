package execsource

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyhole/rules"
)

// leaked is printed by test programs on stderr; no error may hold it.
const leaked = "sk_stderr_leak_0123456789"

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		body    string
		args    []string
		want    string // the value; "" when an error is wanted
		ttl     time.Duration
		wantErr string
	}{
		{"plain", `printf 'sk_plain_value\n'`, nil, "sk_plain_value", 0, ""},
		{"no newline", `printf 'sk_plain_value'`, nil, "sk_plain_value", 0, ""},
		{"no shell", `printf '%s' "$1"`, []string{"$HOME;ls"}, "$HOME;ls", 0, ""},
		{"stdin empty", `read x; printf 'got:%s' "$x"`, nil, "got:", 0, ""},
		{"json ttl", `echo '{"value": "sk_json_value", "ttl_seconds": 60}'`, nil, "sk_json_value", time.Minute, ""},
		{"json expires_at", `echo '{"value": "sk_json_value", "expires_at": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}'`, nil, "sk_json_value", time.Hour, ""},
		{"json no expiry", `echo '{"value": "sk_json_value"}'`, nil, "sk_json_value", 0, ""},
		{"invalid json", `echo '{"value": "sk_json_value", ttl_seconds: 60}'`, nil, "", 0, "looks like JSON"},
		{"json unknown field", `echo '{"value": "sk_json_value", "expiry": 60}'`, nil, "", 0, "looks like JSON"},
		{"json both", `echo '{"value": "sk_json_value", "ttl_seconds": 1, "expires_at": "2030-01-01T00:00:00Z"}'`, nil, "", 0, "both"},
		{"json bad ttl", `echo '{"value": "sk_json_value", "ttl_seconds": -1}'`, nil, "", 0, "positive"},
		{"json expired", `echo '{"value": "sk_json_value", "expires_at": "2001-01-01T00:00:00Z"}'`, nil, "sk_json_value", -1, ""},
		{"inner newline", `printf 'sk_line1\nsk_line2\n'`, nil, "", 0, "control character at byte 8"},
		{"json inner newline", `printf '%s\n' '{"value": "sk_line1\nsk_line2"}'`, nil, "", 0, "control character at byte 8"},
		{"empty", `true`, nil, "", 0, "the value is empty"},
		{"exit 1", `echo "` + leaked + `" >&2; exit 1`, nil, "", 0, "exited with status 1 (stderr's first line: 25 bytes, not logged)"},
		{"too large", `head -c 10485760 /dev/zero | tr '\0' a`, nil, "", 0, "printed more than 65536 bytes; killed"},
		{"largest", `head -c 65536 /dev/zero | tr '\0' a`, nil, strings.Repeat("a", MaxOutput), 0, ""},
	}
	k := &Kind{}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := script(t, dir, "s"+strconv.Itoa(i), tc.body)
			v, exp, err := k.Read(context.Background(), rules.ExecSource{Argv: append([]string{p}, tc.args...)})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), leaked) || strings.Contains(err.Error(), "sk_") {
					t.Error("the error holds the program's output")
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if !v.Equal(tc.want) {
				t.Errorf("got a %d-byte value, want %q", v.Len(), tc.want)
			}
			switch {
			case tc.ttl == 0 && !exp.IsZero():
				t.Errorf("got expiry %v, want none", exp)
			case tc.ttl > 0 && (time.Until(exp) > tc.ttl || time.Until(exp) < tc.ttl-time.Minute):
				t.Errorf("got expiry in %v, want about %v", time.Until(exp), tc.ttl)
			case tc.ttl < 0 && exp.After(time.Now()):
				t.Errorf("got expiry %v, want one in the past", exp)
			}
		})
	}
}

func TestMissingProgram(t *testing.T) {
	for _, argv := range [][]string{{"/nonexistent/keyhole-test-program"}, {"keyhole-test-no-such-program"}} {
		_, _, err := (&Kind{}).Read(context.Background(), rules.ExecSource{Argv: argv})
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("%s: got %v, want not found", argv[0], err)
		}
	}
}

// TestTimeoutKillsGroup runs a program that starts a child and hangs: at
// the timeout both must be gone, the program reaped (no zombie).
func TestTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	p := script(t, dir, "hang", `sleep 1000 & echo "$$ $!" > `+pids+`; wait`)
	start := time.Now()
	_, _, err := (&Kind{Timeout: 500 * time.Millisecond}).Read(context.Background(), rules.ExecSource{Argv: []string{p}})
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("got %v, want a timeout", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("took %v, want about the 500ms timeout", d)
	}
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		t.Fatalf("got pids %q", b)
	}
	// The program itself was our child: reaped, so gone entirely.
	if _, err := os.Stat("/proc/" + fields[0]); err == nil {
		t.Errorf("program %s still exists (a zombie or alive)", fields[0])
	}
	// Its child was killed with the group; init reaps it.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && running(fields[1]) {
		time.Sleep(50 * time.Millisecond)
	}
	if running(fields[1]) {
		t.Errorf("the program's child %s is still running", fields[1])
	}
}

// running reports whether the process pid exists and is not a zombie.
func running(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestParseOutput(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v, exp, err := ParseOutput([]byte(" \n{\"value\":\"x\",\"ttl_seconds\":1.5}\n"), now)
	if err != nil || string(v) != "x" || !exp.Equal(now.Add(1500*time.Millisecond)) {
		t.Errorf("got %q %v %v", v, exp, err)
	}
	if _, _, err := ParseOutput([]byte(`{"value":"x"} {"value":"y"}`), now); err == nil {
		t.Error("two objects accepted")
	}
	if _, _, err := ParseOutput([]byte(`{"value":7}`), now); err == nil {
		t.Error("a number value accepted")
	}
	if v, _, _ := ParseOutput([]byte("x\r\n"), now); string(v) != "x" {
		t.Errorf("got %q, want CRLF trimmed", v)
	}
}
