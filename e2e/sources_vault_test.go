package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/vault/vaulttest"
)

// newVault starts a test Vault (see vault/vaulttest: the real client
// library against Vault's JSON shapes) with vaultToken valid, and returns
// it with the vault section of a rules file that uses it.
func newVault(t *testing.T, auth string) (*vaulttest.Server, string) {
	t.Helper()
	v := vaulttest.New()
	t.Cleanup(v.Close)
	v.SecretID = vaultSID
	v.AddToken(vaultToken, 0, false)
	ca, err := v.WriteCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return v, fmt.Sprintf("vault:\n  address: %s\n  ca_file: %s\n  auth: %s\n", v.URL, ca, auth)
}

const tokenAuth = "{token: env:E2E_VAULT_TOKEN}"

func TestVaultSourceInjects(t *testing.T) {
	v, section := newVault(t, tokenAuth)
	v.Set("secret/data/stripe", &vaulttest.Secret{KV: 2, Data: map[string]string{"api_key": vaultKVValue, "other": "unused-0123456789"}})
	v.Set("kv/legacy", &vaulttest.Secret{KV: 1, Data: map[string]string{"password": vaultKV1}})
	n := 0
	v.Set("database/creds/readonly", &vaulttest.Secret{TTL: time.Hour, Renewable: true,
		Mint: func(int) map[string]string {
			n++
			return map[string]string{"password": fmt.Sprintf("%s-db-%d", vaultKV1, n)}
		}})
	v.Set("database/creds/denied", &vaulttest.Secret{TTL: time.Hour, Status: http.StatusForbidden})
	up := sourceUpstream(t)
	k := startKeyhole(t, sourceRules(up, ""+
		"  KV2: {source: \"vault:secret/data/stripe#api_key\", hosts: [api.source.test]}\n"+
		"  KV2_OTHER: {source: \"vault:secret/data/stripe#other\", hosts: [api.source.test]}\n"+
		"  KV1: {source: \"vault:kv/legacy#password\", hosts: [api.source.test]}\n"+
		"  DB: {source: \"vault:database/creds/readonly#password\", hosts: [api.source.test]}\n"+
		"  DENIED: {source: \"vault:database/creds/denied#password\", hosts: [api.source.test]}\n", section),
		"E2E_VAULT_TOKEN="+vaultToken, "KEYHOLE_ADMIN_LISTEN=127.0.0.1:0")
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) {
			assertInjected(t, c, k, up, "KV2", vaultKVValue)
			assertInjected(t, c, k, up, "KV1", vaultKV1)
			assertInjected(t, c, k, up, "DB", vaultKV1+"-db-1")
			// 403 on one path only: that secret is unavailable, no other.
			assertRefusal(t, sendWith(t, c, k, "DENIED"), http.StatusBadGateway, "secret_unavailable", "DENIED")
		})
	}
	if got := v.Calls("GET /v1/secret/data/stripe"); got != 1 {
		t.Errorf("two secrets of one path: got %d reads, want 1", got)
	}
	k.waitLog(t, "secrets.DENIED.source: vault:database/creds/denied#password: permission denied (403)", 5*time.Second)
	if got := k.labelled(t, `keyhole_source_errors_total{kind="vault"}`); got < 1 {
		t.Errorf("got %v vault errors, want at least 1", got)
	}
}

