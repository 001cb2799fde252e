package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// rawReply hijacks the connection and writes reply, in which "KEY" stands
// for the value the request's Authorization header carried, or for the
// Stripe value itself when the request carried none: an upstream that
// stored the value earlier returns it to a request without a placeholder.
func rawReply(reply string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if key == "" {
			key = stripeValue
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString(strings.ReplaceAll(reply, "KEY", key))
		brw.Flush()
	}
}

// leakHandler answers with the value in the places net/http does not
// scrub by itself: the reason phrase, header and trailer names, and
// bodies keyhole cannot decode.
func leakHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/status", rawReply("HTTP/1.1 401 KEY\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"))
	mux.Handle("/names", rawReply("HTTP/1.1 200 OK\r\nX-Leak-KEY: 1\r\nTrailer: X-T-KEY, X-Fine\r\n"+
		"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-T-KEY: 1\r\nX-Fine: KEY\r\n\r\n"))
	mux.Handle("/unknown", rawReply("HTTP/1.1 200 OK\r\nContent-Encoding: x-unknown\r\nConnection: close\r\n\r\nstored: KEY"))
	mux.Handle("/ws-ext", rawReply("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: x-unseen\r\n\r\n"))
	return mux
}

func newLeakWorld(t *testing.T) *keyhole {
	t.Helper()
	up := newUpstream(t, []string{"api.stripe.test"}, leakHandler())
	plain := newPlainUpstream(t, leakHandler())
	return startKeyhole(t, fmt.Sprintf(`
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test, plain.test]
    allow_plaintext: true
resolve:
  api.stripe.test: %s
  plain.test: %s
`, up.Addr(), plain.Addr()))
}

// leakURLs are the two paths to an upstream: an intercepted tunnel and
// plain HTTP.
var leakURLs = []string{"https://api.stripe.test", "http://plain.test"}

// rawLeakGet sends a GET through keyhole with the Go client and returns
// the response with its status line, headers, body and trailers.
func rawLeakGet(t *testing.T, k *keyhole, url string, placeholder bool) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if placeholder {
		req.Header.Set("Authorization", "Bearer <<STRIPE>>")
	}
	resp, err := k.GoClient(t, "", "").Do(req)
	if err != nil {
		t.Fatalf("go client: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, resp.Status + "\n" + fmt.Sprint(resp.Header) + "\n" + string(b) + "\n" + fmt.Sprint(resp.Trailer)
}

// TestScrubsStatusLine checks that an upstream's reason phrase that echoes
// the value is replaced by the standard text.
func TestScrubsStatusLine(t *testing.T) {
	k := newLeakWorld(t)
	for _, u := range leakURLs {
		for _, ph := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/placeholder=%v", u, ph), func(t *testing.T) {
				resp, all := rawLeakGet(t, k, u+"/status", ph)
				if resp.Status != "401 Unauthorized" {
					t.Errorf("got status %q, want %q", strings.ReplaceAll(resp.Status, stripeValue, "[secret]"), "401 Unauthorized")
				}
				assertNoSecretIn(t, "the response", all)
			})
		}
	}
}

// TestScrubsHeaderNames checks that header and trailer names that hold the
// value, in any case, never reach the agent, and that the other fields do.
func TestScrubsHeaderNames(t *testing.T) {
	k := newLeakWorld(t)
	lower := strings.ToLower(stripeValue)
	for _, u := range leakURLs {
		t.Run(u, func(t *testing.T) {
			resp, all := rawLeakGet(t, k, u+"/names", true)
			if strings.Contains(strings.ToLower(all), lower) {
				t.Errorf("the response holds the secret in a name (case ignored)")
			}
			if resp.StatusCode != 200 {
				t.Errorf("got status %d, want 200", resp.StatusCode)
			}
		})
	}
}

// TestRefusesUnscrubbable checks that a body keyhole cannot decode is
// refused also when the request carried no placeholder: the upstream may
// return a value it stored earlier.
func TestRefusesUnscrubbable(t *testing.T) {
	k := newLeakWorld(t)
	for _, u := range leakURLs {
		for _, ph := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/encoding/placeholder=%v", u, ph), func(t *testing.T) {
				h := [][2]string{}
				if ph {
					h = append(h, [2]string{"Authorization", "Bearer <<STRIPE>>"})
				}
				resp := goClient{}.Do(t, k, request{URL: u + "/unknown", Header: h})
				assertRefusal(t, resp, 502, "unscrubbable_encoding", "")
				assertNoSecretIn(t, "the response", resp.Body)
			})
			t.Run(fmt.Sprintf("%s/websocket extension/placeholder=%v", u, ph), func(t *testing.T) {
				h := [][2]string{{"Connection", "Upgrade"}, {"Upgrade", "websocket"},
					{"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}}
				if ph {
					h = append(h, [2]string{"Authorization", "Bearer <<STRIPE>>"})
				}
				resp := goClient{}.Do(t, k, request{URL: u + "/ws-ext", Header: h})
				assertRefusal(t, resp, 502, "unscrubbable_encoding", "")
			})
		}
	}
}
