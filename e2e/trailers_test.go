package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestTrailersInTunnel checks that the announced trailers of a chunked
// response reach a Go client through a tunnel, over HTTP/1.1 and HTTP/2,
// with a secret the upstream echoes in them turned back into its
// placeholder. Over HTTP/1.1 an unannounced trailer (which the scrubber
// never sees) is dropped.
func TestTrailersInTunnel(t *testing.T) {
	up := newUpstream(t, []string{"bodies.test"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Announced")
		io.WriteString(w, "part one;")
		w.(http.Flusher).Flush()
		io.WriteString(w, "END")
		w.Header().Set("X-Announced", r.Header.Get("Authorization"))
		if r.ProtoMajor == 1 && r.URL.Path == "/late" {
			w.Header().Set(http.TrailerPrefix+"X-Late", "late "+r.Header.Get("Authorization"))
		}
	}))
	k := startKeyhole(t, fmt.Sprintf(closingRules, up.Addr()))
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1.1", true: "h2"}[h2], func(t *testing.T) {
			c := k.GoClient(t, "", "")
			c.Transport.(*http.Transport).ForceAttemptHTTP2 = h2
			req, _ := http.NewRequest(http.MethodGet, "https://bodies.test/"+map[bool]string{false: "late", true: "t"}[h2], nil)
			req.Header.Set("Authorization", "Bearer <<STRIPE>>")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != "part one;END" {
				t.Fatalf("got %d bytes, %v; want the whole body", len(b), err)
			}
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Errorf("the tunnel spoke %s, want HTTP/%d", resp.Proto, want)
			}
			if strings.Contains(fmt.Sprint(resp.Trailer), stripeValue) {
				t.Fatal("a trailer carried the secret to the client")
			}
			if got := resp.Trailer.Get("X-Announced"); got != "Bearer <<STRIPE>>" {
				t.Errorf("trailer X-Announced: got %q, want the placeholder back", got)
			}
		})
	}
}
