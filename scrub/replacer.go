package scrub

import (
	"unsafe"

	"keyhole/secret"
)

// Secret is one credential to scrub: every form of Value in a response
// becomes the placeholder <<Name>>.
type Secret struct {
	// Name is the secret's name in the rules, as in <<Name>>.
	Name string
	// Value is the real credential. An empty Value is skipped.
	Value secret.Value
}

// Pair is a literal find-and-replace pair, used for swaps known only when a
// request is made.
type Pair struct {
	// Find is the byte string to look for. An empty Find is skipped.
	Find string
	// Replace is what each occurrence of Find becomes.
	Replace string
}

// Replacer replaces a fixed set of patterns, leftmost-longest, in one pass.
// It is immutable and safe for concurrent use. A nil *Replacer, like one
// built from no patterns, replaces nothing.
type Replacer struct {
	// stages run in order, each over the previous one's output; Compile
	// and NewPairs make at most one, Chain concatenates them.
	stages []*stage
}

// Compile returns a Replacer for secrets. Each secret's raw value, its JSON
// string escapes (with and without the \u003c-style HTML escapes) and its
// percent-encodings (url.QueryEscape and url.PathEscape, with upper- and
// lower-case hex) are all replaced by <<Name>>. So is, for values of at
// least 12 bytes, its standard or URL-safe base64 encoding inside larger
// base64 text, at each of the three byte alignments: the characters that
// the value alone determines become <<Name>>, which breaks the surrounding
// base64 but leaves at most a few bits of the value in the characters at
// either end. Secrets with an empty value are skipped. When two secrets
// share a form, the first in secrets wins. Compile is meant to run once per
// rules load, not per request.
func Compile(secrets []Secret) *Replacer {
	var find, repl []string
	eachForm(secrets, func(placeholder, f string) {
		find = append(find, f)
		repl = append(repl, placeholder)
	})
	return newReplacer(find, repl, false)
}

// eachForm calls fn with every distinct form of every secret with a value,
// and its placeholder; a form shared by two secrets goes to the first.
func eachForm(secrets []Secret, fn func(placeholder, form string)) {
	seen := make(map[string]bool)
	for _, s := range secrets {
		if s.Value.IsZero() {
			continue
		}
		placeholder := "<<" + s.Name + ">>"
		for _, f := range forms(s.Value.Reveal()) {
			if !seen[f] {
				seen[f] = true
				fn(placeholder, f)
			}
		}
	}
}

// NewPairs returns a Replacer for literal pairs. Pairs with an empty Find
// are skipped; when two pairs share a Find, the first wins. A handful of
// pairs is cheap to build, so NewPairs suits per-request swaps.
func NewPairs(pairs []Pair) *Replacer {
	var find, repl []string
	seen := make(map[string]bool, len(pairs))
	for _, p := range pairs {
		if p.Find == "" || seen[p.Find] {
			continue
		}
		seen[p.Find] = true
		find = append(find, p.Find)
		repl = append(repl, p.Replace)
	}
	return newReplacer(find, repl, true)
}

func newReplacer(find, repl []string, literal bool) *Replacer {
	if len(find) == 0 {
		return &Replacer{}
	}
	s := newStage(find, repl)
	s.literal = literal
	return &Replacer{stages: []*stage{s}}
}

// Chain returns a Replacer that applies the replacers rs one after the
// other, each over the output of the one before; nil elements are skipped.
// Literal pairs (from NewPairs) run first, before compiled secrets (from
// Compile), each kind in the order given: keyhole chains its global
// Replacer with a per-request NewPairs that swaps the exact base64
// credential it sent in Authorization: Basic back to the agent's, and the
// global one would otherwise replace the secret's base64 form inside that
// credential before the swap could find it. The result shares the compiled
// state of rs, so chaining costs no automaton.
func Chain(rs ...*Replacer) *Replacer {
	var pairs, compiled []*stage
	for _, r := range rs {
		if r == nil {
			continue
		}
		for _, s := range r.stages {
			if s.literal {
				pairs = append(pairs, s)
			} else {
				compiled = append(compiled, s)
			}
		}
	}
	return &Replacer{stages: append(pairs, compiled...)}
}

// Len returns the number of patterns r replaces, summed over chained
// replacers. Zero means r leaves every input unchanged.
func (r *Replacer) Len() int {
	if r == nil {
		return 0
	}
	n := 0
	for _, s := range r.stages {
		n += len(s.find)
	}
	return n
}

// Replace appends to dst the result of replacing every pattern in src and
// returns it with the number of replacements made. dst and src must not
// overlap.
func (r *Replacer) Replace(dst, src []byte) ([]byte, int) {
	if r == nil || len(r.stages) == 0 {
		return append(dst, src...), 0
	}
	total := 0
	for i, s := range r.stages {
		if i == len(r.stages)-1 {
			var n int
			dst, _, n = s.run(dst, src, true)
			return dst, total + n
		}
		var n int
		src, _, n = s.run(nil, src, true)
		total += n
	}
	return dst, total
}

// ReplaceString returns s with every pattern replaced, and the number of
// replacements made. It does not allocate when nothing matches.
func (r *Replacer) ReplaceString(s string) (string, int) {
	if r == nil || len(r.stages) == 0 {
		return s, 0
	}
	// The engine only reads its input, so s may be viewed as bytes
	// without a copy.
	out, n := r.replaceIfAny(unsafe.Slice(unsafe.StringData(s), len(s)))
	if n == 0 {
		return s, 0
	}
	return string(out), n
}

// replaceIfAny returns src itself when no pattern occurs in it, and else a
// new slice with every pattern replaced, with the number of replacements.
func (r *Replacer) replaceIfAny(src []byte) ([]byte, int) {
	if r == nil {
		return src, 0
	}
	for i, st := range r.stages {
		if at, _ := st.next(src, 0, &cursor{}); at < 0 {
			continue
		}
		return (&Replacer{stages: r.stages[i:]}).Replace(nil, src)
	}
	return src, 0
}
