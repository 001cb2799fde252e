package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// mintWorld is keyhole with a capture rule for an upstream that mints a
// fresh key on every POST /v1/api_keys, the way a provider's admin API
// does; the test knows every key it minted, and so does the harness.
type mintWorld struct {
	k      *keyhole
	up     *upstream
	mu     sync.Mutex
	minted []string
}

const mintRules = `
agents:
  provisioner:
    token: env:PROV_TOKEN
    secrets: [STRIPE]
  other:
    token: env:OTHER_TOKEN
    secrets: []
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.mint.test]
capture:
  - host: api.mint.test
    method: POST
    path: /v1/api_keys
    json: secret
    name: MINTED
    hosts: [api.mint.test]
    headers: [Authorization]
    ttl: 24h
resolve:
  api.mint.test: UPSTREAM
  echo.mint.test: UPSTREAM
`

const (
	provToken      = "prov-token-0123456789abcdef"
	mintOtherToken = "other-token-0123456789abcdef"
)

func newMintWorld(t *testing.T) *mintWorld {
	t.Helper()
	return newMintWorldWith(t, mintRules)
}

// newMintWorldWith is newMintWorld on another rules file, whose UPSTREAM
// is the minting upstream's address.
func newMintWorldWith(t *testing.T, rulesYAML string) *mintWorld {
	t.Helper()
	w := &mintWorld{}
	w.up = newUpstream(t, []string{"api.mint.test", "echo.mint.test"}, http.HandlerFunc(w.serve))
	k := startKeyhole(t, strings.ReplaceAll(rulesYAML, "UPSTREAM", w.up.Addr()),
		"PROV_TOKEN="+provToken, "OTHER_TOKEN="+mintOtherToken)
	// Under mu: the upstream's handlers read it, and the requests that
	// reach them pass through another process, which the race detector
	// does not see order anything.
	w.mu.Lock()
	w.k = k
	w.mu.Unlock()
	return w
}

// mint returns a new key, which the harness then looks for in keyhole's
// output.
func (w *mintWorld) mint() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	v := "rk_live_" + hex.EncodeToString(b[:])
	w.mu.Lock()
	w.minted = append(w.minted, v)
	k := w.k
	w.mu.Unlock()
	k.AlsoSecret(v)
	return v
}

func (w *mintWorld) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.minted...)
}

func (w *mintWorld) serve(rw http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/api_keys" && r.Method == http.MethodPost:
		key := w.mint()
		var body []byte
		switch r.URL.Query().Get("kind") {
		case "html":
			body = []byte("<p>your key: " + key + "</p>")
		case "big":
			body = []byte(`{"secret":"` + key + `","pad":"` + strings.Repeat("0", 10<<20) + `"}`)
		default:
			body = []byte(`{"id":"key_1","object":"api_key","secret":"` + key + `","created":1764720000}`)
		}
		coding := r.URL.Query().Get("coding")
		body = compress(coding, body)
		if coding != "" {
			rw.Header().Set("Content-Encoding", coding)
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Write(body)
	case r.URL.Path == "/leak":
		// An upstream that echoes every key it ever minted.
		rw.Write([]byte(strings.Join(w.all(), "\n")))
	default:
		rw.Write([]byte("auth=" + r.Header.Get("Authorization")))
	}
}

func compress(coding string, b []byte) []byte {
	var out bytes.Buffer
	var wc io.WriteCloser
	switch coding {
	case "gzip":
		wc = gzip.NewWriter(&out)
	case "br":
		wc = brotli.NewWriter(&out)
	case "zstd":
		wc, _ = zstd.NewWriter(&out)
	default:
		return b
	}
	wc.Write(b)
	wc.Close()
	return out.Bytes()
}

var mintedPlaceholder = regexp.MustCompile(`<<MINTED_[0-9a-f]{8}>>`)

// assertNoMinted fails when s holds a key the upstream minted.
func (w *mintWorld) assertNoMinted(t *testing.T, what, s string) {
	t.Helper()
	for i, v := range w.all() {
		if strings.Contains(s, v) {
			t.Fatalf("%s holds minted key #%d", what, i)
		}
	}
}

