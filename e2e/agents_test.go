package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const (
	billingToken = "billing-static-TOKEN-0001"
	ciToken      = "ci-static-TOKEN-0002"
)

const agentRules = `
agents:
  billing:
    token: env:BILLING_TOKEN
    secrets: [STRIPE, BASIC]
  ci:
    token: env:CI_TOKEN
    secrets: [GITHUB, PLAIN]
`

func newAgentWorld(t *testing.T) *world {
	t.Helper()
	return newWorld(t, agentRules, "BILLING_TOKEN="+billingToken, "CI_TOKEN="+ciToken)
}

// token runs a keyhole token subcommand against k's state dir and rules
// and returns its stdout (the token) with the trailing newline removed.
func (k *keyhole) token(t *testing.T, args ...string) (string, string) {
	t.Helper()
	stdout, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + k.StateDir, "KEYHOLE_RULES=" + k.Rules}, append([]string{"token"}, args...)...)
	if code != 0 {
		t.Fatalf("keyhole token %s: exit %d: %s", args[0], code, stderr)
	}
	return strings.TrimSpace(stdout), stderr
}

var stripeReq = request{URL: "https://api.stripe.test/v1/charges", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}}

func withProxyAuth(r request, user, pass string) request {
	r.ProxyUser, r.ProxyPass = user, pass
	return r
}

func TestProxyAuthentication(t *testing.T) {
	w := newAgentWorld(t)
	t.Run("CONNECT without credentials", func(t *testing.T) {
		resp, m := rawConnect(t, w.k, "api.stripe.test:443")
		if resp.StatusCode != 407 || m["reason"] != "proxy_auth_required" {
			t.Fatalf("got %d %v, want 407 proxy_auth_required", resp.StatusCode, m["reason"])
		}
		if got := resp.Header.Get("Proxy-Authenticate"); got != `Basic realm="keyhole"` {
			t.Errorf("Proxy-Authenticate: got %q", got)
		}
	})
	t.Run("CONNECT with a wrong token", func(t *testing.T) {
		resp, m := rawConnect(t, w.k, "api.stripe.test:443", "Proxy-Authorization: Basic YmlsbGluZzp3cm9uZw==\r\n")
		if resp.StatusCode != 407 || m["reason"] != "proxy_auth_required" {
			t.Fatalf("got %d %v, want 407 proxy_auth_required", resp.StatusCode, m["reason"])
		}
	})
	for _, c := range clients(t) {
		t.Run(c.Name()+"/plain http without credentials", func(t *testing.T) {
			before := w.plain.Hits()
			resp := c.Do(t, w.k, request{URL: "http://plain.test/x"})
			assertRefusal(t, resp, 407, "proxy_auth_required", "")
			if w.plain.Hits() != before {
				t.Error("the upstream received a request from an unauthenticated client")
			}
		})
		t.Run(c.Name()+"/https without credentials", func(t *testing.T) {
			before := w.stripe.Hits()
			resp := c.Do(t, w.k, stripeReq)
			if resp.Status == 200 || w.stripe.Hits() != before {
				t.Fatalf("an unauthenticated CONNECT got through (status %d)", resp.Status)
			}
		})
		t.Run(c.Name()+"/wrong token", func(t *testing.T) {
			resp := c.Do(t, w.k, withProxyAuth(request{URL: "http://plain.test/x"}, "billing", ciToken))
			assertRefusal(t, resp, 407, "proxy_auth_required", "")
		})
		t.Run(c.Name()+"/right token", func(t *testing.T) {
			resp := c.Do(t, w.k, withProxyAuth(stripeReq, "billing", billingToken))
			if resp.Status != 200 {
				t.Fatalf("got %d, want 200: %s", resp.Status, resp.Body)
			}
			if w.stripe.Last(t).Header.Get("Authorization") != "Bearer "+stripeValue {
				t.Error("the upstream did not get the secret")
			}
			if w.stripe.Last(t).Header.Get("Proxy-Authorization") != "" {
				t.Error("Proxy-Authorization was forwarded upstream")
			}
		})
		t.Run(c.Name()+"/agent may not use secret", func(t *testing.T) {
			before := w.stripe.Hits()
			resp := c.Do(t, w.k, withProxyAuth(request{URL: "https://api.github.test/x", Header: [][2]string{{"Authorization", "token <<GITHUB>>"}}}, "billing", billingToken))
			assertRefusal(t, resp, 403, "agent_not_allowed", "GITHUB")
			if w.stripe.Hits() != before {
				t.Error("the upstream received a refused request")
			}
		})
	}
	t.Run("curl with credentials in HTTPS_PROXY", func(t *testing.T) {
		need(t, "curl")
		cmd := exec.Command("curl", "-sS", "--cacert", w.k.CAFile, "-H", "Authorization: Bearer <<STRIPE>>",
			"-o", "/dev/null", "-w", "%{http_code}", "https://api.stripe.test/v1/x")
		cmd.Env = append(baseEnv(), "HTTPS_PROXY="+w.k.ProxyURL("billing", billingToken))
		out, err := cmd.Output()
		if err != nil || string(out) != "200" {
			t.Fatalf("got %s (%v), want 200", out, err)
		}
	})
	rec := w.k.WaitAudit(t, func(r map[string]any) bool { return r["agent"] == "billing" && r["decision"] == "allow" })
	if rec["token_id"] != "" {
		t.Errorf("a static token has token_id %v", rec["token_id"])
	}
	for _, tok := range []string{billingToken, ciToken} {
		if strings.Contains(w.k.stdout.String()+w.k.stderr.String(), tok) {
			t.Error("keyhole logged an agent token")
		}
	}
}

