package scrub

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// naive is the reference the engine is checked against: at each position it
// takes the longest pattern that starts there, else copies one byte. It
// returns the output and, for each replacement, the span it occupies in
// the output.
func naive(find, repl []string, src []byte) ([]byte, [][2]int) {
	var out []byte
	var spans [][2]int
	for i := 0; i < len(src); {
		best := -1
		for k, f := range find {
			if f != "" && bytes.HasPrefix(src[i:], []byte(f)) && (best < 0 || len(f) > len(find[best])) {
				best = k
			}
		}
		if best < 0 {
			out = append(out, src[i])
			i++
			continue
		}
		spans = append(spans, [2]int{len(out), len(out) + len(repl[best])})
		out = append(out, repl[best]...)
		i += len(find[best])
	}
	return out, spans
}

// patterns returns the find and replace lists of r's literal stage, the
// one that holds the listed forms of Compile's secrets.
func patterns(t testing.TB, r *Replacer) ([]string, []string) {
	t.Helper()
	for _, s := range r.stages {
		if s.m == nil {
			return s.find, s.repl
		}
	}
	return nil, nil
}

// reference runs the naive reference of each of r's stages in turn and
// returns the output with the number of replacements.
func reference(r *Replacer, in []byte) ([]byte, int) {
	out, total := in, 0
	for _, s := range r.stages {
		var spans [][2]int
		switch m := s.m.(type) {
		case nil:
			out, spans = naive(s.find, s.repl, out)
		case *escapes:
			out, spans = naiveEscapes(m.pats, m.repl, out)
		case *wrapped:
			out, spans = naiveWrapped(m.pats, m.repl, out)
		default:
			panic("unknown stage")
		}
		total += len(spans)
	}
	return out, total
}

// refUnit is a unit as the reference reads it.
type refUnit struct {
	start, end int
	dec        []byte
	esc        bool
}

// naiveUnits reads src as units from its start, the way a JSON and URL
// decoder does: %XX, \X for the JSON escapes, \uXXXX (a surrogate pair
// as one), else a raw byte.
func naiveUnits(src []byte) []refUnit {
	isHex := func(s []byte) bool {
		_, err := strconv.ParseUint(string(s), 16, 64)
		return err == nil && !bytes.ContainsAny(s, "+-xX_")
	}
	var out []refUnit
	for i := 0; i < len(src); {
		u := refUnit{start: i, end: i + 1, dec: []byte{src[i]}}
		rest := src[i:]
		switch {
		case len(rest) >= 3 && rest[0] == '%' && isHex(rest[1:3]):
			v, _ := strconv.ParseUint(string(rest[1:3]), 16, 8)
			u = refUnit{i, i + 3, []byte{byte(v)}, true}
		case len(rest) >= 2 && rest[0] == '\\' && strings.IndexByte(`"\\/bfnrt`, rest[1]) >= 0:
			d := map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': 8, 'f': 12, 'n': 10, 'r': 13, 't': 9}[rest[1]]
			u = refUnit{i, i + 2, []byte{d}, true}
		case len(rest) >= 6 && rest[0] == '\\' && rest[1] == 'u' && isHex(rest[2:6]):
			v, _ := strconv.ParseUint(string(rest[2:6]), 16, 32)
			r, n := rune(v), 6
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
				if v < 0xDC00 && len(rest) >= 12 && rest[6] == '\\' && rest[7] == 'u' && isHex(rest[8:12]) {
					lo, _ := strconv.ParseUint(string(rest[8:12]), 16, 32)
					if pair := utf16.DecodeRune(rune(v), rune(lo)); pair != utf8.RuneError {
						r, n = pair, 12
					}
				}
			}
			u = refUnit{i, i + n, utf8.AppendRune(nil, r), true}
		}
		out = append(out, u)
		i = u.end
	}
	return out
}

