package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fileRecords parses the audit lines of files, in order.
func fileRecords(t *testing.T, files ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s: audit line is not JSON: %v", f, err)
			}
			out = append(out, rec)
		}
	}
	return out
}

// waitFileRecord waits for a record in files that match accepts.
func waitFileRecord(t *testing.T, match func(map[string]any) bool, files ...string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, rec := range fileRecords(t, files...) {
			if match(rec) {
				return rec
			}
		}
	}
	t.Fatal("no matching audit record")
	return nil
}

func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, s := range list {
		out = append(out, s.(string))
	}
	return out
}

// TestAuditTrailForAuditors drives keyhole as an auditor would read it:
// refused requests name the secrets they tried, failed tokens name whom
// they claimed, attenuated tokens their chain, and the hash chain holds
// across a rotation and a reload, and shows tampering.
func TestAuditTrailForAuditors(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.jsonl")
	rotated := auditPath + ".1"
	w := newWorld(t, agentRules, "BILLING_TOKEN="+billingToken, "CI_TOKEN="+ciToken, "KEYHOLE_AUDIT_LOG="+auditPath)
	k, c := w.k, goClient{}
	env := []string{"KEYHOLE_STATE_DIR=" + k.StateDir, "KEYHOLE_AUDIT_LOG=" + auditPath}

	steal := withProxyAuth(request{URL: "https://api.github.test/v1/x", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}}, "billing", billingToken)
	for range 2 {
		assertRefusal(t, c.Do(t, k, steal), 403, "host_not_allowed", "STRIPE")
	}
	if resp := c.Do(t, k, withProxyAuth(stripeReq, "billing", billingToken)); resp.Status != 200 {
		t.Fatalf("allowed request: got %d", resp.Status)
	}
	root, _ := k.token(t, "mint", "--agent", "billing", "--ttl", "10m", "--id", "task-43")
	child, childStderr := k.token(t, "attenuate", root, "--secrets", "STRIPE")
	childID := strings.TrimSpace(strings.TrimPrefix(childStderr, "id: "))
	if resp := c.Do(t, k, withProxyAuth(stripeReq, "billing", child)); resp.Status != 200 {
		t.Fatalf("attenuated token: got %d", resp.Status)
	}
	rec := waitFileRecord(t, func(r map[string]any) bool { return r["token_id"] == childID }, auditPath)
	if got := strs(rec["token_ids"]); !slices.Equal(got, []string{"task-43", childID}) {
		t.Errorf("attenuated token: got token_ids %v, want [task-43 %s]", got, childID)
	}

	// logrotate, then SIGHUP: the log is reopened and the rules reloaded.
	if err := os.Rename(auditPath, rotated); err != nil {
		t.Fatal(err)
	}
	k.cmd.Process.Signal(syscall.SIGHUP)
	waitFileRecord(t, func(r map[string]any) bool { return r["event"] == "reload" }, rotated, auditPath)

	k.token(t, "revoke", "task-43")
	plainReq := request{URL: "http://plain.test/after", Header: [][2]string{{"Authorization", "Bearer <<PLAIN>>"}}}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp := c.Do(t, k, withProxyAuth(plainReq, "billing", child))
		if resp.Status == 407 {
			assertRefusal(t, resp, 407, "token_revoked", "")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked token still gets %d", resp.Status)
		}
	}
	// Another base64url letter in the signature: the token still parses
	// (its claimed ids are readable), only the signature fails. (Flipping
	// bits could make a byte no base64 letter, and the token unreadable.)
	forged := []byte(child)
	if forged[len(forged)-3] == 'A' {
		forged[len(forged)-3] = 'B'
	} else {
		forged[len(forged)-3] = 'A'
	}
	if forged[len(forged)-3] == child[len(child)-3] {
		t.Fatal("the forged token equals the token")
	}
	assertRefusal(t, c.Do(t, k, withProxyAuth(plainReq, "billing", string(forged))), 407, "proxy_auth_required", "")
	waitFileRecord(t, func(r map[string]any) bool { return r["reason"] == "proxy_auth_required" }, auditPath)
	k.Stop()

	for _, r := range fileRecords(t, rotated) {
		if r["host"] == "api.github.test" && (r["decision"] != "deny" || !slices.Equal(strs(r["secrets"]), []string{"STRIPE"})) {
			t.Errorf("a refused attempt to send STRIPE: got decision %v secrets %v, want deny [STRIPE]", r["decision"], r["secrets"])
		}
	}
	revokedRec := waitFileRecord(t, func(r map[string]any) bool { return r["reason"] == "token_revoked" }, auditPath)
	if revokedRec["agent"] != "billing" || revokedRec["token_id"] != childID || !slices.Equal(strs(revokedRec["token_ids"]), []string{"task-43", childID}) {
		t.Errorf("revoked token: got agent %v token_id %v token_ids %v", revokedRec["agent"], revokedRec["token_id"], revokedRec["token_ids"])
	}
	if _, ok := revokedRec["token_verified"]; ok {
		t.Error("a revoked token whose signature holds is marked unverified")
	}
	forgedRec := waitFileRecord(t, func(r map[string]any) bool { return r["reason"] == "proxy_auth_required" }, auditPath)
	if forgedRec["agent"] != "billing" || forgedRec["token_id"] != childID || forgedRec["token_verified"] != false {
		t.Errorf("forged token: got agent %v token_id %v token_verified %v, want billing %s false", forgedRec["agent"], forgedRec["token_id"], forgedRec["token_verified"], childID)
	}

	t.Run("summary counts the attempts", func(t *testing.T) {
		stdout, stderr, code := runKeyhole(t, env, "audit", "summary", "--json", rotated)
		var sum struct {
			Secrets []struct {
				Name             string
				Requests, Denied int
			}
		}
		if err := json.Unmarshal([]byte(stdout), &sum); code != 0 || err != nil {
			t.Fatalf("exit %d %v: %s", code, err, stderr)
		}
		i := slices.IndexFunc(sum.Secrets, func(s struct {
			Name             string
			Requests, Denied int
		}) bool {
			return s.Name == "STRIPE"
		})
		if i < 0 || sum.Secrets[i].Denied != 2 || sum.Secrets[i].Requests != 4 {
			t.Errorf("got %+v, want STRIPE with 4 requests, 2 denied", sum.Secrets)
		}
	})
	t.Run("tail --secret shows the attempts", func(t *testing.T) {
		stdout, _, code := runKeyhole(t, env, "audit", "tail", "--secret", "STRIPE", "--denied", rotated)
		if code != 0 || strings.Count(stdout, "api.github.test/v1/x") != 2 || !strings.Contains(stdout, "host_not_allowed") {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})
	t.Run("tail --token finds the attenuated token's requests", func(t *testing.T) {
		stdout, _, code := runKeyhole(t, env, "audit", "tail", "--token", "task-43", auditPath)
		if code != 0 || !strings.Contains(stdout, "token_revoked") || !strings.Contains(stdout, childID[:8]) {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
		if !strings.Contains(stdout, time.Now().UTC().Format("2006-01-02")) || !strings.Contains(stdout, "Z  billing") {
			t.Errorf("tail lacks the date and the UTC mark:\n%s", stdout)
		}
	})
	t.Run("verify: whole across the rotation", func(t *testing.T) {
		stdout, stderr, code := runKeyhole(t, env, "audit", "verify", rotated, auditPath)
		if code != 0 || !strings.Contains(stdout, "ok: ") || !strings.Contains(stdout, "in 2 files") {
			t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
		}
		if _, _, code := runKeyhole(t, env, "audit", "verify"); code != 0 {
			t.Errorf("verify of KEYHOLE_AUDIT_LOG: exit %d", code)
		}
		if _, stderr, code := runKeyhole(t, env, "audit", "verify", auditPath, rotated); code != 1 || !strings.Contains(stderr, rotated+":1:") {
			t.Errorf("files in the wrong order: exit %d: %s", code, stderr)
		}
	})
	t.Run("verify: names an edited line", func(t *testing.T) {
		data, _ := os.ReadFile(auditPath)
		edited := filepath.Join(dir, "edited.jsonl")
		os.WriteFile(edited, []byte(strings.Replace(string(data), `"reason":"token_revoked"`, `"reason":"token_expired"`, 1)), 0o600)
		line := 1 + strings.Count(string(data[:strings.Index(string(data), `"reason":"token_revoked"`)]), "\n")
		_, stderr, code := runKeyhole(t, env, "audit", "verify", rotated, edited)
		if want := edited + ":" + strconv.Itoa(line) + ": the line was changed"; code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d: %s, want %q", code, stderr, want)
		}
	})
	for _, f := range []string{rotated, auditPath} {
		data, _ := os.ReadFile(f)
		assertNoSecretIn(t, f, string(data))
		for _, tok := range []string{root, child, billingToken} {
			if strings.Contains(string(data), tok) {
				t.Errorf("%s holds a token", f)
			}
		}
	}
}