// TestCaptureThroughEveryClient: the agent creates a key upstream (gzip,
// br, zstd, identity), gets only its placeholder, and uses it toward the
// allowed host, where the upstream sees the real key; another agent and
// another host are refused; an upstream that later echoes the key is
// scrubbed for every agent; the store lists the key as captured.
func TestCaptureThroughEveryClient(t *testing.T) {
	w := newMintWorld(t)
	codings := []string{"gzip", "br", "zstd", ""}
	for i, cl := range clients(t) {
		coding := codings[i%len(codings)]
		t.Run(cl.Name()+"/"+coding, func(t *testing.T) {
			resp := cl.Do(t, w.k, request{Method: http.MethodPost, URL: "https://api.mint.test/v1/api_keys?coding=" + coding,
				Body: "{}", ProxyUser: "provisioner", ProxyPass: provToken, Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
			if resp.Status != http.StatusOK {
				t.Fatalf("got %d %s%s", resp.Status, resp.Body, resp.Err)
			}
			w.assertNoMinted(t, "the response", resp.Body+fmt.Sprint(resp.Header))
			var doc map[string]any
			if err := json.Unmarshal([]byte(resp.Body), &doc); err != nil {
				t.Fatalf("the body is not the upstream's JSON: %v", err)
			}
			ph, _ := doc["secret"].(string)
			if !mintedPlaceholder.MatchString(ph) || doc["id"] != "key_1" {
				t.Fatalf("got %s, want the key's placeholder in secret", resp.Body)
			}
			key := w.all()[len(w.all())-1]

			use := cl.Do(t, w.k, request{URL: "https://api.mint.test/v1/charges", ProxyUser: "provisioner", ProxyPass: provToken,
				Header: [][2]string{{"Authorization", "Bearer " + ph}}})
			if use.Status != http.StatusOK || use.Body != "auth=Bearer "+ph {
				t.Fatalf("using the placeholder: got %d %s", use.Status, use.Body)
			}
			if w.up.Last(t).Header.Get("Authorization") != "Bearer "+key {
				t.Fatal("the upstream did not receive the captured key")
			}
			// The refusals and the echo are the proxy's, whatever the
			// client: the Go client (fast to start) checks them.
			g := goClient{}
			hits := w.up.Hits()
			assertRefusal(t, g.Do(t, w.k, request{URL: "https://api.mint.test/v1/charges", ProxyUser: "other", ProxyPass: mintOtherToken,
				Header: [][2]string{{"Authorization", "Bearer " + ph}}}), http.StatusForbidden, "agent_not_allowed", strings.Trim(ph, "<>"))
			assertRefusal(t, g.Do(t, w.k, request{URL: "https://echo.mint.test/v1/charges", ProxyUser: "provisioner", ProxyPass: provToken,
				Header: [][2]string{{"Authorization", "Bearer " + ph}}}), http.StatusForbidden, "host_not_allowed", strings.Trim(ph, "<>"))
			if w.up.Hits() != hits {
				t.Fatal("a refused request reached the upstream")
			}
			for _, who := range [][2]string{{"provisioner", provToken}, {"other", mintOtherToken}} {
				leak := g.Do(t, w.k, request{URL: "https://echo.mint.test/leak", ProxyUser: who[0], ProxyPass: who[1]})
				w.assertNoMinted(t, who[0]+"'s later echo", leak.Body)
				if !strings.Contains(leak.Body, ph) {
					t.Errorf("%s's echo lacks the placeholder: %s", who[0], leak.Body)
				}
			}
		})
	}
	rec := w.k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "capture" })
	if rec["agent"] != "provisioner" || rec["host"] != "api.mint.test" || !mintedPlaceholder.MatchString("<<"+fmt.Sprint(rec["secret"])+">>") {
		t.Errorf("capture event %v", rec)
	}
	captured := w.k.WaitAudit(t, func(r map[string]any) bool { return r["path"] == "/v1/api_keys" && r["captured"] != nil })
	if captured["status"] != float64(200) || captured["agent"] != "provisioner" {
		t.Errorf("audit record %v", captured)
	}
	out, _, code := runStdin(t, storeEnv(w.k), "", "secret", "ls", "--json")
	w.assertNoMinted(t, "secret ls", out)
	if code != 0 || !strings.Contains(out, `"origin":"captured"`) || !strings.Contains(out, `"owner":"provisioner"`) {
		t.Errorf("secret ls --json (exit %d) does not list the captured keys: %s", code, out)
	}
}

// TestCaptureFailsClosedThroughTheBinary: a matching response that is not
// JSON, or is 10 MiB, is 502 capture_failed, and the agent gets nothing of
// it; the audit says why.
func TestCaptureFailsClosedThroughTheBinary(t *testing.T) {
	w := newMintWorld(t)
	for _, tc := range []struct{ query, class string }{
		{"kind=html", "not_json"},
		{"kind=big", "too_large"},
		{"kind=big&coding=gzip", "too_large"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp := (curlClient{}).Do(t, w.k, request{Method: http.MethodPost, URL: "https://api.mint.test/v1/api_keys?" + tc.query,
				Body: "{}", ProxyUser: "provisioner", ProxyPass: provToken})
			assertRefusal(t, resp, http.StatusBadGateway, "capture_failed", "")
			w.assertNoMinted(t, "the refusal", resp.Body+fmt.Sprint(resp.Header))
			if len(resp.Body) > 1024 {
				t.Errorf("the refusal is %d bytes: some of the upstream's body came through", len(resp.Body))
			}
			rec := w.k.WaitAudit(t, func(r map[string]any) bool { return r["capture_error"] == tc.class })
			if rec["reason"] != "capture_failed" || rec["status"] != float64(502) {
				t.Errorf("audit record %v", rec)
			}
		})
	}
}

// TestCapturedSecretFollowsTheStore: serve watches the store, so a
// captured secret removed with `keyhole secret rm` stops working within a
// second or so (unknown_secret), while its value is still scrubbed.
func TestCapturedSecretFollowsTheStore(t *testing.T) {
	w := newMintWorld(t)
	g := goClient{}
	resp := g.Do(t, w.k, request{Method: http.MethodPost, URL: "https://api.mint.test/v1/api_keys", Body: "{}",
		ProxyUser: "provisioner", ProxyPass: provToken})
	ph := mintedPlaceholder.FindString(resp.Body)
	if resp.Status != http.StatusOK || ph == "" {
		t.Fatalf("capture: got %d %s", resp.Status, resp.Body)
	}
	if _, stderr, code := runStdin(t, storeEnv(w.k), "", "secret", "rm", strings.Trim(ph, "<>")); code != 0 {
		t.Fatalf("secret rm: exit %d: %s", code, stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		use := g.Do(t, w.k, request{URL: "https://api.mint.test/v1/charges", ProxyUser: "provisioner", ProxyPass: provToken,
			Header: [][2]string{{"Authorization", "Bearer " + ph}}})
		if use.Status == http.StatusForbidden && strings.Contains(use.Body, "unknown_secret") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after secret rm the placeholder still gets %d %s", use.Status, use.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	leak := g.Do(t, w.k, request{URL: "https://echo.mint.test/leak", ProxyUser: "provisioner", ProxyPass: provToken})
	w.assertNoMinted(t, "an echo after the secret was removed", leak.Body)
}
