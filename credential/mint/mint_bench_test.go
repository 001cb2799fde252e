package mint

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"keyhole/credential"
	"keyhole/inject"
	"keyhole/rules"
	"keyhole/scrub"
	"keyhole/secret"
)

// minterTokens lets inject.Finish ask a Minter, as the proxy does.
type minterTokens struct {
	m      *Minter
	scrubs []*scrub.Replacer
}

func (t *minterTokens) Token(ctx context.Context, sec *rules.Secret, c inject.Caller) (secret.Value, error) {
	tok, err := t.m.Token(ctx, sec, credential.Who{Agent: c.Agent})
	t.scrubs = append(t.scrubs, tok.Scrub)
	return tok.Value, err
}

// BenchmarkInjection compares the request-path work of a static secret
// (Apply) with that of a cached oauth2 token (Apply, then Finish through
// the Minter's cache, and the token's scrubber chained for the response).
func BenchmarkInjection(b *testing.B) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "bench-access-token-0123456789", "expires_in": 3600})
	}))
	defer ts.Close()
	b.Setenv("BENCH_STATIC", "sk_test_static_value_0123456789")
	b.Setenv("BENCH_ID", "client")
	set, err := rules.LoadData(filepath.Join(b.TempDir(), "k.yaml"), []byte(`secrets:
  STATIC:
    source: env:BENCH_STATIC
    hosts: [api.example.test]
  GRAPH:
    kind: oauth2
    token_url: `+ts.URL+`/token
    client_id: env:BENCH_ID
    client_secret: env:BENCH_STATIC
    hosts: [api.example.test]
`))
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(Config{Client: ts.Client()})
	if err != nil {
		b.Fatal(err)
	}
	global := scrub.Compile([]scrub.Secret{{Name: "STATIC", Value: secret.FromString("sk_test_static_value_0123456789")}})
	tgt := inject.Target{Scheme: "https", Host: "api.example.test", Port: 443, Method: "GET", Path: "/v1", EscapedPath: "/v1"}
	caller := inject.Caller{Agent: rules.AnonymousAgent}
	for _, name := range []string{"STATIC", "GRAPH"} {
		b.Run(strings.ToLower(name), func(b *testing.B) {
			h := http.Header{"Authorization": {"Bearer <<" + name + ">>"}, "Accept": {"*/*"}}
			tokens := &minterTokens{m: m}
			b.ReportAllocs()
			for range b.N {
				res, ref := inject.Apply(set, caller, tgt, h)
				if ref != nil {
					b.Fatal(ref)
				}
				if res.Minted != nil {
					tokens.scrubs = tokens.scrubs[:0]
					if ref := inject.Finish(context.Background(), set, caller, tgt, &res, tokens); ref != nil {
						b.Fatal(ref)
					}
					_ = scrub.Chain(append([]*scrub.Replacer{global}, tokens.scrubs...)...)
				}
				if !strings.HasPrefix(res.Header.Get("Authorization"), "Bearer ") || strings.Contains(res.Header.Get("Authorization"), "<<") {
					b.Fatal("not swapped")
				}
			}
		})
	}
}
