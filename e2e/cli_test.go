package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runKeyhole runs the binary with args and extra environment and returns
// its stdout, stderr and exit code.
func runKeyhole(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("secrets:\n  A:\n    source: env:A_KEY\n    hosts: [api.example.com]\n"), 0o600)
	os.WriteFile(bad, []byte(`secrets:
  A:
    source: vault:x
    hosts: []
    colour: blue
agents:
  bot:
    token: env:BOT
    secrets: [NOPE]
`), 0o600)

	t.Run("valid file", func(t *testing.T) {
		stdout, _, code := runKeyhole(t, []string{"A_KEY=x"}, "check", good)
		if code != 0 {
			t.Fatalf("got exit %d, want 0", code)
		}
		if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 1 {
			t.Fatalf("got %d stdout lines, want exactly 1: %q", len(lines), stdout)
		}
	})
	t.Run("rules from KEYHOLE_RULES", func(t *testing.T) {
		_, _, code := runKeyhole(t, []string{"KEYHOLE_RULES=" + good}, "check")
		if code != 0 {
			t.Fatalf("got exit %d, want 0", code)
		}
	})
	t.Run("every error with file and line", func(t *testing.T) {
		stdout, stderr, code := runKeyhole(t, nil, "check", bad)
		if code != 1 {
			t.Fatalf("got exit %d, want 1", code)
		}
		out := stdout + stderr
		for _, want := range []string{
			bad + ":3: secrets.A.source",
			bad + ":4: secrets.A.hosts",
			bad + ":5: secrets.A.colour",
			bad + ":9: agents.bot.secrets[0]",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if !regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `:\d+: `).MatchString(line) {
				t.Errorf("error line %q is not FILE:LINE: message", line)
			}
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, stderr, code := runKeyhole(t, nil, "check", filepath.Join(dir, "nope.yaml"))
		if code != 1 || !strings.Contains(stderr, "nope.yaml") {
			t.Fatalf("got exit %d stderr %q, want 1 naming the file", code, stderr)
		}
	})
}

func TestCACommands(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"KEYHOLE_STATE_DIR=" + state}

	if _, _, code := runKeyhole(t, env, "ca", "cert"); code == 0 {
		t.Fatal("ca cert succeeded before ca init")
	}
	for i := 0; i < 2; i++ { // idempotent
		if _, stderr, code := runKeyhole(t, env, "ca", "init"); code != 0 {
			t.Fatalf("ca init #%d: exit %d: %s", i, code, stderr)
		}
	}
	first, _ := os.ReadFile(filepath.Join(state, "ca.pem"))
	stdout, _, code := runKeyhole(t, env, "ca", "cert")
	if code != 0 || stdout != string(first) {
		t.Fatalf("ca cert: exit %d, printed a different certificate than ca.pem", code)
	}
	if strings.Contains(stdout, "PRIVATE KEY") {
		t.Fatal("ca cert printed a private key")
	}
	block, _ := pem.Decode([]byte(stdout))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA {
		t.Fatalf("ca cert: not a CA certificate: %v", err)
	}
	for name, want := range map[string]os.FileMode{"ca.pem": 0o644, "ca-key.pem": 0o600} {
		fi, err := os.Stat(filepath.Join(state, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: got mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	// A flag overrides the variable.
	other := filepath.Join(t.TempDir(), "other")
	if _, _, code := runKeyhole(t, env, "ca", "init", "--state-dir", other); code != 0 {
		t.Fatal("ca init --state-dir failed")
	}
	if _, err := os.Stat(filepath.Join(other, "ca.pem")); err != nil {
		t.Fatal("--state-dir did not override KEYHOLE_STATE_DIR")
	}
	// A group-readable key is refused, naming the path.
	os.Chmod(filepath.Join(state, "ca-key.pem"), 0o644)
	_, stderr, code := runKeyhole(t, env, "ca", "cert")
	if code == 0 || !strings.Contains(stderr, filepath.Join(state, "ca-key.pem")) {
		t.Fatalf("a world-readable CA key was accepted (exit %d): %s", code, stderr)
	}
}

func TestServeSettingsAndAuditFile(t *testing.T) {
	up := newUpstream(t, []string{"api.stripe.test"}, nil)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test]
resolve:
  api.stripe.test: %s
`, up.Addr()), "KEYHOLE_AUDIT_LOG="+auditPath, "KEYHOLE_LISTEN=127.0.0.1:1")
	// KEYHOLE_LISTEN=127.0.0.1:1 was overridden by --listen 127.0.0.1:0.
	resp := goClient{}.Do(t, k, request{URL: "https://api.stripe.test/x", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
	if resp.Status != 200 {
		t.Fatalf("got %d, want 200", resp.Status)
	}
	k.Stop()
	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"secrets":["STRIPE"]`) {
		t.Fatalf("audit file lacks the request: %s", b)
	}
	assertNoSecretIn(t, "audit file", string(b))
	if strings.Contains(k.stdout.String(), "request_id") {
		t.Fatal("audit records went to stdout although KEYHOLE_AUDIT_LOG names a file")
	}
}

func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	slow := newUpstream(t, []string{"slow.test"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte("finished"))
	}))
	k := startKeyhole(t, fmt.Sprintf("resolve:\n  slow.test: %s\n", slow.Addr()))
	c := k.GoClient(t, "", "")
	result := make(chan error, 1)
	go func() {
		resp, err := c.Get("https://slow.test/")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if b.String() != "finished" {
				err = fmt.Errorf("got body %q", b.String())
			}
		}
		result <- err
	}()
	for slow.Hits() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	k.cmd.Process.Signal(os.Interrupt)
	time.Sleep(300 * time.Millisecond)
	select {
	case <-k.done:
		t.Fatal("keyhole exited with a request in flight")
	default:
	}
	close(release)
	if err := <-result; err != nil {
		t.Fatalf("the in-flight request failed: %v", err)
	}
	select {
	case <-k.done:
	case <-time.After(5 * time.Second):
		t.Fatal("keyhole did not exit after its last request finished")
	}
}
