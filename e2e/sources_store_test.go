package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// storeEnv is the environment of `keyhole secret` on k's state dir.
func storeEnv(k *keyhole, extra ...string) []string {
	return append([]string{"KEYHOLE_STATE_DIR=" + k.StateDir}, extra...)
}

func secretSet(t *testing.T, k *keyhole, name, value string, extra ...string) {
	t.Helper()
	_, stderr, code := runStdin(t, storeEnv(k, extra...), value+"\n", "secret", "set", name)
	if code != 0 {
		t.Fatalf("secret set %s: exit %d: %s", name, code, stderr)
	}
}

// TestStoreSource stores a secret while keyhole runs: it is injected
// within a second, `secret ls` describes it without its value, and `secret
// rm` makes the next request in an open tunnel 502 within a second.
func TestStoreSource(t *testing.T) {
	up := sourceUpstream(t)
	k := startKeyhole(t, sourceRules(up, "  STORED: {source: \"store:STORED\", hosts: [api.source.test]}\n", ""))
	// Missing from the store: unavailable, and the log says how to add it.
	assertRefusal(t, sendWith(t, goClient{}, k, "STORED"), http.StatusBadGateway, "secret_unavailable", "STORED")
	k.waitLog(t, "store:STORED: not in the store (keyhole secret set STORED)\"", 5*time.Second)

	secretSet(t, k, "STORED", storeValue)
	waitStatus(t, k, "STORED", http.StatusOK, time.Second+500*time.Millisecond)
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) { assertInjected(t, c, k, up, "STORED", storeValue) })
	}

	out, _, code := runStdin(t, storeEnv(k), "", "secret", "ls", "--json")
	var info map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
		t.Fatalf("secret ls --json: exit %d, %q", code, out)
	}
	if info["name"] != "STORED" || info["origin"] != "set" || len(fmt.Sprint(info["fingerprint"])) != 16 || info["created"] == nil || info["updated"] == nil {
		t.Errorf("secret ls --json: got %v", info)
	}
	text, _, _ := runStdin(t, storeEnv(k), "", "secret", "ls")
	assertNoSecretIn(t, "secret ls", out+text)
	if !strings.Contains(text, "STORED") || !strings.Contains(text, "FINGERPRINT") {
		t.Errorf("secret ls: got %q", text)
	}
	if _, stderr, code := runStdin(t, storeEnv(k), "", "secret", "set", "STORED", storeValue); code == 0 || !strings.Contains(stderr, "never from an argument") {
		t.Errorf("secret set with the value as an argument: exit %d, %q", code, stderr)
	}

	// rm while a tunnel is open: the same connection's next request is
	// refused within a second.
	c := k.GoClient(t, "", "")
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, "https://api.source.test/v1/x", nil)
		req.Header.Set("Authorization", "Bearer <<STORED>>")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(); got != http.StatusOK {
		t.Fatalf("before rm: got %d", got)
	}
	if _, stderr, code := runStdin(t, storeEnv(k), "", "secret", "rm", "STORED"); code != 0 {
		t.Fatalf("secret rm: %s", stderr)
	}
	removed := time.Now()
	for get() != http.StatusBadGateway {
		if time.Since(removed) > 1500*time.Millisecond {
			t.Fatal("a removed secret is still injected after a second")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStoreTampered changes the store file under a running keyhole: the
// CLI refuses it naming the file, and the proxy keeps its last good value.
func TestStoreTampered(t *testing.T) {
	up := sourceUpstream(t)
	k := startKeyhole(t, sourceRules(up, "  STORED: {source: \"store:STORED\", hosts: [api.source.test]}\n", ""))
	secretSet(t, k, "STORED", storeValue)
	waitStatus(t, k, "STORED", http.StatusOK, 2*time.Second)
	file := filepath.Join(k.StateDir, "store.enc")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0x40
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runStdin(t, storeEnv(k), "", "secret", "ls")
	if code == 0 || !strings.Contains(stderr, file) || !strings.Contains(stderr, "tampered") {
		t.Errorf("secret ls on a tampered store: exit %d, %q", code, stderr)
	}
	k.waitLog(t, file+": the file fails authentication", 5*time.Second)
	assertInjected(t, goClient{}, k, up, "STORED", storeValue)

	// Truncated: refused too.
	if err := os.WriteFile(file, b[:10], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runStdin(t, storeEnv(k), "", "secret", "ls"); code == 0 || !strings.Contains(stderr, "truncated") {
		t.Errorf("secret ls on a truncated store: exit %d, %q", code, stderr)
	}
	assertInjected(t, goClient{}, k, up, "STORED", storeValue)
}

// TestStoreKey uses KEYHOLE_STORE_KEY: a wrong key is refused clearly by
// the CLI and by the proxy.
func TestStoreKey(t *testing.T) {
	key := "KEYHOLE_STORE_KEY=" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	wrong := "KEYHOLE_STORE_KEY=" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	up := sourceUpstream(t)
	k := startKeyhole(t, sourceRules(up, "  STORED: {source: \"store:STORED\", hosts: [api.source.test]}\n", ""), key)
	secretSet(t, k, "STORED", storeValue, key)
	waitStatus(t, k, "STORED", http.StatusOK, 2*time.Second)
	if _, err := os.Stat(filepath.Join(k.StateDir, "store.key")); err == nil {
		t.Error("a store key file was made although KEYHOLE_STORE_KEY is set")
	}
	_, stderr, code := runStdin(t, storeEnv(k, wrong), "", "secret", "ls")
	if code == 0 || !strings.Contains(stderr, "sealed under a different key than KEYHOLE_STORE_KEY") {
		t.Errorf("secret ls with a wrong key: exit %d, %q", code, stderr)
	}
	_, stderr, code = runStdin(t, storeEnv(k, "KEYHOLE_STORE_KEY=short"), "", "secret", "ls")
	if code == 0 || !strings.Contains(stderr, "KEYHOLE_STORE_KEY") || strings.Contains(stderr, "short") {
		t.Errorf("secret ls with a malformed key: exit %d, %q", code, stderr)
	}

	k2 := startKeyhole(t, sourceRules(up, "  STORED: {source: \"store:STORED\", hosts: [api.source.test]}\n", ""), wrong)
	if err := os.MkdirAll(k2.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(k.StateDir, "store.enc"))
	if err := os.WriteFile(filepath.Join(k2.StateDir, "store.enc"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	k2.waitLog(t, "sealed under a different key than KEYHOLE_STORE_KEY", 5*time.Second)
	assertRefusal(t, sendWith(t, goClient{}, k2, "STORED"), http.StatusBadGateway, "secret_unavailable", "STORED")
}

// TestStoreConcurrentSet runs 20 `keyhole secret set` at once: none of the
// updates is lost.
func TestStoreConcurrentSet(t *testing.T) {
	dir := t.TempDir()
	env := []string{"KEYHOLE_STATE_DIR=" + dir}
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, stderr, code := runStdin(t, env, fmt.Sprintf("%s-%02d", storeValue, i), "secret", "set", fmt.Sprintf("S%02d", i)); code != 0 {
				errs <- stderr
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("secret set: %s", e)
	}
	out, _, _ := runStdin(t, env, "", "secret", "ls", "--json")
	if n := strings.Count(out, "\n"); n != 20 {
		t.Errorf("got %d entries, want 20:\n%s", n, out)
	}
	assertNoSecretIn(t, "secret ls", out)
}
