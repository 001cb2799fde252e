package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// world is a keyhole with the standard test upstreams and rules.
type world struct {
	k      *keyhole
	stripe *upstream // api.stripe.test and api.github.test
	evil   *upstream // evil.test: must never receive a secret
	plain  *upstream // plain.test, plain HTTP
	bad    *upstream // badcert.test: a certificate for another name
}

const coreRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test]
    headers: [Authorization]
    methods: [GET, POST]
    paths: ["/v1/*"]
  GITHUB:
    source: env:GITHUB_KEY
    hosts: [api.github.test, plain.test, badcert.test, closed.test]
  BASIC:
    source: env:BASIC_PASSWORD
    hosts: [api.stripe.test]
  MISSING:
    source: env:KEYHOLE_TEST_NOT_SET
    hosts: [api.stripe.test]
  PLAIN:
    source: env:PLAIN_KEY
    hosts: [plain.test]
    allow_plaintext: true
egress:
  default: allow
  deny: [blocked.test]
resolve:
  api.stripe.test: %[1]s
  api.github.test: %[1]s
  evil.test: %[2]s
  plain.test: %[3]s
  badcert.test: %[4]s
  closed.test: %[5]s
`

// newWorld starts the upstreams and a keyhole on coreRules followed by
// extraRules (top-level sections such as agents:).
func newWorld(t *testing.T, extraRules string, env ...string) *world {
	t.Helper()
	w := &world{
		stripe: newUpstream(t, []string{"api.stripe.test", "api.github.test"}, nil),
		evil:   newUpstream(t, []string{"evil.test"}, nil),
		plain:  newPlainUpstream(t, nil),
		bad:    newUpstream(t, []string{"someone-else.test"}, nil),
	}
	closed := closedPort(t)
	rules := fmt.Sprintf(coreRules, w.stripe.Addr(), w.evil.Addr(), w.plain.Addr(), w.bad.Addr(), closed) + extraRules
	w.k = startKeyhole(t, rules, env...)
	return w
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestInjectsOnlyTowardAllowedHost(t *testing.T) {
	w := newWorld(t, "")
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) {
			before := w.stripe.Hits()
			resp := c.Do(t, w.k, request{
				URL:    "https://api.stripe.test/v1/charges?limit=3",
				Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}},
			})
			if resp.Status != http.StatusOK {
				t.Fatalf("got status %d, want 200; body: %s%s", resp.Status, resp.Body, resp.Err)
			}
			if got := w.stripe.Hits() - before; got != 1 {
				t.Fatalf("upstream got %d requests, want 1", got)
			}
			if got := w.stripe.Last(t).Header.Get("Authorization"); got != "Bearer "+stripeValue {
				t.Errorf("upstream did not receive the real secret in Authorization")
			}
			assertNoSecretIn(t, "response body", resp.Body)
			assertNoSecretIn(t, "response headers", fmt.Sprint(resp.Header))
			if !strings.Contains(resp.Body, "Bearer <<STRIPE>>") {
				t.Errorf("echoed body does not show the placeholder: %s", resp.Body)
			}
			if got := resp.Header.Get("X-Echo-Authorization"); got != "Bearer <<STRIPE>>" {
				t.Errorf("echoed header: got %q, want the placeholder", got)
			}
			rec := w.k.WaitAudit(t, func(r map[string]any) bool {
				return r["path"] == "/v1/charges" && r["decision"] == "allow" && r["method"] == "GET" && r["status"] == float64(200) && len(fmt.Sprint(r["secrets"])) > 2
			})
			if s := fmt.Sprint(rec["secrets"]); s != "[STRIPE]" {
				t.Errorf("audit secrets: got %s, want [STRIPE]", s)
			}
			if rec["host"] != "api.stripe.test" || rec["scheme"] != "https" || rec["agent"] != "anonymous" {
				t.Errorf("audit record: got host %v scheme %v agent %v", rec["host"], rec["scheme"], rec["agent"])
			}
		})
	}
}

func TestBasicAuthPlaceholder(t *testing.T) {
	w := newWorld(t, "")
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) {
			resp := c.Do(t, w.k, request{URL: "https://api.stripe.test/v1/basic", BasicUser: "me", BasicPass: "<<BASIC>>"})
			if resp.Status != http.StatusOK {
				t.Fatalf("got status %d, want 200; body: %s%s", resp.Status, resp.Body, resp.Err)
			}
			user, pass, ok := w.stripe.Last(t).BasicAuth()
			if !ok || user != "me" || pass != basicValue {
				t.Errorf("upstream did not receive the real Basic credential (user %q, ok %v)", user, ok)
			}
			agentCred := "Basic " + base64.StdEncoding.EncodeToString([]byte("me:<<BASIC>>"))
			if got := resp.Header.Get("X-Echo-Authorization"); got != agentCred {
				t.Errorf("echoed credential: got %q, want the agent's own %q", got, agentCred)
			}
			assertNoSecretIn(t, "response", resp.Body+fmt.Sprint(resp.Header))
		})
	}
}

// refusalCase is a request keyhole must refuse without sending anything
// upstream.
type refusalCase struct {
	name     string
	req      request
	status   int
	reason   string
	secret   string
	upstream func(*world) *upstream // must receive nothing
}

func TestRefusalsSendNothingUpstream(t *testing.T) {
	w := newWorld(t, "")
	stripe := func(w *world) *upstream { return w.stripe }
	cases := []refusalCase{
		{name: "unknown secret", status: 403, reason: "unknown_secret", secret: "NOPE", upstream: stripe,
			req: request{URL: "https://api.stripe.test/v1/x", Header: [][2]string{{"Authorization", "Bearer <<NOPE>>"}}}},
		{name: "host not allowed", status: 403, reason: "host_not_allowed", secret: "STRIPE",
			upstream: func(w *world) *upstream { return w.evil },
			req:      request{URL: "https://evil.test/v1/x", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}}},
		{name: "header not allowed", status: 403, reason: "header_not_allowed", secret: "STRIPE", upstream: stripe,
			req: request{URL: "https://api.stripe.test/v1/x", Header: [][2]string{{"X-Api-Key", "<<STRIPE>>"}}}},
		{name: "method not allowed", status: 403, reason: "method_not_allowed", secret: "STRIPE", upstream: stripe,
			req: request{Method: "DELETE", URL: "https://api.stripe.test/v1/x", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}}},
		{name: "path not allowed", status: 403, reason: "path_not_allowed", secret: "STRIPE", upstream: stripe,
			req: request{URL: "https://api.stripe.test/v2/x", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}}},
		{name: "plaintext not allowed", status: 403, reason: "plaintext_not_allowed", secret: "GITHUB",
			upstream: func(w *world) *upstream { return w.plain },
			req:      request{URL: "http://plain.test/x", Header: [][2]string{{"Authorization", "token <<GITHUB>>"}}}},
		{name: "egress denied over plain http", status: 403, reason: "egress_denied",
			upstream: func(w *world) *upstream { return w.plain },
			req:      request{URL: "http://blocked.test/x"}},
		{name: "private address over plain http", status: 403, reason: "private_address",
			upstream: func(w *world) *upstream { return w.plain },
			req:      request{URL: "http://localhost/x"}},
		{name: "host mismatch", status: 403, reason: "host_mismatch", upstream: stripe,
			req: request{URL: "https://api.stripe.test/v1/x", Header: [][2]string{{"Host", "evil.test"}, {"Authorization", "Bearer <<STRIPE>>"}}}},
		{name: "secret unavailable", status: 502, reason: "secret_unavailable", secret: "MISSING", upstream: stripe,
			req: request{URL: "https://api.stripe.test/v1/x", Header: [][2]string{{"Authorization", "Bearer <<MISSING>>"}}}},
		{name: "upstream tls", status: 502, reason: "upstream_tls",
			upstream: func(w *world) *upstream { return w.bad },
			req:      request{URL: "https://badcert.test/x", Header: [][2]string{{"Authorization", "token <<GITHUB>>"}}}},
		{name: "upstream unreachable", status: 502, reason: "upstream_unreachable", upstream: stripe,
			req: request{URL: "https://closed.test/x", Header: [][2]string{{"Authorization", "token <<GITHUB>>"}}}},
		{name: "trace never carries a secret", status: 403, reason: "method_not_allowed", secret: "GITHUB", upstream: stripe,
			req: request{Method: "TRACE", URL: "https://api.github.test/x", Header: [][2]string{{"Authorization", "token <<GITHUB>>"}}}},
	}
	for _, c := range clients(t) {
		for _, tc := range cases {
			t.Run(c.Name()+"/"+tc.name, func(t *testing.T) {
				up := tc.upstream(w)
				before := up.Hits()
				resp := c.Do(t, w.k, tc.req)
				assertRefusal(t, resp, tc.status, tc.reason, tc.secret)
				if got := up.Hits() - before; got != 0 {
					t.Errorf("the upstream received %d requests, want none", got)
				}
				id, _ := resp.refusal(t)["request_id"].(string)
				rec := w.k.WaitAudit(t, func(r map[string]any) bool { return r["request_id"] == id })
				if rec["decision"] != "deny" || rec["reason"] != tc.reason || rec["status"] != float64(tc.status) {
					t.Errorf("audit record: got decision %v reason %v status %v", rec["decision"], rec["reason"], rec["status"])
				}
			})
		}
	}
}

func assertRefusal(t *testing.T, resp response, status int, reason, secret string) {
	t.Helper()
	if resp.Status != status {
		t.Fatalf("got status %d, want %d; body: %s%s", resp.Status, status, resp.Body, resp.Err)
	}
	m := resp.refusal(t)
	if m["reason"] != reason {
		t.Errorf("got reason %v, want %s (error: %v)", m["reason"], reason, m["error"])
	}
	if secret != "" && m["secret"] != secret {
		t.Errorf("got secret %v, want %s", m["secret"], secret)
	}
	if msg, _ := m["error"].(string); !strings.HasPrefix(msg, "keyhole: ") {
		t.Errorf("error %q does not start with \"keyhole: \"", msg)
	}
	assertNoSecretIn(t, "refusal", resp.Body)
}

func assertNoSecretIn(t *testing.T, what, s string) {
	t.Helper()
	for i, v := range allSecretValues {
		if strings.Contains(s, v) {
			t.Errorf("%s holds secret value #%d", what, i)
		}
	}
}

// rawConnect sends a CONNECT to keyhole and returns the response, with
// its JSON body when it has one.
func rawConnect(t *testing.T, k *keyhole, target string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	conn, _, resp, m := sendConnect(t, k, target, header...)
	conn.Close()
	return resp, m
}

func TestConnectRefusals(t *testing.T) {
	w := newWorld(t, "")
	cases := []struct {
		name, target, reason string
		status               int
	}{
		{"egress deny list", "blocked.test:443", "egress_denied", 403},
		{"port no rule names", "api.stripe.test:8443", "egress_denied", 403},
		{"private address", "localhost:443", "private_address", 403},
		{"loopback literal", "127.0.0.1:443", "private_address", 403},
		{"metadata endpoint", "169.254.169.254:443", "private_address", 403},
		{"unicode look-alike", "\u0430pple.test:443", "", 400}, // refused by net/http itself
		{"userinfo", "api.stripe.test@evil.test:443", "", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, reason, inTunnel := connectRefusal(t, w.k, tc.target)
			if tc.reason == "" {
				reason = ""
			}
			// Policy refusals are answered inside the tunnel, the others
			// on the CONNECT.
			if status != tc.status || reason != tc.reason || inTunnel != (tc.status == 403) {
				t.Fatalf("got %d %v (inside the tunnel: %v), want %d %s", status, reason, inTunnel, tc.status, tc.reason)
			}
		})
	}
	// Real clients show the refusal as a response (TestReadableTunnelRefusals).
	for _, c := range clients(t) {
		t.Run(c.Name()+"/egress denied", func(t *testing.T) {
			resp := c.Do(t, w.k, request{URL: "https://blocked.test/"})
			assertRefusal(t, resp, 403, "egress_denied", "")
		})
	}
}

func TestPlainHTTPInjection(t *testing.T) {
	w := newWorld(t, "")
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) {
			resp := c.Do(t, w.k, request{URL: "http://plain.test/hook", Header: [][2]string{{"X-Token", "<<PLAIN>>"}}})
			if resp.Status != http.StatusOK {
				t.Fatalf("got status %d, want 200; body: %s%s", resp.Status, resp.Body, resp.Err)
			}
			if got := w.plain.Last(t).Header.Get("X-Token"); got != plainValue {
				t.Errorf("plain upstream did not receive the real secret")
			}
			if !strings.Contains(resp.Body, "<<PLAIN>>") {
				t.Errorf("echoed body does not show the placeholder: %s", resp.Body)
			}
			assertNoSecretIn(t, "response", resp.Body)
		})
	}
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
