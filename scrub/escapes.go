package scrub

import (
	"bytes"
	"slices"
	"strings"
)

// escapes finds secrets spelled with escapes, in any mix: each character
// of a value (or of one of its base64 forms) may be written raw, as a
// percent escape with upper- or lower-case hex, or as a JSON escape (\/,
// \u002F, \u002f, ...), the way any URL or JSON decoder reads them. No
// finite list of spellings covers that, so this stage reads the text as a
// decoder does, a unit at a time (see unit), and compares decoded bytes.
//
// Its result is defined as if the whole input were read as units from its
// start: at each unit, in order, the longest pattern that the decoded
// units from there spell (whole units, a space matching a plus), and that
// uses at least one escape, is replaced by its placeholder; spellings
// without an escape are the literal stage's. To stay fast it reads units
// only near an escape that decodes to a byte some pattern holds, between
// bytes that fit a pattern (see fits), since every spelling it replaces
// holds one: a body without % or \ costs the presence pass (see
// presence) or two bytes.IndexByte scans.
type escapes struct {
	patIndex          // of the folded decoded patterns
	sorted   []string // pats in byte order, for raw prefixes
	pairs    *pairSet // the first two bytes of pats, for raw prefixes
	// spells marks the bytes that can be part of a spelling: pattern
	// bytes (raw, or a space for a plus) and the bytes of escapes.
	spells [256]bool
	span   int // the most input bytes a match takes: 6 per decoded byte
	// grams holds every gram of pats: the raw bytes a match holds
	// before its first escape are a prefix of its pattern, so each gram
	// of them is one (see rawFloor).
	grams gramSet
	// edges holds the first and the last one to three bytes of every
	// pattern, tagged by end and length (see edgeKey), and short is set
	// when a pattern is shorter than 6 bytes: for fits.
	edges gramSet
	short bool
	// after and before hold the pairs fits needs first on each side: d
	// and the byte after it (a pair of a pattern, or d its last byte),
	// the byte before d and d (a pair, or d its first byte).
	after, before pairSet
}

func newEscapes(pats, repl []string) *escapes {
	e := &escapes{patIndex: newPatIndex(pats, repl)}
	for c := range 256 {
		b := byte(c)
		e.spells[c] = e.alpha[fold(b)] || isIntroducer(b) || unhex(b) >= 0 || b == 'u' || jsonEscape(b) != 0
	}
	e.sorted = slices.Clone(pats)
	slices.Sort(e.sorted)
	e.pairs = newPairSet(pats)
	e.span = 6 * e.maxLen
	n := 0
	for _, p := range pats {
		n += max(0, len(p)-gramLen+1)
	}
	e.grams = newGramSet(n)
	e.edges = newGramSet(6 * len(pats))
	for _, p := range pats {
		for i := 0; i+gramLen <= len(p); i++ {
			e.grams.add(blockValue(p[i : i+gramLen]))
		}
		for n := 1; n <= 3 && n <= len(p); n++ {
			e.edges.add(edgeKey(blockValue(p[:n]), n, false))
			e.edges.add(edgeKey(blockValue(p[len(p)-n:]), n, true))
		}
		e.short = e.short || len(p) < 6
		for i := 0; i+1 < len(p); i++ {
			e.after.set(p[i], p[i+1])
			e.before.set(p[i], p[i+1])
		}
		for c := range 256 {
			e.after.set(p[len(p)-1], byte(c))
			e.before.set(byte(c), p[0])
		}
	}
	return e
}

// edgeKey is the edges key of the n bytes v (in blockValue's order) that
// begin a pattern, or end one.
func edgeKey(v uint32, n int, end bool) uint32 {
	tag := uint32(n)
	if end {
		tag += 4
	}
	return v&(1<<(8*n)-1) | tag<<24
}

// rawFloor returns the earliest position, not before lo, where a match
// that holds the escape at j may start, all raw bytes up to j, or a raw
// prefix of a pattern that ends at j: not at or before k-4 where the
// folded gram b[k-4:k], k <= j, is no pattern's.
func (e *escapes) rawFloor(b []byte, lo, j int) int {
	for k := j; k-gramLen >= lo; k-- {
		v := uint32(fold(b[k-4])) | uint32(fold(b[k-3]))<<8 | uint32(fold(b[k-2]))<<16 | uint32(fold(b[k-1]))<<24
		if !e.grams.has(v) {
			return k - gramLen + 1
		}
	}
	return lo
}

// holdLen bounds what run holds back when not final.
func (e *escapes) holdLen() int { return e.span + 2*maxUnit }

