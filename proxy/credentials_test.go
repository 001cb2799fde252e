package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"keyhole/credential"
	"keyhole/credential/mint"
	"keyhole/rules"
	"keyhole/secret"
)

const mintedTestToken = "minted-TOKEN-proxy-unit-0123456789"

// fakeCredentials counts what the proxy asks of it.
type fakeCredentials struct {
	tokens, signs atomic.Int32
	fail          error
}

func (f *fakeCredentials) Token(_ context.Context, sec *rules.Secret, _ credential.Who) (credential.Token, error) {
	f.tokens.Add(1)
	if f.fail != nil {
		return credential.Token{}, f.fail
	}
	return credential.NewToken(sec.Name, secret.FromString(mintedTestToken)), nil
}

func (f *fakeCredentials) Sign(context.Context, *rules.Secret, credential.Who, *http.Request) (mint.Signed, error) {
	f.signs.Add(1)
	return mint.Signed{}, errors.New("not used")
}

func (f *fakeCredentials) Presigned(*rules.Set, string) (string, bool) { return "", false }

// TestCredentialStep: a minted kind's credential is asked for only once
// the policy allowed the request, reaches the upstream, is scrubbed from
// the response, and a failure to mint sends nothing.
func TestCredentialStep(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	t.Setenv("PROXY_TEST_ID", "client")
	t.Setenv("PROXY_TEST_KEY", proxyTestSecret)
	tp := startTestProxy(t, up, `
secrets:
  GRAPH:
    kind: oauth2
    token_url: https://login.example.test/token
    client_id: env:PROXY_TEST_ID
    client_secret: env:PROXY_TEST_KEY
    hosts: [api.example.test]
    headers: [Authorization]
resolve:
  api.example.test: UPSTREAM
`, Config{})
	fake := &fakeCredentials{}
	tp.Proxy.creds = fake
	c := tp.client()

	resp, body := get(t, c, "https://api.example.test/v1", "Authorization", "Bearer <<GRAPH>>")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	if got := up.last.Load().Header.Get("Authorization"); got != "Bearer "+mintedTestToken {
		t.Error("the upstream did not receive the minted token")
	}
	if strings.Contains(body+resp.Header.Get("X-Echo"), mintedTestToken) || body != "auth=Bearer <<GRAPH>>" {
		t.Errorf("the minted token was not scrubbed from the response: %q", strings.ReplaceAll(body, mintedTestToken, "[TOKEN]"))
	}

	hits := up.hits.Load()
	before := fake.tokens.Load()
	resp, _ = get(t, c, "https://api.example.test/v1", "X-Other", "<<GRAPH>>")
	if resp.StatusCode != http.StatusForbidden || fake.tokens.Load() != before {
		t.Errorf("a refused request: got %d and %d mints, want 403 and none", resp.StatusCode, fake.tokens.Load()-before)
	}

	fake.fail = credential.Stepf("token endpoint", "returned 401")
	resp, body = get(t, c, "https://api.example.test/v1", "Authorization", "Bearer <<GRAPH>>")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, `"reason":"secret_unavailable"`) || !strings.Contains(body, "token endpoint returned 401") {
		t.Errorf("a failed mint: got %d %s", resp.StatusCode, body)
	}
	if up.hits.Load() != hits {
		t.Error("a refused request reached the upstream")
	}
	if strings.Contains(tp.auditBuf.String(), mintedTestToken) {
		t.Error("the audit log holds the minted token")
	}
}
