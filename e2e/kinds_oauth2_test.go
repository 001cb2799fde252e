package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The credentials of the kinds' test servers. No client, log or response
// may show one.
const (
	oauthClientID     = "graph-client-id-TEST-0001"
	oauthClientSecret = "graph-client-SECRET-TEST-0123456789"
	awsAccessKeyID    = "AKIATESTREALKEY00001"
	awsSecretKey      = "TESTrealSECRETkey/0123456789abcdefABCDEFG"
	stsSessionKeyID   = "ASIATESTSESSION00001"
	stsSessionSecret  = "TESTsessionSECRET/0123456789abcdefABCDEFG"
)

var kindSecretValues = []string{oauthClientSecret, awsSecretKey, stsSessionSecret}

// tokenServer is a fake OAuth 2.0 token endpoint (RFC 6749 §4.4): each
// path is one behaviour, and it records every request and every token it
// issued.
type tokenServer struct {
	*upstream
	mu     sync.Mutex
	issued []string
	grants map[string]int // requests by path
	n      atomic.Int64
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{grants: map[string]int{}}
	ts.upstream = newUpstream(t, []string{"login.test"}, http.HandlerFunc(ts.serve))
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.grants[r.URL.Path]++
	ts.mu.Unlock()
	id, sec, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	if !ok || id != oauthClientID || sec != oauthClientSecret || r.URL.Path == "/401" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("WWW-Authenticate", `Basic realm="login"`)
		w.WriteHeader(http.StatusUnauthorized)
		// Some servers echo what they received; keyhole must not pass it on.
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad secret %s"}`, sec)
		return
	}
	switch r.URL.Path {
	case "/nonjson":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "<html>login</html>")
		return
	case "/slow":
		select {
		case <-time.After(30 * time.Second):
		case <-r.Context().Done():
		}
		return
	case "/burst":
		time.Sleep(500 * time.Millisecond) // so that the requests pile up behind one fetch
	}
	tok := "graph-TOKEN-" + strings.Trim(r.URL.Path, "/") + "-" + strconv.FormatInt(ts.n.Add(1), 10) + "-SECRET"
	ts.mu.Lock()
	ts.issued = append(ts.issued, tok)
	ts.mu.Unlock()
	body := map[string]any{"access_token": tok, "token_type": "Bearer", "scope": r.PostForm.Get("scope")}
	switch r.URL.Path {
	case "/noexp":
	case "/short":
		body["expires_in"] = 3
	default:
		body["expires_in"] = 3600
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func (ts *tokenServer) count(path string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.grants[path]
}

func (ts *tokenServer) tokens() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.issued...)
}

// assertNoTokens fails when s holds a token ts issued.
func (ts *tokenServer) assertNoTokens(t *testing.T, what, s string) {
	t.Helper()
	for i, tok := range ts.tokens() {
		if strings.Contains(s, tok) {
			t.Errorf("%s holds minted token #%d", what, i)
		}
	}
}

// oauthRules has one oauth2 secret G_PATH per token server path, and
// three whose token endpoint keyhole cannot or must not reach: an unpinned
// loopback address (block_private), a pinned name the server's certificate
// does not cover, and a port nothing listens on.
func oauthRules(t *testing.T, ts *tokenServer, api *upstream, paths ...string) string {
	var b strings.Builder
	b.WriteString("secrets:\n")
	urls := map[string]string{
		"G_PRIVATE": "https://" + ts.Addr() + "/ok",
		"G_BADTLS":  "https://badtls.test/ok",
		"G_DOWN":    "https://down.test/ok",
	}
	for _, p := range paths {
		urls["G_"+strings.ToUpper(p)] = "https://login.test/" + p
	}
	for name, u := range urls {
		fmt.Fprintf(&b, `  %s:
    kind: oauth2
    token_url: %s
    client_id: env:OAUTH_CLIENT_ID
    client_secret: env:OAUTH_CLIENT_SECRET
    scopes: [https://graph.test/.default]
    hosts: [graph.test]
`, name, u)
	}
	fmt.Fprintf(&b, "resolve:\n  login.test: %s\n  badtls.test: %s\n  down.test: %s\n  graph.test: %s\n",
		ts.Addr(), ts.Addr(), closedPort(t), api.Addr())
	return b.String()
}

