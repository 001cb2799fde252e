package scrub

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"keyhole/secret"
)

// TestEscapesNeighbors drives the escapes stage's neighbor check (fits,
// unitBefore) through bodies built to meet each of its cases: secrets short
// (1 to 6 bytes; under 6 a match may start and end around one escape) and
// long, spelled with escapes at their start, end and inside, next to
// other escapes that decode to pattern bytes (%XX, \c after runs of
// backslashes of either parity, \uXXXX) and close to the ends of the body
// and of the reads. Every body is checked against the naive reference,
// one-shot and streamed.
func TestEscapesNeighbors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 18))
	const alphabet = `ab/"\ %+9Zq`
	fillers := []string{`\/`, `\\`, `\\\/`, `\\\\/`, `%2F`, `%2f`, `\u002F`, `\"`, `a`, `b`, `/`, ` `, `+`, `9`, `"`, `x`, `%`, `\`, `\u00`, "\n"}
	for iter := range 3000 {
		var secrets []Secret
		var vals []string
		for i := range 1 + rng.IntN(3) {
			n := 1 + rng.IntN(6)
			if rng.IntN(2) == 0 {
				n = 7 + rng.IntN(20)
			}
			var v strings.Builder
			for range n {
				v.WriteByte(alphabet[rng.IntN(len(alphabet))])
			}
			vals = append(vals, v.String())
			secrets = append(secrets, Secret{Name: fmt.Sprintf("S%d", i), Value: secret.FromString(v.String())})
		}
		var body strings.Builder
		for range 1 + rng.IntN(12) {
			for range rng.IntN(8) {
				body.WriteString(fillers[rng.IntN(len(fillers))])
			}
			v := vals[rng.IntN(len(vals))]
			if rng.IntN(4) == 0 {
				v = v[:rng.IntN(len(v)+1)] // a cut spelling: no match
			}
			body.WriteString(escapeSpelling(v, rng))
		}
		in := []byte(body.String())
		r := Compile(secrets)
		find, repl := patterns(t, r)
		sizes := []int{1 + rng.IntN(40), 1 + rng.IntN(40), 1 + rng.IntN(40)}
		t.Run(fmt.Sprint(iter), func(t *testing.T) {
			checkStream(t, r, find, repl, in, sizes, 1+rng.IntN(64))
		})
		if t.Failed() {
			return
		}
	}
}

// TestUnitBefore: the unit that ends before a boundary, read backwards,
// or false where the bytes cannot say.
func TestUnitBefore(t *testing.T) {
	const pad = "............" // maxUnit bytes, so that k is far enough in
	tests := []struct {
		before string
		dec    byte
		n      int
		ok     bool
	}{
		{"a", 'a', 1, true},
		{"%41", 'A', 3, true},
		{"%2f", '/', 3, true},
		{`\/`, '/', 2, true},
		{`\n`, '\n', 2, true},
		{`\\\n`, '\n', 2, true},      // \\ then \n
		{`\\n`, 'n', 1, true},        // \\ then a raw n
		{`\\\\n`, 'n', 1, true},      // two \\, then n
		{`%4`, '4', 1, true},         // no escape
		{`\u0041`, 0, 0, false},      // \uXXXX: not read backwards
		{`\\\\\\\\\\n`, 0, 0, false}, // a run too long to count
		{`\`, 0, 0, false},
		{`%`, 0, 0, false},
	}
	for _, tc := range tests {
		b := []byte(pad + tc.before + "x")
		dec, n, ok := unitBefore(b, len(b)-1)
		if dec != tc.dec || n != tc.n || ok != tc.ok {
			t.Errorf("%q: got %q, %d, %v, want %q, %d, %v", tc.before, dec, n, ok, tc.dec, tc.n, tc.ok)
		}
	}
	if _, _, ok := unitBefore([]byte("abc"), 2); ok {
		t.Error("near the start of b: got ok, want false (the bytes before b are unknown)")
	}
}

// TestFitsSharpAndCautious: an escape that no pattern holds with its
// neighbors does not fit; one whose neighbors are cut short by the end of
// b, where more bytes could change them, does.
func TestFitsSharpAndCautious(t *testing.T) {
	r := Compile([]Secret{
		{Name: "K", Value: secret.FromString("q/Zq9q9Zq/qZ9")},
		// A secret with control bytes, the way JSON holds a PEM key:
		// its escapes' neighbors are escapes (\n, \t) too.
		{Name: "L", Value: secret.FromString("k1/M\nN7p/\tRr5s")},
	})
	var e *escapes
	for _, s := range r.stages {
		if m, ok := s.m.(*escapes); ok {
			e = m
		}
	}
	if e == nil {
		t.Fatal("no escapes stage")
	}
	const pad = "............"
	tests := []struct {
		name, before, esc, after string
		want                     bool
	}{
		{"a pattern's neighbors", pad + "q", `\/`, "Zq9q9" + pad, true},
		{"at a pattern's start", pad, `\u0071`, "/Zq9" + pad, true},
		{"at a pattern's end", pad + "q/qZ", `\u0039`, pad, true},
		{"no pattern's neighbors", pad + "ab", `\/`, "cd" + pad, false},
		{"after other escapes", pad + `\/v1`, `\/`, "ev" + pad, false},
		{"a gram after, none before", pad + "ab", `\/`, "Zq9" + pad, false},
		{"cut short after", pad + "ab", `\/`, "cd%5", true},
		{"a gram after, too close to the start", "ab", `\/`, "Zq9" + pad, true},
		{"an escaped newline after", pad + "k1", `\/`, `M\nN7` + pad, true},
		{"an escaped tab before", pad + `7p\/\t`, `\u0052`, "r5s" + pad, true},
		{"escapes after that fit no pattern", pad + "k1", `\/`, `M\tN7` + pad, false},
	}
	for _, tc := range tests {
		b := []byte(tc.before + tc.esc + tc.after)
		if got := e.at(b, len(tc.before)); got != tc.want {
			t.Errorf("%s: at(b, %d) = %v, want %v", tc.name, len(tc.before), got, tc.want) // b holds pieces of the secret
		}
	}
}
