package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"keyhole/audit"
	"keyhole/certs"
	"keyhole/rules"
	"keyhole/tokens"
)

// agentRulesYAML has one agent, billing, whose static token is
// $PROXY_TEST_BILLING (a %s gives it another variable), and one secret.
const agentRulesYAML = `
agents:
  billing:
    token: env:%s
    secrets: [KEY]
secrets:
  KEY:
    source: env:PROXY_TEST_KEY
    hosts: [api.example.test]
    allow_plaintext: true
resolve:
  api.example.test: UPSTREAM
`

// tokenProxy is a listening Proxy with agents and minted tokens.
type tokenProxy struct {
	*Proxy
	addr     string
	key      tokens.Key
	stateDir string
	auditBuf *lockedBuffer
	up       *testUpstream
}

func startTokenProxy(t *testing.T) *tokenProxy {
	t.Helper()
	t.Setenv("PROXY_TEST_KEY", proxyTestSecret)
	t.Setenv("PROXY_TEST_BILLING", "billing-static-1")
	t.Setenv("PROXY_TEST_BILLING_2", "billing-static-2")
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	stateDir := t.TempDir()
	key, err := tokens.LoadOrCreateKey(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := tokens.OpenRevocations(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	authority, err := certs.LoadOrCreate(t.TempDir(), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tp := &tokenProxy{key: key, stateDir: stateDir, auditBuf: newLockedBuffer(), up: up}
	p, err := New(Config{UpstreamCAFile: up.caFile}, Deps{Rules: tp.rules(t, "PROXY_TEST_BILLING"), Authority: authority,
		Audit: audit.New(tp.auditBuf), Tokens: &Tokens{Key: key, Revoked: revoked}})
	if err != nil {
		t.Fatal(err)
	}
	tp.Proxy = p
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	ctx2, cancel2 := context.WithCancel(context.Background())
	t.Cleanup(cancel2)
	go revoked.Watch(ctx2, 10*time.Millisecond, nil)
	return tp
}

// rules compiles agentRulesYAML with billing's token in variable v.
func (tp *tokenProxy) rules(t *testing.T, v string) *rules.Set {
	t.Helper()
	yaml := strings.ReplaceAll(fmt.Sprintf(agentRulesYAML, v), "UPSTREAM", tp.up.Listener.Addr().String())
	set, err := rules.LoadData(filepath.Join(t.TempDir(), "keyhole.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func (tp *tokenProxy) mint(t *testing.T, id string, ttl time.Duration, at time.Time) string {
	t.Helper()
	tok, err := tokens.Mint(tp.key, "billing", id, tokens.Restriction{TTL: ttl}, at)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// records returns the audit records so far.
func (tp *tokenProxy) records(t *testing.T) []map[string]any {
	return (&testProxy{auditBuf: tp.auditBuf}).auditRecords(t)
}

func TestRefusedTokenRecordsClaimedIdentity(t *testing.T) {
	tp := startTokenProxy(t)
	now := time.Now()
	live := tp.mint(t, "task-43", 10*time.Minute, now)
	child, err := tokens.Attenuate(live, tokens.Restriction{TTL: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	childInfo, _ := tokens.Inspect(child)
	revokedTok := tp.mint(t, "task-revoked", 10*time.Minute, now)
	if _, err := tokens.Revoke(tp.stateDir, "task-revoked", now); err != nil {
		t.Fatal(err)
	}
	other, _ := tokens.GenerateKey()
	forged, _ := tokens.Mint(other, "billing", "task-forged", tokens.Restriction{TTL: time.Minute}, now)
	tests := []struct {
		name, user, pass string
		status           int
		reason           string
		agent, tokenID   string
		tokenIDs         []string // nil: no token_ids
		unverified       bool
	}{
		{"attenuated token allowed", "billing", child, 200, "", "billing", childInfo.ID, []string{"task-43", childInfo.ID}, false},
		{"root token allowed", "billing", live, 200, "", "billing", "task-43", nil, false},
		{"expired", "billing", tp.mint(t, "task-old", time.Minute, now.Add(-2*time.Minute)), 407, "token_expired", "billing", "task-old", nil, false},
		{"revoked", "billing", revokedTok, 407, "token_revoked", "billing", "task-revoked", nil, false},
		{"signature does not hold", "billing", forged, 407, "proxy_auth_required", "billing", "task-forged", nil, true},
		{"wrong static token", "billing", "billing-static-x", 407, "proxy_auth_required", "billing", "", nil, true},
		{"unknown agent", "billing-static-1", "wrong-pass-123", 407, "proxy_auth_required", "anonymous", "", nil, true},
	}
	for _, tc := range tests {
		for _, scheme := range []string{"http", "https"} {
			if tc.status == 200 && scheme == "http" {
				continue // the upstream speaks TLS only
			}
			t.Run(tc.name+" "+scheme, func(t *testing.T) {
				deadline := time.Now().Add(10 * time.Second)
				for !tp.Proxy.tokens.Revoked.Revoked(&tokens.Grant{IDs: []string{"task-revoked"}}) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				before := len(tp.records(t))
				pu := &url.URL{Scheme: "http", Host: tp.addr, User: url.UserPassword(tc.user, tc.pass)}
				c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: tlsTrusting(tp.Proxy)}, Timeout: 10 * time.Second}
				resp, err := c.Get(scheme + "://api.example.test/v1/x")
				status := 0
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				} else if tc.status == 200 || !strings.Contains(err.Error(), "Proxy Authentication Required") {
					t.Fatalf("GET: %v", err)
				} else {
					status = 407 // refused at the CONNECT
				}
				if status != tc.status {
					t.Fatalf("got %d, want %d", status, tc.status)
				}
				var rec map[string]any
				for deadline := time.Now().Add(10 * time.Second); rec == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if recs := tp.records(t); len(recs) > before {
						rec = recs[len(recs)-1]
					}
				}
				if rec == nil {
					t.Fatal("no audit record")
				}
				if rec["reason"] != tc.reason || rec["agent"] != tc.agent || rec["token_id"] != tc.tokenID {
					t.Errorf("got reason %v agent %v token_id %v, want %q %q %q", rec["reason"], rec["agent"], rec["token_id"], tc.reason, tc.agent, tc.tokenID)
				}
				var ids []string
				if list, ok := rec["token_ids"].([]any); ok {
					for _, v := range list {
						ids = append(ids, v.(string))
					}
				}
				if !slices.Equal(ids, tc.tokenIDs) {
					t.Errorf("token_ids: got %v, want %v", ids, tc.tokenIDs)
				}
				if v, ok := rec["token_verified"]; ok != tc.unverified || (ok && v != false) {
					t.Errorf("token_verified: got %v (present %v), want false present %v", v, ok, tc.unverified)
				}
				if log := tp.auditBuf.String(); strings.Contains(log, tc.pass) || strings.Contains(log, tc.user) && tc.user != "billing" {
					t.Error("the audit log holds the credentials")
				}
			})
		}
	}
}

// tlsTrusting returns a client TLS config trusting p's CA.
func tlsTrusting(p *Proxy) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.authority.Certificate())
	return &tls.Config{RootCAs: pool}
}

// TestTunnelRecheckFailsClosed: a tunnel whose credentials fail the check
// after a reload stays refused on every later request in it, not only on
// the first one.
func TestTunnelRecheckFailsClosed(t *testing.T) {
	tp := startTokenProxy(t)
	tests := []struct {
		name   string
		pass   func() (string, time.Time) // the credential and when it stops working by itself
		reload string                     // the variable of billing's static token after the reload
		reason string
		// mayEnd: the proxy may close the tunnel instead (it ends what a
		// minted token opened when the token expires); the client's new
		// CONNECT must then get the 407.
		mayEnd bool
	}{
		{"static token changed by a reload", func() (string, time.Time) { return "billing-static-1", time.Time{} },
			"PROXY_TEST_BILLING_2", "proxy_auth_required", false},
		{"minted token expired, then a reload", func() (string, time.Time) {
			tok := tp.mint(t, "task-short", 2*time.Second, time.Now())
			info, _ := tokens.Inspect(tok)
			return tok, info.Expires
		}, "PROXY_TEST_BILLING", "token_expired", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp.SetRules(tp.rules(t, "PROXY_TEST_BILLING"))
			pass, expires := tc.pass()
			pu := &url.URL{Scheme: "http", Host: tp.addr, User: url.UserPassword("billing", pass)}
			c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: tlsTrusting(tp.Proxy)}, Timeout: 10 * time.Second}
			do := func() (int, string, bool) {
				var reused bool
				trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://api.example.test/v1/x", nil)
				resp, err := c.Do(req)
				if err != nil && tc.mayEnd && strings.Contains(err.Error(), "Proxy Authentication Required") {
					return 407, tc.reason, true // the tunnel was ended; the new CONNECT was refused
				}
				if err != nil {
					t.Fatalf("GET: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, resp.Header.Get("X-Keyhole-Reason"), reused
			}
			if status, _, _ := do(); status != 200 {
				t.Fatalf("before: got %d, want 200", status)
			}
			for time.Now().Before(expires) {
				time.Sleep(50 * time.Millisecond)
			}
			tp.SetRules(tp.rules(t, tc.reload))
			hits := tp.up.hits.Load()
			for i := range 3 {
				status, reason, reused := do()
				if !reused {
					t.Fatalf("request %d did not reuse the tunnel; the test proves nothing", i+1)
				}
				if status != 407 || reason != tc.reason {
					t.Errorf("request %d after the check failed: got %d %s, want 407 %s", i+1, status, reason, tc.reason)
				}
			}
			if tp.up.hits.Load() != hits {
				t.Error("a request in a tunnel whose credentials failed reached the upstream")
			}
		})
	}
}
