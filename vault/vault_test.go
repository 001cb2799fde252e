package vault

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/rules"
	"keyhole/vault/vaulttest"
)

const (
	stripeValue = "sk_vault_stripe_0123456789"
	hookValue   = "whsec_vault_hook_0123456789"
	testToken   = "hvs.static-test-token-0123456789"
)

// clock is a settable time for the Kind.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

type fixture struct {
	srv   *vaulttest.Server
	kind  *Kind
	clock *clock
	set   *rules.Set
}

// setup starts a test Vault with the usual secrets and loads rules whose
// vault section uses auth (a YAML flow mapping).
func setup(t *testing.T, auth string, secrets string) *fixture {
	t.Helper()
	srv := vaulttest.New()
	t.Cleanup(srv.Close)
	srv.AddToken(testToken, 0, false)
	srv.Set("secret/data/stripe", &vaulttest.Secret{KV: 2, Data: map[string]string{"api_key": stripeValue, "webhook": hookValue}})
	srv.Set("kv/legacy", &vaulttest.Secret{KV: 1, Data: map[string]string{"password": "kv1-legacy-password-0123"}})
	srv.Set("database/creds/readonly", &vaulttest.Secret{TTL: time.Hour, Renewable: true,
		Mint: func(n int) map[string]string {
			return map[string]string{"password": fmt.Sprintf("db-password-%04d-abcdef", n)}
		}})
	ca, err := srv.WriteCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEYHOLE_TEST_VAULT_TOKEN", testToken)
	t.Setenv("KEYHOLE_TEST_ROLE_ID", srv.RoleID)
	t.Setenv("KEYHOLE_TEST_SECRET_ID", srv.SecretID)
	if secrets == "" {
		secrets = `
  STRIPE: {source: "vault:secret/data/stripe#api_key", hosts: [api.stripe.com]}
  HOOK: {source: "vault:secret/data/stripe#webhook", hosts: [hooks.stripe.com]}
  LEGACY: {source: "vault:kv/legacy#password", hosts: [legacy.example]}
  DB: {source: "vault:database/creds/readonly#password", hosts: [db.example]}`
	}
	f := &fixture{srv: srv, clock: &clock{}}
	f.kind = &Kind{Now: f.clock.now}
	data := fmt.Sprintf("secrets:%s\nvault:\n  address: %s\n  namespace: team-a\n  ca_file: %s\n  auth: %s\n", secrets, srv.URL, ca, auth)
	f.set, err = (&rules.Loader{Kinds: map[string]rules.Kind{"vault": f.kind}}).LoadData(context.Background(), "k.yaml", []byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// value reads a secret through the Kind, as a refresh would.
func (f *fixture) read(t *testing.T, name string) (string, time.Time, error) {
	t.Helper()
	v, exp, err := f.kind.Read(context.Background(), f.set.Secrets[name].Source)
	if err != nil {
		for _, bad := range []string{testToken, stripeValue, hookValue, f.srv.SecretID} {
			if strings.Contains(err.Error(), bad) {
				t.Fatal("the error holds a token, a value or a secret id")
			}
		}
	}
	return v.Reveal(), exp, err
}

func (f *fixture) want(t *testing.T, name, want string) {
	t.Helper()
	got, err := f.set.Secrets[name].Value()
	if err != nil {
		t.Fatalf("%s: got error %v", name, err)
	}
	if !got.Equal(want) {
		t.Fatalf("%s: got another value than %q", name, want)
	}
}

func TestKVAndShare(t *testing.T) {
	f := setup(t, "{token: env:KEYHOLE_TEST_VAULT_TOKEN}", "")
	if len(f.set.Warnings) != 0 {
		t.Fatalf("got warnings %q", f.set.Warnings)
	}
	f.want(t, "STRIPE", stripeValue)
	f.want(t, "HOOK", hookValue)
	f.want(t, "LEGACY", "kv1-legacy-password-0123")
	f.want(t, "DB", "db-password-0001-abcdef")
	if n := f.srv.Calls("GET /v1/secret/data/stripe"); n != 1 {
		t.Errorf("got %d reads of the shared path, want 1", n)
	}
	if n := f.srv.Calls("GET /v1/auth/token/lookup-self"); n != 1 {
		t.Errorf("got %d token lookups, want 1", n)
	}
	for _, ns := range f.srv.Namespaces() {
		if ns != "team-a" {
			t.Errorf("got namespace %q, want team-a", ns)
		}
	}
	if exp := f.set.Secrets["DB"].Expires(); time.Until(exp) < 50*time.Minute {
		t.Errorf("DB expires in %v, want about its 1h lease", time.Until(exp))
	}
	if exp := f.set.Secrets["STRIPE"].Expires(); !exp.IsZero() {
		t.Errorf("a KV v2 value without a lease expires at %v", exp)
	}
}

func TestLeaseRenewAndReread(t *testing.T) {
	f := setup(t, "{token: env:KEYHOLE_TEST_VAULT_TOKEN}", "")
	// Early in the lease: no call at all.
	f.clock.advance(10 * time.Minute)
	if v, _, err := f.read(t, "DB"); err != nil || v != "db-password-0001-abcdef" {
		t.Fatalf("got %v", err)
	}
	if n := f.srv.Calls("PUT /v1/sys/leases/renew") + f.srv.Calls("GET /v1/database/creds/readonly"); n != 1 {
		t.Errorf("got %d lease calls early in the lease, want only the first read", n)
	}
	// Past two thirds: renewed, same value.
	f.clock.advance(35 * time.Minute)
	if v, _, err := f.read(t, "DB"); err != nil || v != "db-password-0001-abcdef" {
		t.Fatalf("got %v", err)
	}
	if n := f.srv.Calls("PUT /v1/sys/leases/renew"); n != 1 {
		t.Errorf("got %d renewals, want 1", n)
	}
	// The lease can no longer be renewed: read again, a new value.
	f.srv.Set("database/creds/readonly", &vaulttest.Secret{TTL: time.Hour, Renewable: false,
		Mint: func(n int) map[string]string { return map[string]string{"password": "db-password-rotated-abcdef"} }})
	f.clock.advance(45 * time.Minute)
	if v, _, err := f.read(t, "DB"); err != nil || v != "db-password-rotated-abcdef" {
		t.Fatalf("got %v", err)
	}
	if n := f.srv.Calls("GET /v1/database/creds/readonly"); n != 2 {
		t.Errorf("got %d reads, want 2", n)
	}
}

func TestAppRole(t *testing.T) {
	f := setup(t, "{approle: {role_id: env:KEYHOLE_TEST_ROLE_ID, secret_id: env:KEYHOLE_TEST_SECRET_ID}}", "")
	f.want(t, "STRIPE", stripeValue)
	if n := f.srv.Calls("PUT /v1/auth/approle/login"); n != 1 {
		t.Fatalf("got %d logins, want 1", n)
	}
	// Values expire with the token (1h) at the latest.
	if exp := f.set.Secrets["STRIPE"].Expires(); exp.IsZero() || time.Until(exp) > time.Hour+time.Minute {
		t.Errorf("got expiry %v, want the token's", exp)
	}
	f.clock.advance(45 * time.Minute)
	if _, _, err := f.read(t, "STRIPE"); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Calls("PUT /v1/auth/token/renew-self"); n != 1 {
		t.Errorf("got %d renew-self, want 1", n)
	}
	// A token that does not renew: log in again.
	f.srv.TokenRenewable = false
	f.kind.sess.renewable = false
	f.clock.advance(45 * time.Minute)
	if _, _, err := f.read(t, "STRIPE"); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Calls("PUT /v1/auth/approle/login"); n != 2 {
		t.Errorf("got %d logins, want 2", n)
	}
}

func TestBadAppRole(t *testing.T) {
	t.Setenv("KEYHOLE_TEST_BAD_SECRET_ID", "not-the-secret-id-0123")
	f := setup(t, "{approle: {role_id: env:KEYHOLE_TEST_ROLE_ID, secret_id: env:KEYHOLE_TEST_BAD_SECRET_ID}}", "")
	_, err := f.set.Secrets["STRIPE"].Value()
	if err == nil || !strings.Contains(err.Error(), "AppRole login: Vault refused the request as invalid (400)") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "not-the-secret-id") {
		t.Error("the error holds the secret id")
	}
}

func TestVaultErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*vaulttest.Server)
		want  string
	}{
		{"403 on one path", func(s *vaulttest.Server) { s.Force("secret/data/stripe", http.StatusForbidden) }, "vault:secret/data/stripe#api_key: permission denied (403)"},
		{"404", func(s *vaulttest.Server) { s.Force("secret/data/stripe", http.StatusNotFound) }, "vault:secret/data/stripe#api_key: Vault has no secret at this path (404)"},
		{"sealed", func(s *vaulttest.Server) { s.Seal(true) }, "Vault is sealed or in standby (503)"},
		{"500", func(s *vaulttest.Server) { s.Force("secret/data/stripe", 500) }, "Vault answered 500"},
		{"down", func(s *vaulttest.Server) { s.Close() }, "Vault is unreachable at https://127.0.0.1:"},
		{"no field", func(s *vaulttest.Server) { s.Update("secret/data/stripe", map[string]string{"other": "x"}) }, "the secret has no such field"},
		{"newline", func(s *vaulttest.Server) { s.Update("secret/data/stripe", map[string]string{"api_key": "a\nb"}) }, "control character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, "{token: env:KEYHOLE_TEST_VAULT_TOKEN}", "")
			tc.setup(f.srv)
			f.clock.advance(time.Minute) // past the share window
			_, _, err := f.read(t, "STRIPE")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if tc.name == "403 on one path" {
				if v, _, err := f.read(t, "LEGACY"); err != nil || v != "kv1-legacy-password-0123" {
					t.Errorf("another path: got %v", err)
				}
			}
		})
	}
}

func TestUntrustedTLS(t *testing.T) {
	srv := vaulttest.New()
	defer srv.Close()
	t.Setenv("KEYHOLE_TEST_VAULT_TOKEN", testToken)
	data := "secrets:\n  A: {source: \"vault:kv/x#y\", hosts: [a.example]}\nvault:\n  address: " + srv.URL + "\n  auth: {token: env:KEYHOLE_TEST_VAULT_TOKEN}\n"
	set, err := (&rules.Loader{Kinds: map[string]rules.Kind{"vault": &Kind{}}}).LoadData(context.Background(), "k.yaml", []byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Secrets["A"].Value(); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("got %v, want an untrusted certificate", err)
	}
	if srv.Calls("") != 0 {
		t.Error("a request reached the server over unverified TLS")
	}
}

func TestEnvIgnored(t *testing.T) {
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	t.Setenv("VAULT_TOKEN", "hvs.from-the-environment")
	TestUntrustedTLS(t)
}
