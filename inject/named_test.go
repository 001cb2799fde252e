package inject

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestNamed(t *testing.T) {
	set := newTestSet(t)
	tests := []struct {
		name string
		h    http.Header
		want []string
	}{
		{"none", header("Authorization", "Bearer abc", "Accept", "*/*"), nil},
		{"one", header("Authorization", "Bearer <<STRIPE_LIVE>>"), []string{"STRIPE_LIVE"}},
		{"sorted and unique", header("X-B", "<<GITHUB>> <<DB_PASS>>", "X-A", "<<GITHUB>>"), []string{"DB_PASS", "GITHUB"}},
		{"unknown names too", header("X-Key", "<<NOPE>>"), []string{"NOPE"}},
		{"inside Basic", header("Authorization", basic("user:<<DB_PASS>>")), []string{"DB_PASS"}},
		{"Basic with spaces", header("Authorization", "Basic   "+basic("u:<<P>>")[6:]), []string{"P"}},
		{"malformed are text", header("X-Key", "<<not a name>> <<>>"), nil},
		{"Basic elsewhere is opaque", header("X-Auth", basic("u:<<P>>")), nil},
		{"a long unknown name is left out", header("X-Key", "<<"+strings.Repeat("A", maxUnknownNameLen+1)+">> <<OPENAI>>"), []string{"OPENAI"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Named(set, tc.h); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNamedBounded: made-up names are bounded, and cannot push a real
// secret's name out of the record.
func TestNamedBounded(t *testing.T) {
	set := newTestSet(t)
	var b strings.Builder
	for i := range 2 * maxPlaceholdersPerRequest {
		fmt.Fprintf(&b, "<<A%04d>>", i)
	}
	b.WriteString("<<STRIPE_LIVE>>")
	got := Named(set, header("X-Many", b.String(), "X-More", b.String()))
	if len(got) != maxUnknownNamed+1 || !slices.Contains(got, "STRIPE_LIVE") {
		t.Errorf("got %d names (STRIPE_LIVE among them: %v), want %d with STRIPE_LIVE", len(got), slices.Contains(got, "STRIPE_LIVE"), maxUnknownNamed+1)
	}
}

func TestNamedNoPlaceholderNoAlloc(t *testing.T) {
	set := newTestSet(t)
	h := header("Authorization", "Bearer abc", "Accept", "*/*")
	if n := testing.AllocsPerRun(100, func() { _ = Named(set, h) }); n != 0 {
		t.Errorf("got %v allocations, want 0", n)
	}
}

// FuzzNamed checks that Named never panics, returns sorted unique names
// that each occur in the header as a placeholder (or inside a Basic
// credential), and agrees with Apply: an allowed request injected exactly
// the secrets it named.
func FuzzNamed(f *testing.F) {
	f.Add("Authorization", "Bearer <<STRIPE_LIVE>>", "X-B", "<<GITHUB>> <<NOPE>>", uint8(0))
	f.Add("Authorization", basic("u:<<DB_PASS>>"), "X-A", "<<<<A>>>>", uint8(5))
	f.Add("authorization", "Basic <<X>>", "X-Api-Key", "<<OPENAI>>", uint8(3))
	set := newTestSet(f)
	f.Fuzz(func(t *testing.T, name1, value1, name2, value2 string, host uint8) {
		h := http.Header{}
		h[name1] = append(h[name1], value1)
		h[name2] = append(h[name2], value2)
		names := Named(set, h)
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("got %q, want sorted unique names", names)
		}
		all := value1 + "\n" + value2
		for _, v := range []string{value1, value2} {
			if dec, ok := decodeBasic(v); ok {
				all += "\n" + dec
			}
		}
		for _, n := range names {
			if !strings.Contains(all, "<<"+n+">>") {
				t.Fatalf("named %q, which the header does not hold", n)
			}
		}
		tgt := Target{Scheme: "https", Host: fuzzHosts[int(host)%len(fuzzHosts)], Port: 443, Method: "GET", Path: "/", EscapedPath: "/"}
		res, ref := Apply(set, Caller{Agent: "anonymous"}, tgt, h)
		if ref == nil && !slices.Equal(res.Secrets, names) {
			t.Fatalf("allowed request injected %q but named %q", res.Secrets, names)
		}
	})
}
