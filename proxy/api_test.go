package proxy

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/agentauth"
	"keyhole/inject"
	"keyhole/tokens"

	"keyhole/upstream/upstreamtest"
)

// fakeAPI answers keyhole.internal in tests: /v1/echo tells who asked and
// what it sent; /v1/refuse refuses; anything else is not found.
type fakeAPI struct {
	mu    sync.Mutex
	calls int
	agent string
	body  string
	auth  string // the Proxy-Authorization the API saw; must be empty
}

func (f *fakeAPI) ServeAgent(w http.ResponseWriter, r *http.Request, id agentauth.Identity) *inject.Refusal {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls++
	f.agent, f.body, f.auth = id.Agent.Name, string(b), r.Header.Get("Proxy-Authorization")
	f.mu.Unlock()
	switch r.URL.Path {
	case "/v1/echo":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"agent":%q,"bytes":%d,"host":%q}`, id.Agent.Name, len(b), r.Host)
		return nil
	case "/v1/refuse":
		return inject.Refuse(inject.ShareNotAllowed, "", APIHost, "agent %s may not share that", id.Agent.Name)
	}
	return inject.Refuse(inject.NotFound, "", APIHost, "no such API path")
}

func (f *fakeAPI) seen() (int, string, string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.agent, f.body, f.auth
}

const apiRules = `
agents:
  alice:
    token: env:API_TEST_ALICE
    secrets: []
egress:
  default: deny
resolve:
  keyhole.internal: PIN
`

func startAPIProxy(t *testing.T, api AgentAPI) (*testProxy, *atomic.Int64) {
	t.Helper()
	t.Setenv("API_TEST_ALICE", "alice-token-0123456789")
	pin, dialed := upstreamtest.Counting(t)
	tp := startTestProxyWith(t, nil, strings.ReplaceAll(apiRules, "PIN", pin), Config{}, func(d *Deps) {
		if api != nil {
			d.API = api
		}
	})
	return tp, dialed
}

func (tp *testProxy) agentClient(user, pass string, h2 bool) *http.Client {
	u, _ := url.Parse("http://" + tp.addr)
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{RootCAs: tp.caPool}, ForceAttemptHTTP2: h2}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestAPIAnswersInsideTheTunnelAndNeverDials(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			api := &fakeAPI{}
			tp, dialed := startAPIProxy(t, api)
			c := tp.agentClient("alice", "alice-token-0123456789", h2)
			resp, err := c.Post("https://keyhole.internal/v1/echo?q=secret-query", "application/json", strings.NewReader(`{"x":1}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated || string(body) != `{"agent":"alice","bytes":7,"host":"keyhole.internal"}` {
				t.Fatalf("got %d %s", resp.StatusCode, body)
			}
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Errorf("protocol HTTP/%d, want HTTP/%d", resp.ProtoMajor, want)
			}
			if calls, agent, b, auth := api.seen(); calls != 1 || agent != "alice" || b != `{"x":1}` || auth != "" {
				t.Errorf("the API saw %d calls, agent %q, body %q, Proxy-Authorization set: %v", calls, agent, b, auth != "")
			}
			if n := dialed.Load(); n != 0 {
				t.Fatalf("keyhole.internal was dialed %d times (the resolve pin's listener was reached)", n)
			}
			recs := tp.auditLines(t)
			last := recs[len(recs)-1]
			if last["host"] != APIHost || last["path"] != "/v1/echo" || last["status"] != float64(201) ||
				last["decision"] != "allow" || last["agent"] != "alice" {
				t.Errorf("audit record %v", last)
			}
			if strings.Contains(tp.auditBuf.String(), "secret-query") {
				t.Error("the audit log holds the query string")
			}
		})
	}
}

