package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOversizedAndMalformed sends huge and broken requests: each is
// refused cleanly, and keyhole keeps serving.
func TestOversizedAndMalformed(t *testing.T) {
	w := newAdvWorld(t)
	pad := "X-Pad: " + strings.Repeat("a", 1017) + "\r\n" // 1 KiB a line
	// net/http's server allows MaxHeaderBytes plus 4 KiB, and keyhole's
	// bound inside tunnels (counted below TLS) 64 KiB more: send more
	// than both.
	huge := strings.Repeat(pad, 1200)
	t.Run("1 MiB of headers, plain HTTP", func(t *testing.T) {
		before := w.hits()
		c := dialPlain(t, w.k)
		c.send("GET http://plain.test/x HTTP/1.1\r\nHost: plain.test\r\nX-Token: <<PLAIN>>\r\n" + huge + "\r\n")
		resp, body, err := c.read(http.MethodGet)
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %v %.200s, want 431", err, redact(body))
		}
		c.expectClosed()
		w.assertHits(t, before, nil)
	})
	t.Run("header without end in a tunnel is bounded", func(t *testing.T) {
		before := w.hits()
		c := mustTunnel(t, w.k, "api.stripe.test:443")
		const total = 32 << 20
		wrote := make(chan error, 1)
		go func() {
			_, err := io.WriteString(c.conn, "GET /v1/x HTTP/1.1\r\nHost: api.stripe.test\r\nAuthorization: Bearer <<STRIPE>>\r\n")
			for n := 0; err == nil && n < total; n += len(pad) {
				_, err = io.WriteString(c.conn, pad)
			}
			wrote <- err
		}()
		type result struct {
			resp *http.Response
			body string
			err  error
		}
		read := make(chan result, 1)
		go func() {
			resp, body, err := c.read(http.MethodGet)
			read <- result{resp, body, err}
		}()
		var r result
		select {
		case err := <-wrote:
			if err == nil {
				t.Fatalf("keyhole read %d MiB of one request's header without refusing it", total>>20)
			}
			r = <-read
		case r = <-read:
			c.conn.Close() // unblocks the writer
			<-wrote
		}
		if r.err == nil && r.resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && r.resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("got %d %.200s, want 431, 400 or a closed connection", r.resp.StatusCode, redact(r.body))
		}
		w.assertHits(t, before, nil)
		for deadline := time.Now().Add(2 * time.Second); !strings.Contains(w.k.stderr.String(), "request header too large inside a tunnel"); {
			if time.Now().After(deadline) {
				t.Fatal("keyhole's log does not report the oversized header")
			}
			time.Sleep(20 * time.Millisecond)
		}
		w.assertStillServes(t)
	})
	t.Run("bodies past the header bound in a tunnel", func(t *testing.T) {
		before := w.hits()
		c := mustTunnel(t, w.k, "api.stripe.test:443")
		body := strings.Repeat("b", 3<<20)
		c.send(fmt.Sprintf("POST /v1/up HTTP/1.1\r\nHost: api.stripe.test\r\nAuthorization: Bearer <<STRIPE>>\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		c.expect(http.MethodPost, http.StatusOK, "")
		c.send(fmt.Sprintf("POST /v2/refused HTTP/1.1\r\nHost: api.stripe.test\r\nAuthorization: Bearer <<STRIPE>>\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		c.expect(http.MethodPost, http.StatusForbidden, "path_not_allowed")
		c.send(stripeOK("/v1/after-bodies"))
		w.expectStripeOK(t, c, "/v1/after-bodies")
		w.assertHits(t, before, map[string]int64{"stripe": 2})
		if b := w.bodiesSince(w.bodyCount() - 2); len(b[0]) < len(body) {
			t.Errorf("the upstream read %d body bytes, want %d", len(b[0]), len(body))
		}
	})
	t.Run("1 MiB of headers in a tunnel", func(t *testing.T) {
		before := w.hits()
		c := mustTunnel(t, w.k, "api.stripe.test:443")
		c.send("GET /v1/x HTTP/1.1\r\nHost: api.stripe.test\r\nAuthorization: Bearer <<STRIPE>>\r\n" + huge + "\r\n")
		// Only keyhole answers inside a tunnel: a 431 without its reason
		// header is the upstream's, which got the header.
		resp, body, err := c.read(http.MethodGet)
		if err == nil && (resp.Header.Get("X-Keyhole-Reason") == "" ||
			resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusBadRequest) {
			t.Fatalf("got %d %q %.200s, want keyhole's own 431 or 400, or a closed connection",
				resp.StatusCode, resp.Header.Get("X-Keyhole-Reason"), body)
		}
		w.assertHits(t, before, nil)
		w.assertStillServes(t)
	})
	for _, mode := range []string{"tunnel", "plain"} {
		t.Run("100k headers, "+mode, func(t *testing.T) {
			start := time.Now()
			var c *wire
			head := "GET http://plain.test/x HTTP/1.1\r\nHost: plain.test\r\nX-Token: <<PLAIN>>\r\n"
			if mode == "tunnel" {
				c = mustTunnel(t, w.k, "api.stripe.test:443")
				head = "GET /v1/x HTTP/1.1\r\nHost: api.stripe.test\r\nAuthorization: Bearer <<STRIPE>>\r\n"
			} else {
				c = dialPlain(t, w.k)
			}
			c.send(head + strings.Repeat("A: b\r\n", 100_000) + "\r\n")
			resp, body, err := c.read(http.MethodGet)
			switch {
			case err != nil: // closed: refused
			case resp.StatusCode == http.StatusOK:
				assertNoValueIn(t, "response", body)
			case resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusBadRequest:
				t.Fatalf("got %d %.200s, want 200, 431, 400 or a closed connection", resp.StatusCode, redact(body))
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("100k headers took %v", d)
			}
			w.assertStillServes(t)
		})
	}
	t.Run("garbage after CONNECT", func(t *testing.T) {
		for _, garbage := range []string{"\x00\x01\x02\x03garbage\r\n\r\n", "\x16\x03\x01\x00\x05hello", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"} {
			before := w.hits()
			c := dialPlain(t, w.k)
			c.send("CONNECT api.stripe.test:443 HTTP/1.1\r\nHost: api.stripe.test:443\r\n\r\n")
			if resp, _, err := c.read(http.MethodConnect); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("CONNECT: got %v %v", resp, err)
			}
			c.send(garbage)
			if resp, body, err := c.read(http.MethodGet); err == nil && resp.StatusCode < 400 {
				t.Fatalf("%q: got %d %.200s, want a refusal or a closed connection", garbage, resp.StatusCode, redact(body))
			}
			w.assertHits(t, before, nil)
		}
		w.assertStillServes(t)
	})
	t.Run("cleartext HTTP in a CONNECT tunnel", func(t *testing.T) {
		for host, reason := range map[string]string{"api.stripe.test": "host_mismatch", "api.stripe.test:443": "egress_denied"} {
			before := w.hits()
			c := dialPlain(t, w.k)
			c.send("CONNECT api.stripe.test:443 HTTP/1.1\r\nHost: api.stripe.test:443\r\n\r\n")
			if resp, _, err := c.read(http.MethodConnect); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("CONNECT: got %v %v", resp, err)
			}
			c.send(rawReq("GET /v1/x HTTP/1.1", "Host: "+host, "Authorization: Bearer <<STRIPE>>"))
			c.expect(http.MethodGet, http.StatusForbidden, reason)
			w.assertHits(t, before, nil)
		}
	})
	t.Run("ClientHello without a server name", func(t *testing.T) {
		c, err := openTunnel(t, w.k, "api.stripe.test:443", "")
		if err != nil {
			t.Fatalf("handshake without SNI: %v", err)
		}
		c.send(stripeOK("/v1/nosni"))
		w.expectStripeOK(t, c, "/v1/nosni")
	})
	for _, host := range []string{"expired.test", "wronghost.test", "selfsigned.test", "cleartext.test"} {
		t.Run("upstream TLS fails: "+host, func(t *testing.T) {
			before := w.hits()
			c := mustTunnel(t, w.k, host+":443")
			c.send(rawReq("GET /x HTTP/1.1", "Host: "+host, "Authorization: token <<GITHUB>>"))
			c.expect(http.MethodGet, http.StatusBadGateway, "upstream_tls")
			w.assertHits(t, before, nil)
			w.assertStillServes(t)
		})
	}
}
