package inject

import (
	"reflect"
	"strings"
	"testing"
)

func TestFindPlaceholders(t *testing.T) {
	long := strings.Repeat("A", 4096)
	many := strings.Repeat("<<A>>", 10000)
	tests := []struct {
		name string
		s    string
		want []Placeholder
	}{
		{"empty", "", nil},
		{"no brackets", "Bearer sk_live_xyz", nil},
		{"one", "<<A>>", []Placeholder{{"A", 0, 5}}},
		{"in text", "Bearer <<STRIPE_LIVE>>", []Placeholder{{"STRIPE_LIVE", 7, 22}}},
		{"inside literal brackets", "<<<<A>>>>", []Placeholder{{"A", 2, 7}}},
		{"three opening brackets", "<<<A>>", []Placeholder{{"A", 1, 6}}},
		{"adjacent", "<<A>><<B>>", []Placeholder{{"A", 0, 5}, {"B", 5, 10}}},
		{"separated", "u=<<A>>&p=<<B>>", []Placeholder{{"A", 2, 7}, {"B", 10, 15}}},
		{"repeated name", "<<A>>:<<A>>", []Placeholder{{"A", 0, 5}, {"A", 6, 11}}},
		{"digit first", "<<1A>>", nil},
		{"digits and lower case", "<<A_b9>>", []Placeholder{{"A_b9", 0, 8}}},
		{"underscore first", "<<_x>>", []Placeholder{{"_x", 0, 6}}},
		{"spaces", "<< A >>", nil},
		{"unterminated", "<<A>", nil},
		{"unterminated then one", "<<A> <<B>>", []Placeholder{{"B", 5, 10}}},
		{"opening only", "<<", nil},
		{"empty name", "<<>>", nil},
		{"dash", "<<A-B>>", nil},
		{"dot", "<<A.B>>", nil},
		{"non-ASCII", "<<Ä>>", nil},
		{"single brackets", "<A>", nil},
		{"closing first", ">><<A", nil},
		{"nested", "<<A<<B>>>>", []Placeholder{{"B", 3, 8}}},
		{"long name", "<<" + long + ">>", []Placeholder{{long, 0, len(long) + 4}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FindPlaceholders(tc.s)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("10k placeholders", func(t *testing.T) {
		got := FindPlaceholders(many)
		if len(got) != 10000 {
			t.Fatalf("got %d placeholders, want 10000", len(got))
		}
		for i, p := range got {
			if p.Name != "A" || p.Start != 5*i || p.End != 5*i+5 {
				t.Fatalf("placeholder %d: got %+v, want {A %d %d}", i, p, 5*i, 5*i+5)
			}
		}
	})
}

func TestFindPlaceholdersAllocs(t *testing.T) {
	s := "Mozilla/5.0 (X11; Linux x86_64) <not a placeholder> <<1>> <<"
	if got := testing.AllocsPerRun(100, func() { FindPlaceholders(s) }); got != 0 {
		t.Errorf("got %v allocs, want 0", got)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"A", true},
		{"STRIPE_LIVE", true},
		{"A_b9", true},
		{"_", true},
		{"_1", true},
		{"a", true},
		{strings.Repeat("Z", 1000), true},
		{"", false},
		{"1A", false},
		{"9", false},
		{"A-B", false},
		{"A B", false},
		{" A", false},
		{"A.B", false},
		{"Ä", false},
		{"<<A>>", false},
		{"A\x00", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidName(tc.name); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSwapSinglePass(t *testing.T) {
	s := "a<<X>>b<<Y>>c"
	ps := FindPlaceholders(s)
	got := swap(s, ps, valuesOf(ps, func(name string) string { return "<<" + name + name + ">>" }))
	if want := "a<<XX>>b<<YY>>c"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzFindPlaceholders checks that every placeholder found is well formed
// and where it says, that they come left to right without overlap, that no
// placeholder hides in the text between them, and that swapping each for
// itself gives s back.
func FuzzFindPlaceholders(f *testing.F) {
	for _, s := range []string{"", "<<A>>", "<<<<A>>>>", "<<A>><<B>>", "<<1A>>", "<<A_b9>>", "<< A >>", "<<A>", "<<A<<B>>>>", "x<<<_>>>y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps := FindPlaceholders(s)
		last := 0
		for i, p := range ps {
			if p.Start < last || p.End <= p.Start || p.End > len(s) {
				t.Fatalf("placeholder %d: span [%d:%d] out of order (previous ended at %d, len %d)", i, p.Start, p.End, last, len(s))
			}
			if got, want := s[p.Start:p.End], "<<"+p.Name+">>"; got != want {
				t.Fatalf("placeholder %d: got span %q, want %q", i, got, want)
			}
			if !ValidName(p.Name) {
				t.Fatalf("placeholder %d: name %q is not valid", i, p.Name)
			}
			if gap := FindPlaceholders(s[last:p.Start]); gap != nil {
				t.Fatalf("text before placeholder %d holds placeholders %v", i, gap)
			}
			last = p.End
		}
		if gap := FindPlaceholders(s[last:]); gap != nil {
			t.Fatalf("text after the last placeholder holds placeholders %v", gap)
		}
		if got := swap(s, ps, valuesOf(ps, func(name string) string { return "<<" + name + ">>" })); got != s {
			t.Fatalf("swapping each placeholder for itself: got %q, want %q", got, s)
		}
	})
}

func BenchmarkFindPlaceholders(b *testing.B) {
	inputs := []struct{ name, s string }{
		{"none", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"},
		{"bearer", "Bearer <<STRIPE_LIVE>>"},
		{"brackets", strings.Repeat("<<<1>>", 20)},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.s)))
			for b.Loop() {
				FindPlaceholders(in.s)
			}
		})
	}
}
