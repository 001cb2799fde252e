package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeGitHub serves GitHub's POST /app/installations/{id}/access_tokens
// (checking the app JWT against the app's public key) and echoes every
// other request. It records what it received, so that tests can assert
// the narrowing and the JWT's claims.
type fakeGitHub struct {
	*upstream
	key       *rsa.PrivateKey
	keyFile   string
	mu        sync.Mutex
	mints     []githubMint
	issued    []string
	jwtErrors []string
}

// githubMint is one access_tokens request as the fake received it.
type githubMint struct {
	Installation string
	Claims       jwt.RegisteredClaims
	Repositories []string          `json:"repositories"`
	Permissions  map[string]string `json:"permissions"`
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeGitHub{key: key, keyFile: filepath.Join(t.TempDir(), "github-app.pem")}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(f.keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	f.upstream = newUpstream(t, []string{"api.github.test"}, http.HandlerFunc(f.serve))
	return f
}

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/app/installations/")
	inst, ok2 := strings.CutSuffix(rest, "/access_tokens")
	if !ok || !ok2 || r.Method != http.MethodPost {
		echo(w, r)
		return
	}
	m := githubMint{Installation: inst}
	raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	_, err := jwt.ParseWithClaims(raw, &m.Claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuedAt())
	_ = json.NewDecoder(r.Body).Decode(&m)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mints = append(f.mints, m)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		f.jwtErrors = append(f.jwtErrors, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"A JSON web token could not be decoded"}`)
		return
	}
	if slices.Contains(m.Repositories, "missing") {
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprint(w, `{"message":"There is at least one repository that does not exist or is not accessible to the parent installation.","status":"422"}`)
		return
	}
	tok := "ghs_E2Einstallation" + strconv.Itoa(len(f.issued)+1) + "TOKENsecret0123456789"
	f.issued = append(f.issued, tok)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"permissions": m.Permissions, "repository_selection": "selected",
	})
}

func (f *fakeGitHub) snapshot() ([]githubMint, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.mints), slices.Clone(f.issued)
}

// newGitServer serves the bare repositories under root over git's smart
// HTTP protocol, to clients whose Basic password is password().
func newGitServer(t *testing.T, root string, password func() string) *upstream {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	return newUpstream(t, []string{"git.test"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || pass == "" || pass != password() {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "auth required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
}

// makeRepo creates root/repo.git with one commit whose README says text.
func makeRepo(t *testing.T, root, text string) {
	t.Helper()
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(baseEnv(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	src := filepath.Join(root, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	run(src, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(src, "README"), []byte(text+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(src, "add", ".")
	run(src, "commit", "-q", "-m", "first")
	run(root, "clone", "-q", "--bare", src, "repo.git")
}

func TestGitHubAppEndToEnd(t *testing.T) {
	need(t, "git")
	gh := newFakeGitHub(t)
	root := t.TempDir()
	makeRepo(t, root, "hello from the installation")
	if out, err := exec.Command("git", "--git-dir", filepath.Join(root, "repo.git"), "config", "http.receivepack", "true").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	git := newGitServer(t, root, func() string {
		_, issued := gh.snapshot()
		if len(issued) == 0 {
			return ""
		}
		return issued[len(issued)-1]
	})
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  GITHUB:
    kind: github_app
    app_id: "4242"
    private_key: file:%s
    installation_id: "42"
    repositories: [repo]
    permissions: {contents: read, metadata: read}
    api_url: https://api.github.test
    hosts: [api.github.test, git.test]
  GITHUB_MISSING:
    kind: github_app
    app_id: "4242"
    private_key: file:%s
    installation_id: "42"
    repositories: [missing]
    api_url: https://api.github.test
    hosts: [api.github.test]
resolve:
  api.github.test: %s
  git.test: %s
`, gh.keyFile, gh.keyFile, gh.Addr(), git.Addr()))
	t.Cleanup(func() {
		_, issued := gh.snapshot()
		for i, tok := range issued {
			if strings.Contains(k.stdout.String()+k.stderr.String(), tok) {
				t.Errorf("keyhole's output holds installation token #%d", i)
			}
		}
	})

	t.Run("git clone and push with x-access-token", func(t *testing.T) {
		envOut, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + k.StateDir, "KEYHOLE_RULES=" + k.Rules, "KEYHOLE_LISTEN=" + k.Addr}, "env")
		if code != 0 || !strings.Contains(envOut, "export GITHUB='<<GITHUB>>'") {
			t.Fatalf("keyhole env: %s%s", envOut, stderr)
		}
		envFile := filepath.Join(t.TempDir(), "env.sh")
		if err := os.WriteFile(envFile, []byte(envOut), 0o600); err != nil {
			t.Fatal(err)
		}
		clone := filepath.Join(t.TempDir(), "clone")
		cmd := exec.Command("bash", "-c", `set -e
eval "$(cat "$ENV_FILE")"
git -c credential.helper= clone -q "https://x-access-token:$GITHUB@git.test/repo.git" "$CLONE"
cat "$CLONE/README"
cd "$CLONE"
echo pushed > PUSHED
git add PUSHED
git -c user.name=agent -c user.email=agent@test commit -q -m "from the agent"
git -c credential.helper= push -q origin main`)
		cmd.Env = append(baseEnv(), "ENV_FILE="+envFile, "CLONE="+clone, "GIT_TERMINAL_PROMPT=0")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello from the installation") {
			t.Fatalf("git clone through keyhole: %v\n%s", err, redact(string(out)))
		}
		_, issued := gh.snapshot()
		for i, tok := range issued {
			if strings.Contains(string(out), tok) {
				t.Errorf("git's output holds installation token #%d", i)
			}
		}
		log, err := exec.Command("git", "--git-dir", filepath.Join(root, "repo.git"), "log", "-1", "--format=%s", "main").Output()
		if err != nil || strings.TrimSpace(string(log)) != "from the agent" {
			t.Errorf("the push did not reach the server: %v %s", err, log)
		}
	})

	for _, scheme := range []string{"Bearer", "token"} {
		t.Run("API with "+scheme, func(t *testing.T) {
			resp := curlClient{}.Do(t, k, request{URL: "https://api.github.test/repos/o/repo", Header: [][2]string{{"Authorization", scheme + " <<GITHUB>>"}}})
			if resp.Status != http.StatusOK {
				t.Fatalf("got %d %s", resp.Status, resp.Body)
			}
			_, issued := gh.snapshot()
			if len(issued) == 0 || gh.Last(t).Header.Get("Authorization") != scheme+" "+issued[len(issued)-1] {
				t.Errorf("GitHub did not receive the installation token")
			}
			if resp.Header.Get("X-Echo-Authorization") != scheme+" <<GITHUB>>" {
				t.Errorf("the echoed token was not scrubbed: %q", redact(resp.Header.Get("X-Echo-Authorization")))
			}
		})
	}

	t.Run("one token for every request, narrowed, with a valid app JWT", func(t *testing.T) {
		mints, issued := gh.snapshot()
		if len(issued) != 1 {
			t.Errorf("GitHub issued %d tokens, want 1 (cached)", len(issued))
		}
		if gh.jwtErrors != nil {
			t.Errorf("GitHub refused the app JWT: %v", gh.jwtErrors)
		}
		if len(mints) == 0 {
			t.Fatal("GitHub received no access_tokens request")
		}
		m := mints[0]
		if m.Installation != "42" || !slices.Equal(m.Repositories, []string{"repo"}) ||
			len(m.Permissions) != 2 || m.Permissions["contents"] != "read" || m.Permissions["metadata"] != "read" {
			t.Errorf("GitHub received installation %s repositories %v permissions %v, want 42 [repo] {contents: read, metadata: read}",
				m.Installation, m.Repositories, m.Permissions)
		}
		if m.Claims.Issuer != "4242" || m.Claims.IssuedAt == nil || m.Claims.ExpiresAt == nil {
			t.Fatalf("JWT claims: iss %q iat %v exp %v", m.Claims.Issuer, m.Claims.IssuedAt, m.Claims.ExpiresAt)
		}
		if life := m.Claims.ExpiresAt.Sub(m.Claims.IssuedAt.Time); life > 11*time.Minute {
			t.Errorf("the JWT lives %v, want at most 10 minutes from now", life)
		}
		if ago := time.Since(m.Claims.IssuedAt.Time); ago < 50*time.Second || ago > 10*time.Minute {
			t.Errorf("iat is %v in the past, want about 60 s", ago)
		}
	})

	t.Run("GitHub 422", func(t *testing.T) {
		before := gh.Hits()
		resp := curlClient{}.Do(t, k, request{URL: "https://api.github.test/repos/o/missing", Header: [][2]string{{"Authorization", "Bearer <<GITHUB_MISSING>>"}}})
		assertRefusal(t, resp, http.StatusBadGateway, "secret_unavailable", "GITHUB_MISSING")
		if msg, _ := resp.refusal(t)["error"].(string); !strings.Contains(msg, "GitHub installation token request returned 422") {
			t.Errorf("error %q does not name the step", msg)
		}
		if got := gh.Hits() - before; got != 1 {
			t.Errorf("GitHub received %d requests, want the one access_tokens request", got)
		}
	})
}
