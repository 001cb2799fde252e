package scrub

import (
	"encoding/base64"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestForms(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{"plain token", "sk_live_abc", []string{"sk_live_abc"}},
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

func TestBase64Inner(t *testing.T) {
	tests := []struct {
		name  string
		value string
		align int
		want  string
	}{
		// base64("sk_live_0123") = c2tfbGl2ZV8wMTIz
		{"aligned", "sk_live_0123", 0, "c2tfbGl2ZV8wMTIz"},
		// base64("\x00sk_live_0123") = AHNrX2xpdmVfMDEyMw: the first 2
		// and the last 2 characters mix in bits of unknown bytes.
		{"one byte before", "sk_live_0123", 1, "NrX2xpdmVfMDEyM"},
		// base64("\x00\x00sk_live_0123") = AABza19saXZlXzAxMjM: the first
		// 3 and the last 1.
		{"two bytes before", "sk_live_0123", 2, "za19saXZlXzAxMj"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := base64Inner(base64.RawStdEncoding, tc.value, tc.align); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBase64FormsInsideText checks that for any surrounding bytes, the
// base64 encoding of a text that holds a secret holds one of its forms.
func TestBase64FormsInsideText(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		v := randString(rng, alnum+"+/=_-~!", minBase64Secret+i%30)
		pre := randString(rng, alnum, rng.IntN(10))
		post := randString(rng, alnum, rng.IntN(10))
		fs := forms(v)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			text := enc.EncodeToString([]byte(pre + v + post))
			found := false
			for _, f := range fs {
				found = found || strings.Contains(text, f)
			}
			if !found {
				t.Fatalf("value of %d bytes after %d bytes: no form found in its encoding", len(v), len(pre))
			}
		}
	}
}