// TestVaultLeases uses short leases: a renewable one is renewed (one read),
// one that cannot be renewed is read again, and a KV value rotated in
// Vault is picked up before its lease ends.
func TestVaultLeases(t *testing.T) {
	dir := t.TempDir()
	sid := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(sid, []byte(vaultSID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, section := newVault(t, "{approle: {role_id: env:E2E_ROLE_ID, secret_id: \"file:"+sid+"\"}}")
	v.Set("database/creds/renewable", &vaulttest.Secret{TTL: 3 * time.Second, Renewable: true, Data: map[string]string{"password": vaultKV1 + "-renewable"}})
	reads := 0
	v.Set("database/creds/fixed", &vaulttest.Secret{TTL: 3 * time.Second, Renewable: false,
		Mint: func(int) map[string]string {
			reads++
			return map[string]string{"password": fmt.Sprintf("%s-fixed-%d", vaultKV1, reads)}
		}})
	v.Set("kv/rotating", &vaulttest.Secret{KV: 1, TTL: 3 * time.Second, Data: map[string]string{"password": vaultKV1 + "-old"}})
	up := sourceUpstream(t)
	k := startKeyhole(t, sourceRules(up, ""+
		"  RENEWABLE: {source: \"vault:database/creds/renewable#password\", hosts: [api.source.test]}\n"+
		"  FIXED: {source: \"vault:database/creds/fixed#password\", hosts: [api.source.test]}\n"+
		"  ROTATING: {source: \"vault:kv/rotating#password\", hosts: [api.source.test]}\n", section),
		"E2E_ROLE_ID="+v.RoleID)
	assertInjected(t, goClient{}, k, up, "ROTATING", vaultKV1+"-old")
	v.Update("kv/rotating", map[string]string{"password": vaultKV1 + "-new"})
	rotated := time.Now()
	waitUpstream(t, k, up, "ROTATING", vaultKV1+"-new", 10*time.Second)
	if d := time.Since(rotated); d > 3*time.Second+time.Second {
		t.Logf("the rotation took %v to arrive (its lease was 3s)", d)
	}
	waitUpstream(t, k, up, "FIXED", vaultKV1+"-fixed-3", 15*time.Second)
	assertInjected(t, goClient{}, k, up, "RENEWABLE", vaultKV1+"-renewable")
	// Both 3 s leases refresh on the same schedule, so the second renewal
	// may land just after FIXED's third read: wait for it.
	waitFor(t, "two lease renewals", func() bool { return v.Calls("PUT /v1/sys/leases/renew") >= 2 })
	if got := v.Calls("GET /v1/database/creds/renewable"); got != 1 {
		t.Errorf("a renewable lease was read %d times, want once", got)
	}
	if got := v.Calls("PUT /v1/auth/approle/login"); got != 1 {
		t.Errorf("got %d AppRole logins, want 1", got)
	}
}

// TestVaultDown starts keyhole while Vault is sealed, then while it is
// unreachable, and stops Vault after a good read: keyhole stays up, logs
// the failure, serves a value until it expires, then refuses with 502.
func TestVaultDown(t *testing.T) {
	up := sourceUpstream(t)
	secrets := "  DB: {source: \"vault:database/creds/app#password\", hosts: [api.source.test]}\n"
	t.Run("sealed at start", func(t *testing.T) {
		v, section := newVault(t, tokenAuth)
		v.Set("database/creds/app", &vaulttest.Secret{TTL: time.Hour, Data: map[string]string{"password": vaultKV1}})
		v.Seal(true)
		k := startKeyhole(t, sourceRules(up, secrets, section), "E2E_VAULT_TOKEN="+vaultToken)
		assertRefusal(t, sendWith(t, goClient{}, k, "DB"), http.StatusBadGateway, "secret_unavailable", "DB")
		k.waitLog(t, "Vault is sealed or in standby (503)", 5*time.Second)
		v.Seal(false)
		waitStatus(t, k, "DB", http.StatusOK, 15*time.Second) // retried with backoff
	})
	t.Run("unreachable at start", func(t *testing.T) {
		section := fmt.Sprintf("vault:\n  address: https://%s\n  auth: %s\n", closedPort(t), tokenAuth)
		k := startKeyhole(t, sourceRules(up, secrets, section), "E2E_VAULT_TOKEN="+vaultToken)
		assertRefusal(t, sendWith(t, goClient{}, k, "DB"), http.StatusBadGateway, "secret_unavailable", "DB")
		k.waitLog(t, "secrets.DB.source: vault:database/creds/app#password: token lookup: Vault is unreachable at https://127.0.0.1:", 5*time.Second)
	})
	t.Run("down after a good read", func(t *testing.T) {
		v, section := newVault(t, tokenAuth)
		v.Set("database/creds/app", &vaulttest.Secret{TTL: 8 * time.Second, Data: map[string]string{"password": vaultKV1}})
		k := startKeyhole(t, sourceRules(up, secrets, section), "E2E_VAULT_TOKEN="+vaultToken)
		read := time.Now()
		assertInjected(t, goClient{}, k, up, "DB", vaultKV1)
		v.Close()
		if time.Since(read) < 4*time.Second {
			assertInjected(t, goClient{}, k, up, "DB", vaultKV1) // the last good value, until it expires
		}
		waitStatus(t, k, "DB", http.StatusBadGateway, 15*time.Second)
		if d := time.Since(read); d < 7*time.Second {
			t.Errorf("the value was refused %v after it was read, before its 8s lease ended", d)
		}
		k.waitLog(t, "serving the last good value until", 5*time.Second)
	})
}

// waitUpstream sends <<name>> until the upstream receives want.
func waitUpstream(t *testing.T, k *keyhole, up *upstream, name, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp := sendWith(t, goClient{}, k, name)
		if resp.Status == http.StatusOK && up.Last(t).Header.Get("Authorization") == "Bearer "+want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the upstream did not receive the expected value within %v (last status %d %s)", name, limit, resp.Status, strings.TrimSpace(resp.Body))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
