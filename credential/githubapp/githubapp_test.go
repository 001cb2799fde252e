package githubapp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"keyhole/credential"
	"keyhole/rules"
)

// fakeGitHub is GitHub's access_tokens endpoint; it records what it got.
type fakeGitHub struct {
	*httptest.Server
	mu     sync.Mutex
	auth   string
	body   tokenRequest
	path   string
	status int
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	f := &fakeGitHub{status: http.StatusCreated}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.auth, f.path = r.Header.Get("Authorization"), r.URL.Path
		_ = json.NewDecoder(r.Body).Decode(&f.body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		if f.status == http.StatusCreated {
			_, _ = w.Write([]byte(`{"token":"ghs_TESTinstallationTOKEN","expires_at":"2030-01-01T01:00:00Z","permissions":{"contents":"read"}}`))
		} else {
			_, _ = w.Write([]byte(`{"message":"There is at least one repository that does not exist or is not accessible to the parent installation.","status":"422"}`))
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func loadApp(t *testing.T, apiURL string) (*rules.GitHubApp, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(dir, "app.pem"), pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := rules.LoadData(filepath.Join(dir, "keyhole.yaml"), []byte(`secrets:
  GH:
    kind: github_app
    app_id: "123456"
    private_key: file:app.pem
    installation_id: "7890123"
    repositories: [keyhole]
    permissions: {contents: read, pull_requests: write}
    api_url: `+apiURL+`
    hosts: [api.github.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Warnings) > 0 {
		t.Fatal(set.Warnings)
	}
	return set.Secrets["GH"].GitHubApp, key
}

func TestFetch(t *testing.T) {
	gh := newFakeGitHub(t)
	cfg, key := loadApp(t, gh.URL)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tok, refresh, err := Fetch(context.Background(), gh.Client(), cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Equal("ghs_TESTinstallationTOKEN") {
		t.Error("got another token than GitHub's")
	}
	if want := time.Date(2030, 1, 1, 0, 55, 0, 0, time.UTC); !refresh.Equal(want) {
		t.Errorf("refresh at %v, want %v (5 minutes before expires_at)", refresh, want)
	}
	if gh.path != "/app/installations/7890123/access_tokens" {
		t.Errorf("path %q", gh.path)
	}
	// The narrowing reached GitHub.
	if strings.Join(gh.body.Repositories, ",") != "keyhole" || gh.body.Permissions["contents"] != "read" ||
		gh.body.Permissions["pull_requests"] != "write" || len(gh.body.Permissions) != 2 {
		t.Errorf("GitHub received repositories %v permissions %v, want [keyhole] {contents: read, pull_requests: write}", gh.body.Repositories, gh.body.Permissions)
	}
	// The app JWT: RS256 by the app's key, iss the app id, iat 60 s in the
	// past, exp at most 10 minutes ahead.
	raw, ok := strings.CutPrefix(gh.auth, "Bearer ")
	if !ok {
		t.Fatalf("Authorization is not a Bearer JWT")
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(raw, &claims, func(tk *jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		t.Fatalf("the app JWT does not verify with the app's public key: %v", err)
	}
	if claims.Issuer != "123456" {
		t.Errorf("iss %q, want 123456", claims.Issuer)
	}
	if got := now.Sub(claims.IssuedAt.Time); got != 60*time.Second {
		t.Errorf("iat is %v in the past, want 60s", got)
	}
	if got := claims.ExpiresAt.Sub(now); got <= 0 || got > 10*time.Minute {
		t.Errorf("exp is %v ahead, want at most 10m", got)
	}
}

func TestFetch422(t *testing.T) {
	gh := newFakeGitHub(t)
	gh.status = http.StatusUnprocessableEntity
	cfg, _ := loadApp(t, gh.URL)
	_, _, err := Fetch(context.Background(), gh.Client(), cfg, time.Now())
	var se *credential.StepError
	if err == nil || !strings.Contains(err.Error(), "GitHub installation token request returned 422") || !errorsAs(err, &se) {
		t.Fatalf("got %v, want the step and the status", err)
	}
}

func errorsAs(err error, se **credential.StepError) bool {
	e, ok := err.(*credential.StepError)
	*se = e
	return ok
}
