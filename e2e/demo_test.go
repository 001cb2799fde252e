package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runDemo runs keyhole demo with args and returns its output; the demo
// checks itself and exits 1 when a step misbehaves.
func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"demo"}, args...)...)
	// A proxy in the caller's environment must not matter: the demo
	// talks to 127.0.0.1 only.
	cmd.Env = append(baseEnv(), "HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "KEYHOLE_LISTEN=127.0.0.1:9")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("keyhole demo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDemo: `keyhole demo` shows injection (the echo server got the real
// value), scrubbing (its echo came back as the placeholder), a refusal
// with its JSON reason and the audit records, then removes its files.
func TestDemo(t *testing.T) {
	out := runDemo(t)
	value := regexp.MustCompile(`received  Authorization: Bearer (demo-real-secret-[0-9a-f]{16})`).FindStringSubmatch(out)
	if value == nil {
		t.Fatalf("the demo does not show the real value reaching the echo server:\n%s", out)
	}
	for _, want := range []string{
		`"Authorization": "Bearer <<DEMO_TOKEN>>"`,
		"HTTP 403 Forbidden",
		`"reason":"host_not_allowed"`,
		`"decision":"allow"`,
		`"decision":"deny"`,
		"curl -s --proxy http://127.0.0.1:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
	// The value appears once, in the line about what the server received;
	// never in a response or an audit record.
	if n := strings.Count(out, value[1]); n != 1 {
		t.Errorf("the demo value appears %d times in the output, want once (the server's side)", n)
	}
	dir := regexp.MustCompile(`files +(\S+) \(removed`).FindStringSubmatch(out)
	if dir == nil {
		t.Fatalf("the demo does not name its temporary directory:\n%s", out)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("the demo's directory %s is still there (stat: %v), want it removed", dir[1], err)
	}
}

// TestDemoKeepsDir: with --dir the files stay, the audit log holds both
// records and no secret, and the rules refuse every other host.
func TestDemoKeepsDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out := runDemo(t, "--dir", dir)
	value, err := os.ReadFile(filepath.Join(dir, "demo-token"))
	if err != nil {
		t.Fatalf("demo-token: %v", err)
	}
	audit, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatalf("audit log: %v\n%s", err, out)
	}
	if strings.Contains(string(audit), strings.TrimSpace(string(value))) {
		t.Errorf("the audit log holds the demo value")
	}
	if n := strings.Count(string(audit), "\n"); n != 2 {
		t.Errorf("audit log: got %d records, want 2", n)
	}
	check, _, code := runKeyhole(t, nil, "check", filepath.Join(dir, "keyhole.yaml"))
	if code != 0 || !strings.Contains(check, "egress default deny") {
		t.Errorf("keyhole check of the demo rules: exit %d, %q; want 0 and egress default deny", code, check)
	}
}
