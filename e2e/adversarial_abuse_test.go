package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPlaceholderAbuse puts placeholders where they must not be swapped,
// nests them, and sends too many or too long ones.
func TestPlaceholderAbuse(t *testing.T) {
	w := newAdvWorld(t)
	repeat := func(s string, n int) string { return strings.Repeat(s, n) }
	cases := []struct {
		name    string
		header  []string // header lines of a GET to api.stripe.test
		status  int
		reason  string
		sent    map[string]string // headers the upstream must receive exactly
		secrets string            // the audit record's secrets
	}{
		{name: "nested", header: []string{"Authorization: Bearer <<<<STRIPE>>>>"}, status: 200,
			sent: map[string]string{"Authorization": "Bearer <<" + stripeValue + ">>"}, secrets: "[STRIPE]"},
		{name: "adjacent", header: []string{"Authorization: Bearer <<STRIPE>><<BASIC>>"}, status: 200,
			sent: map[string]string{"Authorization": "Bearer " + stripeValue + basicValue}, secrets: "[BASIC STRIPE]"},
		{name: "adjacent, one not allowed here", header: []string{"Authorization: Bearer <<STRIPE>><<GITHUB>>"},
			status: 403, reason: "host_not_allowed"},
		{name: "overlapping", header: []string{"Authorization: Bearer <<STR<<STRIPE>>IPE>>"}, status: 200,
			sent: map[string]string{"Authorization": "Bearer <<STR" + stripeValue + "IPE>>"}, secrets: "[STRIPE]"},
		{name: "not quite placeholders", header: []string{"Authorization: Bearer <STRIPE>> << STRIPE >> <<1X>>"}, status: 200,
			sent: map[string]string{"Authorization": "Bearer <STRIPE>> << STRIPE >> <<1X>>"}, secrets: "[]"},
		{name: "a value holding another placeholder is not swapped again", header: []string{"Authorization: Bearer <<CHAIN>>"},
			status: 200, sent: map[string]string{"Authorization": "Bearer " + chainValue}, secrets: "[CHAIN]"},
		{name: "Proxy-Authorization is never swapped nor forwarded",
			header: []string{"Proxy-Authorization: Basic " + basicAuth("me", "<<BASIC>>"), "Authorization: Bearer <<STRIPE>>"},
			status: 200, sent: map[string]string{"Proxy-Authorization": "", "Authorization": "Bearer " + stripeValue}, secrets: "[STRIPE]"},
		{name: "Proxy-Authorization with a refused secret is dropped, not judged",
			header: []string{"Proxy-Authorization: <<GITHUB>>"}, status: 200,
			sent: map[string]string{"Proxy-Authorization": ""}, secrets: "[]"},
		{name: "Cookie toward an allowed host, echoed back",
			header: []string{"Cookie: session=<<BASIC>>"}, status: 200,
			sent: map[string]string{"Cookie": "session=" + basicValue}, secrets: "[BASIC]"},
		{name: "Cookie with a header-restricted secret", header: []string{"Cookie: session=<<STRIPE>>"},
			status: 403, reason: "header_not_allowed"},
		{name: "65 placeholders in one value", header: []string{"X-Many: " + repeat("<<BASIC>>", 65)},
			status: 400, reason: "bad_request"},
		{name: "300 placeholders in one request", header: []string{
			"X-A: " + repeat("<<BASIC>>", 60), "X-B: " + repeat("<<BASIC>>", 60), "X-C: " + repeat("<<BASIC>>", 60),
			"X-D: " + repeat("<<BASIC>>", 60), "X-E: " + repeat("<<BASIC>>", 60)},
			status: 400, reason: "bad_request"},
		{name: "64 KiB name", header: []string{"Authorization: Bearer <<" + repeat("A", 64<<10) + ">>"},
			status: 403, reason: "unknown_secret"},
		{name: "64 KiB name of a known prefix", header: []string{"Authorization: Bearer <<STRIPE" + repeat("_", 64<<10) + ">>"},
			status: 403, reason: "unknown_secret"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := w.hits()
			c := mustTunnel(t, w.k, "api.stripe.test:443")
			path := fmt.Sprintf("/v1/case-%d", i)
			c.send(rawReq(append([]string{"GET " + path + " HTTP/1.1", "Host: api.stripe.test"}, tc.header...)...))
			resp, body := c.expect(http.MethodGet, tc.status, tc.reason)
			if tc.status != 200 {
				w.assertHits(t, before, nil)
				if len(body) > 2048 {
					t.Errorf("the refusal is %d bytes long; it must not repeat the request", len(body))
				}
			} else {
				w.assertHits(t, before, map[string]int64{"stripe": 1})
				last := w.stripe.Last(t)
				for name, want := range tc.sent {
					if got := strings.Join(last.Header[name], "|"); got != want {
						t.Errorf("the upstream got %s %q, want %q (values redacted if secret)", name,
							redact(got), redact(want))
					}
				}
				for _, h := range tc.header {
					name, v, _ := strings.Cut(h, ": ")
					if name == "Proxy-Authorization" {
						continue
					}
					// The echo shows the agent its own header again.
					if !strings.Contains(body+fmt.Sprint(resp.Header), strings.TrimPrefix(v, "session=")) {
						t.Errorf("the response does not show the agent's own %s", name)
					}
				}
			}
			rec := w.k.WaitAudit(t, func(r map[string]any) bool { return r["path"] == path })
			if rec["status"] != float64(tc.status) || auditField(rec, "reason") != tc.reason {
				t.Errorf("audit record: got status %v reason %v, want %d %s", rec["status"], rec["reason"], tc.status, tc.reason)
			}
			if tc.secrets != "" && auditField(rec, "secrets") != tc.secrets {
				t.Errorf("audit secrets: got %v, want %s", rec["secrets"], tc.secrets)
			}
			c.send(stripeOK("/v1/next"))
			w.expectStripeOK(t, c, "/v1/next")
		})
	}
	t.Run("placeholder as the Host", func(t *testing.T) {
		before := w.hits()
		c := mustTunnel(t, w.k, "api.stripe.test:443")
		c.send(rawReq("GET /v1/x HTTP/1.1", "Host: <<STRIPE>>"))
		if resp, body, err := c.read(http.MethodGet); err == nil && resp.StatusCode < 400 {
			t.Fatalf("got %d %.200s, want a refusal or a closed connection", resp.StatusCode, redact(body))
		}
		w.assertHits(t, before, nil)
		p := dialPlain(t, w.k)
		p.send(rawReq("GET http://<<PLAIN>>/x HTTP/1.1", "Host: <<PLAIN>>"))
		if resp, body, err := p.read(http.MethodGet); err == nil && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP: got %d %.200s, want 400", resp.StatusCode, redact(body))
		}
		w.assertHits(t, before, nil)
		w.assertStillServes(t)
	})
	t.Run("plain HTTP: Proxy-Authorization and Cookie", func(t *testing.T) {
		c := dialPlain(t, w.k)
		c.send(rawReq("GET http://plain.test/x HTTP/1.1", "Host: plain.test",
			"Proxy-Authorization: Basic "+basicAuth("me", "<<PLAIN>>"), "Cookie: s=<<PLAIN>>"))
		resp, body := c.expect(http.MethodGet, http.StatusOK, "")
		last := w.plain.Last(t)
		if last.Header.Get("Proxy-Authorization") != "" || last.Header.Get("Cookie") != "s="+plainValue {
			t.Errorf("the plain upstream got Proxy-Authorization %q and not the secret in Cookie", last.Header.Get("Proxy-Authorization"))
		}
		if got := resp.Header.Get("Set-Cookie"); got != "echo=s=<<PLAIN>>" {
			t.Errorf("got Set-Cookie %q, want the echoed cookie scrubbed to echo=s=<<PLAIN>>", got)
		}
		assertNoValueIn(t, "response", body)
	})
}

