package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkCredentialKind measures one request through a keep-alive tunnel
// with a static secret and with an oauth2 secret whose token is cached:
// the difference is the added latency of a cached minted credential (the
// token lookup, the swap after the policy and the token's scrubber in the
// response chain).
func BenchmarkCredentialKind(b *testing.B) {
	up := startTestUpstream(b, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "bench-access-token-0123456789", "token_type": "Bearer", "expires_in": 3600})
			return
		}
		w.Write([]byte("ok"))
	})
	setBenchKey(b)
	b.Setenv("PROXY_BENCH_ID", "bench-client")
	tp := startTestProxy(b, up, benchKeyRules+`  GRAPH:
    kind: oauth2
    token_url: https://api.example.test/token
    client_id: env:PROXY_BENCH_ID
    client_secret: env:PROXY_BENCH_KEY
    hosts: [api.example.test]
`+benchResolve, Config{})
	c := tp.client()
	for _, name := range []string{"KEY", "GRAPH"} {
		b.Run(map[string]string{"KEY": "static", "GRAPH": "oauth2-cached"}[name], func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodGet, "https://api.example.test/v1", nil)
			req.Header.Set("Authorization", "Bearer <<"+name+">>")
			do := func() {
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "ok") {
					b.Fatalf("got %d %q", resp.StatusCode, body)
				}
			}
			do() // warm the tunnel and the token cache
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				do()
			}
		})
	}
}
