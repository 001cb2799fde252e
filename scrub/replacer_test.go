package scrub

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"keyhole/secret"
)

// engines builds the same pattern set once per search strategy, so that
// every case runs on the shift table and, where they apply, on the sieve
// (whatever the shortest pattern) and on bytes.Index.
func engines(find, repl []string) map[string]*Replacer {
	out := map[string]*Replacer{"wumanber": {stages: []*stage{forceWuManber(find, repl)}}}
	if s := forceSieve(find, repl); s != nil {
		out["sieve"] = &Replacer{stages: []*stage{s}}
	}
	if s := newStage(find, repl); len(find) <= maxSmall && s.maxLen <= maxSmallLen {
		s.wm = nil
		out["index"] = &Replacer{stages: []*stage{s}}
	}
	return out
}

// forceWuManber returns a stage that searches with the shift table alone.
func forceWuManber(find, repl []string) *stage {
	s := newStage(find, repl)
	s.wm = newWuManber(find)
	s.wm.sieve = nil
	return s
}

// forceSieve returns a stage that searches with the sieve, or nil when a
// pattern is shorter than a gram.
func forceSieve(find, repl []string) *stage {
	s := newStage(find, repl)
	s.wm = newWuManber(find)
	if s.wm.m < gramLen {
		return nil
	}
	s.wm.sieve = newSieve(find, s.wm.m)
	return s
}

var replaceTests = []struct {
	name      string
	find      []string
	repl      []string
	in        string
	want      string
	wantCount int
}{
	{"empty input", []string{"abc"}, []string{"X"}, "", "", 0},
	{"no match", []string{"abc"}, []string{"X"}, "hello world", "hello world", 0},
	{"whole input", []string{"abc"}, []string{"X"}, "abc", "X", 1},
	{"at start", []string{"abc"}, []string{"X"}, "abc--", "X--", 1},
	{"at end", []string{"abc"}, []string{"X"}, "--abc", "--X", 1},
	{"adjacent", []string{"abc"}, []string{"X"}, "abcabcabc", "XXX", 3},
	{"self overlap", []string{"aa"}, []string{"X"}, "aaaaa", "XXa", 2},
	{"prefix of another", []string{"abc", "abcdef"}, []string{"S", "L"}, "abcdefabcdeabc", "LSdeS", 3},
	{"overlap leftmost wins", []string{"abcd", "cdef"}, []string{"1", "2"}, "abcdef", "1ef", 1},
	{"overlap later start", []string{"cdef", "abcd"}, []string{"2", "1"}, "xbcdefabcd", "xb21", 2},
	{"nested inside longer", []string{"bc", "abcd"}, []string{"S", "L"}, "abcd abc bc", "L aS S", 3},
	{"replacement not rescanned", []string{"k1", "<<B>>"}, []string{"<<B>>", "never"}, "k1 k1", "<<B>> <<B>>", 2},
	{"placeholder in value", []string{"v<<A>>v", "v"}, []string{"<<A>>", "<<B>>"}, "v<<A>>v v", "<<A>> <<B>>", 2},
	{"growing replacement", []string{"x"}, []string{"<<LONG_NAME>>"}, "axbxc", "a<<LONG_NAME>>b<<LONG_NAME>>c", 2},
	{"empty replacement", []string{"secret"}, []string{""}, "a secret b", "a  b", 1},
	{"one byte patterns", []string{"a", "b"}, []string{"1", "2"}, "abcab", "12c12", 4},
	{"binary bytes", []string{"\x00\xff\x00"}, []string{"Z"}, "\x00\x00\xff\x00\xff", "\x00Z\xff", 1},
	{
		"many patterns",
		[]string{"alpha1", "bravo22", "charlie333", "delta4444", "echo55555", "foxtrot6"},
		[]string{"A", "B", "C", "D", "E", "F"},
		"xx alpha1 bravo22charlie333 delta444 echo55555foxtrot6",
		"xx A BC delta444 EF",
		5,
	},
	{
		"long patterns",
		[]string{strings.Repeat("q", 100) + "1", strings.Repeat("q", 100) + "2"},
		[]string{"<<ONE>>", "<<TWO>>"},
		strings.Repeat("q", 150) + "2" + strings.Repeat("q", 99) + "1",
		strings.Repeat("q", 50) + "<<TWO>>" + strings.Repeat("q", 99) + "1",
		1,
	},
}

