package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eventually retries check for up to 2 s (the watcher polls four times a
// second) and fails with its last complaint.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		problem := check()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, problem)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// sourceRequest sends a request with the placeholder of secret name to
// api.src.test and returns the status, the refusal reason and the request
// id.
func sourceRequest(t *testing.T, k *keyhole, name string) (int, string, string) {
	t.Helper()
	c := k.GoClient(t, "", "")
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://api.src.test/x", nil)
	req.Header.Set("Authorization", "Bearer <<"+name+">>")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("request with %s: %v", name, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Keyhole-Reason"), resp.Header.Get("X-Keyhole-Request-Id")
}

func TestSecretSourceFaults(t *testing.T) {
	up := newUpstream(t, []string{"api.src.test"}, nil)
	dir := t.TempDir()
	later := filepath.Join(dir, "later") // missing when keyhole starts
	flaky := filepath.Join(dir, "flaky") // there at start, then gone, then a directory
	writeFile(t, flaky, rotatedValue1+"\n")
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  LATER:
    source: file:%s
    hosts: [api.src.test]
  FLAKY:
    source: file:%s
    hosts: [api.src.test]
  UNSET:
    source: env:KEYHOLE_TEST_NEVER_SET
    hosts: [api.src.test]
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.src.test]
resolve:
  api.src.test: %s
`, later, flaky, up.Addr()))

	// refused checks that a request with name is refused as unavailable,
	// that nothing reached the upstream, and that the audit says so.
	refused := func(name string) string {
		before := up.Hits()
		status, reason, id := sourceRequest(t, k, name)
		if status != http.StatusBadGateway || reason != "secret_unavailable" {
			return fmt.Sprintf("got %d %s, want 502 secret_unavailable", status, reason)
		}
		if n := up.Hits() - before; n != 0 {
			t.Errorf("%s: the upstream received %d requests, want none", name, n)
		}
		rec := k.WaitAudit(t, func(r map[string]any) bool { return r["request_id"] == id })
		if rec["reason"] != "secret_unavailable" || rec["decision"] != "deny" {
			t.Errorf("%s: audit record: got %v %v, want deny secret_unavailable", name, rec["decision"], rec["reason"])
		}
		return ""
	}
	// sends checks that a request with name reaches the upstream with value.
	sends := func(name, value string) func() string {
		return func() string {
			status, reason, _ := sourceRequest(t, k, name)
			if status != http.StatusOK {
				return fmt.Sprintf("got %d %s, want 200", status, reason)
			}
			if up.Last(t).Header.Get("Authorization") != "Bearer "+value {
				return "the upstream did not receive the expected value"
			}
			return ""
		}
	}
	steps := []struct {
		name   string
		change func()
		check  func() string
	}{
		{"file missing at start", func() {}, func() string { return refused("LATER") }},
		{"variable unset at start", func() {}, func() string { return refused("UNSET") }},
		{"file created later", func() { writeFile(t, later, rotatedValue2+"\n") }, sends("LATER", rotatedValue2)},
		{"file there at start", func() {}, sends("FLAKY", rotatedValue1)},
		{"file deleted at runtime", func() { os.Remove(flaky) }, func() string { return refused("FLAKY") }},
		{"directory in place of the file", func() { os.Mkdir(flaky, 0o700) }, func() string { return refused("FLAKY") }},
		{"file back", func() { os.Remove(flaky); writeFile(t, flaky, rotatedValue1+"\n") }, sends("FLAKY", rotatedValue1)},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.change()
			eventually(t, step.name, step.check)
			// Secrets whose sources are fine are not affected.
			if problem := sends("STRIPE", stripeValue)(); problem != "" {
				t.Errorf("STRIPE: %s", problem)
			}
		})
	}
	for _, path := range []string{later, flaky} {
		if !strings.Contains(k.stderr.String(), path) {
			t.Errorf("the operational log does not name the failing source %s", path)
		}
	}
}

func TestRulesFileFaultsKeepTheOldRules(t *testing.T) {
	up := newUpstream(t, []string{"api.rules.test", "other.rules.test"}, nil)
	rulesFor := func(allow string) string {
		return fmt.Sprintf(`
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.rules.test]
egress:
  default: deny
  allow: [%s]
resolve:
  api.rules.test: %s
  other.rules.test: %s
`, allow, up.Addr(), up.Addr())
	}
	good := rulesFor("api.rules.test")
	k := startKeyhole(t, good)
	// inForce checks that the first rules still hold: the secret is sent,
	// and egress to other.rules.test is still denied.
	inForce := func(t *testing.T) {
		t.Helper()
		if status, reason := rulesRequest(t, k, "api.rules.test"); status != http.StatusOK {
			t.Errorf("api.rules.test: got %d %s, want 200", status, reason)
		}
		if status, reason, _ := connectRefusal(t, k, "other.rules.test:443"); status != http.StatusForbidden || reason != "egress_denied" {
			t.Errorf("CONNECT other.rules.test: got %d %v, want 403 egress_denied", status, reason)
		}
	}
	steps := []struct {
		name   string
		change func()
	}{
		{"removed", func() { os.Remove(k.Rules) }},
		{"directory in its place", func() { os.Mkdir(k.Rules, 0o700) }},
		{"empty (truncated before being written)", func() { os.Remove(k.Rules); os.WriteFile(k.Rules, nil, 0o600) }},
		{"half-written", func() { os.WriteFile(k.Rules, []byte(good[:len(good)/2]), 0o600) }},
		{"cut inside a list", func() { os.WriteFile(k.Rules, []byte(good[:strings.Index(good, "allow: [")+9]), 0o600) }},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			reloads := strings.Count(k.stdout.String(), `"event":"reload"`)
			step.change()
			// The watcher sees the change within an interval and loads it
			// once it has settled for another.
			deadline := time.Now().Add(3 * time.Second)
			for strings.Count(k.stdout.String(), `"event":"reload"`) == reloads && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if strings.Count(k.stdout.String(), `"event":"reload"`) == reloads {
				t.Errorf("no reload event in the audit log for the broken file")
			}
			inForce(t)
			if strings.Count(k.stdout.String(), `"ok":true`) > 0 {
				t.Errorf("a reload succeeded on a broken rules file")
			}
		})
	}
	// A good file still takes effect after all that.
	os.Remove(k.Rules)
	writeFile(t, k.Rules, rulesFor("api.rules.test, other.rules.test"))
	eventually(t, "the fixed rules", func() string {
		if status, reason := rulesRequest(t, k, "other.rules.test"); status != http.StatusOK {
			return fmt.Sprintf("other.rules.test: got %d %s, want 200", status, reason)
		}
		return ""
	})
}

// rulesRequest sends a request to host, with the STRIPE placeholder
// toward api.rules.test, and returns the status and refusal reason.
func rulesRequest(t *testing.T, k *keyhole, host string) (int, string) {
	t.Helper()
	c := k.GoClient(t, "", "")
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+host+"/x", nil)
	if host == "api.rules.test" {
		req.Header.Set("Authorization", "Bearer <<STRIPE>>")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Keyhole-Reason")
}

func TestBadStateDirStopsStart(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "keyhole.yaml")
	os.WriteFile(rules, []byte("egress:\n  default: allow\n"), 0o600)
	aFile := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(aFile, []byte("not a directory"), 0o600)
	badKey := filepath.Join(t.TempDir(), "state")
	if _, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + badKey}, "ca", "init"); code != 0 {
		t.Fatalf("ca init: %s", stderr)
	}
	os.Chmod(filepath.Join(badKey, "ca-key.pem"), 0o644)
	// A state dir whose CA is fine but whose token key is not.
	badToken := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(badToken, 0o700)
	for _, f := range []string{"ca.pem", "ca-key.pem"} {
		b, _ := os.ReadFile(filepath.Join(badKey, f))
		os.WriteFile(filepath.Join(badToken, f), b, 0o600)
	}
	os.Chmod(filepath.Join(badToken, "ca.pem"), 0o644)
	os.WriteFile(filepath.Join(badToken, "token-key"), []byte("0123456789abcdef0123456789abcdef"), 0o644)
	good := filepath.Join(t.TempDir(), "state")
	cases := []struct {
		name, stateDir, auditLog, names string
	}{
		{"a file where the directory should be", aFile, "-", aFile},
		{"a parent that is a file", filepath.Join(aFile, "state"), "-", filepath.Join(aFile, "state")},
		{"CA key readable by others", badKey, "-", filepath.Join(badKey, "ca-key.pem")},
		{"token key readable by others", badToken, "-", filepath.Join(badToken, "token-key")},
		{"audit log under a file", good, filepath.Join(aFile, "audit.jsonl"), filepath.Join(aFile, "audit.jsonl")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"KEYHOLE_STATE_DIR=" + tc.stateDir, "KEYHOLE_AUDIT_LOG=" + tc.auditLog}
			_, stderr, code := runKeyholeFor(t, 10*time.Second, env, "serve", "--listen", "127.0.0.1:0", "--rules", rules)
			if code == 0 {
				t.Fatalf("keyhole serve: got exit 0, want a failure; stderr: %s", stderr)
			}
			if !strings.Contains(stderr, tc.names) {
				t.Errorf("the error does not name %s: %s", tc.names, stderr)
			}
			if strings.Contains(stderr, "keyhole is listening") {
				t.Errorf("keyhole said it was listening: %s", stderr)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 2 {
				t.Errorf("want a short, clear error, got: %s", stderr)
			}
		})
	}
}

// runKeyholeFor runs the binary like runKeyhole, but fails the test if it
// is still running after d.
func runKeyholeFor(t *testing.T, d time.Duration, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(baseEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("keyhole %s was still running after %v; stderr: %s", args[0], d, stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}