// reusedClient does requests on one keep-alive connection and reports
// whether each reused it.
func doTraced(t *testing.T, c *http.Client, r request) (int, bool) {
	t.Helper()
	reused := false
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	for _, h := range r.Header {
		req.Header.Add(h[0], h[1])
	}
	resp, err := c.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "Proxy Authentication Required") {
			return 407, false // the CONNECT of a new tunnel was refused
		}
		t.Fatalf("go client: %v", err)
	}
	// Read the body whole, or the transport will not reuse the tunnel.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, reused
}

func TestMintedTokenExpiresInsideTunnel(t *testing.T) {
	w := newAgentWorld(t)
	tok, stderr := w.k.token(t, "mint", "--agent", "billing", "--ttl", "3s", "--id", "task-42")
	minted := time.Now() // the token was minted before this
	if !strings.Contains(stderr, "id: task-42") {
		t.Errorf("mint stderr %q lacks the id", stderr)
	}
	c := w.k.GoClient(t, "billing", tok)
	if status, _ := doTraced(t, c, stripeReq); status != 200 {
		t.Fatalf("fresh token: got %d, want 200", status)
	}
	// Expiry is kept in whole seconds, rounded down: the token must never
	// outlive its TTL. Wait until its own expiry has passed.
	out, _ := w.k.token(t, "inspect", tok)
	var expires time.Time
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "expires: "); ok {
			expires, _ = time.Parse(time.RFC3339, strings.Fields(v)[0])
		}
	}
	if expires.IsZero() || expires.After(minted.Add(3*time.Second)) {
		t.Fatalf("token inspect shows expiry %v for a 3s token minted by %v", expires, minted)
	}
	time.Sleep(time.Until(expires) + 300*time.Millisecond)
	before := w.stripe.Hits()
	// keyhole ends the tunnel when the token expires (TestRevokedTokenEndsOpenStreams);
	// a request that still finds it open is refused inside it.
	status, reused := doTraced(t, c, stripeReq)
	if status != 407 {
		t.Fatalf("expired token (tunnel reused: %v): got %d, want 407", reused, status)
	}
	t.Logf("tunnel reused after expiry: %v", reused)
	if w.stripe.Hits() != before {
		t.Error("the upstream received a request made with an expired token")
	}
	rec := w.k.WaitAudit(t, func(r map[string]any) bool { return r["reason"] == "token_expired" })
	// A refused CONNECT's record names the agent only once the token
	// checked is kept for it (the audit part of issue 11).
	if reused && (rec["token_id"] != "task-42" || rec["agent"] != "billing") {
		t.Errorf("audit: got token_id %v agent %v", rec["token_id"], rec["agent"])
	}
	if strings.Contains(w.k.stdout.String()+w.k.stderr.String(), tok) {
		t.Error("keyhole logged a minted token")
	}
}

