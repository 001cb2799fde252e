package scrub

import (
	"slices"
	"testing"
)

func TestForms(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{"plain token", "sk_live_abc123", []string{"sk_live_abc123"}},
		{
			"slash and plus",
			"a/b+c",
			[]string{"a/b+c", "a%2Fb%2Bc", "a%2fb%2bc", "a%2Fb+c", "a%2fb+c"},
		},
		{
			"html characters",
			`p<w>&"`,
			[]string{
				`p<w>&"`,
				`p\u003cw\u003e\u0026\"`,
				`p<w>&\"`,
				"p%3Cw%3E%26%22",
				"p%3cw%3e%26%22",
				"p%3Cw%3E&%22",
				"p%3cw%3e&%22",
			},
		},
		{"space", "a b", []string{"a b", "a+b", "a%20b"}},
		{"backslash and newline", "a\\\n", []string{"a\\\n", `a\\\n`, "a%5C%0A", "a%5c%0a"}},
		{"line separator", "a\u2028", []string{"a\u2028", `a\u2028`, "a%E2%80%A8", "a%e2%80%a8"}},
		{"invalid utf-8 has no json form", "a\xff", []string{"a\xff", "a%FF", "a%ff"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := forms(tc.value); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