// has reports whether b holds an escape that decodes to pattern bytes;
// without one run leaves b as it is.
func (e *escapes) has(b []byte) bool {
	pct, bs := -1, -1
	return e.candidate(b, 0, &pct, &bs) >= 0
}

// triggered reports whether writing one of repl between two bytes can
// make an escape: only one that is empty, holds an introducer, or starts
// with a byte that goes on an escape (a hex digit, u, or a JSON escape
// letter).
func (e *escapes) triggered(repl []string) bool {
	for _, r := range repl {
		if r == "" || strings.ContainsAny(r, `%\`) || unhex(r[0]) >= 0 || r[0] == 'u' || jsonEscape(r[0]) != 0 {
			return true
		}
	}
	return false
}

// matchAt returns the end and pattern index of the longest pattern that
// the units from b[i] spell with at least one escape, or -1, -1.
func (e *escapes) matchAt(b []byte, i int) (int, int) {
	first := unitAt(b, i)
	c := fold(first.dec[0])
	if len(e.byFirst[c]) == 0 {
		return -1, -1
	}
	// A pattern that the units spell begins with their first two decoded
	// bytes (pairs holds every byte after a one-byte pattern), so one
	// look at pairs spares a spell per pattern that begins with c.
	if first.dn > 1 {
		if !e.pairs.has(c, fold(first.dec[1])) {
			return -1, -1
		}
	} else if next := i + first.n; next < len(b) && !e.pairs.has(c, fold(unitAt(b, next).dec[0])) {
		return -1, -1
	}
	for _, k := range e.byFirst[c] {
		if end, ok := e.spell(b, i, e.pats[k]); ok {
			return end, int(k)
		}
	}
	return -1, -1
}

// spell reports whether the units from b[i] spell p, using an escape, and
// where they end.
func (e *escapes) spell(b []byte, i int, p string) (int, bool) {
	esc := false
	for j := 0; j < len(p); {
		if i >= len(b) {
			return 0, false
		}
		u := unitAt(b, i)
		if j+u.dn > len(p) {
			return 0, false
		}
		for t := range u.dn {
			if fold(u.dec[t]) != p[j+t] {
				return 0, false
			}
		}
		j += u.dn
		i += u.n
		esc = esc || u.escape
	}
	return i, esc
}

// prefixAt reports whether the units from b[i] up to q spell a proper
// prefix of some pattern, so that more input could complete a match.
func (e *escapes) prefixAt(b []byte, i, q int) bool {
	first := unitAt(b, i)
	for _, k := range e.byFirst[fold(first.dec[0])] {
		p := e.pats[k]
		at, j := i, 0
		for j < len(p) {
			if at >= q {
				return true
			}
			u := unitAt(b[:q], at)
			if j+u.dn > len(p) {
				break
			}
			ok := true
			for t := range u.dn {
				ok = ok && fold(u.dec[t]) == p[j+t]
			}
			if !ok {
				break
			}
			j += u.dn
			at += u.n
		}
	}
	return false
}

// hold returns the first unit boundary from which the rest of b could
// still grow into a match, or begins an escape that more bytes would
// change; run keeps b from there for the next call.
func (e *escapes) hold(b []byte) int {
	// A match's bytes before its first escape are raw, fewer than
	// maxLen, so one that is not complete starts at most maxLen before
	// the first introducer of the tail, or before the end.
	from := max(0, len(b)-e.holdLen())
	// Nor does it start before a byte that no spelling holds.
	for i := len(b) - 1; i >= from; i-- {
		if !e.spells[b[i]] {
			from = i + 1
			break
		}
	}
	first := min(indexFrom(b, from, '%'), indexFrom(b, from, '\\'))
	tail := resync(b, max(from, first-e.maxLen), 0)
	q := len(b)
	// Only the last maxUnit-1 bytes can hold an escape cut short, and
	// it starts with an introducer.
	for i := max(0, len(b)-(maxUnit-1)); i < len(b); i++ {
		if !isIntroducer(b[i]) {
			continue
		}
		for i := resync(b, max(tail, len(b)-maxUnit), tail); i < len(b); i += unitAt(b, i).n {
			if isIntroducer(b[i]) && incomplete(b[i:]) {
				q = i
				break
			}
		}
		break
	}
	if first == len(b) {
		// No escape in the tail: every unit is a byte, and a prefix
		// is a raw one, shorter than maxLen.
		// Each gram of a prefix is a pattern's (see rawFloor).
		for i := e.rawFloor(b, max(tail, len(b)-e.maxLen+1), len(b)); i < len(b); i++ {
			if i+1 < len(b) && !e.pairs.has(fold(b[i]), fold(b[i+1])) {
				continue
			}
			if len(e.byFirst[fold(b[i])]) > 0 && e.rawPrefix(b[i:]) {
				return i
			}
		}
		return len(b)
	}
	for i := tail; i < q; i += unitAt(b[:q], i).n {
		if len(e.byFirst[fold(unitAt(b[:q], i).dec[0])]) > 0 && e.prefixAt(b, i, q) {
			return i
		}
	}
	return q
}

// rawPrefix reports whether t, folded, is a proper prefix of a pattern.
// The patterns that start with it are contiguous in sorted order, from
// the first one not below it.
func (e *escapes) rawPrefix(t []byte) bool {
	lo, hi := 0, len(e.sorted)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cmpFolded(e.sorted[m], t) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for ; lo < len(e.sorted); lo++ {
		p := e.sorted[lo]
		if len(p) < len(t) || cmpFolded(p[:len(t)], t) != 0 {
			return false
		}
		if len(p) > len(t) {
			return true
		}
	}
	return false
}

// cmpFolded compares p with t folded, in byte order.
func cmpFolded(p string, t []byte) int {
	for i := 0; i < len(p) && i < len(t); i++ {
		if c := fold(t[i]); p[i] != c {
			if p[i] < c {
				return -1
			}
			return 1
		}
	}
	return len(p) - len(t)
}

// candidate returns the first position at or after from of an escape
// that decodes to pattern bytes, or -1. pct and bs cache the next % and \.
func (e *escapes) candidate(b []byte, from int, pct, bs *int) int {
	for {
		if *pct < from {
			*pct = indexFrom(b, from, '%')
		}
		if *bs < from {
			*bs = indexFrom(b, from, '\\')
		}
		j := min(*pct, *bs)
		if j == len(b) {
			return -1
		}
		if e.at(b, j) {
			return j
		}
		from = j + 1
	}
}

// at reports whether b[i] begins an escape that decodes to pattern bytes
// and, when it decodes to one byte, fits.
func (e *escapes) at(b []byte, i int) bool {
	if c := b[i]; c != '%' && c != '\\' {
		return false
	}
	if d, n := shortEscape(b, i); n > 0 {
		return e.alpha[fold(d)] && e.fits(b, i, n, d)
	}
	u := unitAt(b, i)
	if !u.escape {
		return false
	}
	for t := range u.dn {
		if !e.alpha[fold(u.dec[t])] {
			return false
		}
	}
	return u.dn > 1 || e.fits(b, i, u.n, u.dec[0])
}

// fits reports whether the escape at b[i], un bytes long and of one
// decoded byte d (dec), may be part of a match, from the decoded bytes
// around it: W, d and the three after it, and B, the three before it and
// d. In a pattern of length L with d at position p, W is a gram of the
// pattern if p+4 <= L, or else begins with one of its last 1-3 bytes (an
// end); B is a gram if p >= 3, or else ends with its first 1-3 bytes (a
// start). So a match needs a
// gram on one side and a gram or an edge on the other, or, when a pattern
// is shorter than 6 bytes (L-4 < p < 3), edges on both. A side whose
// bytes are not all in b, or not surely decoded (see unitBefore), is
// taken to fit.
//
// Only the first escape of a match needs to fit (scan walks back from it,
// and presence needs one): the bytes between the match's start and it
// are raw, and B uses no byte before the start when p < 3. So decoding
// escapes backwards (unitBefore's %XX and \c) only makes the check
// sharper for the escapes after the first.
//
// Either side's test needs the pair next to d to be a pattern's (or d
// the pattern's last byte for W, its first for B), so fits checks that
// pair first (after, before): in text that escapes every / most escapes
// fail there, one unit from d, before any gram is looked up.
func (e *escapes) fits(b []byte, i, un int, dec byte) bool {
	d := uint32(fold(dec))
	// W, in blockValue's order (the first byte lowest).
	w, n := d, 1
	for k := i + un; n < 4; {
		if len(b)-k < maxUnit { // a unit there may be cut short
			return true
		}
		if c := b[k]; !isIntroducer(c) { // a raw byte, without unitAt
			w |= uint32(fold(c)) << (8 * n)
			n++
			k++
		} else if c, un := shortEscape(b, k); un > 0 { // likewise
			w |= uint32(fold(c)) << (8 * n)
			n++
			k += un
		} else {
			v := unitAt(b, k)
			for t := 0; t < v.dn && n < 4; t++ {
				w |= uint32(fold(v.dec[t])) << (8 * n)
				n++
			}
			k += v.n
		}
		if !e.after.has(byte(d), byte(w>>8)) {
			return false // neither a gram nor an end, whatever follows
		}
	}
	wGram := e.grams.has(w)
	wEnd := e.edges.has(edgeKey(w, 1, true)) || e.edges.has(edgeKey(w, 2, true)) || e.edges.has(edgeKey(w, 3, true))
	if !wGram && !wEnd {
		return false
	}
	// B, read backwards from d.
	bv := d << 24
	for k, m := i, 0; m < 3; m++ {
		c, n, ok := unitBefore(b, k)
		if !ok {
			return true
		}
		bv |= uint32(fold(c)) << (8 * (2 - m))
		k -= n
	}
	if !e.before.has(byte(bv>>16), byte(d)) {
		return false // neither a gram nor a start
	}
	bGram := e.grams.has(bv)
	bStart := e.edges.has(edgeKey(bv>>24, 1, false)) || e.edges.has(edgeKey(bv>>16, 2, false)) || e.edges.has(edgeKey(bv>>8, 3, false))
	return wGram && (bGram || bStart) || bGram && wEnd || e.short && wEnd && bStart
}

// unitBefore returns the decoded byte and the length of the unit of b
// that ends at b[k-1], when k is a unit boundary: a raw byte, %XX or \c.
// It reports false when it cannot be sure from the bytes of b: too few
// of them before k, a \uXXXX unit, or a long run of backslashes.
func unitBefore(b []byte, k int) (byte, int, bool) {
	if k < maxUnit {
		return 0, 0, false
	}
	c := b[k-1]
	switch {
	case b[k-6] == '\\' && b[k-5] == 'u' && unhex(b[k-4]) >= 0 && unhex(b[k-3]) >= 0 && unhex(b[k-2]) >= 0 && unhex(c) >= 0:
		return 0, 0, false
	case b[k-3] == '%' && unhex(b[k-2]) >= 0 && unhex(c) >= 0:
		// No unit holds a % but as its first byte, so this is one.
		return byte(unhex(b[k-2])<<4 | unhex(c)), 3, true
	case isIntroducer(c):
		return 0, 0, false
	case b[k-2] == '\\' && jsonEscape(c) != 0:
		// \c, if that backslash begins a unit: the run of backslashes
		// it ends has odd length, since the run's first begins one (only
		// a surrogate pair holds a backslash inside, followed by u).
		run := 1
		for run < 8 && b[k-2-run] == '\\' {
			run++
		}
		if run == 8 {
			return 0, 0, false
		}
		if run%2 == 1 {
			return jsonEscape(c), 2, true
		}
	}
	return c, 1, true
}

// indexFrom returns the index of c in b at or after from, or len(b).
func indexFrom(b []byte, from int, c byte) int {
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return len(b)
}

// scan is matcher.scan for escaped spellings.
func (e *escapes) scan(dst, b []byte, limit int) ([]byte, int, int) {
	pos, n := 0, 0
	// Units before walked were tried already, and walked is a unit
	// boundary (so is pos, which it never trails).
	walked := 0
	pct, bs := -1, -1
	for from := 0; ; {
		j := e.candidate(b, from, &pct, &bs)
		if j < 0 {
			break
		}
		// A spelling that holds the escape at j starts at most span
		// before it, after the last byte that no spelling holds.
		rs := j
		for lo := e.rawFloor(b, max(walked, j-e.span), j); rs > lo && e.spells[b[rs-1]]; {
			rs--
		}
		if rs >= limit {
			break
		}
		cur := resync(b, rs, walked)
		for cur <= j && cur < limit {
			if c := b[cur]; !isIntroducer(c) {
				// A raw byte that starts no pattern, or none that goes
				// on with the raw byte after it (matchAt's pair check,
				// without its call).
				if len(e.byFirst[fold(c)]) == 0 || cur+1 < len(b) && !isIntroducer(b[cur+1]) && !e.pairs.has(fold(c), fold(b[cur+1])) {
					cur++
					continue
				}
			}
			if end, k := e.matchAt(b, cur); k >= 0 {
				dst = append(dst, b[pos:cur]...)
				dst = append(dst, e.repl[k]...)
				n++
				cur, pos = end, end
				continue
			}
			cur += unitAt(b, cur).n
		}
		walked = cur
		from = max(cur, j+1)
	}
	return dst, pos, n
}