// naiveEscapes is the reference of the escapes stage: at each unit, the
// longest pattern (the first of equal ones) that whole units from there
// spell, a space read as a plus, with at least one escape among them.
func naiveEscapes(pats, repl []string, src []byte) ([]byte, [][2]int) {
	units := naiveUnits(src)
	var out []byte
	var spans [][2]int
	for k := 0; k < len(units); {
		best, bestEnd := -1, 0
		for pi, p := range pats {
			var dec []byte
			esc := false
			m := k
			for ; m < len(units) && len(dec) < len(p); m++ {
				dec = append(dec, units[m].dec...)
				esc = esc || units[m].esc
			}
			folded := bytes.ReplaceAll(dec, []byte(" "), []byte("+"))
			if esc && string(folded) == p && (best < 0 || len(p) > len(pats[best])) {
				best, bestEnd = pi, m
			}
		}
		if best < 0 {
			out = append(out, src[units[k].start:units[k].end]...)
			k++
			continue
		}
		spans = append(spans, [2]int{len(out), len(out) + len(repl[best])})
		out = append(out, repl[best]...)
		k = bestEnd
	}
	return out, spans
}

// naiveWrapped is the reference of the wrapped stage: at each position,
// the longest pattern (the first of equal ones) spelled from there with
// at most one line break, LF or CRLF, between two of its bytes, and at
// least one taken.
func naiveWrapped(pats, repl []string, src []byte) ([]byte, [][2]int) {
	var out []byte
	var spans [][2]int
	for i := 0; i < len(src); {
		best, bestEnd := -1, 0
		for pi, p := range pats {
			at, breaks, ok := i, 0, true
			for j := 0; j < len(p) && ok; j++ {
				if j > 0 && !bytes.HasPrefix(src[at:], []byte{p[j]}) {
					if bytes.HasPrefix(src[at:], []byte("\r\n")) {
						at += 2
						breaks++
					} else if bytes.HasPrefix(src[at:], []byte("\n")) {
						at++
						breaks++
					}
				}
				ok = at < len(src) && src[at] == p[j]
				at++
			}
			if ok && breaks > 0 && (best < 0 || len(p) > len(pats[best])) {
				best, bestEnd = pi, at
			}
		}
		if best < 0 {
			out = append(out, src[i])
			i++
			continue
		}
		spans = append(spans, [2]int{len(out), len(out) + len(repl[best])})
		out = append(out, repl[best]...)
		i = bestEnd
	}
	return out, spans
}

// checkLeak fails if a pattern occurs in out entirely outside the spans of
// replacements, that is within bytes copied from the input.
func checkLeak(t testing.TB, find []string, out []byte, spans [][2]int) {
	t.Helper()
	copied := 0 // start of the current run of copied bytes
	check := func(end int) {
		for k, f := range find {
			if i := bytes.Index(out[copied:end], []byte(f)); f != "" && i >= 0 {
				t.Fatalf("output contains pattern %d at offset %d", k, copied+i)
			}
		}
	}
	for _, s := range spans {
		check(s[0])
		copied = s[1]
	}
	check(len(out))
}

// chunkReader returns its data in chunks whose sizes cycle through sizes
// (each at least 1).
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = max(1, c.sizes[c.i%len(c.sizes)])
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readAllSized reads r to EOF with reads of at most bufSize bytes.
func readAllSized(r io.Reader, bufSize int) ([]byte, error) {
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// redact quotes s for a failure message with every occurrence of secrets
// replaced by "[secret N]", N its index, so that a message shows where a
// secret leaked but never its bytes.
func redact(s string, secrets ...string) string {
	names := make([]string, len(secrets))
	for i := range secrets {
		names[i] = fmt.Sprintf("[secret %d]", i)
	}
	out, _ := naive(secrets, names, []byte(s))
	return strconv.Quote(string(out))
}

// describeDiff names the first differing offset without printing bytes
// that may hold a secret.
func describeDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("outputs differ at offset %d (got len %d, want len %d)", i, len(got), len(want))
}
