package scrub

import "strings"

// wrapped finds base64 forms broken across lines, as MIME, Python's
// base64.encodebytes and openssl write base64 (76 or 64 columns, LF or
// CRLF): decoders skip the line breaks, so a form may be cut anywhere.
//
// Its result is defined as: at each position, in order, the longest
// pattern spelled by the bytes from there with one line break ("\n" or
// "\r\n") allowed between any two of its bytes, and at least one taken, is
// replaced by its placeholder. A match's bytes before its first line break
// are pattern bytes right before that break, so only the runs of pattern
// bytes that end at a line break are tried: a body whose lines end in
// other bytes costs the presence pass (see presence), or one
// bytes.IndexByte scan, and a look at each line end.
type wrapped struct {
	patIndex // alpha never holds CR or LF: base64 forms have none
}

func newWrapped(pats, repl []string) *wrapped {
	return &wrapped{newPatIndex(pats, repl)}
}

// holdLen bounds what run holds back when not final: a pattern with a
// line break of two bytes after each of its bytes.
func (w *wrapped) holdLen() int { return 3 * w.maxLen }

// has reports whether b holds a line break with pattern bytes on both
// sides; without one run leaves b as it is.
func (w *wrapped) has(b []byte) bool {
	for from := 0; ; {
		nl := indexFrom(b, from, '\n')
		if nl == len(b) {
			return false
		}
		if w.at(b, nl) {
			return true
		}
		from = nl + 1
	}
}

// at reports whether b[i] is a line feed that ends a line break with
// pattern bytes on both sides.
func (w *wrapped) at(b []byte, i int) bool {
	if b[i] != '\n' {
		return false
	}
	lb := i
	if lb > 0 && b[lb-1] == '\r' {
		lb--
	}
	return lb > 0 && i+1 < len(b) && w.alpha[b[lb-1]] && w.alpha[b[i+1]]
}

// triggered reports whether writing one of repl between two bytes can
// put pattern bytes on both sides of a line break: only one that is
// empty, holds a line feed, or starts or ends with a pattern byte.
func (w *wrapped) triggered(repl []string) bool {
	for _, r := range repl {
		if r == "" || strings.IndexByte(r, '\n') >= 0 || w.alpha[r[0]] || w.alpha[r[len(r)-1]] {
			return true
		}
	}
	return false
}

// walk matches p against b from i. It returns where the match ends and
// whether it took a line break, or, when b ends first, more.
func (w *wrapped) walk(b []byte, i int, p string) (end int, broke, ok, more bool) {
	for j := 0; j < len(p); j++ {
		if i >= len(b) {
			return 0, broke, false, true
		}
		if b[i] != p[j] && j > 0 {
			switch {
			case b[i] == '\n':
				i++
			case b[i] == '\r' && i+1 >= len(b):
				return 0, broke, false, true
			case b[i] == '\r' && b[i+1] == '\n':
				i += 2
			default:
				return 0, broke, false, false
			}
			broke = true
			if i >= len(b) {
				return 0, broke, false, true
			}
		}
		if b[i] != p[j] {
			return 0, broke, false, false
		}
		i++
	}
	return i, broke, true, false
}

// matchAt returns the end and pattern index of the longest pattern
// spelled from b[i] across a line break, or -1, -1.
func (w *wrapped) matchAt(b []byte, i int) (int, int) {
	for _, k := range w.byFirst[b[i]] {
		if end, broke, ok, _ := w.walk(b, i, w.pats[k]); ok && broke {
			return end, int(k)
		}
	}
	return -1, -1
}

// hold returns the first position from which the rest of b could still
// grow into a match.
func (w *wrapped) hold(b []byte) int {
	// A match's bytes before its first break are fewer than maxLen, so
	// one that is not complete starts at most maxLen before the first
	// line feed of the tail, or before the end.
	from := max(0, len(b)-w.holdLen())
	// Nor does it start before a byte that is neither a pattern byte
	// nor part of a line break.
	for i := len(b) - 1; i >= from; i-- {
		if c := b[i]; !w.alpha[c] && c != '\r' && c != '\n' {
			from = i + 1
			break
		}
	}
	from = max(from, min(indexFrom(b, from, '\n'), len(b)-1)-w.maxLen)
	for i := max(0, from); i < len(b); i++ {
		for _, k := range w.byFirst[b[i]] {
			if _, _, _, more := w.walk(b, i, w.pats[k]); more {
				return i
			}
		}
	}
	return len(b)
}

// scan is matcher.scan for wrapped base64.
func (w *wrapped) scan(dst, b []byte, limit int) ([]byte, int, int) {
	pos, n := 0, 0
	for from := 0; from < len(b); {
		nl := indexFrom(b, from, '\n')
		if nl == len(b) {
			break
		}
		from = nl + 1
		lb := nl
		if lb > 0 && b[lb-1] == '\r' {
			lb--
		}
		// The run of pattern bytes that ends at the break, at most a
		// pattern's length less one, not before pos.
		s := lb
		for s > pos && s > lb-(w.maxLen-1) && w.alpha[b[s-1]] {
			s--
		}
		for ; s < lb && s < limit; s++ {
			if end, k := w.matchAt(b, s); k >= 0 {
				dst = append(dst, b[pos:s]...)
				dst = append(dst, w.repl[k]...)
				n++
				pos = end
				from = end
				break
			}
		}
		if s >= limit {
			break
		}
	}
	return dst, pos, n
}
