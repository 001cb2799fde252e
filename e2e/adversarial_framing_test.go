package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// malformed stands, in framingCase.want, for a request refused as
// malformed: by keyhole with a JSON 400 bad_request, or by its parser with
// a plain-text 4xx or 5xx and a closed connection, or with just a closed
// connection. It ends the list.
const malformed = -1

// framingCase is raw request bytes and what must come of them. In raw,
// {T} is the request target's prefix, {H} the Host, {S} a header line
// carrying an allowed secret and {X} one carrying a secret that is refused
// for this host.
type framingCase struct {
	name   string
	raw    string
	want   []int    // response statuses in order; malformed ends the list
	closes bool     // then the connection closes
	paths  []string // the paths the upstream must receive, in order
	secret []bool   // per received request: must it carry the allowed secret
	http10 bool     // the responses must not be chunked (RFC 9112 §6.1)
}

func framingCases() []framingCase {
	return []framingCase{
		{name: "Content-Length and Transfer-Encoding",
			raw: "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"0\r\n\r\nGET {T}/v1/smuggled HTTP/1.1\r\nHost: {H}\r\n{X}\r\n\r\n",
			want: []int{200, 403}, paths: []string{"/v1/a"}, secret: []bool{true}},
		{name: "conflicting Content-Length",
			raw:  "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello",
			want: []int{malformed}},
		{name: "identical Content-Length twice",
			raw:  "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
			want: []int{200}, paths: []string{"/v1/a"}, secret: []bool{true}},
		{name: "Content-Length list",
			raw:  "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nContent-Length: 5, 50\r\n\r\nhello",
			want: []int{malformed}},
		{name: "signed Content-Length",
			raw:  "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nContent-Length: +5\r\n\r\nhello",
			want: []int{malformed}},
		{name: "two Transfer-Encodings",
			raw:  "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
			want: []int{malformed}},
		{name: "unknown Transfer-Encoding",
			raw:  "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
			want: []int{malformed}},
		{name: "space before the colon",
			raw:  "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
			want: []int{malformed}},
		{name: "placeholder in a chunked trailer is not swapped",
			raw:  "POST {T}/v1/a HTTP/1.1\r\nHost: {H}\r\n{S}\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: <<STRIPE>><<PLAIN>>\r\n\r\n",
			want: []int{200}, paths: []string{"/v1/a"}, secret: []bool{true}},
		{name: "obsolete line folding",
			raw:  "GET {T}/v1/fold HTTP/1.1\r\nHost: {H}\r\nX-Note: a\r\n {S}\r\n\r\n",
			want: []int{403}}, // the folded line belongs to X-Note, where the secret may not go
		{name: "bare LF line endings",
			raw:  "GET {T}/v1/lf HTTP/1.1\nHost: {H}\n{S}\n\n",
			want: []int{200}, paths: []string{"/v1/lf"}, secret: []bool{true}},
		{name: "bare CR in a header value",
			raw:  "GET {T}/v1/cr HTTP/1.1\r\nHost: {H}\r\nX-Note: a\r{S}\r\n\r\n",
			want: []int{malformed}},
		{name: "NUL in a header value",
			raw:  "GET {T}/v1/nul HTTP/1.1\r\nHost: {H}\r\n{S}\x00\r\n\r\n",
			want: []int{malformed}},
		{name: "placeholder in a header name",
			raw:  "GET {T}/v1/name HTTP/1.1\r\nHost: {H}\r\nX-<<STRIPE>>: 1\r\n\r\n",
			want: []int{malformed}},
		{name: "HTTP/1.0 closes after the response", http10: true,
			raw:  "GET {T}/v1/ten HTTP/1.0\r\nHost: {H}\r\n{S}\r\n\r\n",
			want: []int{200}, closes: true, paths: []string{"/v1/ten"}, secret: []bool{true}},
		{name: "HTTP/1.0 keep-alive",
			raw: "GET {T}/v1/ten HTTP/1.0\r\nHost: {H}\r\nConnection: keep-alive\r\n{S}\r\n\r\n" +
				"GET {T}/v1/eleven HTTP/1.1\r\nHost: {H}\r\n\r\n",
			want: []int{200, 200}, paths: []string{"/v1/ten", "/v1/eleven"}, secret: []bool{true, false}},
		// The echo of a 70 KB header is longer than keyhole scrubs whole,
		// so its length is unknown when the response starts.
		{name: "HTTP/1.0 with a response of unknown length", http10: true,
			raw:  "GET {T}/v1/ten HTTP/1.0\r\nHost: {H}\r\n{S}\r\nX-Big: {BIG}\r\n\r\n",
			want: []int{200}, closes: true, paths: []string{"/v1/ten"}, secret: []bool{true}},
		{name: "pipelined: allowed then refused",
			raw:  "GET {T}/v1/p1 HTTP/1.1\r\nHost: {H}\r\n{S}\r\n\r\nGET {T}/v1/p2 HTTP/1.1\r\nHost: {H}\r\n{X}\r\n\r\n",
			want: []int{200, 403}, paths: []string{"/v1/p1"}, secret: []bool{true}},
		{name: "pipelined: refused, allowed, then no placeholder",
			raw: "GET {T}/v1/p1 HTTP/1.1\r\nHost: {H}\r\n{X}\r\n\r\nGET {T}/v1/p2 HTTP/1.1\r\nHost: {H}\r\n{S}\r\n\r\n" +
				"GET {T}/v1/p3 HTTP/1.1\r\nHost: {H}\r\n\r\n",
			want: []int{403, 200, 200}, paths: []string{"/v1/p2", "/v1/p3"}, secret: []bool{true, false}},
		{name: "refused with Expect: 100-continue",
			raw:  "POST {T}/v1/e HTTP/1.1\r\nHost: {H}\r\n{X}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
			want: []int{403}},
	}
}

