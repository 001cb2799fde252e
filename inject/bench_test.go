package inject

import (
	"maps"
	"net/http"
	"testing"

	"keyhole/cputime"
)

// browserHeader is a realistic 12-header request, as an agent's HTTP client
// sends it, with auth as its Authorization value.
func browserHeader(auth string) http.Header {
	return http.Header{
		"Accept":          {"application/json, text/plain, */*"},
		"Accept-Encoding": {"gzip, deflate, br, zstd"},
		"Accept-Language": {"en-GB,en;q=0.9"},
		"Authorization":   {auth},
		"Cache-Control":   {"no-cache"},
		"Content-Length":  {"181"},
		"Content-Type":    {"application/x-www-form-urlencoded"},
		"Cookie":          {"session=9f8e7d6c5b4a; theme=dark; _ga=GA1.2.1234567890.1700000000"},
		"Idempotency-Key": {"8d3c5a9e-7b41-4f0e-9a61-2c5d7e8f9a0b"},
		"Origin":          {"https://dashboard.example.com"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"},
		"X-Request-Id":    {"req_01J9Z8Y7X6W5V4T3S2R1Q0P"},
	}
}

func BenchmarkApply(b *testing.B) {
	set := newTestSet(b)
	anon := Caller{Agent: "anonymous"}
	tests := []struct {
		name   string
		target Target
		h      http.Header
	}{
		{"no-placeholder", target(b, "POST", "https://api.stripe.com/v1/charges"), browserHeader("Bearer sk_test_not_a_placeholder")},
		{"one-bearer", target(b, "POST", "https://api.stripe.com/v1/charges"), browserHeader("Bearer <<STRIPE_LIVE>>")},
		{"basic", target(b, "GET", "https://db.example.com/"), browserHeader(basic("<<DB_USER>>:<<DB_PASS>>"))},
	}
	for _, tc := range tests {
		if len(tc.h) != 12 {
			b.Fatalf("got %d headers, want 12", len(tc.h))
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cputime.Process()
			for b.Loop() {
				if _, ref := Apply(set, anon, tc.target, tc.h); ref != nil {
					b.Fatalf("got refusal %s, want none", ref.Reason)
				}
			}
			b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestApplyNoPlaceholderAllocs holds the request path's promise: a request
// without placeholders costs no allocation.
func TestApplyNoPlaceholderAllocs(t *testing.T) {
	set := newTestSet(t)
	tgt := target(t, "POST", "https://api.stripe.com/v1/charges")
	h := browserHeader("Bearer sk_test_not_a_placeholder")
	got := testing.AllocsPerRun(100, func() { Apply(set, Caller{Agent: "anonymous"}, tgt, h) })
	if got != 0 {
		t.Errorf("got %v allocs, want 0", got)
	}
}

// TestApplyOnePlaceholderAllocs holds the cost of the usual injection: one
// placeholder in one header costs the copy of the header and three
// allocations besides (the swapped value, its header's value list and the
// list of secrets); finding and checking the placeholder costs none.
func TestApplyOnePlaceholderAllocs(t *testing.T) {
	set := newTestSet(t)
	tgt := target(t, "POST", "https://api.stripe.com/v1/charges")
	h := browserHeader("Bearer <<STRIPE_LIVE>>")
	clone := testing.AllocsPerRun(100, func() { _ = maps.Clone(h) })
	got := testing.AllocsPerRun(100, func() {
		if _, ref := Apply(set, Caller{Agent: "anonymous"}, tgt, h); ref != nil {
			t.Fatalf("got refusal %s, want none", ref.Reason)
		}
	})
	if got > clone+3 {
		t.Errorf("got %v allocs, want at most %v (the header's copy takes %v)", got, clone+3, clone)
	}
}
