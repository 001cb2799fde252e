package inject

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNamed(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want []string
	}{
		{"none", header("Authorization", "Bearer abc", "Accept", "*/*"), nil},
		{"one", header("Authorization", "Bearer <<STRIPE>>"), []string{"STRIPE"}},
		{"sorted and unique", header("X-B", "<<B>> <<A>>", "X-A", "<<B>>"), []string{"A", "B"}},
		{"unknown names too", header("X-Key", "<<NOPE>>"), []string{"NOPE"}},
		{"inside Basic", header("Authorization", basic("user:<<BASIC_PW>>")), []string{"BASIC_PW"}},
		{"Basic with spaces", header("Authorization", "Basic   "+basic("u:<<P>>")[6:]), []string{"P"}},
		{"malformed are text", header("X-Key", "<<not a name>> <<>>"), nil},
		{"Basic elsewhere is opaque", header("X-Auth", basic("u:<<P>>")), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Named(tc.h); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNamedBounded(t *testing.T) {
	var b strings.Builder
	for i := range 2 * maxPlaceholdersPerRequest {
		b.WriteString("<<N")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(">>")
	}
	if got := Named(header("X-Many", b.String())); len(got) != maxPlaceholdersPerRequest {
		t.Errorf("got %d names, want %d", len(got), maxPlaceholdersPerRequest)
	}
	long := strings.Repeat("A", 64<<10)
	got := Named(header("Authorization", "Bearer <<"+long+">>"))
	if len(got) != 1 || len(got[0]) > maxNamedLen+len("…") || !strings.HasPrefix(long, strings.TrimSuffix(got[0], "…")) {
		t.Errorf("a 64 KiB name came back as %d names of %d bytes, want one cut to %d", len(got), len(got[0]), maxNamedLen)
	}
}

func TestNamedNoPlaceholderNoAlloc(t *testing.T) {
	h := header("Authorization", "Bearer abc", "Accept", "*/*")
	if n := testing.AllocsPerRun(100, func() { _ = Named(h) }); n != 0 {
		t.Errorf("got %v allocations, want 0", n)
	}
}