// TestFramingInTunnel sends framingCases with a raw TLS client inside a
// MITM tunnel, where goproxy parses the requests.
func TestFramingInTunnel(t *testing.T) {
	w := newAdvWorld(t)
	r := strings.NewReplacer("{T}", "", "{H}", "api.stripe.test", "{BIG}", strings.Repeat("a", 70000),
		"{S}", "Authorization: Bearer <<STRIPE>>", "{X}", "Authorization: Bearer <<GITHUB>>")
	for _, tc := range framingCases() {
		t.Run(tc.name, func(t *testing.T) {
			w.runFraming(t, tc, mustTunnel(t, w.k, "api.stripe.test:443"), r.Replace(tc.raw), w.stripe,
				func(h http.Header) bool { return h.Get("Authorization") == "Bearer "+stripeValue })
			w.assertStillServes(t)
		})
	}
}

// TestFramingPlainHTTP sends framingCases over raw TCP as plain-HTTP proxy
// requests, which net/http parses.
func TestFramingPlainHTTP(t *testing.T) {
	w := newAdvWorld(t)
	r := strings.NewReplacer("{T}", "http://plain.test", "{H}", "plain.test", "{BIG}", strings.Repeat("a", 70000),
		"{S}", "X-Token: <<PLAIN>>", "{X}", "X-Token: <<STRIPE>>")
	for _, tc := range framingCases() {
		t.Run(tc.name, func(t *testing.T) {
			w.runFraming(t, tc, dialPlain(t, w.k), r.Replace(tc.raw), w.plain,
				func(h http.Header) bool { return h.Get("X-Token") == plainValue })
			c := dialPlain(t, w.k)
			c.send(rawReq("GET http://plain.test/after HTTP/1.1", "Host: plain.test", "X-Token: <<PLAIN>>"))
			c.expect(http.MethodGet, http.StatusOK, "")
		})
	}
}

func (w *advWorld) runFraming(t *testing.T, tc framingCase, c *wire, raw string, up *upstream, carries func(http.Header) bool) {
	t.Helper()
	before, bodies := w.hits(), w.bodyCount()
	n := up.Hits()
	c.send(raw)
	for _, status := range tc.want {
		if status != malformed {
			resp, _ := c.expect(http.MethodGet, status, "")
			if tc.http10 && len(resp.TransferEncoding) > 0 {
				t.Errorf("an HTTP/1.0 request got a response with Transfer-Encoding %v", resp.TransferEncoding)
			}
			continue
		}
		resp, body, err := c.read(http.MethodGet)
		switch {
		case err != nil:
		case strings.HasPrefix(body, "{"):
			assertRefusal(t, response{Status: resp.StatusCode, Body: body}, http.StatusBadRequest, "bad_request", "")
		case resp.StatusCode >= 400:
			assertNoValueIn(t, "response", body)
			tc.closes = true
		default:
			t.Fatalf("got %d %.200s, want a refusal as malformed", resp.StatusCode, redact(body))
		}
		break
	}
	if tc.closes {
		c.expectClosed()
	}
	got := up.received(n)
	var paths []string
	for i, r := range got {
		paths = append(paths, r.URL.Path)
		if i < len(tc.secret) && carries(r.Header) != tc.secret[i] {
			t.Errorf("request %d (%s) carries the secret: %v, want %v", i, r.URL.Path, !tc.secret[i], tc.secret[i])
		}
		if i < len(tc.secret) && !tc.secret[i] {
			assertNoValueIn(t, "a header the upstream received", fmt.Sprint(r.Header))
		}
	}
	if fmt.Sprint(paths) != fmt.Sprint(tc.paths) {
		t.Errorf("the upstream received %v, want %v", paths, tc.paths)
	}
	want := map[string]int64{}
	for name, u := range w.upstreams() {
		if u == up {
			want[name] = int64(len(tc.paths))
		}
	}
	w.assertHits(t, before, want)
	for _, b := range w.bodiesSince(bodies) {
		assertNoValueIn(t, "a body or trailer the upstream received", b)
		if strings.Contains(b, "HTTP/1.1") {
			t.Errorf("a request body holds a smuggled request: %q", b)
		}
	}
}

// TestSecretWithControlCharacters configures secrets whose values hold a
// CR/LF (from a file and from the environment): they must be unavailable,
// never split a header.
func TestSecretWithControlCharacters(t *testing.T) {
	w := newAdvWorld(t)
	for _, name := range []string{"CRLF_FILE", "CRLF_ENV"} {
		t.Run(name+" in a tunnel", func(t *testing.T) {
			before := w.hits()
			c := mustTunnel(t, w.k, "api.stripe.test:443")
			c.send(rawReq("GET /v1/x HTTP/1.1", "Host: api.stripe.test", "Authorization: Bearer <<"+name+">>"))
			c.expect(http.MethodGet, http.StatusBadGateway, "secret_unavailable")
			w.assertHits(t, before, nil)
			c.send(stripeOK("/v1/next"))
			w.expectStripeOK(t, c, "/v1/next")
		})
	}
	t.Run("CRLF_FILE over plain HTTP", func(t *testing.T) {
		before := w.hits()
		c := dialPlain(t, w.k)
		c.send(rawReq("GET http://plain.test/x HTTP/1.1", "Host: plain.test", "X-Token: <<CRLF_FILE>>"))
		c.expect(http.MethodGet, http.StatusBadGateway, "secret_unavailable")
		w.assertHits(t, before, nil)
	})
	for _, u := range w.upstreams() {
		for _, r := range u.received(0) {
			if r.Header.Get("X-Injected") != "" {
				t.Errorf("an upstream received a header split out of a secret value")
			}
		}
	}
}
