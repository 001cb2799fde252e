package rules

import "testing"

func TestPathGlob(t *testing.T) {
	tests := []struct {
		glob  string
		paths map[string]bool
	}{
		{"/v1/*", map[string]bool{
			"/v1/":               true,
			"/v1/charges":        true,
			"/v1/charges/ch_1/x": true, // "*" crosses "/"
			"/v1":                false,
			"/v10/charges":       false,
			"/v2/charges":        false,
			"/api/v1/charges":    false,
			"/V1/charges":        false, // case-sensitive
			"":                   false,
		}},
		{"/v1/charges", map[string]bool{
			"/v1/charges":  true,
			"/v1/charges/": false,
			"/v1/charge":   false,
		}},
		{"/v1/charges/?", map[string]bool{
			"/v1/charges/a":  true,
			"/v1/charges/":   false,
			"/v1/charges/ab": false,
			"/v1/charges//":  true, // "?" is any one byte, "/" too
		}},
		{"/*/charges", map[string]bool{
			"/v1/charges":       true,
			"/a/b/charges":      true,
			"/charges":          false,
			"/v1/charges/extra": false,
		}},
		{"/v1/*/refunds/*", map[string]bool{
			"/v1/ch_1/refunds/re_1": true,
			"/v1/ch_1/refunds/":     true,
			"/v1/ch_1/refunds":      false,
		}},
		{"*", map[string]bool{"/": true, "/anything/at/all": true, "": true}},
		{"/a*a*a*a*a*b", map[string]bool{
			"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": false,
			"/aaaaab": true,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.glob, func(t *testing.T) {
			g, err := ParsePathGlob(tc.glob)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if g.String() != tc.glob {
				t.Errorf("String: got %s, want %s", g.String(), tc.glob)
			}
			for p, want := range tc.paths {
				if got := g.Match(p); got != want {
					t.Errorf("Match(%q): got %v, want %v", p, got, want)
				}
			}
		})
	}
}

func TestParsePathGlobErrors(t *testing.T) {
	for _, glob := range []string{"", "v1/*", "**", "/v1/[ab]", "/v1/\\*", "/a b", "/a\tb", "/a#b", "/a\x7f", "/a\nb"} {
		t.Run(glob, func(t *testing.T) {
			if g, err := ParsePathGlob(glob); err == nil {
				t.Fatalf("got %v, want an error", g)
			}
		})
	}
}