func TestAttenuatedTokenIsNarrower(t *testing.T) {
	w := newAgentWorld(t)
	parent, _ := w.k.token(t, "mint", "--agent", "billing", "--ttl", "10m", "--secrets", "STRIPE,BASIC")
	child, _ := w.k.token(t, "attenuate", parent, "--secrets", "BASIC")
	widened, _ := w.k.token(t, "attenuate", child, "--secrets", "STRIPE,BASIC")
	basicReq := request{URL: "https://api.stripe.test/v1/b", BasicUser: "u", BasicPass: "<<BASIC>>"}
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) {
			if resp := c.Do(t, w.k, withProxyAuth(stripeReq, "billing", parent)); resp.Status != 200 {
				t.Fatalf("parent with STRIPE: got %d, want 200", resp.Status)
			}
			resp := c.Do(t, w.k, withProxyAuth(stripeReq, "billing", child))
			assertRefusal(t, resp, 403, "agent_not_allowed", "STRIPE")
			if resp := c.Do(t, w.k, withProxyAuth(basicReq, "billing", child)); resp.Status != 200 {
				t.Fatalf("child with BASIC: got %d, want 200", resp.Status)
			}
			resp = c.Do(t, w.k, withProxyAuth(stripeReq, "billing", widened))
			assertRefusal(t, resp, 403, "agent_not_allowed", "STRIPE")
		})
	}
	t.Run("methods and hosts", func(t *testing.T) {
		narrow, _ := w.k.token(t, "attenuate", parent, "--methods", "GET", "--hosts", "api.stripe.test")
		c := goClient{}
		post := withProxyAuth(stripeReq, "billing", narrow)
		post.Method, post.Body = "POST", "x=1"
		assertRefusal(t, c.Do(t, w.k, post), 403, "method_not_allowed", "")
		resp := c.Do(t, w.k, withProxyAuth(request{URL: "http://plain.test/x"}, "billing", narrow))
		assertRefusal(t, resp, 403, "host_not_allowed", "")
		status, reason, inTunnel := connectRefusal(t, w.k, "evil.test:443", "Proxy-Authorization: Basic "+basicAuth("billing", narrow)+"\r\n")
		if status != 403 || reason != "host_not_allowed" || !inTunnel {
			t.Errorf("CONNECT outside the token's hosts: got %d %v (inside the tunnel: %v)", status, reason, inTunnel)
		}
	})
}

func TestForgedTokensAreRefused(t *testing.T) {
	w := newAgentWorld(t)
	tok, _ := w.k.token(t, "mint", "--agent", "billing", "--ttl", "10m")
	flip := []byte(tok)
	flip[len(flip)/2] ^= 1
	if flip[len(flip)/2] == '-' || flip[len(flip)/2] == '_' {
		flip[len(flip)/2] = 'A'
	}
	cases := map[string][2]string{
		"truncated":        {"billing", tok[:len(tok)-5]},
		"one byte changed": {"billing", string(flip)},
		"other agent":      {"ci", tok},
		"garbage":          {"billing", "kh1_AAAA"},
	}
	for name, cred := range cases {
		t.Run(name, func(t *testing.T) {
			resp := goClient{}.Do(t, w.k, withProxyAuth(request{URL: "http://plain.test/x"}, cred[0], cred[1]))
			assertRefusal(t, resp, 407, "proxy_auth_required", "")
		})
	}
	t.Run("mint for an unknown agent", func(t *testing.T) {
		_, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + w.k.StateDir, "KEYHOLE_RULES=" + w.k.Rules},
			"token", "mint", "--agent", "nobody", "--ttl", "1m")
		if code == 0 || !strings.Contains(stderr, "nobody") {
			t.Fatalf("got exit %d (%s), want a refusal naming the agent", code, stderr)
		}
	})
	t.Run("mint wider than the agent", func(t *testing.T) {
		_, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + w.k.StateDir, "KEYHOLE_RULES=" + w.k.Rules},
			"token", "mint", "--agent", "billing", "--ttl", "1m", "--secrets", "GITHUB")
		if code == 0 || !strings.Contains(stderr, "GITHUB") {
			t.Fatalf("got exit %d (%s), want a refusal naming the secret", code, stderr)
		}
	})
}

func TestRevokeOnRunningProxy(t *testing.T) {
	w := newAgentWorld(t)
	parent, _ := w.k.token(t, "mint", "--agent", "billing", "--ttl", "10m", "--id", "job-7")
	child, _ := w.k.token(t, "attenuate", parent, "--secrets", "STRIPE")
	c := w.k.GoClient(t, "billing", child)
	if status, _ := doTraced(t, c, stripeReq); status != 200 {
		t.Fatalf("before revoke: got %d, want 200", status)
	}
	w.k.token(t, "revoke", "job-7")
	deadline := time.Now().Add(1 * time.Second)
	var status int
	var reused bool
	for {
		status, reused = doTraced(t, c, stripeReq)
		if status == 407 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != 407 {
		t.Fatalf("a child of a revoked token still works 1s after revoke (status %d)", status)
	}
	if !reused {
		t.Log("the refusal came on a new tunnel")
	}
	w.k.WaitAudit(t, func(r map[string]any) bool { return r["reason"] == "token_revoked" })
	resp := goClient{}.Do(t, w.k, withProxyAuth(request{URL: "http://plain.test/x"}, "billing", parent))
	assertRefusal(t, resp, 407, "token_revoked", "")
}
