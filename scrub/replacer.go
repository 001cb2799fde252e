package scrub

import (
	"slices"
	"sync"
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
	// names finds the lowered forms of the secrets in a lowered header
	// name; nil for literal pairs, which are not matched in names.
	names *Replacer
}

// Compile returns a Replacer for secrets. Each secret's value is replaced
// by <<Name>> in every spelling a JSON or URL decoder reads back as the
// value: each character raw, percent-encoded (either hex case, + for a
// space) or JSON-escaped (\/, \uXXXX in either hex case, ...), in any mix.
// So is, for values of at least 12 bytes, its standard or URL-safe base64
// encoding inside larger base64 text, at each of the three byte
// alignments, spelled with escapes or cut by line breaks (LF or CRLF): the
// characters that the value alone determines become <<Name>>, which breaks
// the surrounding base64 but leaves at most a few bits of the value in the
// characters at either end. The common spellings are found in one pass of
// a multi-pattern search; the others only near an escape or a line break
// (see escapes and wrapped). Secrets with an empty value are skipped. When
// two secrets share a form, the first in secrets wins. Compile is meant to
// run once per rules load, not per request.
func Compile(secrets []Secret) *Replacer {
	var find, repl, lower, dec, decRepl, b64, b64Repl []string
	seen := make(map[string]bool)
	seenLower := make(map[string]bool)
	seenDec := make(map[string]bool)
	for _, s := range secrets {
		if s.Value.IsZero() {
			continue
		}
		placeholder := "<<" + s.Name + ">>"
		v := s.Value.Reveal()
		for _, f := range forms(v) {
			if l := lowerASCII(f); !seenLower[l] {
				seenLower[l] = true
				lower = append(lower, l)
			}
			if seen[f] {
				continue
			}
			seen[f] = true
			find = append(find, f)
			repl = append(repl, placeholder)
		}
		if d := foldString(v); !seenDec[d] {
			seenDec[d] = true
			dec, decRepl = append(dec, d), append(decRepl, placeholder)
		}
		for _, f := range base64Forms(v) {
			if d := foldString(f); !seenDec[d] {
				seenDec[d] = true
				dec, decRepl = append(dec, d), append(decRepl, placeholder)
			}
			b64, b64Repl = append(b64, f), append(b64Repl, placeholder)
		}
	}
	// The decoding stages run first, so that the literal stage, the
	// costliest, writes straight into the caller's buffer, and a
	// decoding stage with nothing to do hands its buffer on (see
	// pipeline.flush).
	r := &Replacer{}
	if len(dec) > 0 {
		r.stages = append(r.stages, newMatcherStage(newEscapes(dec, decRepl), dec, decRepl))
	}
	if len(b64) > 0 {
		b64, b64Repl = dedupe(b64, b64Repl)
		r.stages = append(r.stages, newMatcherStage(newWrapped(b64, b64Repl), b64, b64Repl))
	}
	r.stages = append(r.stages, newReplacer(find, repl, false).stages...)
	if len(lower) > 0 {
		r.names = newReplacer(lower, lower, false)
	}
	return r
}

// dedupe drops the later of two equal patterns and its replacement.
func dedupe(find, repl []string) ([]string, []string) {
	seen := make(map[string]bool, len(find))
	var f2, r2 []string
	for i, f := range find {
		if !seen[f] {
			seen[f] = true
			f2, r2 = append(f2, f), append(r2, repl[i])
		}
	}
	return f2, r2
}

// foldString folds every byte of s (see fold).
func foldString(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = fold(c)
	}
	return string(b)
}

// lowerASCII returns s with ASCII letters in lower case.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = toLower(c)
	}
	return string(b)
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
	var pairs, compiled, names []*stage
	for _, r := range rs {
		if r == nil {
			continue
		}
		if r.names != nil {
			names = append(names, r.names.stages...)
		}
		for _, s := range r.stages {
			if s.literal {
				pairs = append(pairs, s)
			} else {
				compiled = append(compiled, s)
			}
		}
	}
	out := &Replacer{stages: append(pairs, compiled...)}
	if len(names) > 0 {
		out.names = &Replacer{stages: names}
	}
	return out
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
	var has [8]bool
	hasOK, copied := false, false
	base, out := len(dst), dst
	if lit := r.stages[len(r.stages)-1]; lit.m == nil && haveSpecialMasks && onlyMatchers(r.stages[:len(r.stages)-1]) {
		// The pass that finds which decoding stages have anything to
		// do also copies src, and where none of them changes it the
		// literal stage writes over the copy from its first match on.
		out = slices.Grow(dst, len(src))[:base+len(src)]
		hasOK, copied = presenceCopy(r.stages, src, has[:], out[base:])
		if copied && !slices.Contains(has[:len(r.stages)], true) {
			out, _, n := lit.runCopied(out, base, src, true)
			return out, n
		}
	}
	var buf [8]*stage
	stages := r.active(buf[:0], src, has[:], hasOK)
	total := 0
	var tmp [2]*[]byte // the outputs of the stages before the last
	defer func() {
		for _, t := range tmp {
			if t != nil {
				replaceBufs.Put(t)
			}
		}
	}()
	in := -1 // src is the input, or tmp[in]
	for i, s := range stages {
		if i == len(stages)-1 {
			var n int
			if copied && in < 0 {
				dst, _, n = s.runCopied(out, base, src, true)
			} else {
				dst, _, n = s.run(dst, src, true)
			}
			return dst, total + n
		}
		k := 0
		if in == 0 {
			k = 1
		}
		t := tmp[k]
		if t == nil {
			if t, _ = replaceBufs.Get().(*[]byte); t == nil {
				t = new([]byte)
			}
			tmp[k] = t
		}
		var n int
		if s.m != nil {
			// A decoding stage that replaces nothing leaves src as
			// it is: the copy is spared.
			var pos int
			if *t, pos, n = s.m.scan((*t)[:0], src, len(src)); n == 0 {
				continue
			}
			*t = append(*t, src[pos:]...)
		} else {
			*t, _, n = s.run((*t)[:0], src, true)
		}
		src, in = *t, k
		total += n
	}
	return append(dst, src...), total
}

// replaceBufs recycles the buffers (*[]byte) that Replace passes from one
// stage to the next.
var replaceBufs sync.Pool

// triggers reports whether one of stages may write what m starts from.
func triggers(stages []*stage, m matcher) bool {
	for _, s := range stages {
		if m.triggered(s.repl) {
			return true
		}
	}
	return false
}

// active appends to dst the stages of r that may change src: a decoding
// stage finds nothing in a text without what it starts from (an escape,
// a line break inside base64), unless a stage before it can write that.
// When hasOK, has holds what presence found for r.stages.
func (r *Replacer) active(dst []*stage, src []byte, has []bool, hasOK bool) []*stage {
	if !hasOK && !presence(r.stages, src, has) {
		has = nil
	}
	for i, s := range r.stages {
		if s.m == nil || (has != nil && has[i] || has == nil && s.m.has(src)) || triggers(dst, s.m) {
			dst = append(dst, s)
		}
	}
	return dst
}

// onlyMatchers reports whether stages are all decoding stages.
func onlyMatchers(stages []*stage) bool {
	for _, s := range stages {
		if s.m == nil {
			return false
		}
	}
	return true
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
		if !st.has(src) {
			continue
		}
		return (&Replacer{stages: r.stages[i:]}).Replace(nil, src)
	}
	return src, 0
}

// eachForm calls fn with every distinct form of every secret with a value
// (see forms), and its placeholder; a form shared by two secrets goes to
// the first. CompileMask masks these.
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
