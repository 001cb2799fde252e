package proxy

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"keyhole/secret"
	"keyhole/store"
	"keyhole/tokens"
)

const storedTestValue = "sk_captured_STOREDunitVALUE_987654321"

const storedRules = `
agents:
  alice:
    token: env:STORED_TEST_ALICE
    secrets: []
  bob:
    token: env:STORED_TEST_BOB
    secrets: []
egress:
  default: deny
  allow: [leak.example.test, api.example.test]
resolve:
  api.example.test: UPSTREAM
  leak.example.test: UPSTREAM
`

// startStoredProxy runs a proxy for agents alice and bob over a store
// holding CAPT_ab12, captured by alice for api.example.test.
func startStoredProxy(t *testing.T) (*testProxy, *testUpstream, *store.File) {
	t.Helper()
	t.Setenv("STORED_TEST_ALICE", "alice-token-0123456789")
	t.Setenv("STORED_TEST_BOB", "bob-token-0123456789ab")
	up := startTestUpstream(t, []string{"api.example.test", "leak.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/leak" {
			w.Write([]byte("value=" + storedTestValue))
			return
		}
		w.Write([]byte("auth=" + r.Header.Get("Authorization")))
	})
	ctx := context.Background()
	st := storeWith(t, store.Entry{Name: "CAPT_ab12", Value: secret.FromString(storedTestValue), Origin: store.OriginCaptured,
		Owner: "alice", Policy: &store.Policy{Hosts: []string{"api.example.test"}, Headers: []string{"Authorization"}}})
	tp := startTestProxyWith(t, up, storedRules, Config{}, func(d *Deps) { d.Store = st })
	if err := tp.RefreshStored(ctx); err != nil {
		t.Fatal(err)
	}
	return tp, up, st
}

func (tp *testProxy) as(user, pass string) *http.Client {
	u, _ := url.Parse("http://" + url.UserPassword(user, pass).String() + "@" + tp.addr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{RootCAs: tp.caPool}},
		Timeout: 10 * time.Second}
}

func TestStoredSecretIsItsOwnersOnly(t *testing.T) {
	tp, up, _ := startStoredProxy(t)
	sec := tp.Rules().Secrets["CAPT_ab12"]
	if sec == nil || sec.Owner != "alice" || sec.Origin != "captured" {
		t.Fatalf("Rules() has %+v, want CAPT_ab12 owned by alice, captured", sec)
	}
	alice := tp.as("alice", "alice-token-0123456789")
	bob := tp.as("bob", "bob-token-0123456789ab")

	resp, body := get(t, alice, "https://api.example.test/v1/x", "Authorization", "Bearer <<CAPT_ab12>>")
	if resp.StatusCode != 200 || body != "auth=Bearer <<CAPT_ab12>>" {
		t.Fatalf("alice: got %d %q, want the placeholder echoed back (scrubbed)", resp.StatusCode, body)
	}
	if got := up.last.Load().Header.Get("Authorization"); got != "Bearer "+storedTestValue {
		t.Fatal("the upstream did not receive the stored value")
	}
	hits := up.hits.Load()
	cases := []struct {
		name   string
		client *http.Client
		url    string
		header string
		reason string
	}{
		{"another agent", bob, "https://api.example.test/v1/x", "Authorization", "agent_not_allowed"},
		{"another host", alice, "https://leak.example.test/v1/x", "Authorization", "host_not_allowed"},
		{"another header", alice, "https://api.example.test/v1/x", "X-Api-Key", "header_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tc.client, tc.url, tc.header, "Bearer <<CAPT_ab12>>")
			if resp.StatusCode != 403 || !strings.Contains(body, tc.reason) {
				t.Fatalf("got %d %s, want 403 %s", resp.StatusCode, body, tc.reason)
			}
		})
	}
	if up.hits.Load() != hits {
		t.Fatal("a refused request reached the upstream")
	}
	// Scrubbed from every agent's responses.
	for name, c := range map[string]*http.Client{"alice": alice, "bob": bob} {
		if _, body := get(t, c, "https://leak.example.test/leak"); strings.Contains(body, storedTestValue) || body != "value=<<CAPT_ab12>>" {
			t.Errorf("%s: the response holds the stored value (or is not its placeholder)", name)
		}
	}
}

