package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestDestinationConfusionInTunnel sends requests whose CONNECT target,
// TLS server name, Host header and absolute-form request target disagree,
// each pair in turn. keyhole must refuse (or fail the handshake) and send
// nothing anywhere; the tunnel (or a new one) must then still work.
func TestDestinationConfusionInTunnel(t *testing.T) {
	w := newAdvWorld(t)
	bearer := "Authorization: Bearer <<STRIPE>>"
	cases := []struct {
		name, connect, sni, req string
		handshakeFails          bool
		status                  int
		reason                  string
	}{
		{name: "CONNECT vs Host", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET /v1/x HTTP/1.1", "Host: evil.test", bearer), status: 403, reason: "host_mismatch"},
		{name: "CONNECT vs Host on another port", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET /v1/x HTTP/1.1", "Host: api.stripe.test:8443", bearer), status: 403, reason: "host_mismatch"},
		{name: "CONNECT vs SNI", connect: "api.stripe.test:443", sni: "evil.test", handshakeFails: true},
		{name: "CONNECT vs SNI sharing an upstream", connect: "api.stripe.test:443", sni: "api.github.test", handshakeFails: true},
		{name: "SNI and Host vs CONNECT", connect: "evil.test:443", sni: "api.stripe.test", handshakeFails: true},
		{name: "CONNECT vs absolute URI", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET https://evil.test/v1/x HTTP/1.1", "Host: evil.test", bearer), status: 403, reason: "host_mismatch"},
		{name: "CONNECT vs absolute URI port", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET https://api.stripe.test:8443/v1/x HTTP/1.1", "Host: api.stripe.test:8443", bearer), status: 403, reason: "host_mismatch"},
		{name: "SNI vs absolute URI", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET https://api.github.test/v1/x HTTP/1.1", "Host: api.stripe.test", bearer), status: 403, reason: "host_mismatch"},
		{name: "Host with a path", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET /v1/x HTTP/1.1", "Host: api.stripe.test/evil", bearer), status: 403, reason: "host_mismatch"},
		{name: "Host with userinfo", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET /v1/x HTTP/1.1", "Host: api.stripe.test@evil.test", bearer), status: 403, reason: "host_mismatch"},
		{name: "Host with a query", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET /v1/x HTTP/1.1", "Host: api.stripe.test?", bearer), status: 403, reason: "host_mismatch"},
		{name: "Host as a decimal IP", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET /v1/x HTTP/1.1", "Host: 2130706433", bearer), status: 400, reason: "bad_request"},
		{name: "Host in raw UTF-8", connect: "api.stripe.test:443", sni: "api.stripe.test",
			req: rawReq("GET /v1/x HTTP/1.1", "Host: \u0430pi.stripe.test", bearer), status: 400, reason: "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, mismatches := w.hits(), countAudit(t, w.k, isSNIMismatch)
			c, err := openTunnel(t, w.k, tc.connect, tc.sni)
			if tc.handshakeFails {
				if err == nil {
					t.Fatalf("the TLS handshake naming %s in a tunnel to %s succeeded, want it refused", tc.sni, tc.connect)
				}
				w.assertHits(t, before, nil)
				waitAuditCount(t, w.k, mismatches+1, isSNIMismatch)
				w.assertStillServes(t)
				return
			}
			if err != nil {
				t.Fatalf("TLS handshake: %v", err)
			}
			c.send(tc.req)
			c.expect(http.MethodGet, tc.status, tc.reason)
			w.assertHits(t, before, nil)
			c.send(stripeOK("/v1/next")) // the tunnel stays open and usable
			w.expectStripeOK(t, c, "/v1/next")
		})
	}
	t.Run("absolute URI wins over Host", func(t *testing.T) {
		// RFC 9112 §3.2.2: with an absolute-form target the Host header
		// is ignored. Whatever keyhole decides, the upstream must see the
		// host the rules saw, and evil.test nothing.
		before := w.hits()
		c := mustTunnel(t, w.k, "api.stripe.test:443")
		c.send(rawReq("GET https://api.stripe.test/v1/abs HTTP/1.1", "Host: evil.test", bearer))
		resp, _, err := c.read(http.MethodGet)
		if err != nil {
			t.Fatal(err)
		}
		switch resp.StatusCode {
		case http.StatusForbidden:
			w.assertHits(t, before, nil)
		case http.StatusOK:
			w.assertHits(t, before, map[string]int64{"stripe": 1})
			if h := w.stripe.Last(t).Host; h != "api.stripe.test" {
				t.Errorf("the upstream saw Host %q, want api.stripe.test", h)
			}
		default:
			t.Fatalf("got status %d, want 403 or 200", resp.StatusCode)
		}
	})
}

// TestHostForms checks that every spelling of a destination is judged as
// the host it really names: IP literals and the numeric forms resolvers
// read as IPv4, trailing dots, mixed case, punycode look-alikes, raw
// UTF-8, userinfo and ports other than a rule's.
func TestHostForms(t *testing.T) {
	w := newAdvWorld(t)
	_, plainPort, _ := net.SplitHostPort(w.plain.Addr())
	t.Run("CONNECT targets", func(t *testing.T) {
		cases := []struct {
			target, reason string
			status         int
		}{
			{"127.0.0.1:443", "private_address", 403},
			{"[::1]:443", "private_address", 403},
			{"[::1]", "private_address", 403},
			{"[::ffff:127.0.0.1]:443", "private_address", 403},
			{"2130706433:443", "bad_request", 400},
			{"0x7f000001:443", "bad_request", 400},
			{"127.1:443", "bad_request", 400},
			{"0177.0.0.1:443", "bad_request", 400},
			{"[fe80::1%25lo]:443", "bad_request", 400},
			{"2130706433:" + plainPort, "bad_request", 400},
			{"blocked.test.:443", "egress_denied", 403},
			{"BLOCKED.Test:443", "egress_denied", 403},
			{"api.stripe.test..:443", "bad_request", 400},
			{"\u0430pi.stripe.test:443", "", 400}, // refused by net/http itself
		}
		for _, tc := range cases {
			t.Run(tc.target, func(t *testing.T) {
				before := w.hits()
				status, reason, inTunnel := connectRefusal(t, w.k, tc.target)
				if tc.reason == "" {
					reason = ""
				}
				if status != tc.status || reason != tc.reason || inTunnel != (tc.status == 403) {
					t.Fatalf("got %d %v (inside the tunnel: %v), want %d %s", status, reason, inTunnel, tc.status, tc.reason)
				}
				w.assertHits(t, before, nil)
			})
		}
		w.assertStillServes(t)
	})
	t.Run("plain-HTTP targets", func(t *testing.T) {
		cases := []struct {
			url, host, reason string
			status            int
			bare              bool // no placeholder: let the destination decide
		}{
			{"http://2130706433:" + plainPort + "/x", "", "bad_request", 400, false},
			{"http://0x7f000001:" + plainPort + "/x", "", "bad_request", 400, false},
			{"http://127.1:" + plainPort + "/x", "", "bad_request", 400, false},
			{"http://0177.0.0.1:" + plainPort + "/x", "", "bad_request", 400, false},
			{"http://127.0.0.1/x", "", "private_address", 403, true},
			{"http://[::1]/x", "", "private_address", 403, true},
			{"http://[::ffff:7f00:1]/x", "", "private_address", 403, true},
			{"http://[::1]:" + plainPort + "/x", "", "egress_denied", 403, false},
			{"http://BLOCKED.test./x", "", "egress_denied", 403, false},
			// Userinfo never decides the host: the secret for plain.test
			// does not go to evil.test.
			{"http://plain.test@evil.test/x", "evil.test", "host_not_allowed", 403, false},
			{"http://plain.test:80@evil.test/x", "evil.test", "host_not_allowed", 403, false},
			// A port no rule names for the secret.
			{"http://plain.test:8080/x", "plain.test:8080", "host_not_allowed", 403, false},
		}
		for _, tc := range cases {
			t.Run(tc.url, func(t *testing.T) {
				before := w.hits()
				c := dialPlain(t, w.k)
				host := tc.host
				if host == "" {
					host = strings.Split(strings.TrimPrefix(tc.url, "http://"), "/")[0]
				}
				token := "X-Token: <<PLAIN>>"
				if tc.bare {
					token = "X-Token: none"
				}
				c.send(rawReq("GET "+tc.url+" HTTP/1.1", "Host: "+host, token))
				c.expect(http.MethodGet, tc.status, tc.reason)
				w.assertHits(t, before, nil)
				c.send(rawReq("GET http://plain.test/after HTTP/1.1", "Host: plain.test", "X-Token: <<PLAIN>>"))
				c.expect(http.MethodGet, http.StatusOK, "")
				if got := w.plain.Last(t).Header.Get("X-Token"); got != plainValue {
					t.Errorf("the plain upstream did not get the real secret after the refusal")
				}
			})
		}
	})
	t.Run("raw UTF-8 plain-HTTP host", func(t *testing.T) {
		before := w.hits()
		c := dialPlain(t, w.k)
		c.send(rawReq("GET http://pl\u0430in.test/x HTTP/1.1", "Host: pl\u0430in.test", "X-Token: <<PLAIN>>"))
		resp, body, err := c.read(http.MethodGet)
		if err == nil && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("got %d %.200s, want 400 or a closed connection", resp.StatusCode, redact(body))
		}
		w.assertHits(t, before, nil)
	})
	t.Run("trailing dot and mixed case inside a tunnel", func(t *testing.T) {
		for _, tc := range []struct{ connect, host string }{
			{"api.stripe.test.:443", "api.stripe.test."},
			{"API.Stripe.Test:443", "api.STRIPE.test."},
			{"api.stripe.test:443", "API.STRIPE.TEST:443"},
		} {
			before := w.hits()
			c := mustTunnel(t, w.k, tc.connect)
			c.send(rawReq("GET /v1/dot HTTP/1.1", "Host: "+tc.host, "Authorization: Bearer <<STRIPE>>"))
			w.expectStripeOK(t, c, "/v1/dot")
			w.assertHits(t, before, map[string]int64{"stripe": 1})
			if h := w.stripe.Last(t).Host; h != "api.stripe.test" {
				t.Errorf("%s: the upstream saw Host %q, want api.stripe.test", tc.host, h)
			}
		}
	})
	t.Run("userinfo is not forwarded", func(t *testing.T) {
		c := dialPlain(t, w.k)
		c.send(rawReq("GET http://evil.test:pw@plain.test/x HTTP/1.1", "Host: plain.test", "X-Token: <<PLAIN>>"))
		c.expect(http.MethodGet, http.StatusOK, "")
		last := w.plain.Last(t)
		if last.Host != "plain.test" || last.Header.Get("Authorization") != "" || last.Header.Get("X-Token") != plainValue {
			t.Errorf("the plain upstream got Host %q, Authorization %q and not the secret in X-Token, want plain.test and none",
				last.Host, last.Header.Get("Authorization"))
		}
	})
	t.Run("another port of the secret's host", func(t *testing.T) {
		before := w.hits()
		c := mustTunnel(t, w.k, "api.stripe.test:8443")
		c.send(rawReq("GET /v1/x HTTP/1.1", "Host: api.stripe.test:8443", "Authorization: Bearer <<STRIPE>>"))
		c.expect(http.MethodGet, http.StatusForbidden, "host_not_allowed")
		w.assertHits(t, before, nil)
		c.send(rawReq("GET /v1/x HTTP/1.1", "Host: api.stripe.test:8443")) // egress allows the port itself
		c.expect(http.MethodGet, http.StatusOK, "")
		w.assertHits(t, before, map[string]int64{"alt": 1})
	})
	t.Run("punycode look-alike", func(t *testing.T) {
		before := w.hits()
		c := mustTunnel(t, w.k, "xn--pi-7kc.stripe.test:443")
		c.send(rawReq("GET /v1/x HTTP/1.1", "Host: xn--pi-7kc.stripe.test", "Authorization: Bearer <<STRIPE>>"))
		c.expect(http.MethodGet, http.StatusForbidden, "host_not_allowed")
		w.assertHits(t, before, nil)
		c.send(rawReq("GET /v1/x HTTP/1.1", "Host: xn--pi-7kc.stripe.test"))
		c.expect(http.MethodGet, http.StatusOK, "")
		w.assertHits(t, before, map[string]int64{"evil": 1})
	})
	for _, c := range clients(t) {
		for _, host := range []string{"api.stripe.test.", "API.Stripe.TEST", "Api.Stripe.Test."} {
			t.Run(c.Name()+"/same rule and dial for "+host, func(t *testing.T) {
				before := w.hits()
				resp := c.Do(t, w.k, request{URL: "https://" + host + "/v1/charges",
					Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
				if resp.Status != http.StatusOK {
					t.Fatalf("got status %d, want 200; body: %s%s", resp.Status, resp.Body, resp.Err)
				}
				w.assertHits(t, before, map[string]int64{"stripe": 1})
				last := w.stripe.Last(t)
				if last.Host != "api.stripe.test" || last.Header.Get("Authorization") != "Bearer "+stripeValue {
					t.Errorf("the upstream got Host %q and not the real secret, want api.stripe.test", last.Host)
				}
				assertNoValueIn(t, "response", resp.Body+fmt.Sprint(resp.Header))
			})
			t.Run(c.Name()+"/evil with "+host+" spelling", func(t *testing.T) {
				before := w.hits()
				evilHost := strings.Replace(strings.ToLower(host), "api.stripe.test", "evil.test", 1)
				resp := c.Do(t, w.k, request{URL: "https://" + evilHost + "/v1/charges",
					Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
				assertRefusal(t, resp, http.StatusForbidden, "host_not_allowed", "STRIPE")
				w.assertHits(t, before, nil)
			})
		}
	}
}
