package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExecSourceInjects(t *testing.T) {
	dir := t.TempDir()
	plain := writeScript(t, dir, "plain", `printf '%s\n' "$1"`)
	js := writeScript(t, dir, "json", `printf '{"value": "%s-json", "ttl_seconds": 3600}\n' "$1"`)
	up := sourceUpstream(t)
	k := startKeyhole(t, sourceRules(up,
		"  EXEC_PLAIN: {source: \"exec:"+plain+" "+execValue+"\", hosts: [api.source.test]}\n"+
			"  EXEC_JSON: {source: \"exec:"+js+" "+execValue+"\", hosts: [api.source.test]}\n", ""))
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) {
			assertInjected(t, c, k, up, "EXEC_PLAIN", execValue)
			assertInjected(t, c, k, up, "EXEC_JSON", execValue+"-json")
		})
	}
}

// TestExecRerunBeforeExpiry runs a program whose value lives 3 s: keyhole
// runs it again before the value expires, and never serves an expired one.
func TestExecRerunBeforeExpiry(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	p := writeScript(t, dir, "rotating", `n=$(cat `+count+` 2>/dev/null || echo 0); n=$((n+1)); echo $n > `+count+`
printf '{"value": "%s-%d", "ttl_seconds": 3}\n' "$1" "$n"`)
	up := sourceUpstream(t)
	k := startKeyhole(t, sourceRules(up, "  ROTATING: {source: \"exec:"+p+" "+execValue+"\", hosts: [api.source.test]}\n", ""),
		"KEYHOLE_ADMIN_LISTEN=127.0.0.1:0")
	assertInjected(t, goClient{}, k, up, "ROTATING", execValue+"-1")
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp := sendWith(t, goClient{}, k, "ROTATING")
		if resp.Status != http.StatusOK {
			t.Fatalf("got status %d while the program works; body %s", resp.Status, resp.Body)
		}
		if got := up.Last(t).Header.Get("Authorization"); got == "Bearer "+execValue+"-3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the program was not run again before its values expired")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := k.metric(t, "keyhole_source_refreshes_total"); n < 2 {
		t.Errorf("got %v refreshes, want at least 2", n)
	}
}

// TestExecFaults starts keyhole with every kind of broken program: each
// secret is unavailable (502), the log says why without the program's
// output, and the hung program is killed with its children.
func TestExecFaults(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	scripts := map[string]string{
		"EXIT1":   writeScript(t, dir, "exit1", `echo "`+execLeak+`" >&2; exit 1`),
		"HANG":    writeScript(t, dir, "hang", `sleep 1000 & echo "$$ $!" >> `+pids+`; wait`),
		"BIG":     writeScript(t, dir, "big", `head -c 10485760 /dev/zero | tr '\0' a`),
		"BADJSON": writeScript(t, dir, "badjson", `echo '{"value": "`+execLeak+`", ttl_seconds: 5}'`),
		"NEWLINE": writeScript(t, dir, "newline", `printf '%s\n%s\n' "`+execLeak+`" "`+execLeak+`"`),
		"MISSING": filepath.Join(dir, "no-such-program"),
	}
	var secrets strings.Builder
	for name, p := range scripts {
		fmt.Fprintf(&secrets, "  %s: {source: \"exec:%s\", hosts: [api.source.test]}\n", name, p)
	}
	up := sourceUpstream(t)
	start := time.Now()
	k := startKeyhole(t, sourceRules(up, secrets.String(), ""), "KEYHOLE_ADMIN_LISTEN=127.0.0.1:0")
	if d := time.Since(start); d < 9*time.Second {
		t.Logf("keyhole was ready after %v", d) // the hung program takes the 10 s timeout
	}
	want := map[string]string{
		"EXIT1":   "exited with status 1 (stderr's first line: 32 bytes, not logged)",
		"HANG":    "killed after the 10s timeout",
		"BIG":     "printed more than 65536 bytes; killed",
		"BADJSON": "the output looks like JSON but is not an object",
		"NEWLINE": "the value has a control character at byte 32",
		"MISSING": "the program was not found",
	}
	for name, msg := range want {
		k.waitLog(t, "secrets."+name+".source: exec:"+scripts[name]+": "+msg, 5*time.Second)
	}
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) {
			for name := range scripts {
				before := up.Hits()
				assertRefusal(t, sendWith(t, c, k, name), http.StatusBadGateway, "secret_unavailable", name)
				if up.Hits() != before {
					t.Errorf("%s: a request without its secret reached the upstream", name)
				}
			}
		})
	}
	// The first run was killed at the timeout, with its child; keyhole
	// retries it, so a later run may be alive.
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	for _, pid := range strings.Fields(first) {
		waitFor(t, "process "+pid+" to be gone", func() bool { return !alive(pid) })
	}
	if n := k.labelled(t, `keyhole_source_errors_total{kind="exec"}`); n < 6 {
		t.Errorf("got %v exec errors, want at least 6", n)
	}
	if strings.Contains(k.stderr.String(), execLeak) {
		t.Error("the log holds the program's output")
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// TestExecPass reads a secret with `pass show`, Debian's pass, from a
// password store encrypted to a throwaway GPG key.
func TestExecPass(t *testing.T) {
	need(t, "pass", "version")
	need(t, "gpg", "--version")
	dir := t.TempDir()
	env := []string{"GNUPGHOME=" + filepath.Join(dir, "gnupg"), "PASSWORD_STORE_DIR=" + filepath.Join(dir, "store")}
	if err := os.Mkdir(filepath.Join(dir, "gnupg"), 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(baseEnv(), env...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, redact(string(out)))
		}
		return string(out)
	}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = append(baseEnv(), env...)
		_ = cmd.Run()
	})
	run("", "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "keyhole-e2e@example.invalid", "default", "default", "never")
	fpr := ""
	for _, line := range strings.Split(run("", "gpg", "--list-keys", "--with-colons"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	run("", "pass", "init", fpr)
	run(execValue+"-pass\n", "pass", "insert", "-m", "github/token")
	up := sourceUpstream(t)
	k := startKeyhole(t, sourceRules(up, "  PASS: {source: \"exec:pass show github/token\", hosts: [api.source.test]}\n", ""), env...)
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) { assertInjected(t, c, k, up, "PASS", execValue+"-pass") })
	}
}
