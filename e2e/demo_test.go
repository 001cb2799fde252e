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
func runDemo(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"demo"}, args...)...)
	// A proxy in the caller's environment must not matter: the demo
	// talks to 127.0.0.1 only.
	cmd.Env = append(baseEnv(), "HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "KEYHOLE_LISTEN=127.0.0.1:9")
	cmd.Env = append(cmd.Env, env...)
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
	out := runDemo(t, nil)
	if !strings.Contains(out, `"User-Agent": "curl/`) {
		need(t, "curl")
		t.Errorf("the demo did not run its curl lines with curl:\n%s", out)
	}
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
	out := runDemo(t, nil, "--dir", dir)
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

// TestDemoKeepRunning: with --keep-running the printed curl lines work
// from another process (real curl), and SIGINT ends the demo cleanly.
func TestDemoKeepRunning(t *testing.T) {
	need(t, "curl")
	cmd := exec.Command(binary, "demo", "--keep-running")
	cmd.Env = baseEnv()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "press Ctrl-C") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not get to its curl lines in 60s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var curls []string
	for _, l := range strings.Split(out.String(), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "curl -s --proxy") {
			curls = append(curls, l)
		}
	}
	if len(curls) != 2 {
		t.Fatalf("got %d curl lines, want 2:\n%s", len(curls), out.String())
	}
	allowed, err := exec.Command("bash", "-c", curls[0]).Output()
	if err != nil || !strings.Contains(string(allowed), `"Authorization": "Bearer <<DEMO_TOKEN>>"`) || strings.Contains(string(allowed), "demo-real-secret-") {
		t.Errorf("first curl line: %v; got %s, want the placeholder echoed back and no demo value", err, allowed)
	}
	refused, err := exec.Command("bash", "-c", curls[1]).Output()
	if err != nil || !strings.Contains(string(refused), `"reason":"host_not_allowed"`) {
		t.Errorf("second curl line: %v; got %s, want the host_not_allowed refusal", err, refused)
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("the demo after SIGINT: %v, want exit 0\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the demo did not stop within 30s of SIGINT")
	}
}

// TestDemoWithoutCurl: on a machine without curl the demo sends the same
// requests with its own Go client, and says so.
func TestDemoWithoutCurl(t *testing.T) {
	out := runDemo(t, []string{"PATH=" + t.TempDir()})
	for _, want := range []string{"curl is not installed", `"User-Agent": "keyhole-demo"`, `"Authorization": "Bearer <<DEMO_TOKEN>>"`, `"reason":"host_not_allowed"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}