func TestOAuth2EndToEnd(t *testing.T) {
	ts := newTokenServer(t)
	api := newUpstream(t, []string{"graph.test"}, nil)
	k := startKeyhole(t, oauthRules(t, ts, api, "ok", "401", "nonjson", "noexp", "slow", "burst", "short"),
		"OAUTH_CLIENT_ID="+oauthClientID, "OAUTH_CLIENT_SECRET="+oauthClientSecret, "KEYHOLE_MINT_TIMEOUT=2s")
	t.Cleanup(func() {
		ts.assertNoTokens(t, "keyhole's audit log", k.stdout.String())
		ts.assertNoTokens(t, "keyhole's stderr", k.stderr.String())
	})

	t.Run("token swapped in, cached, scrubbed", func(t *testing.T) {
		for _, c := range clients(t) {
			t.Run(c.Name(), func(t *testing.T) {
				resp := c.Do(t, k, request{URL: "https://graph.test/v1/me", Header: [][2]string{{"Authorization", "Bearer <<G_OK>>"}}})
				if resp.Status != http.StatusOK {
					t.Fatalf("got %d %s%s, want 200", resp.Status, resp.Body, resp.Err)
				}
				toks := ts.tokens()
				if got := api.Last(t).Header.Get("Authorization"); len(toks) == 0 || got != "Bearer "+toks[0] {
					t.Errorf("the API did not receive the minted token")
				}
				if !strings.Contains(resp.Body, "Bearer <<G_OK>>") || resp.Header.Get("X-Echo-Authorization") != "Bearer <<G_OK>>" {
					t.Errorf("the echoed token was not scrubbed back to its placeholder: %s", redact(resp.Body))
				}
				ts.assertNoTokens(t, "the response", resp.Body+fmt.Sprint(resp.Header))
				assertNoSecretIn(t, "the response", resp.Body)
			})
		}
		if n := ts.count("/ok"); n != 1 {
			t.Errorf("the token endpoint was asked %d times, want once (cached)", n)
		}
	})

	faults := []struct {
		secret, path, want string
	}{
		{"G_401", "/401", "token endpoint returned 401 (invalid_client)"},
		{"G_NONJSON", "/nonjson", "token endpoint returned an unparsable token response"},
		{"G_SLOW", "/slow", "token endpoint did not answer in time"},
		{"G_PRIVATE", "private", "token endpoint could not be reached (it resolves to a private address and block_private is on)"},
		{"G_BADTLS", "tls", "token endpoint could not be reached (TLS verification failed)"},
		{"G_DOWN", "down", "token endpoint could not be reached (connection refused)"},
	}
	for _, tc := range faults {
		t.Run(tc.path, func(t *testing.T) {
			before := api.Hits()
			resp := curlClient{}.Do(t, k, request{URL: "https://graph.test/v1/me", Header: [][2]string{{"Authorization", "Bearer <<" + tc.secret + ">>"}}})
			assertRefusal(t, resp, http.StatusBadGateway, "secret_unavailable", tc.secret)
			if msg, _ := resp.refusal(t)["error"].(string); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if strings.Contains(resp.Body, oauthClientSecret) || strings.Contains(resp.Body, "bad secret") {
				t.Error("the refusal holds the token endpoint's body")
			}
			if api.Hits() != before {
				t.Error("the API was called without a token")
			}
		})
	}

	t.Run("no expires_in", func(t *testing.T) {
		resp := goClient{}.Do(t, k, request{URL: "https://graph.test/v1/me", Header: [][2]string{{"Authorization", "Bearer <<G_NOEXP>>"}}})
		if resp.Status != http.StatusOK {
			t.Fatalf("got %d %s, want 200", resp.Status, resp.Body)
		}
	})

	t.Run("200 concurrent requests on a cold cache fetch once", func(t *testing.T) {
		c := k.GoClient(t, "", "")
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 200 {
			wg.Go(func() {
				req, _ := http.NewRequest("GET", "https://graph.test/v1/burst", nil)
				req.Header.Set("Authorization", "Bearer <<G_BURST>>")
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			t.Errorf("%d of 200 requests failed", n)
		}
		if n := ts.count("/burst"); n != 1 {
			t.Errorf("the token endpoint was asked %d times, want once", n)
		}
	})

	t.Run("a token that expires while a tunnel is open is renewed", func(t *testing.T) {
		c := k.GoClient(t, "", "")
		reused := 0
		get := func() string {
			req, _ := http.NewRequest("GET", "https://graph.test/v1/short", nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(i httptrace.GotConnInfo) {
					if i.Reused {
						reused++
					}
				},
			}))
			req.Header.Set("Authorization", "Bearer <<G_SHORT>>")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body) // so that the connection is reused
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d, want 200", resp.StatusCode)
			}
			return api.Last(t).Header.Get("Authorization")
		}
		first := get()
		deadline := time.Now().Add(20 * time.Second)
		for ts.count("/short") < 2 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			if second := get(); second != first {
				break
			}
		}
		if n := ts.count("/short"); n < 2 {
			t.Fatalf("the token endpoint was asked %d times, want a second token after expiry", n)
		}
		if second := api.Last(t).Header.Get("Authorization"); second == first {
			t.Error("the request after expiry carried the expired token")
		}
		if reused == 0 {
			t.Error("the client opened a new tunnel; the test wants the renewal inside an open one")
		}
	})
}
