package rules

import "testing"

// TestAnyCaseHeadersAndMethods: the README says header names and methods
// may be written in any case in the rules file; a rule in lower case must
// match the canonical request names.
func TestAnyCaseHeadersAndMethods(t *testing.T) {
	s, err := Parse("x.yaml", []byte("secrets:\n  A:\n    source: env:A\n    hosts: [a.example]\n    headers: [x-api-key, AUTHORIZATION]\n    methods: [get, Post]\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a := s.Secrets["A"]
	for _, h := range []string{"X-Api-Key", "Authorization", "x-api-key", "authorization"} {
		if !a.AllowsHeader(h) {
			t.Errorf("AllowsHeader(%q): got false, want true", h)
		}
	}
	if a.AllowsHeader("Cookie") {
		t.Errorf("AllowsHeader(Cookie): got true, want false")
	}
	for _, m := range []string{"GET", "POST"} {
		if !a.AllowsMethod(m) {
			t.Errorf("AllowsMethod(%q): got false, want true", m)
		}
	}
	if a.AllowsMethod("DELETE") {
		t.Errorf("AllowsMethod(DELETE): got true, want false")
	}
}