// auditField returns an audit record's field as text: "" for an absent
// string and "[]" for an absent or empty list.
func auditField(rec map[string]any, key string) string {
	if v := rec[key]; v != nil {
		return fmt.Sprint(v)
	}
	if key == "secrets" {
		return "[]"
	}
	return ""
}

// TestExfiltrationTricks: redirects are passed on, never followed;
// whatever the upstream echoes is scrubbed; TRACE never carries a secret;
// each request in a keep-alive tunnel is judged on its own.
func TestExfiltrationTricks(t *testing.T) {
	w := newAdvWorld(t)
	t.Run("redirect to another host", func(t *testing.T) {
		before := w.hits()
		c := mustTunnel(t, w.k, "api.stripe.test:443")
		c.send(stripeOK("/v1/redirect"))
		resp, _ := c.expect(http.MethodGet, http.StatusFound, "")
		if got, want := resp.Header.Get("Location"), "https://evil.test/steal?auth=Bearer <<STRIPE>>"; got != want {
			t.Errorf("got Location %q, want %q", redact(got), want)
		}
		time.Sleep(100 * time.Millisecond) // a follow-up, if any, would be on its way
		w.assertHits(t, before, map[string]int64{"stripe": 1})
	})
	t.Run("TRACE", func(t *testing.T) {
		for _, method := range []string{"TRACE", "trace", "TRACK"} {
			before := w.hits()
			c := mustTunnel(t, w.k, "api.github.test:443")
			c.send(rawReq(method+" /v1/x HTTP/1.1", "Host: api.github.test", "Cookie: s=<<GITHUB>>"))
			c.expect(method, http.StatusForbidden, "method_not_allowed")
			w.assertHits(t, before, nil)
		}
	})
	t.Run("echoed headers are scrubbed", func(t *testing.T) {
		c := mustTunnel(t, w.k, "api.github.test:443")
		c.send(rawReq("GET /echo HTTP/1.1", "Host: api.github.test", "Authorization: token <<GITHUB>>",
			"Cookie: a=<<GITHUB>>; b=<<GITHUB>>", "X-Api-Key: <<GITHUB>>"))
		resp, body := c.expect(http.MethodGet, http.StatusOK, "")
		if got := resp.Header.Get("X-Echo-Authorization"); got != "token <<GITHUB>>" {
			t.Errorf("got X-Echo-Authorization %q, want the placeholder", redact(got))
		}
		if got := resp.Header.Get("Set-Cookie"); got != "echo=a=<<GITHUB>>; b=<<GITHUB>>" {
			t.Errorf("got Set-Cookie %q, want the placeholders", redact(got))
		}
		if strings.Count(body, "<<GITHUB>>") != 4 {
			t.Errorf("the echoed body shows the placeholder %d times, want 4: %.300s", strings.Count(body, "<<GITHUB>>"), redact(body))
		}
		if last := w.stripe.Last(t); last.Header.Get("X-Api-Key") != githubValue {
			t.Errorf("the upstream did not receive the real secret")
		}
	})
	t.Run("keep-alive tunnel judges each request on its own", func(t *testing.T) {
		before := w.hits()
		c := mustTunnel(t, w.k, "api.stripe.test:443")
		steps := []struct {
			req    string
			status int
			reason string
		}{
			{rawReq("GET /v2/x HTTP/1.1", "Host: api.stripe.test", "Authorization: Bearer <<STRIPE>>"), 403, "path_not_allowed"},
			{stripeOK("/v1/a"), 200, ""},
			{rawReq("GET /v1/b HTTP/1.1", "Host: api.stripe.test", "Authorization: Bearer <<GITHUB>>"), 403, "host_not_allowed"},
			{rawReq("DELETE /v1/c HTTP/1.1", "Host: api.stripe.test", "Authorization: Bearer <<STRIPE>>"), 403, "method_not_allowed"},
			{rawReq("GET /v1/d HTTP/1.1", "Host: api.stripe.test"), 200, ""},
			{stripeOK("/v1/e"), 200, ""},
		}
		for _, s := range steps {
			c.send(s.req)
			c.expect(http.MethodGet, s.status, s.reason)
		}
		w.assertHits(t, before, map[string]int64{"stripe": 3})
		got := w.stripe.received(w.stripe.Hits() - 3)
		if got[1].URL.Path != "/v1/d" || got[1].Header.Get("Authorization") != "" {
			t.Errorf("the request without a placeholder reached the upstream as %s with Authorization %q",
				got[1].URL.Path, redact(got[1].Header.Get("Authorization")))
		}
	})
}