func TestReplace(t *testing.T) {
	for _, tc := range replaceTests {
		for engine, r := range engines(tc.find, tc.repl) {
			t.Run(tc.name+"/"+engine, func(t *testing.T) {
				got, n := r.Replace(nil, []byte(tc.in))
				if string(got) != tc.want || n != tc.wantCount {
					t.Errorf("got %s, %d, want %q, %d", redact(string(got), tc.find...), n, tc.want, tc.wantCount)
				}
				ref, _ := naive(tc.find, tc.repl, []byte(tc.in))
				if string(ref) != tc.want {
					t.Errorf("reference: got %s, want %q", redact(string(ref), tc.find...), tc.want)
				}
				s, n := r.ReplaceString(tc.in)
				if s != tc.want || n != tc.wantCount {
					t.Errorf("ReplaceString: got %s, %d, want %q, %d", redact(s, tc.find...), n, tc.want, tc.wantCount)
				}
			})
		}
	}
}

// TestReplaceAppends checks that Replace appends to dst.
func TestReplaceAppends(t *testing.T) {
	r := NewPairs([]Pair{{"b", "B"}})
	got, n := r.Replace([]byte("pre:"), []byte("abc"))
	if string(got) != "pre:aBc" || n != 1 {
		t.Errorf("got %q, %d, want %q, %d", got, n, "pre:aBc", 1)
	}
}

func TestCompile(t *testing.T) {
	secrets := []Secret{
		{Name: "EMPTY", Value: secret.FromString("")},
		{Name: "AWS", Value: secret.FromString("wJal/rXU+tnFE")},
		{Name: "PW", Value: secret.FromString(`p<a"ss`)},
		{Name: "DUP", Value: secret.FromString("wJal/rXU+tnFE")},
	}
	r := Compile(secrets)
	// Literal: AWS raw, 2 query and 2 path escapes, 3 base64 alignments
	// (the URL alphabet gives the same); PW raw, 2 JSON and 2 percent
	// forms. Escapes: both raw values and the 3 base64 forms. Wrapped:
	// the 3 base64 forms.
	if got, want := r.Len(), 8+5+5+3; got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"raw", "k=wJal/rXU+tnFE;", "k=<<AWS>>;"},
		{"query escaped", "k=wJal%2FrXU%2BtnFE&", "k=<<AWS>>&"},
		{"query escaped lower", "k=wJal%2frXU%2btnFE&", "k=<<AWS>>&"},
		{"path escaped", "/wJal%2FrXU+tnFE/", "/<<AWS>>/"},
		{"json html escaped", `{"p":"p\u003ca\"ss"}`, `{"p":"<<PW>>"}`},
		{"json plain", `{"p":"p<a\"ss"}`, `{"p":"<<PW>>"}`},
		{"raw inside json", `p<a"ss`, `<<PW>>`},
		{"percent", "p%3Ca%22ss", "<<PW>>"},
	}
	find, _ := patterns(t, r)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, n := r.ReplaceString(tc.in)
			if got != tc.want || n != 1 {
				t.Errorf("got %s, %d, want %q, 1", redact(got, find...), n, tc.want)
			}
		})
	}
}

func TestNilAndEmpty(t *testing.T) {
	for name, r := range map[string]*Replacer{"nil": nil, "empty": Compile(nil), "empty pairs": NewPairs([]Pair{{"", "x"}})} {
		t.Run(name, func(t *testing.T) {
			if got := r.Len(); got != 0 {
				t.Errorf("Len: got %d, want 0", got)
			}
			got, n := r.Replace(nil, []byte("abc"))
			if string(got) != "abc" || n != 0 {
				t.Errorf("got %q, %d, want %q, 0", got, n, "abc")
			}
			out, err := readAllSized(r.NewReader(strings.NewReader("abc")), 2)
			if string(out) != "abc" || err != nil {
				t.Errorf("reader: got %q, %v, want %q, nil", out, err, "abc")
			}
		})
	}
}

func TestChain(t *testing.T) {
	const pw = "correct-horse-battery"
	global := Compile([]Secret{{Name: "PW", Value: secret.FromString(pw)}})
	sent := base64.StdEncoding.EncodeToString([]byte("u:" + pw))
	agent := base64.StdEncoding.EncodeToString([]byte("u:<<PW>>"))
	pairs := NewPairs([]Pair{{Find: sent, Replace: agent}})
	in := "auth=Basic " + sent + " pw=" + pw + " b64=" + base64.StdEncoding.EncodeToString([]byte("x"+pw))
	want := "auth=Basic " + agent + " pw=<<PW>> b64=eG<<PW>>Q=="
	// The pairs run first whatever the order of the arguments.
	for name, r := range map[string]*Replacer{"pairs first": Chain(pairs, nil, global), "global first": Chain(global, pairs)} {
		t.Run(name, func(t *testing.T) {
			if got, want := r.Len(), 1+global.Len(); got != want {
				t.Errorf("Len: got %d, want %d", got, want)
			}
			got, n := r.ReplaceString(in)
			if got != want || n != 3 {
				t.Errorf("got %s, %d, want %q, 3", redact(got, pw, sent), n, want)
			}
			for size := 1; size <= len(in); size++ {
				rd := r.NewReader(&chunkReader{data: []byte(in), sizes: []int{size}})
				out, err := readAllSized(rd, 7)
				if string(out) != want || err != nil || rd.Count() != 3 {
					t.Errorf("chunks of %d: got %s, %v, count %d, want %q, nil, 3", size, redact(string(out), pw, sent), err, rd.Count(), want)
				}
			}
		})
	}
}

