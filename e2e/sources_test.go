package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Values the source tests give keyhole through exec:, store: and vault:.
// The harness fails a test whose keyhole output holds one.
const (
	execValue    = "exec-TEST-SECRET-0123456789abcdef"
	execLeak     = "exec-stderr-TEST-LEAK-0123456789"
	storeValue   = "store-TEST-SECRET-0123456789abcdef"
	vaultKVValue = "vault-kv2-TEST-SECRET-0123456789"
	vaultKV1     = "vault-kv1-TEST-SECRET-0123456789"
	vaultToken   = "hvs.TEST-vault-token-0123456789ab"
	vaultSID     = "approle-TEST-secret-id-0123456789"
)

var _ = func() bool {
	allSecretValues = append(allSecretValues, execValue, execLeak, storeValue, vaultKVValue, vaultKV1, vaultToken, vaultSID)
	return true
}()

// sourceUpstream starts the upstream every source test sends to: an echo
// server for api.source.test.
func sourceUpstream(t *testing.T) *upstream {
	t.Helper()
	return newUpstream(t, []string{"api.source.test"}, nil)
}

// sourceRules returns a rules file with secrets (YAML lines under
// secrets:) pinned to up, and extra top-level sections.
func sourceRules(up *upstream, secrets, extra string) string {
	return "secrets:\n" + secrets + "resolve:\n  api.source.test: " + up.Addr() + "\n" + extra
}

// sendWith sends Authorization: Bearer <<name>> to api.source.test with c.
func sendWith(t *testing.T, c client, k *keyhole, name string) response {
	t.Helper()
	return c.Do(t, k, request{URL: "https://api.source.test/v1/x", Header: [][2]string{{"Authorization", "Bearer <<" + name + ">>"}}})
}

// assertInjected checks that a request with <<name>> reached up carrying
// want, and that the client saw the placeholder only.
func assertInjected(t *testing.T, c client, k *keyhole, up *upstream, name, want string) {
	t.Helper()
	before := up.Hits()
	resp := sendWith(t, c, k, name)
	if resp.Status != http.StatusOK {
		t.Fatalf("%s: got status %d, want 200; body: %s%s", name, resp.Status, resp.Body, resp.Err)
	}
	if up.Hits() != before+1 || up.Last(t).Header.Get("Authorization") != "Bearer "+want {
		t.Fatalf("%s: the upstream did not receive the real value", name)
	}
	assertNoSecretIn(t, "response", resp.Body+fmt.Sprint(resp.Header))
	if !strings.Contains(resp.Body, "<<"+name+">>") {
		t.Errorf("%s: the echoed body does not show the placeholder", name)
	}
}

// waitStatus sends <<name>> with the Go client until it gets status, for
// up to limit.
func waitStatus(t *testing.T, k *keyhole, name string, status int, limit time.Duration) response {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp := sendWith(t, goClient{}, k, name)
		if resp.Status == status {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got status %d after %v, want %d; body: %s%s", name, resp.Status, limit, status, resp.Body, resp.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeScript writes an executable shell script and returns its path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// runStdin runs the binary with stdin and returns stdout, stderr and the
// exit code.
func runStdin(t *testing.T, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
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

// labelled returns the value of a metric with labels, such as
// keyhole_source_errors_total{kind="exec"}; 0 when it is absent.
func (k *keyhole) labelled(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(k.admin(t) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// waitLog waits up to limit for keyhole's stderr to contain s.
func (k *keyhole) waitLog(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(k.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("keyhole's log lacks %q after %v; log:\n%s", s, limit, k.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