func TestRefreshStoredSwapsAtOnce(t *testing.T) {
	tp, _, st := startStoredProxy(t)
	alice := tp.as("alice", "alice-token-0123456789")
	if err := st.Delete(context.Background(), "CAPT_ab12"); err != nil {
		t.Fatal(err)
	}
	if err := tp.RefreshStored(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, alice, "https://api.example.test/v1/x", "Authorization", "Bearer <<CAPT_ab12>>")
	if resp.StatusCode != 403 || !strings.Contains(body, "unknown_secret") {
		t.Fatalf("after deletion: got %d %s, want unknown_secret", resp.StatusCode, body)
	}
	// A value that left the store is still scrubbed (retired).
	if _, body := get(t, alice, "https://leak.example.test/leak"); strings.Contains(body, storedTestValue) {
		t.Fatal("a deleted stored value is no longer scrubbed")
	}
	// A reload keeps the stored secrets.
	err := st.Put(context.Background(), store.Entry{Name: "CAPT_cd34", Value: secret.FromString(storedTestValue + "2"), Origin: store.OriginIntake,
		Owner: "alice", Policy: &store.Policy{Hosts: []string{"api.example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.RefreshStored(context.Background()); err != nil {
		t.Fatal(err)
	}
	tp.SetRules(tp.policy.Load().base)
	if tp.Rules().Secrets["CAPT_cd34"] == nil {
		t.Fatal("SetRules dropped the stored secrets")
	}
}

// A minted token narrowed to some secrets cannot use a secret captured
// later (fail closed); an unnarrowed one can. The API tunnel follows a
// token's hosts caveat too.
func TestStoredSecretAndMintedTokens(t *testing.T) {
	t.Setenv("STORED_TEST_ALICE", "alice-token-0123456789")
	t.Setenv("STORED_TEST_BOB", "bob-token-0123456789ab")
	up := startTestUpstream(t, []string{"api.example.test", "leak.example.test"}, nil)
	ctx := context.Background()
	st := storeWith(t, store.Entry{Name: "CAPT_ab12", Value: secret.FromString(storedTestValue), Origin: store.OriginCaptured,
		Owner: "alice", Policy: &store.Policy{Hosts: []string{"api.example.test"}}})
	key, err := tokens.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tp := startTestProxyWith(t, up, storedRules, Config{}, func(d *Deps) {
		d.Store, d.Tokens, d.API = st, &Tokens{Key: key}, &fakeAPI{}
	})
	if err := tp.RefreshStored(ctx); err != nil {
		t.Fatal(err)
	}
	mint := func(r tokens.Restriction) string {
		r.TTL = time.Hour
		tok, err := tokens.Mint(key, "alice", "task-1", r, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	narrowed := tp.as("alice", mint(tokens.Restriction{Secrets: []string{"OTHER"}}))
	resp, body := get(t, narrowed, "https://api.example.test/v1/x", "Authorization", "Bearer <<CAPT_ab12>>")
	if resp.StatusCode != 403 || !strings.Contains(body, "agent_not_allowed") {
		t.Fatalf("a token narrowed to other secrets: got %d %s, want agent_not_allowed", resp.StatusCode, body)
	}
	whole := tp.as("alice", mint(tokens.Restriction{}))
	if resp, body := get(t, whole, "https://api.example.test/v1/x", "Authorization", "Bearer <<CAPT_ab12>>"); resp.StatusCode != 200 || strings.Contains(body, storedTestValue) {
		t.Fatalf("an unnarrowed token: got %d (value in body: %v), want 200", resp.StatusCode, strings.Contains(body, storedTestValue))
	}
	hosts := tp.as("alice", mint(tokens.Restriction{Hosts: []string{"api.example.test"}}))
	// The tunnel opens with the refusal inside.
	if resp, body := get(t, hosts, "https://keyhole.internal/v1/echo"); resp.StatusCode != 403 || !strings.Contains(body, "host_not_allowed") {
		t.Fatalf("a token narrowed to other hosts reached the API: %d %s", resp.StatusCode, body)
	}
}

// A stored secret's hosts do not open egress: only the rules file does.
func TestStoredSecretDoesNotOpenEgress(t *testing.T) {
	t.Setenv("STORED_TEST_ALICE", "alice-token-0123456789")
	t.Setenv("STORED_TEST_BOB", "bob-token-0123456789ab")
	up := startTestUpstream(t, []string{"api.example.test", "leak.example.test"}, nil)
	ctx := context.Background()
	st := storeWith(t, store.Entry{Name: "INTAKE_KEY", Value: secret.FromString(storedTestValue), Origin: store.OriginIntake,
		Owner: "alice", Policy: &store.Policy{Hosts: []string{"elsewhere.example.test"}}})
	tp := startTestProxyWith(t, up, storedRules+"  elsewhere.example.test: UPSTREAM\n", Config{}, func(d *Deps) { d.Store = st })
	if err := tp.RefreshStored(ctx); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, tp.as("alice", "alice-token-0123456789"), "https://elsewhere.example.test/v1/x", "Authorization", "Bearer <<INTAKE_KEY>>")
	if resp.StatusCode != 403 || !strings.Contains(body, "egress_denied") {
		t.Fatalf("got %d %s, want egress_denied", resp.StatusCode, body)
	}
}

// storeWith returns a file store in a temporary directory holding e.
func storeWith(t *testing.T, e store.Entry) *store.File {
	t.Helper()
	st, err := store.Open(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return st
}
