package rules

import (
	"fmt"
	"strings"
	"testing"
)

// benchSet is a rules file of realistic size: 20 secrets, 10 allow and
// 5 deny entries.
func benchSet(b *testing.B) *Set {
	b.Helper()
	var y strings.Builder
	y.WriteString("secrets:\n")
	for i := range 20 {
		fmt.Fprintf(&y, "  S%d:\n    source: env:KEYHOLE_BENCH\n    hosts: [api%d.example.com, \"*.svc%d.example.net\"]\n", i, i, i)
		fmt.Fprintf(&y, "    headers: [Authorization, X-Api-Key]\n    methods: [GET, POST, DELETE]\n    paths: [\"/v1/*\", \"/v2/charges/*\"]\n")
	}
	y.WriteString("egress:\n  allow: [")
	for i := range 10 {
		fmt.Fprintf(&y, "\"*.allow%d.example.org\", ", i)
	}
	y.WriteString("]\n  deny: [")
	for i := range 5 {
		fmt.Fprintf(&y, "\"*.deny%d.example.org\", ", i)
	}
	y.WriteString("]\n")
	return mustParse(b, y.String())
}

// BenchmarkCheckEgress measures the worst case: a host that no entry names,
// which is compared against every deny, allow and secret pattern.
func BenchmarkCheckEgress(b *testing.B) {
	s := benchSet(b)
	b.ReportAllocs()
	for b.Loop() {
		if s.CheckEgress("unnamed.example.io", 443, 443) != EgressAllowed {
			b.Fatal("unexpected verdict")
		}
	}
}

// BenchmarkSecretAllows measures the per-placeholder rule match of the
// request path: host, header, method and path.
func BenchmarkSecretAllows(b *testing.B) {
	sec := benchSet(b).Secrets["S7"]
	b.ReportAllocs()
	for b.Loop() {
		if !sec.AllowsHost("x.svc7.example.net", 443, 443) || !sec.AllowsHeader("X-Api-Key") ||
			!sec.AllowsMethod("DELETE") || !sec.AllowsPath("/v2/charges/ch_123/refunds") {
			b.Fatal("unexpected refusal")
		}
	}
}

// BenchmarkParse measures loading the same file, for reload cost.
func BenchmarkParse(b *testing.B) {
	var y strings.Builder
	for i := range 20 {
		fmt.Fprintf(&y, "  S%d:\n    source: env:KEYHOLE_BENCH\n    hosts: [api%d.example.com]\n    paths: [\"/v1/*\"]\n", i, i)
	}
	data := []byte("secrets:\n" + y.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