func TestAPIRefusals(t *testing.T) {
	api := &fakeAPI{}
	tp, dialed := startAPIProxy(t, api)
	alice := tp.agentClient("alice", "alice-token-0123456789", false)
	cases := []struct {
		name   string
		client *http.Client
		method string
		url    string
		body   string
		status int
		reason string
	}{
		{"no credentials", tp.agentClient("", "", false), "GET", "https://keyhole.internal/v1/echo", "", 407, "proxy_auth_required"},
		{"wrong token", tp.agentClient("alice", "wrong-token-0123456789", false), "GET", "https://keyhole.internal/v1/echo", "", 407, "proxy_auth_required"},
		{"unknown path", alice, "GET", "https://keyhole.internal/nope", "", 404, "not_found"},
		{"handler refusal", alice, "POST", "https://keyhole.internal/v1/refuse", "{}", 403, "share_not_allowed"},
		{"body over 64 KiB", alice, "POST", "https://keyhole.internal/v1/echo", strings.Repeat("a", maxAPIBody+1), 400, "bad_request"},
		{"plain http", alice, "GET", "http://keyhole.internal/v1/echo", "", 403, "plaintext_not_allowed"},
		{"another port", alice, "GET", "https://keyhole.internal:8443/v1/echo", "", 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _, _, _ := api.seen()
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			resp, err := tc.client.Do(req)
			if err != nil {
				// A refused CONNECT: Go's transport reports the status.
				if !strings.Contains(err.Error(), fmt.Sprint(tc.status)) && !strings.Contains(err.Error(), http.StatusText(tc.status)) {
					t.Fatalf("got %v, want a %d", err, tc.status)
				}
			} else {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status || !strings.Contains(string(body), `"reason":"`+tc.reason+`"`) || !strings.Contains(string(body), `"request_id":"`) {
					t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.reason)
				}
			}
			after, _, _, _ := api.seen()
			if want := map[string]int{"unknown path": 1, "handler refusal": 1}[tc.name]; after-before != want {
				t.Errorf("the API was called %d times, want %d", after-before, want)
			}
			recs := tp.auditLines(t)
			if last := recs[len(recs)-1]; last["reason"] != tc.reason || last["decision"] != "deny" {
				t.Errorf("audit record %v, want a denial with %s", last, tc.reason)
			}
		})
	}
	if n := dialed.Load(); n != 0 {
		t.Fatalf("keyhole.internal was dialed %d times", n)
	}
}

func TestAPIWithoutHandlerIsNotFound(t *testing.T) {
	tp, dialed := startAPIProxy(t, nil)
	c := tp.agentClient("alice", "alice-token-0123456789", true)
	resp, body := get(t, c, "https://keyhole.internal/v1/shares")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"reason":"not_found"`) {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	if dialed.Load() != 0 {
		t.Fatal("keyhole.internal was dialed")
	}
}

func TestAPIRequestHostMustMatchTunnel(t *testing.T) {
	api := &fakeAPI{}
	tp, _ := startAPIProxy(t, api)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice-token-0123456789"))
	cc := dialH2(t, tp, "keyhole.internal:443", "Proxy-Authorization", auth)
	resp, body := h2Get(t, cc, "https://api.example.test/v1/echo")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "host_mismatch") {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	if calls, _, _, _ := api.seen(); calls != 0 {
		t.Fatal("the API answered a request for another host")
	}
}

// A minted token is checked on every request to keyhole.internal, inside
// an open tunnel too: once it expires, the API is refused.
func TestAPIChecksMintedTokenPerRequest(t *testing.T) {
	t.Setenv("API_TEST_ALICE", "alice-token-0123456789")
	key, err := tokens.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	api := &fakeAPI{}
	tp := startTestProxyWith(t, nil, strings.ReplaceAll(apiRules, "PIN", "127.0.0.1:9"), Config{}, func(d *Deps) {
		d.API, d.Tokens = api, &Tokens{Key: key}
	})
	// The token watch would end the tunnel at expiry and race the
	// per-request check this test is about: keep it from starting.
	tp.tokenWatch.mu.Lock()
	tp.tokenWatch.running = true
	tp.tokenWatch.mu.Unlock()
	// Minted so that it expires 2s from now.
	tok, err := tokens.Mint(key, "alice", "task-1", tokens.Restriction{TTL: time.Hour}, time.Now().Add(2*time.Second-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+tok))
	cc := dialH2(t, tp, "keyhole.internal:443", "Proxy-Authorization", auth)
	if resp, body := h2Get(t, cc, "https://keyhole.internal/v1/echo"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("before expiry: got %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := h2Get(t, cc, "https://keyhole.internal/v1/echo")
		if resp.StatusCode == http.StatusProxyAuthRequired && strings.Contains(body, "token_expired") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after expiry: got %d %s, want token_expired", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