func TestReplaceStringNoAlloc(t *testing.T) {
	r := Compile([]Secret{
		{Name: "A", Value: secret.FromString("sk_live_0123456789abcdef")},
		{Name: "B", Value: secret.FromString("ghp_0123456789abcdefABCDEF")},
	})
	in := strings.Repeat("nothing to see here ", 20)
	if n := testing.AllocsPerRun(100, func() { r.ReplaceString(in) }); n != 0 {
		t.Errorf("got %v allocations, want 0", n)
	}
	small := NewPairs([]Pair{{"abc", "x"}})
	if n := testing.AllocsPerRun(100, func() { small.ReplaceString(in) }); n != 0 {
		t.Errorf("pairs: got %v allocations, want 0", n)
	}
}

func TestReplaceMatchesReference(t *testing.T) {
	// Patterns that share prefixes and overlap, on input made of their
	// pieces, so that many candidate positions are near misses.
	find := []string{"ab", "abab", "aba", "bab", "abba", "b\x00b", "\x00", "ba\x00ab"}
	repl := []string{"1", "22", "333", "4", "5", "6", "<<7>>", "8"}
	alphabet := []byte("ab\x00")
	for n := 0; n < 4000; n++ {
		in := make([]byte, n%23)
		x := n
		for i := range in {
			in[i] = alphabet[x%3]
			x = x/3 + i*7 + n
		}
		want, _ := naive(find, repl, in)
		for engine, r := range engines(find, repl) {
			got, _ := r.Replace(nil, in)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: input of %d bytes: %s", engine, len(in), describeDiff(got, want))
			}
		}
	}
}

// TestReplaceLong plants patterns densely and sparsely in inputs long
// enough for the two-lane scan, including across the lanes' boundary.
func TestReplaceLong(t *testing.T) {
	find := []string{"0123456789abcdef", "0123456789abcdefXYZ", "fedcba9876543210", "ab", "bcd"}
	repl := []string{"<<A>>", "<<B>>", "<<C>>", "<<D>>", "<<E>>"}
	filler := []byte(strings.Repeat("the quick brown fox, ", 200))
	for _, gap := range []int{0, 1, 17, 500, 1500, 3000} {
		var in []byte
		for i := 0; len(in) < 8000; i++ {
			in = append(in, filler[:gap]...)
			in = append(in, find[i%len(find)]...)
		}
		want, _ := naive(find, repl, in)
		for name, r := range engines(find, repl) {
			for _, from := range []int{0, 3, len(in) / 2} {
				got, _ := r.Replace(nil, in[from:])
				ref, _ := naive(find, repl, in[from:])
				if !bytes.Equal(got, ref) {
					t.Fatalf("%s, gap %d, from %d: %s", name, gap, from, describeDiff(got, ref))
				}
			}
			got, _ := r.Replace(nil, in)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, gap %d: %s", name, gap, describeDiff(got, want))
			}
		}
	}
}

// TestNonASCIIFirstCharacter: a secret whose first character is not ASCII,
// in JSON as Python's json.dumps writes it (\u00e9, or a surrogate pair for
// an emoji), is one unit that decodes to several bytes; the escapes stage
// must check the pattern's first two bytes within that unit, not across
// two units.
func TestNonASCIIFirstCharacter(t *testing.T) {
	r := Compile([]Secret{
		{Name: "ACCENT", Value: secret.FromString("épée-K3y9x")},
		{Name: "EMOJI", Value: secret.FromString("🔑vault-K3y9x")},
	})
	tests := []struct{ in, want string }{
		{`{"k":"\u00e9p\u00e9e-K3y9x"}`, `{"k":"<<ACCENT>>"}`},
		{`{"k":"\u00E9p\u00e9e-K3y9x"}`, `{"k":"<<ACCENT>>"}`},
		{`{"k":"\ud83d\udd11vault-K3y9x"}`, `{"k":"<<EMOJI>>"}`},
		{`{"k":"🔑vault-K3y9x"}`, `{"k":"<<EMOJI>>"}`},
	}
	for i, tc := range tests {
		got, n := r.ReplaceString(tc.in)
		if got != tc.want || n != 1 {
			t.Errorf("spelling %d: %d replacements, want 1; %s", i, n, describeDiff([]byte(got), []byte(tc.want)))
		}
	}
}
